"""The report with training seeds, training records and loss logs — and, without them, exactly
the report of the code before seeds existed."""

from __future__ import annotations

import csv
import io
import json
import shutil
import statistics
from pathlib import Path

import pytest

from clinprompt.eval.curves import collect_curves, read_log
from clinprompt.eval.report import build_report
from clinprompt.eval.runs import collect
from clinprompt.eval.tables import lr_text, render_csv, render_long_csv, render_markdown
from clinprompt.recipes.report import write_report

GOLDEN = Path(__file__).parent / "golden" / "old_run"


def _golden(name: str, run: Path) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8").replace("{RUN}", str(run))


def test_old_run_reports_identically(old_run, tmp_path):
    """No train_seed, no training, no logs: report.md, table.csv and results.csv are byte for byte
    those of the code before seeds (golden files), intervals included; report.json keeps every
    earlier key with the same values."""
    rep = build_report([old_run], resamples=200, seed=0)
    paths = write_report(rep, tmp_path / "out")  # plots too: no loss curves, no links
    for name in ("report.md", "table.csv", "results.csv"):
        assert (tmp_path / "out" / name).read_text(encoding="utf-8") == _golden(name, old_run), name
    written = json.loads(paths["json"].read_text(encoding="utf-8"))
    golden = json.loads(_golden("report.json", old_run))
    assert {k: written[k] for k in golden} == golden
    assert written["chosen_lr"] == {} and written["curves"] == {}
    assert {e["seed"] for e in written["evaluations"]} == {0}
    assert not any(p.name.startswith("loss-") for p in (tmp_path / "out").iterdir())


def test_evaluation_seed_from_field_directory_or_zero(seeded_run):
    evs = {ev.run_key: ev for ev in collect([seeded_run])}
    assert evs[("pt", "toy_nli", "full", 2)].path.parent.name == "full.s2"
    assert ("floor", "toy_nli", "full", 0) in evs  # no train_seed: seed 0
    # a directory suffix is read when train_seed is missing
    metrics = seeded_run / "eval" / "mpt" / "toy_nli" / "full.s1" / "metrics.json"
    data = json.loads(metrics.read_text())
    del data["train_seed"]
    metrics.write_text(json.dumps(data))
    assert {ev.run_key for ev in collect([seeded_run])} == set(evs)


@pytest.fixture
def seeded_run(tmp_path, build):
    return build.seeded(tmp_path / "run")


def test_mean_and_sd_over_three_seeds(seeded_run, build):
    rep = build_report([seeded_run], resamples=50)
    pt = rep.get("pt", "toy_nli", "full")
    assert pt.seeds == [0, 1, 2]
    assert pt.values() == pytest.approx([0.5, 0.3, 0.7])
    assert pt.mean() == pytest.approx(0.5) and pt.sd() == pytest.approx(0.2)
    assert rep.get("floor", "toy_nli", "full").sd() is None  # one evaluation: no sd
    # the average row averages the per-target means
    ner = statistics.mean(rep.get("pt", "toy_ner", "full").values())
    assert rep.averages["pt"] == (pytest.approx((ner + 0.5) / 2), 2)

    md = render_markdown(rep)
    assert "Trained methods: mean ± sd over training seeds (PT 3, LoRA 3, MPT 3 seeds" in md
    assert "| NLI | toy_nli | macro F1 | 10 | 40.0 | 30.0 | 50.0 ± 20.0 | 46.7 ± 5.8 |" in md
    assert "| NLI | toy_nli | accuracy | 10 | 50.0 | 40.0 | 60.0 ± 20.0 |" in md
    assert f"| **average** | primary |  | 20.0 | 26.1 | {100 * (ner + 0.5) / 2:.1f} |" in md
    assert "| toy_nli | macro F1 | PT | 26.7 ± 5.8 | 50.0 ± 20.0 |" in md  # few-shot rows too
    assert "the average row averages the per-target means" in md


def test_a_missing_seed_is_shown(seeded_run):
    (seeded_run / "eval" / "lora" / "toy_nli" / "full.s2" / "metrics.json").unlink()
    md = render_markdown(build_report([seeded_run], resamples=20))
    assert "| 50.0 ± 0.0 (2 seeds) |" in md  # LoRA on toy_nli: seeds 0 and 1 only


