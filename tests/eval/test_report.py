"""The report table and CSV from hand-made run directories (numbers checked)."""

from __future__ import annotations

import csv
import io

import pytest

from clinprompt.artifacts import write_json, write_jsonl
from clinprompt.eval.report import build_report
from clinprompt.eval.runs import collect, evaluation_dir, write_index
from clinprompt.eval.tables import render_csv, render_markdown
from clinprompt.recipes.report import write_report
from clinprompt.train.plan import setting_name

BACKBONE = {"name": "toy-backbone"}


def put(
    run, method, target, setting, task_type, metrics, primary, scores, trainable=None, unparseable=0
):
    """Write one evaluation: metrics.json + predictions.jsonl with per-example scores."""
    folder = evaluation_dir(run, method, target, setting)
    write_json(
        folder / "metrics.json",
        {
            "method": method,
            "target": target,
            "setting": setting,
            "task_type": task_type,
            "primary_metric": primary,
            "metrics": metrics,
            "n": len(scores),
            "unparseable": unparseable,
            "trainable_params": trainable,
            "backbone_params": 1000 if trainable is not None else None,
            "backbone": BACKBONE,
            "decomposable": True,
        },
    )
    write_jsonl(
        folder / "predictions.jsonl",
        [{"id": f"e{i}", "score": s, "ok": True} for i, s in enumerate(scores)],
    )


@pytest.fixture
def run(tmp_path):
    r = tmp_path / "run"
    # NLI target (classification: macro F1 primary, accuracy beside), 4 examples
    put(
        r,
        "floor",
        "toy_nli",
        "full",
        "nli",
        {"macro_f1": 0.25, "accuracy": 0.5},
        "macro_f1",
        [1, 0, 1, 0],
    )
    put(
        r,
        "zeroshot",
        "toy_nli",
        "k0",
        "nli",
        {"macro_f1": 0.3, "accuracy": 0.5},
        "macro_f1",
        [0, 1, 0, 1],
        trainable=0,
    )
    put(
        r,
        "pt",
        "toy_nli",
        "full",
        "nli",
        {"macro_f1": 0.5, "accuracy": 0.5},
        "macro_f1",
        [0.5] * 4,
        trainable=10,
    )
    put(
        r,
        "lora",
        "toy_nli",
        "full",
        "nli",
        {"macro_f1": 0.6, "accuracy": 0.75},
        "macro_f1",
        [0.6] * 4,
        trainable=40,
    )
    put(
        r,
        "mpt",
        "toy_nli",
        "full",
        "nli",
        {"macro_f1": 0.7, "accuracy": 0.75},
        "macro_f1",
        [0.7] * 4,
        trainable=12,
        unparseable=1,
    )
    # NER target
    put(r, "floor", "toy_ner", "full", "ner", {"strict_f1": 0.0}, "strict_f1", [0, 0])
    put(
        r, "pt", "toy_ner", "full", "ner", {"strict_f1": 0.2}, "strict_f1", [0.2, 0.2], trainable=10
    )
    put(
        r,
        "lora",
        "toy_ner",
        "full",
        "ner",
        {"strict_f1": 0.4},
        "strict_f1",
        [0.4, 0.4],
        trainable=40,
    )
    put(
        r,
        "mpt",
        "toy_ner",
        "full",
        "ner",
        {"strict_f1": 0.3},
        "strict_f1",
        [0.3, 0.3],
        trainable=12,
    )
    # few-shot rows
    for k, v in ((0, 0.1), (16, 0.15)):
        put(
            r,
            "pt",
            "toy_ner",
            setting_name(k),
            "ner",
            {"strict_f1": v},
            "strict_f1",
            [v, v],
            trainable=10,
        )
        put(
            r,
            "mpt",
            "toy_ner",
            setting_name(k),
            "ner",
            {"strict_f1": v + 0.05},
            "strict_f1",
            [v + 0.05] * 2,
            trainable=12,
        )
    write_json(
        r / "provenance.json",
        {"command": "clinprompt demo", "hardware": "2 CPU cores", "wall_time": "1s"},
    )
    return r


