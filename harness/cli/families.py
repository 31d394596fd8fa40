"""`harness families`: the behavior families (built in and your own) and their behaviors."""

from __future__ import annotations

import argparse

from harness.core.paths import TASKS_DIR

NAME = "families"
HELP = "list the behavior families and their behaviors"
EXAMPLES = """\
examples:
  harness families                                     # the built-in families and their behaviors
  harness families families_dir=~/my_families          # with your own (DIR/families/<name>.yaml, or DIR named families)
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", help="families_dir=DIR adds your own folder of families")


def command(a: argparse.Namespace) -> int:
    from harness.families import build_family, family_files, load_family_config, search_overrides

    for name, path in family_files(search_overrides(a.overrides)).items():
        behaviors = build_family(name, load_family_config(path)).behaviors()
        origin = "built-in" if path.is_relative_to(TASKS_DIR.resolve()) else f"from {path}"
        print(f"{name} ({len(behaviors)} behavior{'s' * (len(behaviors) != 1)}, {origin})")
        for b in behaviors:
            print(f"  {b.id:45s} {b.descriptions[0]}")
    return 0
