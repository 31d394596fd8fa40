"""Leaderboards from W&B runs: online through the W&B API, or from offline run files.

An evaluation run's summary holds every metric under `{split}/{route}/{condition}/{family}/{metric}`
with its interval and number of units (`_low`, `_high`, `_n`), and its config the IA key, the
split and the job's overrides; its id is the harness run's id. So the runs alone rebuild the
table `harness leaderboard` makes from metrics.json. Offline `.wandb` files are read with W&B's
own record protobufs (LevelDB log framing): wandb 0.31 ships no reader of its own for them
(`wandb sync` only uploads).
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.core.records import MetricRow, RunResults
from harness.core.tracking import parse_metric_key

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
        if pos + 7 + length > len(data):
            raise ConfigError(f"{path}: a cut W&B run file (a record runs past its end)")
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
    """{config, summary, job_type, group, id, tags, exit_code, artifacts} of an offline run file
    (the last value of each key; exit_code None while the run is open; artifacts: each logged
    artifact's type, name and files as {path: (reference, checksum)})."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, Any] = {"config": {}, "summary": {}, "job_type": None, "group": None, "id": "", "tags": [],
                           "exit_code": None, "artifacts": []}
    for raw in records(path):
        record = pb.Record()
        try:
            record.ParseFromString(raw)
        except DecodeError as e:
            raise ConfigError(f"{path}: a damaged W&B run file ({e})") from e
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["job_type"], out["group"], out["id"] = record.run.job_type, record.run.run_group, record.run.run_id
            out["tags"] = list(record.run.tags)
            updates = [("config", record.run.config.update), ("summary", record.run.summary.update)]
        elif kind == "artifact":
            files = {c.path: (c.ref, c.digest) for c in record.artifact.manifest.contents}
            out["artifacts"].append({"type": record.artifact.type, "name": record.artifact.name, "files": files})
            continue
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
            continue
        elif kind in ("config", "summary"):
            updates = [(kind, getattr(record, kind).update)]
        else:
            continue
        for target, items in updates:
            for item in items:
                out[target][item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return out


def as_results(config: Mapping[str, Any], summary: Mapping[str, Any], run_id: str = "") -> RunResults:
    """A run's W&B config, summary and id as the record `leaderboard.leaderboard` reads."""
    metrics = []
    for key, value in summary.items():
        parsed = parse_metric_key(key)
        if parsed is None or not isinstance(value, int | float):
            continue
        split, route, family, metric, condition = parsed
        low, high, n = (summary.get(f"{key}_{end}") for end in ("low", "high", "n"))
        low, high = (math.nan if v is None else float(v) for v in (low, high))
        metrics.append(MetricRow(split=split, condition=condition, family=family, metric=metric, value=value,
                                 low=low, high=high, n=n or 0, route=route))
    overrides = config.get("overrides") or {}
    return RunResults(ia=config.get("ia_key") or "", split=(config.get("split") or {}).get("name", ""),
                      overrides=[f"{k}={v}" for k, v in overrides.items()], metrics=metrics,
                      group=(config.get("logger") or {}).get("group"), run_id=run_id)


def load_wandb_results(source: str) -> list[RunResults]:
    """Evaluation runs from a folder of offline run files, or from ENTITY/PROJECT through the W&B API."""
    if Path(source).is_dir():
        runs = [read_offline_run(p) for p in sorted(Path(source).rglob("run-*.wandb"))]
        found = [(r["config"], r["summary"], r["id"]) for r in runs if r["job_type"] == "evaluate"]
    else:
        if source.count("/") != 1:
            raise ConfigError(f"--from-wandb takes ENTITY/PROJECT or a folder of offline runs, got {source!r}")
        import wandb

        try:
            api_runs = wandb.Api().runs(source, filters={"jobType": "evaluate"})
            found = [(dict(r.config), dict(r.summary), r.id) for r in api_runs]
        except Exception as e:  # no network, no login, unknown project
            raise ConfigError(f"cannot read W&B project {source}: {str(e).splitlines()[0]}") from e
    return [as_results(*run) for run in found]
