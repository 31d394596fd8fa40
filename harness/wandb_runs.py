"""Leaderboards from W&B runs: online through the W&B API, or from offline run files.

An evaluation run's summary holds every metric under `{split}/{family}/{metric}` (the IA) or
`..._{condition}` (the baselines), and its config the IA key, the split and the job's
overrides, so the runs alone rebuild the table `harness leaderboard` makes from metrics.json.
Offline `.wandb` files are read with W&B's own record protobufs (LevelDB log framing).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.records import MetricRow, RunResults
from harness.tracking import parse_metric_key

BLOCK = 32768  # the LevelDB log format W&B's run files use: 7-byte record headers in 32 KiB blocks
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[bytes]:
    """The raw records of an offline `run-*.wandb` file."""
    data = path.read_bytes()
    if data[:4] != b":W&B":
        raise ConfigError(f"{path} is not a W&B run file")
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def read_offline_run(path: Path) -> dict[str, Any]:
    """{config, summary, job_type, group} of an offline run file (the last value of each key)."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"config": {}, "summary": {}, "job_type": None, "group": None}
    for raw in records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["job_type"], out["group"] = record.run.job_type, record.run.run_group
            updates = [("config", record.run.config.update), ("summary", record.run.summary.update)]
        elif kind in ("config", "summary"):
            updates = [(kind, getattr(record, kind).update)]
        else:
            continue
        for target, items in updates:
            for item in items:
                out[target][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def as_results(config: Mapping[str, Any], summary: Mapping[str, Any]) -> RunResults:
    """A run's W&B config and summary as the record `leaderboard.leaderboard` reads (the number
    of units behind each value is not in the summary: n is 0)."""
    metrics = []
    for key, value in summary.items():
        parsed = parse_metric_key(key)
        if parsed is None or not isinstance(value, int | float):
            continue
        split, route, family, metric, condition = parsed
        low, high = summary.get(f"{key}_ci") or (math.nan, math.nan)
        metrics.append(MetricRow(split=split, condition=condition, family=family, metric=metric, value=value,
                                 low=low, high=high, n=0, route=route))
    overrides = config.get("overrides") or {}
    return RunResults(ia=config.get("ia_key") or "", split=(config.get("split") or {}).get("name", ""),
                      overrides=[f"{k}={v}" for k, v in overrides.items()], metrics=metrics,
                      group=(config.get("logger") or {}).get("group"))


def load_wandb_results(source: str) -> list[RunResults]:
    """Evaluation runs from a folder of offline run files, or from ENTITY/PROJECT through the W&B API."""
    if Path(source).is_dir():
        runs = [read_offline_run(p) for p in sorted(Path(source).rglob("run-*.wandb"))]
        pairs = [(r["config"], r["summary"]) for r in runs if r["job_type"] == "evaluate"]
    else:
        if source.count("/") != 1:
            raise ConfigError(f"--from-wandb takes ENTITY/PROJECT or a folder of offline runs, got {source!r}")
        import wandb

        try:
            api_runs = wandb.Api().runs(source, filters={"jobType": "evaluate"})
            pairs = [(dict(r.config), dict(r.summary)) for r in api_runs]
        except Exception as e:  # no network, no login, unknown project
            raise ConfigError(f"cannot read W&B project {source}: {str(e).splitlines()[0]}") from e
    return [as_results(config, summary) for config, summary in pairs]
