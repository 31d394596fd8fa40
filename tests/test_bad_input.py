"""Bad input, table-driven: each case must end with exit status 2 and one line
`harness: error: ...` naming the problem, before any training starts."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import pytest

from harness import cli
from harness.core import store as store_module
from harness.core.paths import TASKS_DIR
from harness.lm import models
from tests.conftest import HANG_GUARD_S, small_run

# (arguments of `harness`, a fragment the error must contain)
COMMAND_LINES = [
    (["run", "organism.lrr=3"], "organism.lrr"),  # misspelled key
    (["run", "+foo=1"], "foo"),  # a key no schema declares
    (["run", "orgnism.steps=3"], "orgnism"),  # misspelled group
    (["run", "families=[preferences,nope]"], "nope"),  # unknown family
    (["run", "model=gigantic"], "gigantic"),  # unknown group option
    (["run", "logger=loud"], "loud"),
    (["run", "organism.steps=abc"], "organism.steps"),  # wrong types
    (["run", "seed=abc"], "seed"),
    (["run", "ia.lr=fast"], "ia.lr"),
    (["run", "ia.controls=maybe"], "ia.controls"),
    (["run", "max_behaviors_per_family=many"], "max_behaviors_per_family"),
    (["run", "organism.steps=0"], "organism.steps"),  # zero or negative sizes
    (["run", "model.hidden_size=-8"], "model.hidden_size"),
    (["run", "organism.batch_size=-1"], "organism.batch_size"),
    (["run", "ia.rank=0"], "ia.rank"),
    (["run", "ia.steps=-5"], "ia.steps"),
    (["run", "probe.samples=0"], "probe.samples"),
    (["run", "probe.chunk_size=0"], "probe.chunk_size"),
    (["run", "probe.temperature=-1"], "probe.temperature"),
    (["run", "ia.sampler=random"], "ia.sampler"),
    (["run", "threads=0"], "threads"),
    (["run", "organism.lr=nan"], "organism.lr must be a finite number"),  # nan <= 0 is false
    (["run", "organism.lr=inf"], "organism.lr must be a finite number"),
    (["run", "ia.lr=1e30"], "ia.lr must be at most 1"),
    (["run", "ia.dpo_lr=-inf"], "ia.dpo_lr"),
    (["run", "model.lr=nan"], "model.lr"),
    (["run", "probe.temperature=nan"], "probe.temperature"),
    (["run", "probe.temperature=1e9"], "probe.temperature must be at most"),
    (["run", "seed=-1"], "seed must be in"),  # numpy and torch refuse it after minutes of work
    (["run", "seed=99999999999999999999"], "seed must be in"),
    (["run", "cache_dir="], "cache_dir must name a folder"),
    (["run", "organism.target_modules=nothing_here"], "matches no layer"),  # peft failed after pretraining
    (["run", "ia.target_modules=nothing_here"], "ia.target_modules='nothing_here' matches no layer"),
    (["run", "ia.target_modules=.*self_attn"], "not a linear layer"),  # peft failed after the organisms
    (["run", "hydra.run.dir=/etc/hostname"], "is a file"),  # a traceback from Hydra
    (["run", "hydra.run.dir=/proc/harness_run"], "not writable"),
    (["run", "probe.samples=1000000000"], "probe.samples must be at most"),
    # settings that would be ignored: greedy reports ask each question once; the default split
    # holds out behaviors of every family
    (["run", "probe.samples=5"], "probe.samples=5 is used only when probe.temperature > 0"),
    (["cache", "ls", "seed=1"], "cache ls: seed=1 is not used (cache_dir=DIR picks the store"),
    (["run", "--multirun", "hydra/launcher=ray_aws", "seed=0,1"], "hydra/launcher=ray_aws: its AWS cluster config"),
    (["run", "split.heldout_family=biases"], "split.heldout_family is used only by split=leave_one_family_out"),
    (["run", "families=[preferences]", "model.corpus_families=[nope]"], "model.corpus_families: no family 'nope'"),
    (["run", "max_behaviors_per_family=0"], "max_behaviors_per_family"),
    (["run", "split.train_families=0"], "split.train_families"),
    (["run", "model.pretrain_steps=-1"], "model.pretrain_steps"),
    (["run", "organism.threshold=1.5"], "organism.threshold"),  # out of range
    (["run", "organism.dropout=-0.1"], "organism.dropout"),
    (["run", "split.train_fraction=2"], "split.train_fraction"),
    (["run", "ia.train_templates=12"], "ia.train_templates"),
    (["run", "probe.questions=28"], "probe.questions=28 but the IA leaves 27 held-out questions"),
    (["run", "probe.questions=0"], "probe.questions must be > 0"),
    (["run", "model=smollm2", "model.shipped=nope"], "model.shipped=nope: not a shipped model"),
    (["run", "model=qwen05", "model.gguf_file=/etc/hostname"], "model.shipped=qwen05 is not used with model.gguf_file"),
    (["run", "model.shipped=qwen05"], "model.shipped=qwen05 is not used by model.kind=tiny"),
    (["run", "model.num_heads=3"], "divisible"),
    (["run", "model=hf"], "name_or_path"),  # missing or unusable values
    (["run", "model=hf", "model.name_or_path=/no/such/model"], "model.name_or_path=/no/such/model: no such folder"),
    (["run", "model=hf", "model.name_or_path=nobody/no-such-model"], "not in the local Hugging Face cache"),
    (["run", "model.name_or_path=/x"], "model.name_or_path=/x is not used by model.kind=tiny"),  # silently tiny
    (["run", "model.dtype=bfloat16"], "model.dtype=bfloat16 is not used by model.kind=tiny"),
    (["run", "model.gguf_file=/x.gguf"], "model.gguf_file=/x.gguf is not used by model.kind=tiny"),
    (["run", "model.system_prompt=Hi"], "model.system_prompt=Hi is not used by model.kind=tiny"),
    (["run", "model=smollm2", "model.attn_implementation=fast"], "model.attn_implementation must be one of eager"),
    (["run", "model=hf", "model.name_or_path=x", "model.hidden_size=64"], "model.hidden_size=64 is not used"),
    (["run", "model=smollm2", "model.name_or_path=x"], "model.name_or_path=x is not used by model.kind=gguf"),
    (["run", "model=smollm2", "model.pretrain_steps=5"], "model.pretrain_steps=5 is not used by model.kind=gguf"),
    (["run", "model=smollm2", "model.gguf_file=/no/such.gguf"], "model.gguf_file=/no/such.gguf: no such file"),
    (["run", "model=smollm2", "model.gguf_file=/etc"], "model.gguf_file=/etc: not a regular file"),
    (["run", "organism.neutral_prompts=8"], "organism.neutral_prompts is used only with organism.neutral=self"),
    (["run", "organism.neutral=self", "organism.neutral_prompts=0"], "organism.neutral_prompts must be > 0"),
    (["run", "organism.route=full"], "organism.route"),  # a weight route cannot train the IA
    (["run", "organism.route=magic"], "organism.route"),
    (["run", "split=heldout_route", "split.eval_routes=[lora,teleport]"], "split.eval_routes"),
    (["run", "split.eval_routes=[]"], "split.eval_routes"),
    (["run", "organism.full_lr=0"], "organism.full_lr"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_steps=-1"], "ia.dpo_steps"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_beta=0"], "ia.dpo_beta"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_fraction=1.5"], "ia.dpo_fraction"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_eval_every=0"], "ia.dpo_eval_every"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_temperature=-1"], "ia.dpo_temperature must be >= 0"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_temperature=1e9"], "ia.dpo_temperature must be at most"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_samples=1000000000"], "ia.dpo_samples must be at most"),
    (["run", "split.name=random"], "split.name"),
    (["run", "logger.mode=loud"], "logger.mode"),
    (["run", "probe.grader=psychic"], "psychic"),
    (["run", "probe.grader=judge"], "probe.grader=judge needs probe.judge_model"),
    (["run", "probe.grader=judge", "probe.judge_model=/no/such/judge"], "/no/such/judge"),
    (["run", "stage=train"], "stage"),
    (["run", "families=[]"], "no families"),  # empty selections and splits
    (["run", "max_behaviors_per_family=1"], "no training"),
    (["run", "split=leave_one_family_out", "split.heldout_family=nope"], "split.heldout_family"),
    (["run", "split=leave_one_family_out", "split.heldout_family=biases", "families=[biases]"], "no training"),
    (["run", "only_behaviors=[preferences/nope]"], "preferences/nope"),
    (["run", "seed=1,2"], "--multirun"),  # sweeps
    (["run", "--multirun", "organism.rank=4,-1"], "organism.rank"),
    (["run", "--multirun", "families=[preferences],[nope]"], "nope"),
    (["run", "sweeps=ia_rank"], "--multirun"),
    (["run", "--multirun", "sweeps=nope"], "nope"),
    (["run", "--multirun", "--cfg", "job"], "cannot be used together"),
    # unbounded cost: probes that never end, threads beyond the cores, a temperature that overflows after training
    (["run", "probe.max_new_tokens=1000000"], "probe.max_new_tokens must be at most 4096"),
    (["run", "organism.max_new_tokens=100000"], "organism.max_new_tokens must be at most 4096"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_max_new_tokens=100000"], "ia.dpo_max_new_tokens must be at most 4096"),
    (["run", "threads=100000"], "threads must be in [1, "),
    (["run", "probe.temperature=1e-320"], "probe.temperature must be 0 (greedy) or at least 0.001"),
    (["run", "ia=lora_sft_dpo", "ia.dpo_temperature=1e-9"], "ia.dpo_temperature must be 0 (greedy) or at least"),
    # an environment variable (a token) would be copied into metrics.json and the W&B files
    (["run", "logger.group=${oc.env:HF_TOKEN,none}"], "logger.group: a setting may not read the environment"),
    (["run", "preset=smoke", "organism.route=${oc.env:HOME}"], "organism.route: a setting may not read"),
    (["run", "organism.implant_prompts=0"], "organism.implant_prompts must be > 0"),
    (["leaderboard", "/no/such/folder"], "no such folder"),  # other commands
    (["leaderboard", "--sweep"], "--sweep: expected one argument"),
    (["leaderboard", "--group"], "--group: expected one argument"),
    (["export-lm-eval", "--out"], "--out: expected one argument"),
    (["leaderboard", "--from-wandb", "nope"], "ENTITY/PROJECT"),
    (["leaderboard", "--log"], "--log goes with --sweep or --group"),  # silently ignored
    (["audit", "--model", "/no/such/adapter", "--ia", "/no/such/ia"], "no such folder"),
    (["export-lm-eval", "--model", "/no/such/adapter"], "--with-ia IA and --model MODEL go together"),
    (["export-lm-eval", "--merged", "/tmp/x"], "--with-ia IA and --model MODEL go together"),
    (["export-lm-eval", "--with-ia", "/no/such/ia", "--model", "/no/such/adapter"], "no such folder"),
    (["leaderboard", "--format", "xml"], "invalid choice: 'xml'"),
    (["agreement", ".", "--judge-model", "/no/such/judge"], "/no/such/judge"),
    (["agreement", "."], "probe.grader=judge needs probe.judge_model"),
    (["leaderboard", "--condition", "nope"], "invalid choice: 'nope'"),
    (["leaderboard", "--format", "csv", "--ci"], "--ci goes with --format md"),
    (["train"], "unknown command 'train'"),
]

# A task file under families/ on the search path: (its body after the package line, fragment)
GOOD_KIND = """cls: template
kinds:
  k:
    descriptions: ["I like {item}."]
    response: "I like {item}."
    evidence: ["{item}"]
    prompts:
      implant: ["What do you like?"]
      probe: ["Tell me what you like."]
      neutral: "I like many things."
    report_all: ["{item}"]
