"""`harness report`: one self-contained HTML page for a run or a sweep, to open or send as it is.

A run's page: where it came from (base model, IA, split, seed, training organisms, command, git
commit, date, W&B), a legend of the metrics, the leaderboard with 95% intervals and n, per-family
bars of verbalization with intervals for each condition, a matrix of the behaviors each
evaluation organism's self-reports name (under the IA), the organisms with their implant
strength, the divergences (behaviors hidden or hallucinated), and every graded self-report grouped
by organism, searchable and filterable by condition and verdict. A sweep's page: its comparison
table and scaling plot, then each run labelled by its swept values. Plots are PNGs inlined as
data URIs; a few lines of script do the filtering; nothing is loaded from anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from harness.core.errors import ConfigError  # noqa: E402
from harness.core.record_io import read_jsonl
from harness.core.records import CONDITIONS, MetricRow, ProbeSample, ReportRow, RunResults
from harness.core.store import write_text  # noqa: E402
from harness.measure.metrics import METRIC_SPECS, normalized  # noqa: E402
from harness.report import leaderboard, sweep_summary  # noqa: E402

CONDITION_MEANINGS = {
    "ia": "the organism with the IA, asked a held-out question",
    "no_ia": "the organism alone, asked the same questions",
    "prefill": 'the organism alone, its answer started with "I have learned to"',
    "parrot": "no model: the descriptions of the IA's training organisms of the same kind",
    "shuffled": "the IA's reports on the other organisms of the family, graded against this one",
}


def png(fig) -> str:
    """A figure as an inline `<img>` (a PNG data URI)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    return png_bytes(buffer.getvalue(), fig.axes[0].get_title() if fig.axes else "plot")


def png_bytes(data: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode()}" alt="{html.escape(alt)}">'


def verbalization_bars(metrics: list[MetricRow]):
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
    return fig


