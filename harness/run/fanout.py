"""A sweep's fan-out: the artifacts its jobs need at each stage that the store lacks, as the
overrides of the jobs that make them, each artifact made by exactly one job.

The staged sweeper (hydra_plugins/harness_sweeper) launches these through the configured Hydra
launcher stage by stage (the DAG's order: base models, organisms, IAs, probe chunks), each stage
after the one it needs has finished, then the sweep's own jobs, which find everything in the
store and report. Jobs talk only through the store, so a job on another node needs nothing but
the shared path. Planning reads keys and the store; it never trains anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from harness.run.dag import DAG, missing
from harness.run.stage import Run


def fanout_jobs(stage: str, jobs: Sequence[Sequence[str]], runs: Sequence[Run],
                organisms_per_job: int = 4) -> list[list[str]]:
    """Override lists of one stage's fan-out jobs: each missing artifact once, made by the first
    sweep job that needs it, `stage.per_job` of them to a job."""
    (the_stage,) = [s for s in DAG if s.name == stage]
    makers: dict[str, tuple[tuple[str, ...], Any]] = {}
    for overrides, run in zip(jobs, runs, strict=True):
        for x in missing(run, stage)[1]:
            makers.setdefault(the_stage.key(x), (tuple(overrides), x))
    groups: dict[tuple[str, ...], list[Any]] = {}
    for job, x in makers.values():
        groups.setdefault(job, []).append(x)
    size = the_stage.per_job(organisms_per_job)
    return [[*job, f"stage={stage}", *the_stage.job(xs[i : i + size])]
            for job, xs in groups.items() for i in range(0, len(xs), size)]