def test_table_numbers(run):
    rep = build_report([run], resamples=200, seed=0)
    assert rep.targets == ["toy_ner", "toy_nli"]  # NER before NLI
    assert rep.metrics["toy_nli"] == ["macro_f1", "accuracy"]
    assert rep.averages["pt"] == (pytest.approx(0.35), 2)
    assert rep.averages["mpt"] == (pytest.approx(0.5), 2)
    assert rep.averages["zeroshot"] == (pytest.approx(0.3), 1)
    # MPT − PT: (0.1 + 0.2) / 2 = 0.15 exactly (constant per-example scores) → degenerate interval
    iv = rep.intervals["mpt-pt"]
    assert (
        iv.delta == pytest.approx(0.15)
        and iv.low == pytest.approx(0.15)
        and iv.high == pytest.approx(0.15)
    )
    assert rep.intervals["mpt-lora"].delta == pytest.approx(0.0)

    rows = list(csv.reader(io.StringIO(render_csv(rep))))
    assert rows[0] == [
        "task_type",
        "target",
        "metric",
        "n",
        "floor",
        "zeroshot",
        "pt",
        "lora",
        "mpt",
    ]
    assert rows[1] == [
        "ner",
        "toy_ner",
        "strict_f1",
        "2",
        "0.0000",
        "",
        "20.0000",
        "40.0000",
        "30.0000",
    ]
    assert rows[2] == [
        "nli",
        "toy_nli",
        "macro_f1",
        "4",
        "25.0000",
        "30.0000",
        "50.0000",
        "60.0000",
        "70.0000",
    ]
    assert rows[3] == [
        "nli",
        "toy_nli",
        "accuracy",
        "4",
        "50.0000",
        "50.0000",
        "50.0000",
        "75.0000",
        "75.0000",
    ]
    assert rows[4][1] == "average" and rows[4][6:] == ["35.0000", "50.0000", "50.0000"]
    assert rows[5][1] == "trainable_params" and rows[5][5:] == ["0", "10", "40", "12"]

    md = render_markdown(rep)
    assert "| NLI | toy_nli | macro F1 | 4 | 25.0 | 30.0 | 50.0 | 60.0 | 70.0 |" in md
    assert "| NLI | toy_nli | accuracy | 4 | 50.0 | 50.0 | 50.0 | 75.0 | 75.0 |" in md
    assert "| | % of backbone |" not in md and "1.000%" in md  # 10 / 1000
    assert "MPT − PT: +15.0 [+15.0, +15.0]" in md
    assert "MPT/toy_nli/full: 1/4" in md  # unparseable counted
    assert "| toy_ner | strict F1 | PT | 10.0 | 15.0 | 20.0 |" in md  # few-shot rows
    assert "`clinprompt demo`" in md and "2 CPU cores" in md


def test_write_report_and_index(run, tmp_path):
    rep = build_report([run], resamples=50)
    paths = write_report(rep, tmp_path / "out")
    for key in ("markdown", "csv", "long_csv", "json", "plot_targets", "plot_fewshot"):
        assert paths[key].exists() and paths[key].stat().st_size > 0, key
    index = write_index(run)
    assert index.exists() and '"toy_nli"' in index.read_text()


def test_later_run_overrides_earlier(run, tmp_path):
    other = tmp_path / "rerun"
    put(
        other,
        "pt",
        "toy_ner",
        "full",
        "ner",
        {"strict_f1": 0.9},
        "strict_f1",
        [0.9, 0.9],
        trainable=10,
    )
    evs = {e.key: e for e in collect([run, other])}
    assert evs[("pt", "toy_ner", "full")].primary == 0.9