def test_seeded_csvs_carry_sd_seed_count_and_every_seed(seeded_run):
    rep = build_report([seeded_run], resamples=20)
    table = list(csv.DictReader(io.StringIO(render_csv(rep))))
    nli = next(r for r in table if r["target"] == "toy_nli" and r["metric"] == "macro_f1")
    assert (nli["pt"], nli["pt_sd"], nli["pt_n_seeds"]) == ("50.0000", "20.0000", "3")
    assert (nli["floor"], nli["floor_sd"], nli["floor_n_seeds"]) == ("40.0000", "", "1")
    assert table[-1]["target"] == "trainable_params" and table[-1]["pt_sd"] == ""

    long = list(csv.DictReader(io.StringIO(render_long_csv(rep))))
    pt = [
        r
        for r in long
        if (r["method"], r["target"], r["setting"], r["metric"])
        == ("pt", "toy_nli", "full", "macro_f1")
    ]
    assert [(r["seed"], float(r["value"])) for r in pt] == [("0", 0.5), ("1", 0.3), ("2", 0.7)]
    for r in pt:  # the cell's mean, sd and seed count beside each seed's value
        assert float(r["mean"]) == pytest.approx(0.5) and float(r["sd"]) == pytest.approx(0.2)
        assert r["n_seeds"] == "3"


def test_report_json_records_every_seed(seeded_run, tmp_path):
    rep = build_report([seeded_run], resamples=20)
    data = json.loads(write_report(rep, tmp_path / "out", plots=False)["json"].read_text())
    runs = [e for e in data["evaluations"] if e["method"] == "mpt" and e["target"] == "toy_nli"]
    assert [(e["setting"], e["seed"]) for e in runs] == [
        ("full", 0),
        ("full", 1),
        ("full", 2),
        ("k16", 0),
        ("k16", 1),
        ("k16", 2),
    ]
    assert runs[0]["training"]["train_steps"] == 100
    cell = next(
        c
        for c in data["cells"]
        if (c["method"], c["target"], c["setting"], c["metric"])
        == ("pt", "toy_nli", "full", "accuracy")
    )
    assert cell["seeds"] == [0, 1, 2] and cell["values"] == pytest.approx([0.6, 0.4, 0.8])
    assert cell["mean"] == pytest.approx(0.6) and cell["sd"] == pytest.approx(0.2)
    assert data["interval_seeds"] == {
        "mpt-pt": {"mpt": 3, "pt": 3},
        "mpt-lora": {"mpt": 3, "lora": 3},
    }


def test_chosen_learning_rates_table_and_json(seeded_run, tmp_path, build):
    rep = build_report([seeded_run], resamples=20)
    mpt = rep.chosen_lr["mpt"]["toy_nli"]
    assert mpt["chosen_lr"] == {"lr_shared": 0.3, "lr_factors": 0.03}
    assert mpt["lr_candidates"] == {"0.3/0.03": 0.88, "0.3/0.3": 0.97, "0.1/0.03": 0.91}
    assert (mpt["setting"], mpt["seed"], mpt["same_in_all_runs"]) == ("full", 0, True)
    pt = rep.chosen_lr["pt"]["toy_nli"]
    assert not pt["same_in_all_runs"] and pt["by_setting"]["k16"]["2"] == {"lr": 0.1}
    assert set(rep.chosen_lr) == {"pt", "lora", "mpt"}  # floor / zero-shot train nothing

    md = render_markdown(rep)
    assert "### Learning rates chosen on dev" in md
    assert "| target | PT | LoRA | MPT |" in md
    assert "| toy_ner | 0.3 | 0.001 | P* 0.3, u/v 0.03 |" in md
    assert "| toy_nli | 0.3 (full, k16 seed 0, k16 seed 1); 0.1 (k16 seed 2) | 0.001 |" in md
    assert "- MPT / toy_nli (full, seed 0): **0.3/0.03 → 0.880**, 0.3/0.3 → 0.970" in md

    data = json.loads(write_report(rep, tmp_path / "out", plots=False)["json"].read_text())
    assert data["chosen_lr"]["lora"]["toy_ner"]["chosen_lr"] == {"lr": 0.001}
    assert data["chosen_lr"]["lora"]["toy_ner"]["lr_candidates"]["0.003"] == 1.33


def test_rates_no_search_chose_are_not_called_chosen_on_dev(seeded_run):
    """A run without a dev search (adapt.lr_search empty: the packaged demo) reports its rates
    as the config's; where only some methods were searched, the others are marked."""
    rep = build_report([seeded_run], resamples=20)
    rep.chosen_lr["pt"]["toy_ner"]["lr_candidates"] = {}  # PT on toy_ner: not searched
    md = render_markdown(rep)
    assert "### Learning rates chosen on dev" in md
    assert "| toy_ner | 0.3 (config, not searched) | 0.001 | P* 0.3, u/v 0.03 |" in md
    for entries in rep.chosen_lr.values():  # no search at all
        for entry in entries.values():
            entry["lr_candidates"] = {}
    md = render_markdown(rep)
    assert "chosen on dev" not in md.replace("not chosen on dev", "")
    assert "### Learning rates\n\nSet by the config, not chosen on dev" in md
    assert "| toy_ner | 0.3 | 0.001 | P* 0.3, u/v 0.03 |" in md
    assert "Best dev loss of each candidate" not in md