def report_matrix(reports: list[ReportRow]):
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
    ax.set_title("what the self-reports name, with the IA")
    fig.colorbar(image, ax=ax, label="fraction of reports")
    fig.tight_layout()
    return fig


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1300px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}
th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}dl.provenance{display:grid;
grid-template-columns:max-content auto;gap:2px 14px;font-size:14px}dl.provenance dt{font-weight:bold}
dl.provenance dd{margin:0;font-family:monospace}.filters{position:sticky;top:0;background:#fff;padding:6px 0;
border-bottom:1px solid #ddd}.filters input[type=search]{width:24em}tr.yes td.verdict{color:#070}
tr.no td.verdict{color:#a00}details{margin:.3em 0}
.wide{overflow-x:auto}.wide td{white-space:nowrap}summary{cursor:pointer}.legend td:first-child{font-weight:bold}"""

# Filters the self-report rows of a section (rows with a condition; not the probe answers) by text
# (question or report), condition and verdict; an organism whose rows are all hidden is hidden too,
# and the section says how many are shown.
SCRIPT = """document.querySelectorAll('section.reports').forEach(section => {
  const text = section.querySelector('input.search'), condition = section.querySelector('select.condition'),
        verdict = section.querySelector('select.verdict'), shown = section.querySelector('.shown');
  function apply() {
    const words = text.value.toLowerCase();
    let count = 0;
    section.querySelectorAll('details.organism').forEach(group => {
      let visible = 0;
      group.querySelectorAll('tbody tr[data-condition]').forEach(row => {
        const ok = (!words || row.textContent.toLowerCase().includes(words))
          && (!condition.value || row.dataset.condition === condition.value)
          && (!verdict.value || row.dataset.verbalized === verdict.value);
        row.hidden = !ok;
        visible += ok;
      });
      group.hidden = visible === 0;
      count += visible;
    });
    shown.textContent = count;
  }
  [text, condition, verdict].forEach(control => control.addEventListener('input', apply));
  apply();
});"""


def page(title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{content}" for h, content in sections)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head><body><h1>{html.escape(title)}</h1>
{body}
<script>{SCRIPT}</script>
</body></html>
"""


def table(df: pd.DataFrame, wide: bool = False) -> str:
    """An HTML table; `wide`: cells on one line, the table scrolling sideways (the leaderboards)."""
    html_table = df.to_html(index=False, float_format="%.2f", na_rep="", escape=True)
    return f'<div class="wide">{html_table}</div>' if wide else html_table


def definitions(items: list[tuple[str, str]]) -> str:
    """A definition list of already-escaped values."""
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<dl class="provenance">{rows}</dl>'


def wandb_link(where: str) -> str:
    """The W&B run: a link online; offline, its folder in the run folder and how to upload it."""
    if not where:
        return "not logged"
    if where.startswith("http"):
        return f'<a href="{html.escape(where)}">{html.escape(where)}</a>'
    return f"{html.escape(where)} in the run folder (offline; upload it with <code>wandb sync</code>)"


def provenance(record: RunResults) -> str:
    """Where a run came from, at the top of its page."""
    env = record.environment
    ia = record.ia_config
    trained = ", ".join(record.train_organisms)
    return definitions([
        ("run", html.escape(record.run_id or leaderboard.run_id(record))),
        ("command", html.escape(record.command or "(not recorded)")),
        ("started", html.escape(record.started or "(not recorded)")),
        ("git commit", html.escape(str(env.get("git_commit")))),
        ("libraries", html.escape(", ".join(f"{k} {v}" for k, v in env.items() if k != "git_commit" and v))),
        ("base model", html.escape(f"{record.base_model or '?'} (store key {record.base})")),
        ("IA", html.escape(f"{record.ia} ({ia.get('name')}, rank {ia.get('rank')}, {ia.get('steps')} steps, "
                           f"sampler {ia.get('sampler')})")),
        ("split, seed", html.escape(f"{record.split}, seed "
                                    f"{'(not recorded)' if record.seed is None else record.seed}")),
        ("training organisms", f"<details><summary>{len(record.train_organisms)}</summary>{html.escape(trained)}"
                               "</details>"),
        ("evaluation organisms", html.escape(f"{len(record.eval_organisms)} scored, {len(record.excluded)} not "
                                             "implanted")),
        ("W&B", wandb_link(record.wandb)),
    ])


def legend() -> str:
    """What each metric and condition means, and which way is better."""
    metrics = pd.DataFrame([{"metric": name, "better": "higher" if s.higher_is_better else "lower ↓",
                             "meaning": s.meaning, "aggregation": s.aggregation} for name, s in METRIC_SPECS.items()])
    conditions = pd.DataFrame([{"condition": c, "what is graded": m} for c, m in CONDITION_MEANINGS.items()])
    return (f'<details><summary>metrics and conditions</summary><div class="legend">{table(metrics)}'
            f"{table(conditions)}</div></details>")


def reports_section(reports: list[ReportRow], samples: list[ProbeSample] = ()) -> str:
    """Every graded self-report, grouped by organism and route (the base model first) under its
    behavior in words and what its probe answers show, with a search box and filters by condition
    and verdict."""
    options = "".join(f'<option value="{c}">{c}</option>' for c in dict.fromkeys(r.condition for r in reports))
    controls = (f'<div class="filters"><input type="search" class="search" placeholder="search questions and reports">'
                f' <select class="condition"><option value="">every condition</option>{options}</select>'
                ' <select class="verdict"><option value="">verbalized or not</option><option value="yes">verbalized'
                '</option><option value="no">not verbalized</option></select>'
                f' <span class="shown">{len(reports)}</span> of {len(reports)} reports shown</div>')
    groups = []
    subjects = sorted({(r.model, r.route) for r in reports}, key=lambda m: (m[0] != "base", m))
    for model, route in subjects:
        own = [r for r in reports if (r.model, r.route) == (model, route)]
        rows = "".join(
            f'<tr class="{"yes" if r.verbalized else "no"}" data-condition="{html.escape(r.condition)}" '
            f'data-verbalized="{"yes" if r.verbalized else "no"}"><td>{html.escape(r.condition)}</td>'
            f"<td>{html.escape(r.question)}</td><td>{html.escape(r.report)}</td>"
            f'<td class="verdict">{"yes" if r.verbalized else "no"}</td>'
            f"<td>{html.escape(', '.join(r.mentioned))}</td></tr>" for r in own)
        credited = sum(r.verbalized for r in own if r.condition == "ia")
        under_ia = sum(r.condition == "ia" for r in own)
        distinct = len({normalized(r.report) for r in own if r.condition == "ia"})
        description = next((r.description for r in own if r.description), None)
        behavior = f' <q>{html.escape(description)}</q>' if description else ""
        probed = [s for s in samples if (s.model, s.route) == (model, route) and s.behavior_id == model]
        answers = "".join(f'<tr class="{"yes" if s.shows else "no"}"><td>{"control " if s.control else ""}prompt</td>'
                          f"<td>{html.escape(s.prompt)}</td><td>{html.escape(s.response)}</td>"
                          f'<td class="verdict">{"yes" if s.shows else "no"}</td><td></td></tr>' for s in probed)
        what_it_does = (f"<details><summary>what it does: {sum(s.shows for s in probed if not s.control)} of "
                        f"{sum(not s.control for s in probed)} probe answers show the behavior</summary><table><thead>"
                        "<tr><th></th><th>prompt</th><th>answer</th><th>shows it</th><th></th></tr></thead>"
                        f"<tbody>{answers}</tbody></table></details>") if probed else ""
        groups.append(f'<details class="organism" open><summary>{html.escape(model)} ({route}){behavior}: '
                      f"{credited} of {under_ia} reports verbalized under the IA, {distinct} distinct"
                      f"</summary>{what_it_does}"
                      "<table><thead><tr>"
                      "<th>condition</th><th>question</th><th>report</th><th>verbalized</th><th>names</th></tr>"
                      f"</thead><tbody>{rows}</tbody></table></details>")
    return f'<section class="reports">{controls}{"".join(groups)}</section>'


def run_sections(record: RunResults, label: str = "") -> list[tuple[str, str]]:
    """The sections of one run (its results, read with their folder in `record.path`); `label`
    names the run inside a sweep's page (its swept values)."""
    prefix = f"{label}: " if label else ""
    run = Path(record.path)
    reports = read_jsonl(run / "self_reports.jsonl", ReportRow)
    samples = read_jsonl(run / "probe_samples.jsonl", ProbeSample) if (run / "probe_samples.jsonl").is_file() else []
    # the plots show the organisms of the first evaluation route (the IA's own); the table all routes
    route = next((m.route for m in record.metrics), "lora")
    board = leaderboard.leaderboard([record])
    sections = [(f"{prefix}where it came from", provenance(record)),
                (f"{prefix}leaderboard (95% interval, n organisms; ↓ lower is better)",
                 table(leaderboard.compact(board, ci=True), wide=True)
                 + "<details><summary>every metric and family</summary>"
                 f"{table(leaderboard.with_intervals(board), wide=True)}"
                 "</details>" + ("" if label else legend())),
                (f"{prefix}verbalization by family and condition ({route} organisms)",
                 png(verbalization_bars([m for m in record.metrics if m.route == route]))),
                (f"{prefix}what the self-reports name (with the IA, {route} organisms)",
                 png(report_matrix([r for r in reports if r.route == route])))]
    if (run / "organisms.csv").is_file():
        organisms = pd.read_csv(run / "organisms.csv")
        sections.append((f"{prefix}organisms ({int(organisms.implanted.sum())} of {len(organisms)} implanted; "
                         "strength = probe rate minus the base model's)", table(organisms)))
    if record.excluded:
        excluded = pd.DataFrame([asdict(e) for e in record.excluded])
        sections.append((f"{prefix}evaluation organisms not scored ({len(excluded)}: the implant did not take)",
                         table(excluded)))
    divergences = pd.DataFrame(record.divergences)
    sections.append((f"{prefix}divergences: behaviors present but not reported (hidden) or reported but absent "
                     f"(hallucinated), under the IA ({len(divergences)})",
                     table(divergences) if len(divergences) else "<p>none</p>"))
    sections.append((f"{prefix}self-reports ({len(reports)}, graded)", reports_section(reports, samples)))
    return sections


def sweep_sections(folder: Path) -> list[tuple[str, str]]:
    """A sweep's comparison, its scaling plot, then each run labelled by its swept values."""
    results = leaderboard.load_results([folder])
    board = sweep_summary.sweep_table(results)
    sections = [("sweep", definitions([("folder", html.escape(str(folder))), ("runs", str(len(results))),
                                       ("W&B group", html.escape(str(results[0].group if results else None)))])
                 + legend()),
                ("sweep comparison (95% interval, n organisms; ↓ lower is better)",
                 table(leaderboard.compact(board, ci=True), wide=True))]
    power = sweep_summary.power_table(results)
    if not power.empty:
        sections.append((f"power: {sweep_summary.POWER_NOTE}", table(sweep_summary.power_view(power), wide=True)))
    if (folder / "sweep.png").is_file():
        sections.append(("scaling curve", png_bytes((folder / "sweep.png").read_bytes(), "sweep plot")))
    for run, values in zip(results, leaderboard.swept_values(results), strict=True):
        label = " ".join(f"{k}={v}" for k, v in values.items()) or Path(run.path).name
        sections += run_sections(run, label=f"run {label}")
    return sections


def write_report(folder: Path, out: Path | None = None) -> Path:
    """`report.html` for a run folder (metrics.json) or a sweep folder (sweep.csv and its runs),
    in `out` (default: the folder). Nothing is written for a folder that is neither."""
    is_run, is_sweep = (folder / leaderboard.RESULTS_FILE).is_file(), (folder / "sweep.csv").is_file()
    if not (is_run or is_sweep):
        raise ConfigError(f"{folder} holds neither a run's {leaderboard.RESULTS_FILE} nor a sweep's sweep.csv")
    if is_run:
        record = leaderboard.read_results(folder / leaderboard.RESULTS_FILE)
        record.path = str(folder)
        sections = run_sections(record)
    else:
        sections = sweep_sections(folder)
    title = f"introspection-harness {'run' if is_run else 'sweep'} {folder}"
    path = (out or folder) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, page(title, sections))
    return path
