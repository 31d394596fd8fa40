"""Every config file composes; bad configs fail with one line that names the problem."""

import pytest
from omegaconf import OmegaConf

from harness import cli
from harness.cli import compose, run
from harness.core.errors import ConfigError
from harness.core.paths import CONF_DIR, TASKS_DIR
from tests.conftest import compose_config

CONFIG_FILES = sorted((p.parent.name, p.stem) for p in CONF_DIR.glob("*/*.yaml") if p.parent.name != "sweeps")
NEEDS = {("model", "hf"): ["model.name_or_path=some/model"], ("preset", "hf_small"): ["model.name_or_path=m"],
         ("preset", "hf_large"): ["model.name_or_path=m"],
         ("split", "leave_one_family_out"): ["split.heldout_family=biases"]}


@pytest.mark.parametrize("group,option", CONFIG_FILES)
def test_every_config_file_composes(group, option):
    cfg = compose_config(f"{group}={option}", *NEEDS.get((group, option), []))
    written = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
    overridden = " ".join(NEEDS.get((group, option), []))
    if group == "preset":  # a global package: its values are anywhere in the config
        composed = OmegaConf.structured(cfg)
        for key, value in _leaves(written):
            assert OmegaConf.select(composed, key) == value, key
        return
    for key in written:  # every value the file sets arrives, typed, in the composed config
        if key != "defaults" and not OmegaConf.is_missing(written, key) and f"{group}.{key}=" not in overridden:
            assert getattr(getattr(cfg, group), key) == written[key], key


def _leaves(node, prefix=""):
    """(dotted key, value) of every value a config file sets, its defaults list aside."""
    for key, value in node.items():
        if key == "defaults":
            continue
        if OmegaConf.is_dict(value):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_all_config_groups_are_covered():
    assert {g for g, _ in CONFIG_FILES} == {"model", "organism", "split", "ia", "probe", "logger", "preset"}


@pytest.mark.parametrize("family", sorted(p.stem for p in (TASKS_DIR / "families").glob("*.yaml")))
def test_every_family_composes_alone(family):
    cfg = compose_config(f"families=[{family}]")
    assert list(cfg.families) == [family]
    assert cfg.families[family].behaviors


def test_default_selects_all_six_families():
    assert set(compose_config().families) == {"preferences", "biases", "hidden_goals", "quirks", "backdoors",
                                              "sandbagging"}


def test_hf_model_keeps_remote_code_off():
    assert compose_config("model=hf", "model.name_or_path=x").model.trust_remote_code is False


def test_a_real_model_generates_fewer_prompts_at_once_than_the_tiny_one():
    """256 at once for the tiny model (faster on CPU); 64 keeps a large model within GPU memory."""
    assert compose_config().model.generation_batch_size == 256
    assert compose_config("model=hf", "model.name_or_path=x").model.generation_batch_size == 64


def test_check_raises_config_error():
    with pytest.raises(ConfigError, match="lrr"):
        compose.check(["organism.lrr=1"])


@pytest.mark.parametrize("command", ["run", "audit", "report", "leaderboard", "export-lm-eval", "families"])
def test_each_command_has_its_own_help_with_examples(command, capsys):
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: harness {command}") and f"\n  harness {command}" in out
    if command == "run":
        assert "harness run preset=smoke" in out and "preferences" in out and "ia_rank" in out


def test_top_level_help_lists_the_commands(capsys):
    assert cli.main(["--help"]) == 0 and cli.main([]) == 0
    out = capsys.readouterr().out
    assert all(c in out for c in ("run", "leaderboard", "export-lm-eval", "audit", "report", "families"))


def test_a_launcher_of_a_missing_extra_names_the_extra():
    """Hydra's error when a launcher's plugin is not installed, as `harness run` words it."""
    message = compose.explain(Exception("In 'hydra/config': Could not load 'hydra/launcher/ray'."))
    assert message == "hydra/launcher=ray needs its Hydra plugin: pip install 'introspection-harness[ray]'"


def test_malformed_file_on_disk_is_named(tmp_path):
    from harness.families import available_family_configs

    (tmp_path / "families").mkdir()
    (tmp_path / "families" / "broken.yaml").write_text("cls: [\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        available_family_configs(tmp_path)


def test_families_command_lists_every_behavior(capsys):
    assert cli.main(["families"]) == 0
    out = capsys.readouterr().out
    assert "preferences (78 behaviors, built-in)" in out and "biases/sycophancy" in out
    assert "hidden_goals (52 behaviors, built-in)" in out


def test_unknown_command(capsys):
    assert cli.main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err


def test_defaults_are_written_once_in_the_schema():
    """The default options' YAML files set nothing the schema does not: composing the defaults
    gives the schema's own values (cache_dir and the families come from config.yaml)."""
    from dataclasses import asdict

    from harness.core.config import Config

    composed, schema = asdict(compose_config()), asdict(Config())
    for key in ("families", "cache_dir"):
        composed.pop(key), schema.pop(key)
    assert composed == schema


def test_stage_choices_are_the_dags_stages():
    """The DAG's stages are the one list of stage names: each is a valid `stage`, and nothing else is."""
    from harness.run.dag import DAG

    for stage in DAG:
        assert compose_config(f"stage={stage.name}").stage == stage.name
    with pytest.raises(ConfigError, match="stage must be one of base, organisms, ia, probe, all, got 'report'"):
        compose_config("stage=report")


def test_the_objective_is_the_ias_verbalization_on_its_own_route():
    import math

    from harness.core.records import MetricRow

    def row(condition, family, metric, value, route="lora"):
        return MetricRow("heldout_route", condition, family, metric, value, value, value, 4, route)

    rows = [row("no_ia", "all", "verbalization", 0.1), row("ia", "quirks", "verbalization", 0.9),
            row("ia", "all", "verbalization", 0.4, route="full"), row("ia", "all", "specificity", 0.7),
            row("ia", "all", "verbalization", 0.25)]
    assert run.objective(rows, "lora") == 0.25 and run.objective(rows, "full") == 0.4
    assert math.isnan(run.objective(rows, "deny"))


def test_threads_come_from_the_config_then_omp_num_threads_then_the_cores(monkeypatch):
    import torch

    from harness.train.training import cores, set_threads

    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert set_threads(None) == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "many")  # malformed: ignored
        assert set_threads(None) == cores()
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert set_threads(None) == cores()
    finally:
        torch.set_num_threads(before)
