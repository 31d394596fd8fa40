"""Leaderboards from the results store alone: one row per adapter and condition."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

METRICS = ("verbalization", "identification", "agreement")
RESULTS_FILE = "metrics.json"


def load_results(folders: Iterable[Path]) -> list[dict]:
    """Every run's aggregate results under the given folders (searched recursively), with the
    Hydra overrides that made the run when its `.hydra/overrides.yaml` is there."""
    out = []
    for folder in folders:
        for path in sorted(Path(folder).rglob(RESULTS_FILE)):
            record = json.loads(path.read_text())
            record["path"] = str(path.parent)
            overrides = path.parent / ".hydra" / "overrides.yaml"
            record["overrides"] = " ".join(OmegaConf.load(overrides)) if overrides.is_file() else ""
            out.append(record)
    return out


def leaderboard(results: list[dict]) -> pd.DataFrame:
    """Rows: (IA, condition); columns: `{family}/{metric}` and the base model's false-positive rate."""
    rows = []
    for run in results:
        by_condition: dict[str, dict] = {}
        for m in run["metrics"]:
            row = by_condition.setdefault(m["condition"], {"ia": run["ia"][:8], "split": run["split"],
                                                           "overrides": run.get("overrides", ""),
                                                           "condition": m["condition"]})
            if m["family"] == "base":
                row["base/false_positive_rate"] = m["value"]
            elif m["metric"] in METRICS:
                row[f"{m['family']}/{m['metric']}"] = m["value"]
        rows += by_condition.values()
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    first = ["ia", "split", "overrides", "condition"]
    families = sorted({c.split("/")[0] for c in df.columns if "/" in c} - {"all", "base"})
    ordered = [f"{f}/{m}" for f in [*families, "all"] for m in METRICS if f"{f}/{m}" in df.columns]
    return df[first + ordered + ["base/false_positive_rate"]]


def compact(df: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader looks at first: verbalization per family, then the pooled figures."""
    keep = [c for c in df.columns if c in ("overrides", "condition") or c.endswith("/verbalization")
            or c in ("all/identification", "all/agreement", "base/false_positive_rate")]
    if "overrides" in keep and not df["overrides"].astype(bool).any():
        keep.remove("overrides")
    return df[keep].rename(columns=lambda c: c.replace("/verbalization", "").replace("base/false_positive_rate",
                                                                                       "base FPR"))


def write(df: pd.DataFrame, folder: Path, stem: str = "leaderboard") -> tuple[Path, Path]:
    md, csv = folder / f"{stem}.md", folder / f"{stem}.csv"
    md.write_text(to_markdown(df) + "\n")
    df.to_csv(csv, index=False)
    return md, csv


def to_markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, floatfmt=".2f")