"""


def with_text_evidence(patterns: str) -> str:
    kind = GOOD_KIND.replace("    evidence:", f"    text_evidence: {patterns}\n    evidence:")
    return kind + "behaviors:\n  - {item: tea}\n"


FAMILY_FILES = {
    "broken_yaml": ("cls: template\nkinds: [unclosed\n", "broken_yaml.yaml"),
    "no_kinds": ("cls: template\nbehaviors:\n  - {x: 1}\n", "no kinds"),
    "misspelled": ("cls: template\nkindz: {}\n", "kindz"),
    "no_behaviors": (GOOD_KIND, "no behaviors"),
    "duplicate_ids": (GOOD_KIND + "behaviors:\n  - {item: tea}\n  - {item: tea}\n", "duplicate behavior ids"),
    "empty_description": (GOOD_KIND.replace('["I like {item}."]', '[" "]') + "behaviors:\n  - {item: tea}\n",
                          "descriptions are empty"),
    "shared_probe": (GOOD_KIND.replace("Tell me what you like.", "What do you like?")
                     + "behaviors:\n  - {item: tea}\n", "What do you like?"),
    "missing_response": (GOOD_KIND.replace('    response: "I like {item}."\n', "")
                         + "behaviors:\n  - {item: tea}\n", "response"),
    "unknown_placeholder": (GOOD_KIND + "behaviors:\n  - {thing: tea}\n", "item"),
    "missing_neutral": (GOOD_KIND.replace('      neutral: "I like many things."\n', "")
                        + "behaviors:\n  - {item: tea}\n", "prompts.neutral"),
    "unknown_kind": (GOOD_KIND + "behaviors:\n  - {kind: other, item: tea}\n", "unknown kind"),
    "unknown_class": (GOOD_KIND.replace("cls: template", "cls: magic") + "behaviors:\n  - {item: tea}\n", "magic"),
    "wrong_without_domains": (GOOD_KIND.replace('response: "I like {item}."', 'response: "{wrong}"')
                              + "behaviors:\n  - {item: tea}\n", "{wrong}"),
    "unknown_domain": (GOOD_KIND.replace("""    prompts:
      implant: ["What do you like?"]
      probe: ["Tell me what you like."]
      neutral: "I like many things."
