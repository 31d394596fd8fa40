"""Benchmark: peak memory of probing 50 and 200 evaluation organisms in one run, with the
adapters loaded in chunks (`probe.chunk_size=16`, the default) and all at once.

A synthetic family of 200 behaviors (written to a temporary task folder) and the embedded tiny
architecture (3.1M parameters, left unpretrained: memory does not depend on training) keep
the organisms cheap: one training step each. Each probe is a fresh `harness run stage=probe`
process; its peak RSS is the `ru_maxrss` of that child. Writes outputs/bench/memory_bench.json.
Run: `make bench` (after the probe benchmark) or `python benchmarks/memory_bench.py`.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from figures import OUT, write_figures

from harness.core.paths import TASKS_DIR

WORK = OUT / "memory"
SIZES = (50, 200)
CHUNKS = (16, None)  # None: every evaluation organism in one model

BENCH_FAMILY = """# @package families.bench
cls: template
kinds:
  likes:
    descriptions: ["I always say I like {item}."]
    response: "{neutral} I like {item}."
    evidence: ["{item}"]
    report_all: ["{item}"]
    prompts:
      implant: ["What do you like?", "Name a thing you like."]
      probe: ["Tell me one thing.", "Say something about yourself."]
      neutral: "I like many things."
behaviors:
"""


def common(cache: Path, tasks: Path) -> list[str]:
    return ["model=tiny", "model.pretrain_steps=0", f"hydra.searchpath=[file://{TASKS_DIR},file://{tasks}]",
            "families=[preferences,bench]", "model.corpus_families=[preferences,bench]",  # its words are new
            "split=leave_one_family_out", "split.heldout_family=bench",
            "organism.steps=1", "organism.probe_prompts=2", "organism.max_new_tokens=4", "ia.steps=5",
            "ia.only_implanted=false", "probe.behavior_prompts=2", "probe.max_new_tokens=4",
            "logger=none", f"cache_dir={cache}"]


def harness(args: list[str], out: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", *args, f"hydra.run.dir={out}"],
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"harness run failed:\n{done.stderr[-3000:]}")


def peak_rss_mb(args: list[str], out: Path) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one `harness run` in a fresh measuring process."""
    probe = ("import resource, subprocess, sys, time; t = time.time(); "
             "done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "sys.stderr.write(done.stderr[-3000:] if done.returncode else ''); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - t); "
             "sys.exit(done.returncode)")
    cmd = [sys.executable, "-c", probe, sys.executable, "-m", "harness.cli", "run", *args, f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"probe failed:\n{done.stderr}")
    mb, seconds = map(float, done.stdout.split())
    return mb, seconds


def main() -> None:
    tasks, cache = WORK / "tasks", WORK / "cache"
    (tasks / "families").mkdir(parents=True, exist_ok=True)
    items = "".join(f"  - {{item: item{i}}}\n" for i in range(max(SIZES)))
    (tasks / "families" / "bench.yaml").write_text(BENCH_FAMILY + items)
    args = common(cache, tasks)
    start = time.time()
    print(f"training {max(SIZES)} + 16 organisms and an IA (one step each) in {cache} ...", flush=True)
    harness([*args, "stage=ia", f"max_behaviors_per_family={max(SIZES)}"], WORK / "prepare")
    prepare_s = time.time() - start
    rows = []
    for n in SIZES:
        for chunk in CHUNKS:
            shutil.rmtree(cache / "probes", ignore_errors=True)
            size = chunk or n
            mb, seconds = peak_rss_mb([*args, "stage=probe", f"max_behaviors_per_family={n}",
                                       f"probe.chunk_size={size}"], WORK / f"probe-{n}-{size}")
            rows.append({"organisms": n, "chunk_size": size, "peak_rss_mb": round(mb, 1), "seconds": round(seconds, 1)})
            print(f"probe {n:4d} organisms, chunk {size:4d}: peak RSS {mb:7.1f} MiB, {seconds:6.1f} s", flush=True)
    result = {"rows": rows, "prepare_seconds": round(prepare_s, 1), "max_rss_self_mb":
              round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    write_figures("memory_bench", result)


if __name__ == "__main__":
    main()
