"""Plots are written from a report: PNG files exist and are not empty."""

from __future__ import annotations

from clinprompt.artifacts import write_json, write_jsonl
from clinprompt.eval.plots import plot_fewshot, plot_targets
from clinprompt.eval.report import build_report
from clinprompt.eval.runs import evaluation_dir


def _put(run, method, target, setting, task_type, primary, value):
    folder = evaluation_dir(run, method, target, setting)
    write_json(
        folder / "metrics.json",
        {
            "method": method,
            "target": target,
            "setting": setting,
            "task_type": task_type,
            "primary_metric": primary,
            "metrics": {primary: value},
            "n": 2,
            "backbone": {"name": "toy"},
            "synthetic": True,
        },
    )
    write_jsonl(
        folder / "predictions.jsonl", [{"id": "a", "score": value}, {"id": "b", "score": value}]
    )


def test_plots_are_written(tmp_path):
    run = tmp_path / "run"
    for target, task_type, metric in (
        ("t_ner", "ner", "strict_f1"),
        ("t_qa", "qa", "accuracy"),
        ("t_sum", "sum", "rougeL"),
        ("t_re", "re", "f1"),
    ):
        _put(run, "floor", target, "full", task_type, metric, 0.1)
        _put(run, "zeroshot", target, "k0", task_type, metric, 0.15)
        _put(run, "lora", target, "full", task_type, metric, 0.45)
        for i, setting in enumerate(("k0", "k16", "k64", "full")):
            _put(run, "pt", target, setting, task_type, metric, 0.2 + 0.05 * i)
            _put(run, "mpt", target, setting, task_type, metric, 0.3 + 0.05 * i)
    report = build_report([run], resamples=20)
    assert report.synthetic
    for path in (
        plot_targets(report, tmp_path / "p" / "targets.png"),
        plot_fewshot(report, tmp_path / "p" / "fewshot.png"),
    ):
        assert path.exists() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_plots_tolerate_sparse_logs(tmp_path):
    """A run with train rows only, one with dev rows only, one seed: every stage still draws."""
    from clinprompt.eval.curves import LossLog
    from clinprompt.eval.plots import plot_losses

    run = tmp_path / "run"
    _put(run, "mpt", "t_ner", "full", "ner", "strict_f1", 0.3)
    report = build_report([run], resamples=5)
    train_only = LossLog(
        "adapt", "t_ner", "full", 0, tmp_path, train={"loss": [(1, 2.0), (2, 1.5)]}
    )
    dev_only = LossLog("teachers", "src", None, 0, tmp_path, dev=[(5, 1.0), (10, 0.9)])
    parts = LossLog(
        "distill", "distill", None, 0, tmp_path, train={"loss": [(1, 3.0)], "kl": [(1, 1.0)]}
    )
    for stage, logs in (("adapt", [train_only]), ("teachers", [dev_only]), ("distill", [parts])):
        path = plot_losses(report, stage, logs, tmp_path / f"loss-{stage}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