def test_missing_run_dir_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_report([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no evaluation"):
        build_report([tmp_path / "empty"])


def test_corpus_metric_is_rescored_on_each_resample(tmp_path):
    """Micro F1 is not a mean of per-example scores: the bootstrap rescores resamples with the task type."""
    from clinprompt.data.spec import DatasetSpec

    spec = DatasetSpec("toy_ner", "ner", labels=("Drug",))
    gold = [
        {
            "id": f"d{i}",
            "text": "aspirin and ibuprofen",
            "entities": [
                {"start": 0, "end": 7, "type": "Drug"},
                {"start": 12, "end": 21, "type": "Drug"},
            ],
        }
        for i in range(6)
    ]
    one = [{**g, "entities": g["entities"][:1]} for g in gold]  # finds 1 of 2 → micro F1 2/3
    both = [dict(g) for g in gold]  # finds both → 1.0
    run = tmp_path / "run"
    for method, preds, f1 in (("pt", one, 2 / 3), ("mpt", both, 1.0)):
        folder = evaluation_dir(run, method, "toy_ner", "full")
        write_json(
            folder / "metrics.json",
            {
                "method": method,
                "target": "toy_ner",
                "setting": "full",
                "task_type": "ner",
                "primary_metric": "strict_f1",
                "metrics": {"strict_f1": f1},
                "n": 6,
                "decomposable": False,
                "spec": spec.to_dict(),
                "backbone": BACKBONE,
            },
        )
        write_jsonl(
            folder / "predictions.jsonl",
            [
                {"id": g["id"], "gold": g, "prediction": p, "ok": True, "score": f1}
                for g, p in zip(gold, preds, strict=True)
            ],
        )
    iv = build_report([run], resamples=30).intervals["mpt-pt"]
    assert iv.delta == pytest.approx(1 / 3)
    assert iv.low == pytest.approx(1 / 3) and iv.high == pytest.approx(
        1 / 3
    )  # every resample: 1.0 − 2/3


def test_constant_answers_are_named_in_the_notes(tmp_path):
    """An evaluation whose option-scored answers are (nearly) one candidate is listed, with the
    candidate and its count: its score is that of a rule that reads nothing."""
    from tests.eval.conftest import put_scores

    from clinprompt.eval.tables import constant_answers

    def put(method, rows, seed=0):
        folder = put_scores(
            tmp_path,
            method,
            "toy_re",
            "full",
            "re",
            {"f1": 0.5},
            "f1",
            [0.5] * len(rows),
            seed=seed,
        )
        write_jsonl(folder / "predictions.jsonl", rows)

    one = [{"id": f"e{i}", "score": 0.5, "ok": True} for i in range(12)]
    # records answered directly: 11 of 12 `yes` (92%) is constant, 10 of 12 (83%) is not
    put(
        "pt", [{**r, "via": "options", "raw": "no" if i == 0 else "yes"} for i, r in enumerate(one)]
    )
    put(
        "lora",
        [{**r, "via": "options", "raw": "no" if i < 2 else "yes"} for i, r in enumerate(one)],
    )
    # records of several units: their units' answers count, not the merged text
    units = [
        {**r, "via": "3 units by options", "raw": "x [causes] y", "unit_answers": ["causes"] * 3}
        for r in one[:4]
    ]
    put("mpt", units)
    # generations are never counted, whatever they say
    put("mpt", [{**r, "via": "generate", "raw": "none"} for r in one], seed=1)
    rep = build_report([tmp_path], resamples=10, seed=0)
    found = {(ev.method, ev.seed): (a, c, t) for ev, a, c, t in constant_answers(rep)}
    assert found == {("pt", 0): ("yes", 11, 12), ("mpt", 0): ("causes", 12, 12)}
    notes = render_markdown(rep).split("## Notes", 1)[1]
    assert "Constant answers" in notes
    assert (
        "PT/toy_re/full: `yes` 11/12" in notes and "MPT/toy_re/full seed 0: `causes` 12/12" in notes
    )
    assert "LoRA/toy_re" not in notes.split("Constant answers", 1)[1].split("\n")[0]
