"""`evaluate` on the tiny model: a generated task, an option-scored task, LoRA, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from clinprompt.eval.artifact import EvalError
from clinprompt.eval.runs import Evaluation, evaluation_dir
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.recipes.evaluate import EvalArgs, evaluate, evaluate_floor, select_records

P = 4


@pytest.fixture
def bank(tiny, tmp_path):
    """A bank with a factor task (MPT-like) and a single-prompt task (PT-like) on the tiny model."""
    d = tiny.hidden_size
    gen = torch.Generator().manual_seed(0)
    b = PromptBank.create(
        tmp_path / "bank",
        tiny.fingerprint,
        prompt_tokens=P,
        rank=1,
        shared=torch.randn(P, d, generator=gen) * 0.02,
    )
    b.add_factors(TaskEntry("syn_vitals_ner", "ner", "factors"), torch.ones(P, 1), torch.ones(1, d))
    b.add_prompt(
        TaskEntry("syn_symptom_nli", "nli", "prompt"), torch.randn(P, d, generator=gen) * 0.02
    )
    return b


def test_generated_task_writes_predictions_and_metrics(tiny, bank, tmp_path):
    args = EvalArgs(
        dataset="syn_vitals_ner",
        artifact=str(bank.path),
        limit=3,
        batch_size=2,
        max_new_tokens=4,
        run_dir=str(tmp_path / "run"),
    )
    result = evaluate(args, backbone=tiny)
    out = evaluation_dir(tmp_path / "run", "mpt", "syn_vitals_ner", "full")
    assert result.out_dir == out
    rows = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"id", "raw", "prediction", "ok", "gold", "score"} <= set(rows[0])
    assert all(r["via"] == "generate" for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 3 and metrics["primary_metric"] == "strict_f1"
    # a random tiny model writes gibberish: unparseable generations are counted, never dropped
    assert metrics["unparseable"] == sum(not r["ok"] for r in rows)
    assert metrics["trainable_params"] == P * 1 + 1 * tiny.hidden_size  # factors only (shared P*)
    assert metrics["formulation"] == "generation, parsed"  # the task type says how it was posed
    assert (out / "config.json").exists() and (tmp_path / "run" / "eval" / "index.json").exists()
    assert Evaluation.load(out / "metrics.json").primary == result.primary


def test_option_scored_task_uses_one_forward_per_batch(tiny, bank, tmp_path):
    args = EvalArgs(
        dataset="syn_symptom_nli",
        artifact=str(bank.path),
        limit=5,
        batch_size=6,
        out=str(tmp_path / "nli"),
    )
    result = evaluate(args, backbone=tiny)
    assert result.n == 5 and all(r["via"] == "options" for r in result.rows)
    assert {r["raw"] for r in result.rows} <= {"entailment", "neutral", "contradiction"}
    assert result.unparseable == 0  # an option is always a well-formed answer
    assert {"accuracy", "macro_f1"} <= set(result.metrics)
    assert result.summary["formulation"].startswith("classification: option scoring")
    gen = evaluate(
        EvalArgs(
            dataset="syn_symptom_nli",
            artifact=str(bank.path),
            limit=2,
            generate=True,
            max_new_tokens=3,
        ),
        backbone=tiny,
    )
    assert all(r["via"] == "generate" for r in gen.rows) and gen.unparseable == sum(
        not r["ok"] for r in gen.rows
    )


def test_bare_backbone_and_floor(tiny, tmp_path):
    zs = evaluate(
        EvalArgs(dataset="syn_symptom_nli", limit=4, setting="k0", run_dir=str(tmp_path)),
        backbone=tiny,
    )
    assert zs.summary["method"] == "zeroshot" and zs.summary["trainable_params"] == 0
    floor = evaluate_floor(EvalArgs(dataset="syn_symptom_nli", limit=4, run_dir=str(tmp_path)))
    assert floor.summary["floor"] == "majority-label" and floor.unparseable == 0
    assert (evaluation_dir(tmp_path, "floor", "syn_symptom_nli", "full") / "metrics.json").exists()


def test_lora_adapter_is_applied_then_removed(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    peft_model = get_peft_model(
        tiny.model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    peft_model.save_pretrained(tmp_path / "lora")
    peft_model.unload()
    result = evaluate(
        EvalArgs(dataset="syn_symptom_nli", artifact=str(tmp_path / "lora"), limit=2), backbone=tiny
    )
    assert result.summary["method"] == "lora" and result.summary["trainable_params"] > 0
    after = tiny.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_bad_input_is_reported(tiny, bank):
    with pytest.raises(EvalError, match="trained for a nli task.*syn_vitals_ner.*is ner"):
        evaluate(
            EvalArgs(dataset="syn_vitals_ner", artifact=str(bank.path), task="syn_symptom_nli"),
            backbone=tiny,
        )
    with pytest.raises(
        EvalError, match="not in the bank.*it holds: syn_vitals_ner, syn_symptom_nli"
    ):
        evaluate(EvalArgs(dataset="syn_plan_sum", artifact=str(bank.path)), backbone=tiny)
    with pytest.raises(EvalError, match="no 'validation' split.*it has: .*test"):
        evaluate(EvalArgs(dataset="syn_vitals_ner", split="validation"), backbone=tiny)
    with pytest.raises(EvalError, match="does not exist"):
        evaluate(EvalArgs(dataset="syn_vitals_ner", artifact="/nonexistent/bank"), backbone=tiny)


def test_select_records_is_seeded_and_keeps_order():
    records = [{"id": f"r{i}"} for i in range(50)]
    a, b = select_records(records, 10, seed=1), select_records(records, 10, seed=1)
    assert a == b and len(a) == 10
    assert [records.index(r) for r in a] == sorted(records.index(r) for r in a)
    assert select_records(records, 10, seed=2) != a