def test_lr_text():
    assert lr_text({"lr": 0.0003}) == "0.0003"
    assert lr_text({"lr_shared": 0.3, "lr_factors": 0.03}) == "P* 0.3, u/v 0.03"
    assert lr_text({"prompt": 0.1, "lora": 1e-3}) == "prompt 0.1, lora 0.001"


def test_examples_and_steps_table(seeded_run):
    md = render_markdown(build_report([seeded_run], resamples=20))
    assert "### Examples and steps" in md
    assert "| method | target | k=16 | full |" in md
    assert "| MPT | toy_nli | 16 ex, 40 steps, 10 ep | 300 ex, 100 steps, 1.33 ep |" in md
    assert "| LoRA | toy_nli | – | 300 ex, 100 steps, 1.33 ep |" in md


def test_formulation_is_noted_when_recorded(tmp_path, build):
    run = tmp_path / "run"
    build.put_scores(run, "pt", "toy_re", "full", "re", {"f1": 0.4}, "f1", [0.4, 0.4])
    build.put_scores(
        run,
        "mpt",
        "toy_re",
        "full",
        "re",
        {"f1": 0.5},
        "f1",
        [0.5, 0.5],
        extra={"formulation": "per-pair classification"},
    )
    rep = build_report([run], resamples=10)
    assert rep.formulations() == {"toy_re": {"per-pair classification": ["mpt"]}}
    md = render_markdown(rep)
    assert (
        "Task formulation recorded by the evaluations: toy_re: per-pair classification (MPT)." in md
    )
    # an evaluation that recorded none (older runs) claims none: the code that scored it may
    # have posed the task differently from today's
    spec = {"name": "toy_re", "task_type": "re", "labels": ["ADE"], "pair_classification": False}
    build.put_scores(
        run, "pt", "toy_re", "full", "re", {"f1": 0.4}, "f1", [0.4, 0.4], extra={"spec": spec}
    )
    assert build_report([run], resamples=10).formulations() == {
        "toy_re": {"per-pair classification": ["mpt"]}
    }


# ------------------------------------------------------------------------------- loss curves
def test_read_log_is_tolerant(tmp_path, build):
    rows = build.loss_rows(10, 3.0, 1.0, ("lm", "kl"), dev_every=5)
    rows.insert(3, {"step": 2, "loss": 9.0, "lm": 9.0, "kl": 4.5})  # a resumed step: last wins
    rows[0].update(lr_shared=0.03, lr_factors=0.3, grad_norm=0.5)  # per-group rates: not losses
    path = build.write_log(tmp_path / "metrics.jsonl", rows, tail='{"step": 11, "loss"')
    log = read_log(path, "distill", "distill")
    assert log.skipped_lines == 1
    assert set(log.train) == {"loss", "lm", "kl"}  # lr, lr_<group>, epoch are not losses
    assert [s for s, _ in log.train["loss"]] == list(range(1, 11))
    assert dict(log.train["loss"])[2] == 9.0
    assert [s for s, _ in log.dev] == [5, 10] and log.steps == 10
    assert log.best_dev == min(log.dev, key=lambda p: p[1])


def test_loss_curves_are_collected_with_notes(seeded_run, build):
    build.logs(seeded_run, missing=("lora", "toy_nli", "full", 2))
    evals = collect([seeded_run])
    curves, notes = collect_curves([seeded_run], evals)
    assert list(curves) == ["teachers", "distill", "adapt", "pt", "lora"]
    assert [log.name for log in curves["teachers"]] == ["src_ner", "src_nli", "src_qa"]
    assert set(curves["distill"][0].train) == {"loss", "lm", "kl", "mse"}
    assert len(curves["adapt"]) == 9  # 2 targets full + toy_nli k16, 3 seeds each; k0 untrained
    assert len(curves["lora"]) == 5  # seed 2 of toy_nli has no log
    assert any("src_nli: 1 unreadable line(s)" in n for n in notes)
    assert any(n.startswith("LoRA toy_nli full seed 2: no training log") for n in notes)
    assert len(notes) == 2
    # an evaluation-only run directory: no curves, no notes
    assert collect_curves([seeded_run.parent / "nothing"], []) == ({}, [])


