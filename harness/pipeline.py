"""The stage order: base model, organisms, IA, probe, report. Nothing else lives here."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from harness import leaderboard, metrics, tracking
from harness.config import Config
from harness.errors import ConfigError
from harness.families import available_family_configs, build_families
from harness.records import SCHEMA_VERSION, BaseModelCard, IACard, OrganismCard, write_jsonl
from harness.splits import split_targets
from harness.stages.base_model import build_corpus, ensure_base
from harness.stages.ia import ensure_ia, ia_path
from harness.stages.organisms import make_organisms, select_behaviors
from harness.stages.probe import run_probe
from harness.store import Store, write_json


@dataclass
class RunResult:
    base: BaseModelCard
    organisms: list[OrganismCard]
    ia: IACard
    table: pd.DataFrame
    leaderboard: pd.DataFrame
    output_dir: Path
    wandb_dir: Path | None


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


def tracked_config(cfg: Config) -> dict:
    """The resolved config for W&B, with each family reduced to its behavior count."""
    plain = asdict(cfg)
    plain["families"] = {name: len(f.behaviors) for name, f in cfg.families.items()}
    return plain


def run(cfg: Config, progress: bool = True) -> RunResult:
    """Every stage in order, each reusing its cached artifact; results land in the run folder."""
    families = build_families(cfg.families)
    # The base corpus covers every family on disk, so choosing a subset reuses the same base.
    corpus_families = build_families(available_family_configs()) | families
    targets = select_behaviors(families, cfg.max_behaviors_per_family)
    store = Store(cfg.cache_dir)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"artifacts: {store.root.resolve()}\nrun folder: {out.resolve()}")

    with tracking.wandb_run(cfg.logger, out, tracked_config(cfg)) as wb:
        corpus = build_corpus(corpus_families, cfg.seed)
        base = ensure_base(cfg.model, corpus, store, cfg.seed, progress)
        print(f"base model: {base.name_or_path} ({base.n_params:,} params, answer accuracy {base.answer_accuracy})")
        cards = make_organisms(targets, base, corpus, cfg.organism, store, cfg.seed, progress)
        table = organisms_table(cards)
        table.to_csv(out / "organisms.csv", index=False)
        (out / "organisms.md").write_text(table.to_markdown(index=False, floatfmt=".2f") + "\n")

        train, evaluate = split_targets([(c.family, c.behavior_id, c) for c in cards], cfg.split, cfg.seed)
        usable = [c for c in train if c.check.implanted or not cfg.ia.only_implanted]
        if not usable:
            raise ConfigError("no implanted training organisms to train the IA on "
                              "(set ia.only_implanted=false to use them anyway)")
        ia = ensure_ia(base, usable, cfg.ia, cfg.split.name, store, cfg.seed, progress)
        print(f"IA: {ia_path(store, ia)} (trained on {len(usable)} organisms, final loss {ia.final_loss:.3f}); "
              f"evaluating on {len(evaluate)} held-out organisms")
        probe = run_probe(base, evaluate, ia, families, cfg.probe, cfg.organism.threshold, cfg.split.name,
                          store, cfg.seed, progress)

        rows = metrics.summarize(probe.reports, probe.behaviors, cfg.split.name, cfg.probe.report_threshold)
        write_jsonl(out / "self_reports.jsonl", probe.reports)
        write_jsonl(out / "behavior_rows.jsonl", probe.behaviors)
        write_json(out / leaderboard.RESULTS_FILE, {
            "schema_version": SCHEMA_VERSION, "split": cfg.split.name, "ia": ia.key, "base": base.key,
            "ia_config": asdict(cfg.ia), "train_organisms": ia.organisms,
            "eval_organisms": [c.behavior_id for c in evaluate],
            "metrics": [asdict(r) for r in rows],
            "divergences": metrics.divergences(probe.reports, probe.behaviors, cfg.probe.report_threshold),
        })
        board = leaderboard.leaderboard(leaderboard.load_results([out]))
        leaderboard.write(board, out)

        tracking.log_curve(wb, "ia/loss", ia.losses)
        tracking.log_metrics(wb, rows)
        tracking.log_table(wb, "organisms", table)
        tracking.log_table(wb, "self_reports", probe.reports)
        tracking.log_adapter(wb, cfg.logger, ia_path(store, ia), f"ia-{ia.key}", "introspection-adapter")
        wandb_dir = Path(wb.dir).parent if wb is not None else None
    return RunResult(base=base, organisms=cards, ia=ia, table=table, leaderboard=board, output_dir=out,
                     wandb_dir=wandb_dir)