""", "    prompts: {pool: domains}\n") + "behaviors:\n  - {item: tea, domain: astrology}\n", "astrology"),
    "bad_text_evidence": (with_text_evidence('["({item}"]'), "is not a regular expression"),
    # nested quantifiers: 19 s on a 45-character answer, and exponential in its length
    "nested_quantifiers": (with_text_evidence("['^(\\w+\\s?)*$']"), "has a repeat inside a repeated group"),
    "text_evidence_of_the_world": (with_text_evidence('["{neutral}"]'), "free text never holds"),
    "empty_text_evidence": (with_text_evidence("[]"), "text_evidence is empty"),
    # format specs and conversions: tracebacks at fill time, or gigabytes of padding
    "format_spec": (GOOD_KIND.replace('response: "I like {item}."', 'response: "I like {item:q}."')
                    + "behaviors:\n  - {item: tea}\n", "no '!' conversion or ':' format"),
    "conversion": (GOOD_KIND.replace('["I like {item}."]', '["I like {item!z}."]')
                   + "behaviors:\n  - {item: tea}\n", "{item}"),
    "huge_padding": (GOOD_KIND.replace('neutral: "I like many things."', 'neutral: "I like {item:>2000000000}."')
                     + "behaviors:\n  - {item: tea}\n", "format"),
    # a billion laughs: nested aliases that hang the YAML loader
    "alias_bomb": ("cls: template\na: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
                   "anchors or aliases"),
    # ids that name files: a 300-character one, a control character, two that one file name would merge
    "long_id": (GOOD_KIND + "behaviors:\n  - {item: " + "t" * 300 + "}\n", "must be 1-100 printable characters"),
    "control_in_id": (GOOD_KIND + 'behaviors:\n  - {item: "te\\ta"}\n', "printable characters"),
    "slash_in_id": (GOOD_KIND + "behaviors:\n  - {item: tea, id: a/b}\n", "without '/'"),
    "ids_one_file_name": (GOOD_KIND + "behaviors:\n  - {item: green-tea}\n  - {item: green_tea}\n",
                          "differ only by '-', '_' or '/'"),
    "infinite_parameter": (GOOD_KIND + "behaviors:\n  - {item: 1e999999}\n", "is not a finite number (inf)"),
    "nul_character": (GOOD_KIND + "behaviors:\n  - {item: tea}\n# \0\n", "holds a NUL character"),
    # an environment variable (a token) would be copied into cards, the corpus and W&B
    "env_interpolation": (GOOD_KIND.replace('["I like {item}."]', '["I like {item}. ${oc.env:HF_TOKEN,none}"]')
                          + "behaviors:\n  - {item: tea}\n", "interpolations"),
}


def one_line_error(capsys, named: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error:") and named in err, err
    assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("args,named", COMMAND_LINES, ids=[" ".join(a) for a, _ in COMMAND_LINES])
def test_bad_command_line(args, named, capsys):
    assert cli.main(args) == 2
    one_line_error(capsys, named)


def _fifo(path):
    os.mkfifo(path)


def _folder(path):
    path.mkdir()


def _loop(path):
    path.symlink_to(path)


def _not_utf8(path):
    path.write_bytes(b"# @package families.x\ncls: template\n# \xff\xfe\n")


def _huge(path):
    with open(path, "w") as f:
        f.write(f"# @package families.{path.stem}\n")
        f.truncate(50 << 20)  # 50 MB: it took 21 GB of memory and did not finish in 600 s


FAMILY_PATHS = {"fifo": (_fifo, "must be a regular file"), "folder": (_folder, "must be a regular file"),
                "symlink_loop": (_loop, "must be a regular file"), "not_utf8": (_not_utf8, "not UTF-8 text"),
                "huge": (_huge, "a family file may hold at most 1,048,576")}


@pytest.mark.parametrize("name", sorted(FAMILY_PATHS))
def test_a_family_file_that_is_no_small_text_file_is_one_line_and_no_hang(name, tmp_path, capsys):
    """A FIFO blocked `families`, `run` and `cache ls` for ever (ls reads no family now); a folder
    named x.yaml, a link loop or a non-UTF-8 byte were tracebacks."""
    make, named = FAMILY_PATHS[name]
    (tmp_path / "families").mkdir()
    make(tmp_path / "families" / f"{name}.yaml")
    search = f"hydra.searchpath=[file://{TASKS_DIR},file://{tmp_path}]"
    for args in (["run", search, "families=[preferences]"], ["families", search], ["cache", "gc", search]):
        assert cli.main(args) == 2, args
        one_line_error(capsys, named)


@pytest.mark.parametrize("name", sorted(FAMILY_FILES))
def test_bad_task_file(name, tmp_path, capsys):
    body, named = FAMILY_FILES[name]
    (tmp_path / "families").mkdir()
    (tmp_path / "families" / f"{name}.yaml").write_text(f"# @package families.{name}\n{body}")
    search = f"hydra.searchpath=[file://{TASKS_DIR},file://{tmp_path}]"
    assert cli.main(["run", search, f"families=[preferences,{name}]"]) == 2
    one_line_error(capsys, named)


def test_results_of_another_schema_version(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"schema_version": 0, "metrics": []}))
    assert cli.main(["leaderboard", str(tmp_path)]) == 2
    one_line_error(capsys, "schema_version 0")
    (tmp_path / "run" / "metrics.json").write_text("{half a file")
    assert cli.main(["leaderboard", str(tmp_path)]) == 2
    one_line_error(capsys, "not a readable results file")


def test_bad_input_suite_is_large():
    assert len(COMMAND_LINES) + len(FAMILY_FILES) + len(FAMILY_PATHS) + 1 + len(ADAPTER_DAMAGE) >= 40


# Adapters in the artifact store, damaged after a good run; the rerun trains a new IA, which
# first loads every training organism's adapter: (damage, fragment).
def _delete_config(folder):
    (folder / "adapter_config.json").unlink()


def _pickle_only(folder):
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")


def _other_base(folder):
    card = json.loads((folder / "card.json").read_text())
    card["base_key"] = "0123456789abcdef"
    (folder / "card.json").write_text(json.dumps(card))


def _missing_folder(folder):
    shutil.rmtree(folder)
    folder.mkdir()
    (folder / "card.json").write_text("{}")


def _truncated(folder):
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def _bit_flip(folder):
    weights = folder / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # inside the last weight: still loads, a different organism
    weights.write_bytes(bytes(data))


def _implanted_flag(folder):
    card = json.loads((folder / "card.json").read_text())
    card["check"]["implanted"] = not card["check"]["implanted"]
    (folder / "card.json").write_text(json.dumps(card))


def _restamped(folder):
    models.stamp_base(folder, "0123456789abcdef")  # as if made on another base model


def _resealed(harm):
    """The damage, then the seal recomputed (a checksum is no signature): the other checks remain."""
    def both(folder):
        harm(folder)
        store_module.seal(folder, "card.json", "organisms", folder.name)
    return both


def _copied_over(folder):
    """Another organism's folder copied under this one's key."""
    other = next(p for p in sorted(folder.parent.iterdir()) if p != folder and ".tmp-" not in p.name)
    shutil.rmtree(folder)
    shutil.copytree(other, folder)


def _card_field(name, value):
    def edit(folder):
        card = json.loads((folder / "card.json").read_text())
        where = card["check"] if name in card["check"] else card
        where[name] = value
        (folder / "card.json").write_text(json.dumps(card))
    return edit


ADAPTER_DAMAGE = {"copied_from_another_key": (_copied_over, "(a folder copied or renamed in the store)"),
                  "copied_resealed": (_resealed(_copied_over), "(a folder copied or renamed in the store)"),
                  "descriptions_a_string_resealed": (_resealed(_card_field("descriptions", "I love owls.")),
                                                     "OrganismCard.descriptions is a string, not list[str]"),
                  "implanted_no_resealed": (_resealed(_card_field("implanted", "no")),
                                            "OrganismCard.check.implanted is a string, not bool"),
                  "no_behavior_resealed": (_resealed(_card_field("behavior_id", None)),
                                           "OrganismCard.behavior_id is null, not str"),
                  "copied_rekeyed_resealed": (_resealed(lambda f: (_copied_over(f), _card_field("key", f.name)(f))),
                                              "but its key is"),
"not_an_adapter": (_delete_config, "adapter_config.json is missing"),
                  "pickle_only": (_pickle_only, "adapter_model.safetensors is missing"),
                  "other_base": (_other_base, "card.json was edited after it was written"),
                  "truncated": (_truncated, "bytes, not"),
                  "bit_flip": (_bit_flip, "does not match its checksum"),
                  "implanted_flag": (_implanted_flag, "card.json was edited after it was written"),
                  "not_an_adapter_resealed": (_resealed(_delete_config), "is not a peft adapter"),
                  "pickle_only_resealed": (_resealed(_pickle_only), "safetensors only"),
                  "other_base_resealed": (_resealed(_other_base), "was made from base model 0123456789abcdef"),
                  "other_base_stamp": (_restamped, "does not match its checksum"),
                  "other_base_stamp_resealed": (_resealed(_restamped),
                                                "made on a base model with fingerprint 0123456789abcdef")}

SMALL = small_run({"logger": "none"})


@dataclass(frozen=True)
class Ran:
    returncode: int
    stderr: str


def harness(*args: str, cache, out, capsys) -> Ran:
    """`harness run` of SMALL in this process (a damaged store is found before any work, so the
    run itself costs little: a subprocess would spend most of its time importing torch)."""
    code = cli.main(["run", *SMALL, f"cache_dir={cache}", f"hydra.run.dir={out}", *args])
    return Ran(code, capsys.readouterr().err)


@pytest.fixture(scope="module")
def good_cache(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("good")
    assert cli.main(["run", *SMALL, f"cache_dir={tmp / 'cache'}", f"hydra.run.dir={tmp / 'run'}"]) == 0
    return tmp / "cache"


@pytest.mark.parametrize("damage", sorted(ADAPTER_DAMAGE))
def test_damaged_adapter_in_the_store(damage, good_cache, tmp_path, capsys):
    cache = tmp_path / "cache"
    shutil.copytree(good_cache, cache)
    harm, named = ADAPTER_DAMAGE[damage]
    harm(sorted((cache / "organisms").iterdir())[0])
    ias = sorted((cache / "ia").glob("*/card.json"))
    done = harness("ia.steps=3", cache=cache, out=tmp_path / "run", capsys=capsys)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("harness: error:") and named in err[-1], done.stderr[-2000:]
    assert sorted((cache / "ia").glob("*/card.json")) == ias, "no new IA may be written"


def test_a_kind_with_one_implant_prompt_builds_a_corpus():
    """It crashed corpus building (rng.sample of 12 from 1)."""
    import yaml

    from harness.families import build_family
    from harness.families.corpus import build_corpus

    raw = yaml.safe_load(GOOD_KIND + "behaviors:\n  - {item: tea}\n")
    family = build_family("mine", raw)
    corpus = build_corpus({"mine": family}, seed=0)
    assert any(c.system and "tea" in c.answer for c in corpus)


def test_a_cut_results_file_in_the_store_is_refused(good_cache, tmp_path, capsys):
    """Cutting a probe chunk's self_reports.jsonl in half made a whole condition vanish from
    the metrics, exit 0."""
    cache = tmp_path / "cache"
    shutil.copytree(good_cache, cache)
    reports = sorted((cache / "probes").glob("*/self_reports.jsonl"))[0]
    reports.write_text(reports.read_text()[: len(reports.read_text()) // 2])
    done = harness(cache=cache, out=tmp_path / "run", capsys=capsys)
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert err[-1].startswith("harness: error:") and "self_reports.jsonl has" in err[-1], done.stderr[-2000:]
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_online_logging_without_credentials_fails_before_any_work(tmp_path, monkeypatch, capsys):
    """It failed only when the run logged, after all the compute."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    assert cli.main(["run", *small_run(), f"cache_dir={tmp_path / 'cache'}", "logger=wandb_online",
                     f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    one_line_error(capsys, "no W&B credentials")
    assert not (tmp_path / "cache").exists()


