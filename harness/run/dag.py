"""The stages in order, and the one walk over them: what the pipeline executes, a sweep plans from
and `cache gc` keeps; `validate`, the config checked by every registry whose names it holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from omegaconf import DictConfig

from harness.core import config
from harness.core.config import Config
from harness.core.errors import ConfigError
from harness.run import splits
from harness.run.stage import Run, Stage, ensure
from harness.run.stages.base_model import BaseStage
from harness.run.stages.ia import IAStage
from harness.run.stages.organisms import OrganismsStage
from harness.run.stages.probe import ProbeStage
from harness.train import routes

DAG: tuple[Stage, ...] = (BaseStage(), OrganismsStage(), IAStage(), ProbeStage())
"""Each stage's inputs come from the artifacts of the stages before it."""

STAGE_NAMES = tuple(s.name for s in DAG)
ALL = "all"
"""`stage=all`: every stage, then the run's report."""


def problems(cfg: Config) -> list[str]:
    """`stage` must name a stage of the DAG, or `all`."""
    known = (*STAGE_NAMES, ALL)
    return [] if cfg.stage in known else [f"stage must be one of {', '.join(known)}, got {cfg.stage!r}"]


def validate(cfg: DictConfig | Config) -> Config:
    """The config typed and checked, each setting that names a registry entry (a route, a split, a
    stage) by its registry."""
    return config.validate(cfg, routes.problems, splits.problems, problems)


def walk(run: Run, artifacts: Callable[[Stage, list[Any]], list[Any]]) -> Iterator[tuple[Stage, list[Any]]]:
    """The one walk over the DAG: each stage in order with its inputs, which come from the
    artifacts of the stages before it, `artifacts(stage, inputs)` (called when the next stage is
    asked for)."""
    done: dict[str, list[Any]] = {}
    for stage in DAG:
        xs = stage.inputs(run, done)
        yield stage, xs
        done[stage.name] = artifacts(stage, xs)


def stored(run: Run, incomplete: Callable[[Stage, int], str]) -> Callable[[Stage, list[Any]], list[Any]]:
    """`artifacts` for a walk that builds nothing: each stage's artifacts read from the store;
    ConfigError(incomplete(stage, how many are missing)) when one is not there."""
    def read(stage: Stage, xs: list[Any]) -> list[Any]:
        absent = sum(not stage.exists(run.store, x) for x in xs)
        if absent:
            raise ConfigError(incomplete(stage, absent))
        return [stage.load(run.store, x) for x in xs]

    return read


def execute(run: Run, progress: bool = True) -> Iterator[tuple[Stage, list[Any]]]:
    """Each stage in order with its artifacts, built where the store lacks them; up to
    `run.cfg.stage` (a fan-out job makes only its `select`ed inputs of its own stage)."""
    made: dict[str, list[Any]] = {}
    for stage, xs in walk(run, lambda stage, _: made[stage.name]):
        if stage.name == run.cfg.stage:
            xs = stage.select(run, xs)
        made[stage.name] = ensure(stage, run, xs, progress)
        yield stage, made[stage.name]
        if stage.name == run.cfg.stage:
            return


def missing(run: Run, name: str) -> tuple[Stage, list[Any]]:
    """The inputs of stage `name` whose artifacts the store lacks, from keys and `store.exists`
    alone: the stages before it must be complete (their artifacts are read, never built)."""
    for stage, xs in walk(run, stored(run, lambda s, _: f"stage {name}: stage {s.name} is not complete in "
                                                        f"{run.store.root}")):
        if stage.name == name:
            return stage, [x for x in xs if not stage.exists(run.store, x)]
    raise ConfigError(f"unknown stage {name!r} (known: {', '.join(STAGE_NAMES)})")
