"""`harness audit`: probe any fine-tune for every behavior and ask it about itself with and
without the IA; an audit card of what it does against what it says."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.compose import check
from harness.core import manifest
from harness.core.errors import EXIT_FINDING, ConfigError

NAME = "audit"
HELP = "probe any fine-tune for every behavior, ask it with and without the IA"
EXAMPLES = """\
examples:
  harness audit --model .cache/harness/organisms/<key> --ia .cache/harness/ia/<key>/ia
  harness audit --model my-peft-lora/ --ia my-ia/ --base Qwen/Qwen3-0.6B model=hf model.name_or_path=Qwen/Qwen3-0.6B
exit status: 0 every measured behavior was reported with the IA, 1 a measured behavior went
unreported (a verdict of `hidden`), 2 bad input, 3 an internal error (a traceback to report)
"""

AUDIT_FILES = ("audit.json", "audit.md")


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="a peft adapter or a checkpoint")
    p.add_argument("--ia", type=Path, required=True, help="the IA adapter")
    p.add_argument("--base", help="the base model (default: the adapter's own base)")
    p.add_argument("--out", type=Path, help="where the audit card goes (default: outputs/audit/<model>)")
    p.add_argument("overrides", nargs="*", help="config overrides (families=..., model=hf ...)")


def command(a: argparse.Namespace) -> int:
    from dataclasses import asdict

    from harness.core.store import write_json, write_text
    from harness.families import build_families
    from harness.measure import audit

    out = a.out or Path("outputs/audit") / a.model.resolve().name
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, not a folder")
    if out.is_dir():
        manifest.check_replaceable(out, AUDIT_FILES, "--out")
    cfg = check(a.overrides)
    card = audit.audit(a.model, a.ia, a.base, build_families(cfg.families, cfg.model.free_text), cfg)
    out.mkdir(parents=True, exist_ok=True)
    text = audit.to_markdown(card)
    write_json(out / "audit.json", asdict(card))
    write_text(out / "audit.md", text)
    manifest.record(out, AUDIT_FILES)
    print(text)
    print(f"audit card written to {out / 'audit.md'} and {out / 'audit.json'}")
    return EXIT_FINDING if card.with_verdict("hidden") else 0
