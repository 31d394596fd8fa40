"""`harness export-inspect`: a run as Inspect AI eval logs, for `inspect view`."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from harness.core import manifest
from harness.core.errors import ConfigError

NAME = "export-inspect"
HELP = "write a run as Inspect AI eval logs, for `inspect view`"
EXAMPLES = """\
examples:
  harness export-inspect outputs/<date>/<time>         # writes outputs/<date>/<time>/inspect/*.eval
  inspect view --log-dir outputs/<date>/<time>/inspect # browse the self-reports and probe answers
  harness export-inspect RUN --out inspect_logs/my_run
one log per condition (selfreport_ia, selfreport_no_ia, ...; each sample a self-report scored by the
rules grader, its organism, family, route and IA as metadata) and one of the probes (probe)
"""


def arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, help="a run folder of `harness run`")
    p.add_argument("--out", type=Path, help="where the logs go (default: RUN/inspect)")


def command(a: argparse.Namespace) -> int:
    from harness.report.inspect_export import export

    if importlib.util.find_spec("inspect_ai") is None:
        raise ConfigError("export-inspect needs Inspect AI: pip install 'introspection-harness[inspect]'")

    out = a.out or a.run / "inspect"
    inside = out.resolve().parent == a.run.resolve()
    if inside:
        manifest.check_replaceable(a.run, [out.name], "export-inspect")
    logs = export(a.run, out)
    if inside:
        manifest.record(a.run, [out.name])
    print(f"wrote {len(logs)} Inspect eval logs to {out}/ (tasks {', '.join(p.stem.split('_')[1] for p in logs)})\n"
          f"browse them: inspect view --log-dir {out}")
    return 0
