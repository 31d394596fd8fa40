"""The stages in order: the one list that the pipeline executes and a sweep plans from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.errors import ConfigError
from harness.stage import Run, Stage, ensure
from harness.stages.base_model import BaseStage
from harness.stages.ia import IAStage
from harness.stages.organisms import OrganismsStage
from harness.stages.probe import ProbeStage

DAG: tuple[Stage, ...] = (BaseStage(), OrganismsStage(), IAStage(), ProbeStage())
"""Each stage's inputs come from the artifacts of the stages before it."""

STAGE_NAMES = tuple(s.name for s in DAG)


def execute(run: Run, progress: bool = True) -> Iterator[tuple[Stage, list[Any]]]:
    """Each stage in order with its artifacts, built where the store lacks them; up to
    `run.cfg.stage` (a fan-out job makes only its `select`ed inputs of its own stage)."""
    done: dict[str, list[Any]] = {}
    for stage in DAG:
        xs = stage.inputs(run, done)
        if stage.name == run.cfg.stage:
            xs = stage.select(run, xs)
        done[stage.name] = ensure(stage, run, xs, progress)
        yield stage, done[stage.name]
        if stage.name == run.cfg.stage:
            return


def missing(run: Run, name: str) -> tuple[Stage, list[Any]]:
    """The inputs of stage `name` whose artifacts the store lacks, from keys and `store.exists`
    alone: the stages before it must be complete (their artifacts are read, never built)."""
    done: dict[str, list[Any]] = {}
    for stage in DAG:
        xs = stage.inputs(run, done)
        if stage.name == name:
            return stage, [x for x in xs if not stage.exists(run.store, x)]
        if not all(stage.exists(run.store, x) for x in xs):
            raise ConfigError(f"stage {name}: stage {stage.name} is not complete in {run.store.root}")
        done[stage.name] = [stage.load(run.store, x) for x in xs]
    raise ConfigError(f"unknown stage {name!r} (known: {', '.join(STAGE_NAMES)})")
