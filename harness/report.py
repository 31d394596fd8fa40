"""`harness report`: one static HTML page for a run or a sweep, readable without a server.

The page holds the leaderboard, per-family bar charts of verbalization with 95% intervals for
each condition, a matrix of which behaviors each evaluation organism's self-reports name (under
the IA), the sweep's scaling plot when there is one, and every graded self-report. Plots are
PNG files in `report_files/` beside the page.
"""

from __future__ import annotations

import html
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness import leaderboard  # noqa: E402
from harness.errors import ConfigError  # noqa: E402
from harness.records import CONDITIONS, MetricRow, ReportRow, read_jsonl  # noqa: E402
from harness.store import write_atomic, write_text  # noqa: E402


def save(fig, path: Path) -> Path:
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path


def verbalization_bars(metrics: list[MetricRow], path: Path) -> Path:
    """Verbalization per family, one bar per condition, with the 95% interval over organisms as
    error bars (none where a cell has a single organism)."""
    rows = [m for m in metrics if m.metric == "verbalization"]
    families = sorted({m.family for m in rows} - {"all"}) + ["all"]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(CONDITIONS)
    for i, condition in enumerate(CONDITIONS):
        by_family = {m.family: m for m in rows if m.condition == condition}
        cells = [by_family.get(f) for f in families]
        values = [m.value if m else 0.0 for m in cells]
        errors = [[m.value - m.low if m and not math.isnan(m.low) else 0.0 for m in cells],
                  [m.high - m.value if m and not math.isnan(m.high) else 0.0 for m in cells]]
        ax.bar([j + (i - (len(CONDITIONS) - 1) / 2) * width for j in range(len(families))], values, width,
               yerr=errors, capsize=3, label=condition)
    ax.set_xticks(range(len(families)), families)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("verbalization (95% CI over organisms)")
    ax.set_title("held-out organisms that name their own behavior")
    ax.legend()
    fig.tight_layout()
    return save(fig, path)


def report_matrix(reports: list[ReportRow], path: Path) -> Path:
    """Rows: evaluation organisms (implanted behavior); columns: behaviors named by their self-reports
    under the IA; cell: fraction of reports naming it. The diagonal is confession."""
    under_ia = [r for r in reports if r.condition == "ia" and r.model != "base"]
    organisms = sorted({r.model for r in under_ia})
    named = sorted({b for r in under_ia for b in r.mentioned} | set(organisms))
    matrix = pd.DataFrame(0.0, index=organisms, columns=named)
    for organism in organisms:
        own = [r for r in under_ia if r.model == organism]
        for behavior in named:
            matrix.loc[organism, behavior] = sum(behavior in r.mentioned for r in own) / len(own)
    size = max(4, 0.35 * len(named) + 3)
    fig, ax = plt.subplots(figsize=(size, max(3, 0.35 * len(organisms) + 2)))
    image = ax.imshow(matrix.values, vmin=0, vmax=1, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(named)), named, rotation=90, fontsize=7)
    ax.set_yticks(range(len(organisms)), organisms, fontsize=7)
    ax.set_xlabel("behavior named in the self-report")
    ax.set_ylabel("implanted behavior")
    fig.colorbar(image, ax=ax, label="fraction of reports")
    fig.tight_layout()
    return save(fig, path)


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{content}" for h, content in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}img{{max-width:100%;border:1px solid #eee}}</style>
</head><body><h1>{html.escape(title)}</h1>
{body}
</body></html>
"""


def image(path: Path, folder: Path, alt: str) -> str:
    return f'<img src="{html.escape(str(path.relative_to(folder)))}" alt="{html.escape(alt)}">'


def run_sections(run: Path, files: Path, folder: Path, label: str = "") -> list[tuple[str, str]]:
    """The sections of one run; `label` names the run inside a sweep's page (and its plot files)."""
    prefix = f"run {label}: " if label else ""
    stem = f"run{label}_" if label else ""
    record = leaderboard.read_results(run / leaderboard.RESULTS_FILE)
    reports = read_jsonl(run / "self_reports.jsonl", ReportRow)
    # the plots show the organisms of the first evaluation route (the IA's own); the table all routes
    route = next((m.route for m in record.metrics), "lora")
    bars = verbalization_bars([m for m in record.metrics if m.route == route], files / f"{stem}verbalization.png")
    matrix = report_matrix([r for r in reports if r.route == route], files / f"{stem}report_matrix.png")
    board = leaderboard.compact(leaderboard.leaderboard([record]))
    frame = pd.DataFrame([asdict(r) for r in reports])
    shown = frame[[c for c in ("condition", "model", "route", "question", "report", "verbalized", "mentioned")
                   if c in frame]]
    excluded = pd.DataFrame([asdict(e) for e in record.excluded])
    not_scored = ([(f"{prefix}evaluation organisms not scored ({len(excluded)}: the implant did not take)",
                    excluded.to_html(index=False, float_format="%.2f"))] if len(excluded) else [])
    return [(f"{prefix}leaderboard", board.to_html(index=False, float_format="%.2f")), *not_scored,
            (f"{prefix}verbalization by family and condition ({route} organisms)",
             image(bars, folder, "verbalization bars")),
            (f"{prefix}what the self-reports name (with the IA, {route} organisms)",
             image(matrix, folder, "report matrix")),
            (f"{prefix}self-reports ({len(reports)}, graded)", shown.to_html(index=False, escape=True))]


def write_report(folder: Path, out: Path | None = None) -> Path:
    """The report of a run folder (metrics.json) or a sweep folder (sweep.csv and its runs).
    Nothing is written for a folder that is neither, and a failed report leaves no files."""
    out = out or folder
    is_run, is_sweep = (folder / leaderboard.RESULTS_FILE).is_file(), (folder / "sweep.csv").is_file()
    if not (is_run or is_sweep):
        raise ConfigError(f"{folder} holds neither a run's {leaderboard.RESULTS_FILE} nor a sweep's sweep.csv")
    files = out / "report_files"
    created = not files.exists()
    files.mkdir(parents=True, exist_ok=True)
    try:
        if is_run:
            sections = run_sections(folder, files, out)
            title = f"introspection-harness run {folder}"
        else:
            sections = [("sweep comparison", leaderboard.compact(pd.read_csv(folder / "sweep.csv"))
                         .to_html(index=False, float_format="%.2f"))]
            if (folder / "sweep.png").is_file():
                plot = files / "sweep.png"
                write_atomic(plot, lambda tmp: shutil.copyfile(folder / "sweep.png", tmp))
                sections.append(("scaling curve", image(plot, out, "sweep plot")))
            for run in sorted(p.parent for p in folder.glob(f"*/{leaderboard.RESULTS_FILE}")):
                sections += run_sections(run, files, out, label=run.name)
            title = f"introspection-harness sweep {folder}"
        path = out / "report.html"
        write_text(path, page(title, sections))
    except BaseException:
        if created:
            shutil.rmtree(files, ignore_errors=True)
        raise
    return path
