"""`hydra/sweeper=staged`: Hydra's basic sweeper (cartesian product of `a=1,2 b=x,y` and of
`hydra.sweeper.params`), with the pipeline's stages fanned out through the configured launcher.

Before the sweep's own jobs run, it launches, stage by stage, one job per missing artifact
(base model, chunk of organisms, IA, probe chunk) that any of them needs, each artifact once
(harness.run.fanout). Each launch returns when its jobs are done, so the IA jobs wait for their
organisms. Then the sweep's jobs run; they find every artifact in the store and report, one
W&B run each. At the end the sweep's comparison table is printed and written to the sweep folder.

No `from __future__ import annotations` here: Hydra imports plugin modules in a way that breaks
dataclasses with string annotations.
"""

import os
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict


@dataclass
class StagedSweeperConf:
    _target_: str = "hydra_plugins.harness_sweeper.staged_sweeper.StagedSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    # Organisms trained by one fan-out job (one process loading the base model once).
    organisms_per_job: int = 4


ConfigStore.instance().store(group="hydra/sweeper", name="staged", node=StagedSweeperConf, provider="harness")


class StagedSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None,
                 organisms_per_job: int = 4) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.organisms_per_job = organisms_per_job

    def sweep(self, arguments: list[str]) -> Any:
        from harness.core.errors import ConfigError

        try:
            return self._sweep(arguments)
        except ConfigError as e:
            print(f"harness: error: {e}", file=sys.stderr)
            sys.exit(2)

    def _sweep(self, arguments: list[str]) -> Any:
        from harness.core.errors import ConfigError
        from harness.run import fanout
        from harness.run.dag import STAGE_NAMES

        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        plumbing = self._wandb_group()
        jobs = [[*job, *plumbing] for batch in self.split_arguments(overrides, None) for job in batch]
        runs = [self._job_run(job) for job in jobs]  # validates every job first
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        launcher = self.config.hydra.launcher._target_.split(".")[-1]
        print(f"sweep: {len(jobs)} jobs, launcher {launcher}, folder {sweep_dir}")

        next_idx = len(jobs)
        for stage in STAGE_NAMES:
            stage_jobs = fanout.fanout_jobs(stage, jobs, runs, self.organisms_per_job)
            if not stage_jobs:
                print(f"sweep: stage {stage}: every artifact is in the store")
                continue
            print(f"sweep: stage {stage}: {len(stage_jobs)} job(s)")
            named = [[*j, f"hydra.sweep.subdir=stages/{stage}-{i}"] for i, j in enumerate(stage_jobs)]
            self._launch(named, next_idx)
            next_idx += len(named)
            left = fanout.fanout_jobs(stage, jobs, runs, self.organisms_per_job)
            if left:
                raise ConfigError(f"stage {stage}: the jobs finished but {len(left)} artifact(s) are not in the store "
                                  f"at {runs[0].store.root}: is cache_dir on a path every job can reach?")
        returns = self._launch(jobs, 0)
        self._report(sweep_dir, runs[0].cfg.logger)
        return [returns]

    def _wandb_group(self) -> list[str]:
        """Overrides giving every job of this invocation one W&B group of its own,
        `<preset>-<timestamp>-<pid>` (the preset: the sweep preset's group, or `multirun` for an
        ad-hoc sweep), and the preset as a tag: two sweeps never share a group."""
        preset = self.config.logger.group or "multirun"
        group = f"{preset}-{datetime.now():%Y-%m-%d_%H-%M-%S}-{os.getpid()}"
        tags = [*self.config.logger.tags, preset]
        return [f"logger.group={group}", "logger.tags=[" + ",".join(f"'{t}'" for t in dict.fromkeys(tags)) + "]"]

    def _job_run(self, job: list[str]):
        """A sweep job's run, its config checked as `harness run` checks its own before any work."""
        from harness.run.dag import validate
        from harness.run.stage import Run

        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(job))
        with open_dict(cfg):
            del cfg["hydra"]
        return Run.of(validate(cfg))

    def _launch(self, jobs: list[list[str]], initial_idx: int):
        threads = self._threads(len(jobs))
        if threads is not None:
            jobs = [[*j, f"threads={threads}"] if not any(o.startswith("threads=") for o in j) else j for j in jobs]
        results = self.launcher.launch(jobs, initial_job_idx=initial_idx)
        for r in results:
            _ = r.return_value  # re-raises a failed job's error
        return results

    def _threads(self, n_jobs: int):
        """Torch threads per job when the launcher runs jobs side by side on this machine (joblib):
        its cores divided among them. None for launchers whose jobs get their own resources."""
        from harness.train.training import cores

        launcher = self.config.hydra.launcher
        if not launcher._target_.endswith("JoblibLauncher"):
            return None
        n = -1 if launcher.n_jobs is None else int(launcher.n_jobs)
        parallel = max(1, cores() + 1 + n if n < 0 else n)  # joblib: -1 is every core, -2 all but one
        return max(1, cores() // max(1, min(parallel, n_jobs)))

    def _report(self, sweep_dir: Path, logger) -> None:
        from harness.report import leaderboard, sweep_summary

        results = leaderboard.load_results([sweep_dir])
        if not results:
            return
        table, written, logged = sweep_summary.write_sweep(results, sweep_dir, logger)
        print("\nsweep comparison: " + sweep_summary.sweep_text(table, written))
        if logged:
            print(f"W&B run (job type sweep): {logged}")
