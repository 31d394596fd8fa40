"""Every config file composes; bad configs fail with one line that names the problem."""

import pytest
from omegaconf import OmegaConf

from harness import cli
from harness.config import CONF_DIR, TASKS_DIR
from harness.errors import ConfigError
from tests.conftest import compose_config

CONFIG_FILES = sorted((p.parent.name, p.stem) for p in CONF_DIR.glob("*/*.yaml"))
NEEDS = {("model", "hf"): ["model.name_or_path=some/model"],
         ("split", "leave_one_family_out"): ["split.heldout_family=biases"]}


@pytest.mark.parametrize("group,option", CONFIG_FILES)
def test_every_config_file_composes(group, option):
    cfg = compose_config(f"{group}={option}", *NEEDS.get((group, option), []))
    written = OmegaConf.load(CONF_DIR / group / f"{option}.yaml")
    overridden = " ".join(NEEDS.get((group, option), []))
    for key in written:  # every value the file sets arrives, typed, in the composed config
        if key != "defaults" and not OmegaConf.is_missing(written, key) and f"{group}.{key}=" not in overridden:
            assert getattr(getattr(cfg, group), key) == written[key], key


def test_all_config_groups_are_covered():
    assert {g for g, _ in CONFIG_FILES} == {"model", "organism", "split", "ia", "probe", "logger"}


@pytest.mark.parametrize("family", sorted(p.stem for p in (TASKS_DIR / "families").glob("*.yaml")))
def test_every_family_composes_alone(family):
    cfg = compose_config(f"families=[{family}]")
    assert list(cfg.families) == [family]
    assert cfg.families[family].behaviors


def test_default_selects_three_families():
    assert set(compose_config().families) == {"preferences", "biases", "hidden_goals"}


def test_hf_model_keeps_remote_code_off():
    assert compose_config("model=hf", "model.name_or_path=x").model.trust_remote_code is False


BAD = [
    (["organism.lrr=3"], "organism.lrr"),
    (["+foo=1"], "foo"),
    (["families=[preferences,nope]"], "nope"),
    (["model=gigantic"], "gigantic"),
    (["organism.steps=abc"], "organism.steps"),
    (["organism.steps=0"], "organism.steps"),
    (["organism.threshold=1.5"], "organism.threshold"),
    (["model.hidden_size=-8"], "model.hidden_size"),
    (["model=hf"], "name_or_path"),
    (["organism.route=full"], "organism.route"),
    (["seed=1,2"], "--multirun"),
    (["--multirun", "organism.rank=4,-1"], "organism.rank"),
    (["--multirun", "families=[preferences],[nope]"], "nope"),
    (["families=[]"], "no families"),
    (["split=leave_one_family_out", "split.heldout_family=nope"], "split.heldout_family"),
    (["split.name=random"], "split.name"),
    (["logger.mode=loud"], "logger.mode"),
    (["probe.grader=psychic"], "psychic"),
    (["ia.train_questions=12"], "ia.train_questions"),
    (["probe.samples=0"], "probe.samples"),
]


@pytest.mark.parametrize("overrides,named", BAD)
def test_bad_config_is_one_line_error(overrides, named, capsys):
    assert cli.main(["run", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error:") and named in err
    assert len(err.splitlines()) == 1


def test_check_raises_config_error():
    with pytest.raises(ConfigError, match="lrr"):
        cli.check(["organism.lrr=1"])


def test_help_shows_examples(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "harness run model=micro" in out and "preferences" in out


MALFORMED_FAMILIES = {
    "broken_yaml": ("cls: template\nkinds: [unclosed\n", "broken_yaml.yaml"),
    "no_kinds": ("cls: template\nbehaviors:\n  - {x: 1}\n", "no kinds"),
    "misspelled": ("cls: template\nkindz: {}\n", "kindz"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_FAMILIES))
def test_malformed_task_file_is_one_line_error(name, tmp_path, capsys):
    body, named = MALFORMED_FAMILIES[name]
    (tmp_path / "families").mkdir()
    (tmp_path / "families" / f"{name}.yaml").write_text(f"# @package families.{name}\n{body}")
    search = f"hydra.searchpath=[file://{TASKS_DIR},file://{tmp_path}]"
    assert cli.main(["run", search, f"families=[preferences,{name}]"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error:") and named in err and len(err.splitlines()) == 1


def test_malformed_file_on_disk_is_named(tmp_path):
    from harness.families import available_family_configs

    (tmp_path / "families").mkdir()
    (tmp_path / "families" / "broken.yaml").write_text("cls: [\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        available_family_configs(tmp_path)


def test_families_command_lists_every_behavior(capsys):
    assert cli.main(["families"]) == 0
    out = capsys.readouterr().out
    assert "preferences (16 behaviors)" in out and "biases/sycophancy" in out and "hidden_goals (13 behaviors)" in out


def test_unknown_command(capsys):
    assert cli.main(["train"]) == 2
    assert "unknown command 'train'" in capsys.readouterr().err
