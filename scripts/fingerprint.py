"""A fingerprint of what a run made: its store's keys, cards and weights, and its results.

Two runs of the same config and seed on the same machine and thread count have the same
fingerprint; a refactor that changes no behavior keeps it. Times, paths and seals are left out.

    harness run preset=smoke threads=1 logger=none cache_dir=/tmp/fp/cache hydra.run.dir=/tmp/fp/run
    python scripts/fingerprint.py /tmp/fp/run /tmp/fp/cache
"""

import hashlib
import json
import sys
from pathlib import Path

VOLATILE = {"seconds", "integrity", "base_name_or_path", "name_or_path", "created", "path", "started", "git_commit",
            "versions", "command", "run_id", "wandb", "run_dir"}


def stable(value):
    """The value with its volatile fields dropped, at every depth."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in sorted(value.items()) if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def weights(folder: Path) -> list[tuple[str, str]]:
    """The digest of every tensor of every safetensors file (not of the files: their header's
    metadata is written in no fixed order)."""
    import torch
    from safetensors import safe_open

    def digest(tensor: torch.Tensor) -> str:
        return hashlib.sha256(tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()

    out = []
    for path in sorted(folder.rglob("*.safetensors")):
        with safe_open(path, "pt") as f:
            out += [(f"{path.relative_to(folder)}:{k}", digest(f.get_tensor(k))) for k in sorted(f.keys())]
    return out


def parts(run: Path, cache: Path) -> dict[str, str]:
    """One digest per artifact (its card and its weights) and per result file."""
    out = {}
    for card_path in sorted(cache.glob("*/*/card.json")):
        if ".tmp-" in card_path.parent.name:
            continue
        card = json.loads(card_path.read_text())
        text = json.dumps([stable(card), weights(card_path.parent)], sort_keys=True)
        out[f"{card_path.parent.parent.name}/{card_path.parent.name}"] = hashlib.sha256(text.encode()).hexdigest()
    metrics = json.loads((run / "metrics.json").read_text())
    out["metrics.json"] = hashlib.sha256(json.dumps(stable(metrics["metrics"]), sort_keys=True).encode()).hexdigest()
    for name in ("self_reports.jsonl", "behavior_rows.jsonl", "probe_samples.jsonl"):
        out[name] = hashlib.sha256((run / name).read_bytes()).hexdigest()
    return out


def main() -> None:
    run, cache = Path(sys.argv[1]), Path(sys.argv[2])
    table = parts(run, cache)
    for name, digest in table.items():
        print(f"{digest[:16]}  {name}")
    whole = hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()
    print(f"fingerprint {whole[:16]} ({len(table)} parts)")


if __name__ == "__main__":
    main()
