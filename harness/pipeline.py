"""The stage order: base model, then organisms. Nothing else lives here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.config import Config
from harness.families import available_family_configs, build_families
from harness.records import BaseModelCard, OrganismCard
from harness.stages.base_model import build_corpus, ensure_base
from harness.stages.organisms import make_organisms, select_behaviors
from harness.store import Store, write_json


@dataclass
class RunResult:
    base: BaseModelCard
    organisms: list[OrganismCard]
    table: pd.DataFrame
    output_dir: Path


def organisms_table(cards: list[OrganismCard]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "behavior": c.behavior_id,
                "family": c.family,
                "rate": c.check.rate,
                "base_rate": c.check.base_rate,
                "strength": c.check.strength,
                "implanted": c.check.implanted,
                "loss": round(c.final_loss, 3),
                "seconds": c.seconds,
            }
            for c in cards
        ]
    )


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby("family").agg(
        organisms=("behavior", "count"),
        implanted=("implanted", "mean"),
        mean_strength=("strength", "mean"),
        mean_base_rate=("base_rate", "mean"),
    )


def run(cfg: Config, progress: bool = True) -> RunResult:
    """Build (or reuse) the base model and the organisms; write their table to the run folder."""
    families = build_families(cfg.families)
    # The base corpus covers every family on disk, so choosing a subset reuses the same base.
    corpus_families = build_families(available_family_configs()) | families
    targets = select_behaviors(families, cfg.max_behaviors_per_family)
    store = Store(cfg.cache_dir)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"artifacts: {store.root.resolve()}\nrun folder: {out.resolve()}")

    base = ensure_base(cfg.model, corpus_families, store, cfg.seed, progress)
    print(f"base model: {base.name_or_path} ({base.n_params:,} params, "
          f"answer accuracy {base.answer_accuracy})")
    corpus = build_corpus(corpus_families, cfg.seed)
    cards = make_organisms(targets, base, corpus, cfg.organism, store, cfg.seed, progress)

    table = organisms_table(cards)
    table.to_csv(out / "organisms.csv", index=False)
    (out / "organisms.md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")
    write_json(out / "organisms.json", [c.key for c in cards])
    return RunResult(base=base, organisms=cards, table=table, output_dir=out)