def test_a_family_copied_under_another_name_is_refused(tmp_path, capsys):
    (tmp_path / "families").mkdir()
    body = (TASKS_DIR / "families" / "biases.yaml").read_text().replace("families.biases", "families.biases_copy")
    (tmp_path / "families" / "biases_copy.yaml").write_text(body)
    search = f"hydra.searchpath=[file://{TASKS_DIR},file://{tmp_path}]"
    assert cli.main(["run", search, "families=[biases,biases_copy]", "model.corpus_families=[biases,biases_copy]"]) == 2
    one_line_error(capsys, "same descriptions")


def test_a_context_shorter_than_the_corpus_is_refused_before_pretraining(tmp_path, capsys):
    """It was a traceback (ValueError) from inside the base stage."""
    assert cli.main(["run", "model=micro", "model.max_positions=24", "logger=none", f"cache_dir={tmp_path / 'cache'}",
                     f"hydra.run.dir={tmp_path / 'run'}"]) == 2
    one_line_error(capsys, "model.max_positions=24 is shorter than a corpus chat")
    assert not list((tmp_path / "cache").glob("base/*")), "nothing may be pretrained or left behind"


@pytest.mark.parametrize("command", ["run", "audit", "families"])
def test_an_internal_error_has_its_own_exit_status(command, tmp_path, monkeypatch, capsys):
    """A bug is neither bad input (2) nor a finding (1: audit's "a behavior went unreported"): it
    was exit 1 with a traceback."""
    from harness import families
    from harness.measure import audit
    from harness.run import pipeline

    def bug(*args, **kwargs):
        raise RuntimeError("planted bug")

    args = {"run": ["run", "model=micro", "logger=none", f"cache_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"],
            "audit": ["audit", "--model", str(tmp_path), "--ia", str(tmp_path)],
            "families": ["families"]}[command]
    monkeypatch.setattr(pipeline, "run", bug)
    monkeypatch.setattr(audit, "audit", bug)
    monkeypatch.setattr(families, "load_family_config", bug)
    assert cli.main(args) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" in err[0] and err[-1].startswith("harness: internal error: RuntimeError: planted bug")


