"""PEFT interop: an exported task is a standard PROMPT_TUNING adapter that PEFT loads and that
generates exactly clinprompt's greedy tokens; adapters import back as single-prompt tasks."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import PeftModel, PromptTuningConfig, TaskType, get_peft_model
from typer.testing import CliRunner

import clinprompt.cli.bank  # noqa: F401  (registers the commands)
from clinprompt.artifacts import read_json
from clinprompt.backbone import tiny_backbone
from clinprompt.cli import app
from clinprompt.data.collate import encode_prompt
from clinprompt.decoding import greedy_generate
from clinprompt.prompts.bank import BankError, PromptBank, TaskEntry
from clinprompt.prompts.peft_interop import export_peft, import_peft, patch_peft_generation
from clinprompt.tasks.base import Example

P, D = 5, 64
runner = CliRunner()


@pytest.fixture(scope="module")
def lively():
    return tiny_backbone(seed=0, device="cpu", initializer_range=0.2)


@pytest.fixture()
def bank(tmp_path, lively):
    gen = torch.Generator().manual_seed(3)
    bank = PromptBank.create(
        tmp_path / "bank", lively.fingerprint, P, rank=1, shared=torch.randn(P, D, generator=gen)
    )
    bank.add_factors(
        TaskEntry("ade", "ner", "factors", labels=["Drug", "AE"], instruction="Find drugs."),
        torch.randn(P, 1, generator=gen),
        torch.randn(1, D, generator=gen),
    )
    return bank


def test_exported_adapter_generates_what_clinprompt_generates(tmp_path, lively, bank):
    code = runner.invoke(app, ["export", "peft", str(bank.path), "ade", str(tmp_path / "adapter")])
    assert code.exit_code == 0, code.output
    config = read_json(tmp_path / "adapter" / "adapter_config.json")
    assert (config["peft_type"], config["task_type"]) == ("PROMPT_TUNING", "CAUSAL_LM")
    assert (
        config["num_virtual_tokens"],
        config["token_dim"],
        config["base_model_name_or_path"],
    ) == (P, D, "tiny-llama")

    plain = PeftModel.from_pretrained(copy.deepcopy(lively.model), str(tmp_path / "adapter")).eval()
    patched = patch_peft_generation(
        PeftModel.from_pretrained(copy.deepcopy(lively.model), str(tmp_path / "adapter")).eval()
    )
    tok = lively.tokenizer
    for text in ["Started metformin 500 mg.", "Rash after amoxicillin; stopped it."]:
        ids = encode_prompt(tok, Example("Find drugs.\n\n", text, ""))
        ours = greedy_generate(
            lively.model,
            bank.task_prompt("ade").unsqueeze(0),
            [ids],
            12,
            tok.eos_token_id,
            tok.pad_token_id,
        )[0]
        assert len(ours) == 12
        # PEFT's generate without a KV cache, and with one once patched (see patch_peft_generation).
        for model, use_cache in ((plain, False), (patched, True)):
            assert _peft_generate(model, tok, ids, 12, use_cache) == ours


def _peft_generate(model, tok, ids, n, use_cache):
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=n,
            do_sample=False,
            use_cache=use_cache,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    new = out[0, len(ids) :].tolist()
    return new[: new.index(tok.eos_token_id)] if tok.eos_token_id in new else new


def test_round_trip_keeps_the_prompt_and_task_metadata(tmp_path, lively, bank):
    export_peft(bank, "ade", tmp_path / "adapter")
    other = PromptBank.create(tmp_path / "other", lively.fingerprint, P)
    code = runner.invoke(
        app, ["import", "peft", str(tmp_path / "adapter"), str(other.path), "--name", "ade_teacher"]
    )
    assert code.exit_code == 0, code.output
    other = PromptBank.load(other.path)
    entry = other.tasks["ade_teacher"]
    assert (entry.kind, entry.task_type, entry.labels, entry.instruction) == (
        "prompt",
        "ner",
        ["Drug", "AE"],
        "Find drugs.",
    )
    torch.testing.assert_close(other.task_prompt("ade_teacher"), bank.task_prompt("ade"))


def test_import_a_native_peft_adapter(tmp_path, lively):
    peft_model = get_peft_model(
        copy.deepcopy(lively.model),
        PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=P),
    )
    weight = torch.randn(P, D)
    with torch.no_grad():
        peft_model.prompt_encoder["default"].embedding.weight.copy_(weight)
    peft_model.save_pretrained(str(tmp_path / "native"))
    bank = PromptBank.create(tmp_path / "bank", lively.fingerprint, P)
    with pytest.raises(BankError, match="task type"):
        import_peft(tmp_path / "native", bank, "t")
    entry = import_peft(tmp_path / "native", bank, "t", task_type="nli", labels=["yes", "no"])
    assert entry.meta["source"] == "peft"
    torch.testing.assert_close(bank.task_prompt("t"), weight)
    wrong_p = PromptBank.create(tmp_path / "bank8", lively.fingerprint, P + 3)
    with pytest.raises(BankError, match="same P"):
        import_peft(tmp_path / "native", wrong_p, "t", task_type="nli")


def test_import_refuses_other_adapters(tmp_path, bank):
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text(
        '{"peft_type": "LORA", "task_type": "CAUSAL_LM"}'
    )
    code = runner.invoke(
        app,
        [
            "import",
            "peft",
            str(tmp_path / "lora"),
            str(bank.path),
            "--name",
            "x",
            "--task-type",
            "ner",
        ],
    )
    assert code.exit_code == 1 and "only PROMPT_TUNING" in code.output
