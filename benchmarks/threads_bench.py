"""Benchmark: torch threads of jobs that share a machine (a joblib sweep).

Times training steps of the 3.3M tiny architecture (model=tiny_3m, the former default; a fixed
random batch, the shape of base pretraining) in fresh processes: one job alone with every core,
then as many jobs side by side as there are cores, first each with every core (what a job takes
when nothing tells it otherwise, oversubscribed), then each with its share (`threads`, as the
staged sweeper sets it). Writes outputs/bench/threads_bench.json. Run: `make bench` or
`python benchmarks/threads_bench.py`.
"""

from __future__ import annotations

import subprocess
import sys

from figures import write_figures

from harness.train.training import cores

STEPS = 20

JOB = """
import sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM
from harness.train.training import set_threads
set_threads(int(sys.argv[1]))
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=2048, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
ids = torch.randint(0, 2048, (32, 48))
for step in range(2 + int(sys.argv[2])):
    if step == 2:  # two warm-up steps
        start = time.perf_counter()
    model(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    opt.zero_grad()
print((time.perf_counter() - start) / int(sys.argv[2]))
"""


def side_by_side(n_jobs: int, threads: int) -> list[float]:
    """Seconds per step of each of `n_jobs` processes started together, each with `threads`."""
    procs = [subprocess.Popen([sys.executable, "-c", JOB, str(threads), str(STEPS)], stdout=subprocess.PIPE, text=True)
             for _ in range(n_jobs)]
    return [float(p.communicate()[0].strip()) for p in procs]


def main() -> int:
    n = cores()
    jobs = n  # a joblib sweep (n_jobs=-1) runs one job per core
    share = max(1, n // jobs)  # what the staged sweeper gives each (hydra_plugins/harness_sweeper)
    alone = side_by_side(1, n)[0]
    oversubscribed = side_by_side(jobs, n)
    shared = side_by_side(jobs, share)
    figures = {
        "cores": n, "steps": STEPS,
        "alone_s_per_step": round(alone, 4),
        "side_by_side_jobs": jobs,
        "oversubscribed_threads_per_job": n,
        "oversubscribed_s_per_step": [round(s, 4) for s in oversubscribed],
        "shared_threads_per_job": share,
        "shared_s_per_step": [round(s, 4) for s in shared],
        "slowdown_oversubscribed_vs_shared": round(max(oversubscribed) / max(shared), 2),
    }
    write_figures("threads_bench", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