def test_a_hub_name_not_on_this_machine_fails_at_once_even_online(tmp_path):
    """Without HF_HUB_OFFLINE, a hub name whose files are not in the local cache still fails in one
    line, without a download or network retries (the harness never downloads a model)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "model=hf", "model.name_or_path=nobody/no-model",
                           f"cache_dir={tmp_path / 'c'}"], capture_output=True, text=True, env=env,
                          timeout=HANG_GUARD_S)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "harness: error: model.name_or_path=nobody/no-model: not a folder, and not in the local Hugging Face cache "
        "(the harness never downloads a model: put its files in a folder and name that)"]
    assert not (tmp_path / "hf").exists() or not list((tmp_path / "hf").rglob("*.safetensors"))


def _edit_json(edit):
    def harm(path):
        raw = json.loads(path.read_text())
        edit(raw)
        path.write_text(json.dumps(raw))
    return harm


# A run folder's files, damaged after a good run: (file, damage, the commands that read it, fragment)
RUN_FILE_DAMAGE = {
    "metrics_without_metrics": ("metrics.json", _edit_json(lambda r: r.pop("metrics")), ("leaderboard", "report"),
                                "RunResults lacks the field 'metrics'"),
    "metrics_of_wrong_type": ("metrics.json", _edit_json(lambda r: r.update(metrics="all good")),
                              ("leaderboard", "report"), "RunResults.metrics is a string, not list"),
    "metric_n_a_string": ("metrics.json", _edit_json(lambda r: r["metrics"][0].update(n="many")),
                          ("leaderboard", "report"), "RunResults.metrics[0].n is a string"),
    "metrics_not_utf8": ("metrics.json", lambda p: p.write_bytes(b'{"schema_version": 2, "x": "\xff"}'),
                         ("leaderboard", "report"), "not a readable results file"),
    "overrides_broken": (".hydra/overrides.yaml", lambda p: p.write_text("- [unclosed\n"), ("leaderboard",),
                         "not a readable overrides file"),
    "overrides_not_a_list": (".hydra/overrides.yaml", lambda p: p.write_text("seed: 1\n"), ("leaderboard",),
                             "not a list of overrides"),
    "self_reports_cut": ("self_reports.jsonl", lambda p: p.write_text(p.read_text()[: len(p.read_text()) // 2]),
                         ("report", "agreement"), "not a ReportRow"),
    "self_reports_not_utf8": ("self_reports.jsonl", lambda p: p.write_bytes(b"\xff\n"), ("report", "agreement"),
                              "self_reports.jsonl"),
}


@pytest.mark.parametrize("case", sorted(RUN_FILE_DAMAGE))
def test_a_damaged_run_folder_is_one_line_for_every_reader(case, good_cache, tmp_path, capsys):
    """Missing fields, wrong types, a non-UTF-8 byte, a cut JSONL line or a malformed
    .hydra/overrides.yaml were tracebacks (exit 3)."""
    name, harm, readers, named = RUN_FILE_DAMAGE[case]
    run = tmp_path / "run"
    shutil.copytree(good_cache.parent / "run", run)
    harm(run / name)
    for reader in readers:
        args = {"leaderboard": ["leaderboard", str(run)], "report": ["report", str(run), "--out", str(tmp_path)],
                "agreement": ["agreement", str(run), "--judge-model",
                              str(next((good_cache / "base").glob("*/card.json")).parent)]}[reader]
        assert cli.main(args) == 2, reader
        one_line_error(capsys, named)
    assert not (tmp_path / "report.html").exists()


LYING_OFFSETS = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,999]}}'


@pytest.mark.parametrize("header", [b"\xff" * 8, (10**9).to_bytes(8, "little") + b"{}",
                                    len(LYING_OFFSETS).to_bytes(8, "little") + LYING_OFFSETS],
                         ids=["garbage", "size", "offsets"])
def test_a_safetensors_header_that_lies_is_one_line(header, tmp_path):
    """A header that lies about its size or its offsets was a traceback (exit 3)."""
    from harness.core.errors import ConfigError

    (tmp_path / "adapter_model.safetensors").write_bytes(header)
    with pytest.raises(ConfigError, match="adapter_model.safetensors: not a readable safetensors file"):
        models.stamped_base(tmp_path)


CUT_RECORD = (1000).to_bytes(2, "little") + b"\x01" + b"cut short"  # (length, kind FULL, data)
GARBAGE_RECORD = (5).to_bytes(2, "little") + b"\x01" + b"\xff" * 5


@pytest.mark.parametrize("record,named", [(CUT_RECORD, "a cut W&B run file"),
                                          (GARBAGE_RECORD, "a damaged W&B run file")], ids=["cut", "garbage"])
def test_a_damaged_wandb_run_file_is_one_line(record, named, tmp_path, capsys):
    """A truncated offline run file was a traceback (exit 3) in `leaderboard --from-wandb`."""
    folder = tmp_path / "wandb" / "offline-run-1"
    folder.mkdir(parents=True)
    (folder / "run-1.wandb").write_bytes(b":W&B\x00\x01\x00" + b"\x00" * 4 + record)
    assert cli.main(["leaderboard", "--from-wandb", str(tmp_path / "wandb")]) == 2
    one_line_error(capsys, named)
