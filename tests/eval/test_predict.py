"""predict on the tiny model: records are answered through their units and merged back.

Pair-given RE asks one question per ordered entity pair; the answers of a record's pairs are
merged into its relations, and metrics are computed over the merged records."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import clinprompt.eval.predict as predict_module
from clinprompt.data.collate import encode_prompt
from clinprompt.data.registry import get_dataset, load_splits
from clinprompt.decoding import encode_options, option_logprobs
from clinprompt.eval.artifact import Artifact
from clinprompt.eval.predict import answer_records, generation_budget, predict, unit_option_scores
from clinprompt.recipes.evaluate import EvalArgs, evaluate, select_records
from clinprompt.tasks import get_task_type

RE = get_task_type("re")
SPEC = get_dataset("syn_dose_re")


def no_entities(i: int) -> dict:
    return {"id": f"empty-{i}", "text": "Vitals stable overnight.", "entities": [], "relations": []}


# One-token labels: a random tiny model then answers differently for different pairs (with
# "has dose", two tokens, it answers "none" to every pair whatever the prompt).
TOY = dataclasses.replace(SPEC, name="toy_dose_re", labels=("dose", "causes"))


@pytest.fixture
def records() -> list[dict]:
    test = load_splits("syn_dose_re")["test"]
    assert {len(r["entities"]) for r in test[:6]} >= {2, 3}
    relabelled = [
        {**r, "relations": [{**rel, "type": "dose"} for rel in r["relations"]]} for r in test[:6]
    ]
    return [relabelled[0], no_entities(0), *relabelled[1:]]


@pytest.fixture
def artifact(tiny) -> Artifact:
    gen = torch.Generator().manual_seed(3)
    prompt = torch.randn(4, tiny.hidden_size, generator=gen)  # (P, D) untrained
    return Artifact("prompt-file", "pt", path="test", task=TOY.name, prompt=prompt, spec=TOY)


def relations(pred: dict) -> set[tuple[str, str, str]]:
    return {(r["head"], r["tail"], r["type"]) for r in pred["relations"]}


def test_units_are_scored_then_merged_per_record(tiny, artifact, records):
    answers = answer_records(tiny, artifact, TOY, records, batch_size=4)
    assert len(answers) == len(records)
    tok = tiny.tokenizer
    prompt = artifact.prompt.unsqueeze(0)  # (1, P, D)
    for rec, answer in zip(records, answers, strict=True):
        units = RE.units(rec, TOY)
        assert answer.via == (f"{len(units)} units by options" if units else "0 units")
        # each unit on its own (batch of one): the merged answer is made of exactly these labels
        parsed, bests = [], []
        for unit in units:
            cands = RE.candidates(unit, TOY)
            scores = option_logprobs(
                tiny.model,
                prompt,
                [encode_prompt(tok, RE.example(unit, TOY))],
                [encode_options(tok, cands)],
                pad_token_id=tok.pad_token_id,
            )[0]
            best = cands[max(range(len(cands)), key=scores.__getitem__)]
            parsed.append(RE.parse(best, unit, TOY))
            bests.append(best)
        merged = RE.merge(rec, parsed, TOY)
        assert answer.unit_texts == bests  # each unit's own answer, in unit order
        assert answer.parsed.ok and relations(answer.parsed.prediction) == relations(
            merged.prediction
        )
        # the text is the record's triples: parse reads the merged relations back
        back = RE.parse(answer.text, rec, TOY)
        assert back.ok and relations(back.prediction) == relations(answer.parsed.prediction)
    preds = [a.parsed.prediction for a in answers]
    assert predict(tiny, artifact, TOY, records, batch_size=4) == [(a.text, a.via) for a in answers]
    # not one answer for every pair: both labels are predicted, and F1 is over merged records
    assert {t for p in preds for _, _, t in relations(p)} == {"dose", "causes"}
    metrics = RE.score(records, preds, TOY)
    assert metrics["n"] == len(records) and metrics["unparseable"] == 0 and metrics["f1"] > 0


def test_unit_option_scores_are_what_evaluation_ranks(tiny, artifact, records, monkeypatch):
    """The scores a diagnosis reads are the ones evaluation picks its answer from, in unit order."""
    units = [u for r in records for u in RE.units(r, TOY)]
    scores = unit_option_scores(tiny, artifact, TOY, units, batch_size=4)
    chosen = predict_module._answer_units(tiny, artifact, TOY, units, None, 4, 4, False, False)
    assert len(scores) == len(units) and all(len(s) == 3 for s in scores)  # dose, causes, none
    for unit, s, (text, via) in zip(units, scores, chosen, strict=True):
        cands = RE.candidates(unit, TOY)
        assert via == "options" and text == cands[max(range(len(s)), key=s.__getitem__)]
    # units without candidates (summaries) get None, and nothing is generated for them
    summaries = get_dataset("syn_note_sum")
    notes = load_splits(summaries.name)["test"][:2]
    bare = Artifact("backbone", "zeroshot")
    monkeypatch.setattr(predict_module, "greedy_generate", lambda *a, **k: pytest.fail("generated"))
    assert unit_option_scores(tiny, bare, summaries, notes) == [None, None]


def test_a_record_without_units_makes_no_model_call(tiny, artifact, monkeypatch):
    calls = []
    for name in ("option_logprobs", "greedy_generate"):
        monkeypatch.setattr(predict_module, name, lambda *a, _n=name, **k: calls.append(_n))
    for generate in (False, True):
        answers = answer_records(
            tiny, artifact, SPEC, [no_entities(0), no_entities(1)], generate=generate
        )
        assert [(a.text, a.via, a.parsed.ok) for a in answers] == [("none", "0 units", True)] * 2
        assert all(a.parsed.prediction["relations"] == [] for a in answers)
    assert calls == []


def test_generated_units_are_merged_and_flag_what_was_not_understood(tiny, artifact, records):
    answers = answer_records(
        tiny, artifact, SPEC, records, generate=True, max_new_tokens=3, batch_size=8
    )
    for rec, answer in zip(records, answers, strict=True):
        units = RE.units(rec, SPEC)
        assert answer.via == (f"{len(units)} units by generate" if units else "0 units")
        assert answer.parsed.ok is (not answer.parsed.prediction.get("unparseable", False))
    # random prompts generate gibberish: a record with units is unparseable unless every unit
    # said a label or none; a record without units never is
    assert answers[1].parsed.ok
    assert not all(a.parsed.ok for a in answers)


def test_generation_budget_is_measured_on_units():
    class Tok:  # whitespace tokens are enough to see what is measured
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    pool = load_splits("syn_dose_re")["train"]
    # the units' targets are "none" and "has dose" (2 tokens): 1.5 * 2 + 4, not the records'
    # "insulin glargine [has_dose] 10 units ; ..."
    assert generation_budget(SPEC, pool, Tok(), 96) == 7


def test_evaluate_scores_the_merged_records(tiny, artifact, tmp_path, monkeypatch):
    monkeypatch.setattr("clinprompt.recipes.evaluate.resolve_artifact", lambda *a, **k: artifact)
    result = evaluate(
        EvalArgs(dataset="syn_dose_re", artifact="test", limit=6, batch_size=4), backbone=tiny
    )
    records = select_records(load_splits("syn_dose_re")["test"], 6, 0)
    answers = answer_records(tiny, artifact, SPEC, records, batch_size=4)
    assert [r["prediction"]["relations"] for r in result.rows] == [
        a.parsed.prediction["relations"] for a in answers
    ]
    assert result.metrics == RE.score(records, [a.parsed.prediction for a in answers], SPEC)
    assert all(r["via"].endswith("units by options") for r in result.rows)
    # each record's units' answers are kept (what the report counts for constant answers)
    assert [r.get("unit_answers", []) for r in result.rows] == [a.unit_texts for a in answers]
    assert all(
        len(r["unit_answers"]) == len(RE.units(g, SPEC))
        for r, g in zip(result.rows, records, strict=True)
        if RE.units(g, SPEC)
    )
