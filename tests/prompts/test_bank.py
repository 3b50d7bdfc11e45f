"""``clinprompt bank list|show|add|remove``: adding a task touches no other task; show compares
each task's bytes with a LoRA adapter of the same backbone."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import clinprompt.cli.bank  # noqa: F401  (registers the commands)
from clinprompt.artifacts import save_tensors
from clinprompt.backbone import load_backbone_config
from clinprompt.cli import app
from clinprompt.params import lora_parameter_count, meta_model
from clinprompt.prompts.bank import BANK_VERSION, BankError, PromptBank, TaskEntry
from clinprompt.tasks.spec import TaskSpec

P, D = 4, 64
runner = CliRunner()


def _bank(path, tiny, seed=0, names=("a", "b")):
    gen = torch.Generator().manual_seed(seed)
    bank = PromptBank.create(
        path, tiny.fingerprint, P, rank=1, shared=torch.randn(P, D, generator=gen)
    )
    for n in names:
        bank.add_factors(
            TaskEntry(n, "nli", "factors", labels=["yes", "no"]),
            torch.randn(P, 1, generator=gen),
            torch.randn(1, D, generator=gen),
        )
    return bank


def _run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def _stamp(bank):
    return {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in (bank.path / "tasks").iterdir()}


def test_add_from_bank_touches_no_other_task(tmp_path, tiny):
    dest = _bank(tmp_path / "dest", tiny)
    other_shared = _bank(tmp_path / "src", tiny, seed=1, names=("t1", "t2"))
    before = _stamp(dest)
    code, out = _run(
        "bank", "add", dest.path, other_shared.path, "--task", "t2", "--name", "target"
    )
    assert code == 0, out
    after = PromptBank.load(dest.path)
    assert list(after.tasks) == ["a", "b", "target"]
    assert {k: v for k, v in _stamp(after).items() if k in before} == before
    # A factor task on another P* keeps its own copy of it; the effective prompt is unchanged.
    assert after.tasks["target"].own_shared
    torch.testing.assert_close(after.task_prompt("target"), other_shared.task_prompt("t2"))


def test_add_from_bank_with_the_same_shared_prompt_keeps_factors_only(tmp_path, tiny):
    dest = _bank(tmp_path / "dest", tiny)
    sibling = PromptBank.create(tmp_path / "sib", tiny.fingerprint, P, rank=1, shared=dest.shared())
    sibling.add_factors(TaskEntry("new", "qa", "factors"), torch.randn(P, 1), torch.randn(1, D))
    code, out = _run("bank", "add", dest.path, sibling.path)  # one task: --task not needed
    assert code == 0, out
    after = PromptBank.load(dest.path)
    assert not after.tasks["new"].own_shared and after.task_bytes("new") < 1024
    torch.testing.assert_close(after.task_prompt("new"), sibling.task_prompt("new"))


def test_add_from_run_dir_and_remove(tmp_path, tiny):
    dest = _bank(tmp_path / "dest", tiny)
    run = tmp_path / "run"
    weight = torch.randn(P, D)
    save_tensors(run / "final.safetensors", {"prompt.weight": weight})
    code, out = _run("bank", "add", dest.path, run)
    assert code != 0 and "--name and --task-type" in out
    code, out = _run(
        "bank",
        "add",
        dest.path,
        run,
        "--name",
        "teacher",
        "--task-type",
        "ner",
        "--labels",
        "Drug,Problem",
    )
    assert code == 0, out
    bank = PromptBank.load(dest.path)
    assert bank.tasks["teacher"].labels == ["Drug", "Problem"]
    torch.testing.assert_close(bank.task_prompt("teacher"), weight)
    code, out = _run("bank", "remove", dest.path, "teacher")
    assert code == 0 and "2 task(s) left" in out
    assert not (dest.path / "tasks" / "teacher.safetensors").exists()
    code, out = _run("bank", "remove", dest.path, "teacher")
    assert code == 1 and "not in the bank" in out


def test_add_refuses_ambiguous_or_unknown_sources(tmp_path, tiny):
    dest = _bank(tmp_path / "dest", tiny)
    src = _bank(tmp_path / "src", tiny, seed=1)
    code, out = _run("bank", "add", dest.path, src.path)
    assert code == 2 and "choose one with --task" in out
    code, out = _run("bank", "add", dest.path, src.path, "--task", "a")
    assert code == 1 and "already in the bank" in out
    code, out = _run("bank", "add", dest.path, tmp_path)
    assert code == 2 and "neither a bank" in out


def test_show_compares_with_lora(tmp_path, tiny):
    bank = _bank(tmp_path / "bank", tiny)
    bank.add_prompt(TaskEntry("single", "ner", "prompt"), torch.randn(P, D))
    code, out = _run("bank", "show", bank.path, "--json")
    assert code == 0, out
    s = json.loads(out)
    lora = lora_parameter_count(meta_model(load_backbone_config("tiny-llama")), 8)
    assert (
        s["lora_parameters"] == lora
        and s["lora_bytes_fp32"] == 4 * lora
        and s["lora_bytes_bf16"] == 2 * lora
    )
    tasks = {t["name"]: t for t in s["tasks"]}
    assert tasks["a"]["parameters"] == P * 1 + 1 * D and tasks["a"]["bytes_fp32"] == 4 * (P + D)
    assert tasks["single"]["parameters"] == P * D
    assert s["shared_bytes_fp32"] == 4 * P * D
    code, out = _run("bank", "show", bank.path)
    assert code == 0 and "LoRA r=8" in out and "single" in out
    code, out = _run("bank", "list", bank.path)
    assert code == 0 and "3 task(s)" in out


@pytest.mark.parametrize("cmd", [["bank", "list"], ["bank", "show"]])
def test_not_a_bank(tmp_path, cmd):
    code, out = _run(*cmd, tmp_path)
    assert code == 1 and "bank.json is missing" in out


# ------------------------------------------------------------------ task specs, format versions
V1_BANK = Path(__file__).parents[1] / "assets" / "bank_v1" / "bank.json"


def test_entry_stores_its_spec_whole(tmp_path, tiny):
    spec = TaskSpec(
        "my_joint_re",
        "re",
        labels=("causes",),
        joint=True,
        synthetic=True,
        entity_types=("Drug", "AE"),
        instruction="Find drugs, effects and relations.",
    )
    bank = PromptBank.create(tmp_path / "b", tiny.fingerprint, P)
    bank.add_prompt(TaskEntry("joint", "re", "prompt", spec=spec), torch.randn(P, D))
    raw = json.loads((bank.path / "bank.json").read_text())
    assert raw["version"] == BANK_VERSION == 2 and raw["tasks"][0]["spec"] == spec.to_dict()
    entry = PromptBank.load(bank.path).entry("joint")
    assert entry.spec == spec
    assert entry.labels == ["causes"] and entry.instruction == spec.instruction


def test_entry_fields_and_spec_agree():
    spec = TaskSpec("ds", "nli", labels=("yes", "no"))
    # The entry records what training used: its labels and instruction go into the spec.
    entry = TaskEntry("t", "nli", "prompt", labels=["no", "yes"], instruction="Say.", spec=spec)
    assert entry.spec == TaskSpec("ds", "nli", labels=("no", "yes"), instruction="Say.")
    filled = TaskEntry("t", "nli", "prompt", spec=spec)
    assert filled.labels == ["yes", "no"] and filled.instruction is None and filled.spec == spec
    # Without a spec the entry builds one from its own fields.
    bare = TaskEntry("t", "qa", "prompt", dataset="x", meta={"answer_style": "long"})
    assert bare.spec == TaskSpec("x", "qa", answer_style="long")
    with pytest.raises(BankError, match="its spec is a nli task but the entry says ner"):
        TaskEntry("t", "ner", "prompt", spec=spec)


def _v1_lookup(dataset):
    from clinprompt.data.registry import UnknownDatasetError, get_dataset

    try:
        return get_dataset(dataset).task_spec()
    except UnknownDatasetError:
        return None


def test_version_1_bank_is_refused_on_load_with_the_upgrade_command(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    shutil.copy(V1_BANK, path / "bank.json")
    with pytest.raises(BankError, match=f"clinprompt bank upgrade {path}"):
        PromptBank.load(path)


def test_version_1_bank_is_upgraded_in_place(tmp_path):
    from clinprompt.data.registry import get_dataset

    path = tmp_path / "old"
    path.mkdir()
    shutil.copy(V1_BANK, path / "bank.json")
    bank = PromptBank.upgrade(path, _v1_lookup)
    assert bank.header["version"] == 2 and "from bank format 1 to 2" in bank.header["upgraded"]
    specs = {name: e.spec for name, e in bank.tasks.items()}
    # A registered dataset: its spec (entity types...), with the entry's instruction.
    ade = get_dataset("ade_corpus_v2")
    assert specs["ade.full"] == replace(
        ade.task_spec(), instruction="Which drug causes which adverse effect?"
    )
    assert specs["ade.full"].entity_types == ("Drug", "AdverseEffect", "Dose")
    assert bank.tasks["ade.full"].labels == ["causes", "has_dose"]
    # The entry's labels win; a synthetic dataset stays labelled synthetic.
    sym = specs["symptoms"]
    assert sym.labels == ("entailment", "contradiction") and sym.synthetic
    assert sym.instruction == get_dataset("syn_symptom_nli").instruction
    # Not registered: built from the entry's fields, meta joint/answer_style included.
    assert specs["private_joint"] == TaskSpec(
        "my_private_joint_re",
        "re",
        labels=("causes",),
        instruction="Extract drugs, effects and their relations.",
        joint=True,
    )
    assert specs["long_answers"] == TaskSpec("long_answers", "qa", answer_style="long")
    # Written in place, format 2 with every spec; it loads as it was upgraded.
    raw = json.loads((path / "bank.json").read_text())
    assert raw["version"] == 2 and raw["upgraded"] == bank.header["upgraded"]
    assert all("spec" in t for t in raw["tasks"])
    again = PromptBank.load(path)
    assert {n: e.spec for n, e in again.tasks.items()} == specs
    assert "upgraded" in again.header  # the note stays with the bank
    # Upgrading a current bank changes nothing.
    assert PromptBank.upgrade(path, _v1_lookup).header == again.header
    # Without a lookup (no registry) every spec comes from the entry's own fields.
    path2 = tmp_path / "old2"
    path2.mkdir()
    shutil.copy(V1_BANK, path2 / "bank.json")
    bare = PromptBank.upgrade(path2).tasks["ade.full"].spec
    assert bare.entity_types == () and bare.labels == ()  # the v1 entry recorded no labels


def test_bank_upgrade_command(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    shutil.copy(V1_BANK, path / "bank.json")
    code, out = _run("bank", "upgrade", path)
    assert code == 0 and "from bank format 1 to 2" in out and "private_joint: re" in out
    assert "(joint)" in out
    code, out = _run("bank", "upgrade", path)
    assert code == 0 and "already in bank format 2" in out
    code, out = _run("bank", "list", path)
    assert code == 0


def test_bad_specs_are_refused_naming_the_field(tmp_path):
    path = tmp_path / "bad"
    path.mkdir()
    data = json.loads(V1_BANK.read_text())
    data["version"] = 2
    (path / "bank.json").write_text(json.dumps(data))
    with pytest.raises(BankError, match="task 'ade.full': field 'spec' is missing"):
        PromptBank.load(path)
    for task in data["tasks"]:
        task["spec"] = TaskSpec(task["name"], task["task_type"]).to_dict()
    data["tasks"][1]["spec"]["joint"] = "yes"
    (path / "bank.json").write_text(json.dumps(data))
    with pytest.raises(BankError, match="task 'symptoms': spec: field 'joint': expected true or"):
        PromptBank.load(path)
    data["version"] = 3
    (path / "bank.json").write_text(json.dumps(data))
    with pytest.raises(BankError, match="version 3 is newer"):
        PromptBank.load(path)


def test_a_prompt_trained_on_an_older_text_template_is_refused_where_used(tmp_path, tiny):
    """Pair-given RE is posed per entity pair now (template v1-pairs); an RE prompt trained on the
    record-level text (v1) must not be used silently: serving marks it unavailable, evaluation
    refuses it, both saying to train it again. Other task types keep template v1."""
    from clinprompt.eval.artifact import EvalError, resolve_artifact
    from clinprompt.prompts.bank import template_mismatch
    from clinprompt.serve.runtime import load_task_table

    re_spec = TaskSpec("pairs", "re", labels=("causes",))
    bank = PromptBank.create(tmp_path / "b", tiny.fingerprint, P)
    bank.add_prompt(TaskEntry("new_re", "re", "prompt", spec=re_spec), torch.randn(P, D))
    bank.add_prompt(
        TaskEntry("old_re", "re", "prompt", spec=re_spec, template_version="v1"),
        torch.randn(P, D),
    )
    bank.add_prompt(TaskEntry("nli", "nli", "prompt"), torch.randn(P, D))
    bank = PromptBank.load(bank.path)
    assert bank.entry("new_re").template_version == "v1-pairs"
    assert bank.entry("nli").template_version == "v1"
    assert template_mismatch(bank.entry("new_re")) is None
    assert "train it again" in template_mismatch(bank.entry("old_re"))
    table = load_task_table(bank, tiny.tokenizer, torch.device("cpu"), torch.float32)
    assert table.tasks["new_re"].unavailable is None
    assert "text template v1" in table.tasks["old_re"].unavailable
    with pytest.raises(EvalError, match="now posed as v1-pairs"):
        resolve_artifact(str(bank.path), "old_re", "pairs")
    assert resolve_artifact(str(bank.path), "new_re", "pairs").task == "new_re"