def test_loss_curve_pngs_written_and_linked(seeded_run, build, tmp_path):
    build.logs(seeded_run)
    rep = build_report([seeded_run], resamples=20)
    paths = write_report(rep, tmp_path / "out")
    for stage in ("teachers", "distill", "adapt", "pt", "lora"):
        png = paths[f"plot_loss_{stage}"]
        assert png.name == f"loss-{stage}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "## Training curves" in md
    assert "](loss-adapt.png)" in md and "](loss-teachers.png)" in md
    assert "| MPT adaptation | toy_nli k16 | 3 | 40 |" in md
    # distillation's dev loss is LM only: the train LM part stands beside the weighted total
    assert "| distillation | distill | 1 | 30 |" in md and " (lm " in md
    data = json.loads(paths["json"].read_text())
    assert {c["seed"] for c in data["curves"]["pt"]} == {0, 1, 2}
    # without plots: the curve table stays, no links to files that were not drawn
    md = render_markdown(rep)
    assert "## Training curves" in md and "loss-adapt.png" not in md


def test_candidate_table_marks_the_searched_choice(tmp_path, build):
    """The bold candidate is the one the search chose (a tie goes its way, not the table's);
    a diverged candidate (None) reads as such; a zero-shot record without steps is no row."""
    run = tmp_path / "run"
    training = {
        "chosen_lr": {"lr": 0.1},
        "lr_candidates": {"0.1": 0.9, "0.3": 0.9, "1": None},
        "train_examples": 50,
        "train_steps": 20,
        "epochs": 1.6,
    }
    build.put_scores(
        run,
        "pt",
        "toy_nli",
        "full",
        "nli",
        {"accuracy": 0.5},
        "accuracy",
        [1, 0],
        seed=0,
        training=training,
    )
    build.put_scores(
        run,
        "pt",
        "toy_nli",
        "k0",
        "nli",
        {"accuracy": 0.5},
        "accuracy",
        [1, 0],
        seed=0,
        training={"train_examples": 0, "train_steps": 0},
    )
    md = render_markdown(build_report([run], resamples=10))
    assert "- PT / toy_nli (full, seed 0): **0.1 → 0.900**, 0.3 → 0.900, 1 → diverged" in md
    assert "| method | target | full |" in md and "| PT | toy_nli | 50 ex, 20 steps, 1.6 ep |" in md


def test_a_paused_search_is_named_in_the_rates_section(seeded_run, tmp_path):
    run = tmp_path / "paused"
    shutil.copytree(seeded_run, run)
    for path in run.rglob("metrics.json"):
        data = json.loads(path.read_text())
        if data.get("training") and "chosen_lr" in data["training"]:
            data["training"]["lr_judged_at"] = 40
            path.write_text(json.dumps(data))
    rep = build_report([run], resamples=20)
    assert rep.chosen_lr["mpt"]["toy_nli"]["lr_judged_at"] == 40
    md = render_markdown(rep)
    assert "judged by its best dev loss after 40 steps" in md
    assert "each candidate trained with the same budget" not in md
    assert "- MPT / toy_nli (full, seed 0, judged at step 40): **0.3/0.03 → 0.880**" in md
    plain = render_markdown(build_report([seeded_run], resamples=20))
    assert "each candidate trained with the same budget" in plain and "judged at" not in plain


def test_a_search_judged_by_score_shows_each_candidates_score(seeded_run, tmp_path):
    run = tmp_path / "scored"
    shutil.copytree(seeded_run, run)
    for path in run.rglob("metrics.json"):
        data = json.loads(path.read_text())
        training = data.get("training") or {}
        if "chosen_lr" in training and training.get("lr_candidates"):
            training["lr_judged_by"] = "score"
            training["lr_candidate_scores"] = {
                c: (None if loss is None else 0.25) for c, loss in training["lr_candidates"].items()
            }
            path.write_text(json.dumps(data))
    rep = build_report([run], resamples=20)
    assert rep.chosen_lr["mpt"]["toy_nli"]["lr_judged_by"] == "score"
    md = render_markdown(rep)
    assert "the highest dev score wins (ties: the lower dev loss)" in md
    assert "Best dev loss / dev score ×100 of each candidate" in md
    assert "- MPT / toy_nli (full, seed 0): **0.3/0.03 → 0.880 / 25.0**" in md
    plain = build_report([seeded_run], resamples=20)
    assert plain.chosen_lr["mpt"]["toy_nli"]["lr_judged_by"] == "loss"
    assert "dev score" not in render_markdown(plain)
