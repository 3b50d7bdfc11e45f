"""The learning-rate search's protocol with stand-in training runs: base rates per method,
lowest best dev loss wins (or, judged by score, the highest dev score), ties go to the smaller
rate, divergence loses, results are kept."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from clinprompt.artifacts import read_json
from clinprompt.config import ConfigError, load_config
from clinprompt.train import NonFiniteLossError
from clinprompt.train.loop import LrGroup
from clinprompt.train.lr_search import (
    LrSearchError,
    apply_rates,
    base_rates,
    choose_rates,
    rate_label,
    rates_of,
    searching,
)
from clinprompt.train.workspace import RunLayout

TARGET = SimpleNamespace(name="toy", lr_search=SimpleNamespace(train=SimpleNamespace(steps=3)))


def _fit(losses: dict[float, float | None], calls: list):
    """A stand-in for a method's training: the best dev loss of each candidate's peak rate
    (None: the loss diverges)."""

    def fit(rates, setting, run_dir: Path, pause_at):
        calls.append((dict(rates), run_dir.name))
        loss = losses[round(next(iter(rates.values())), 6)]
        if loss is None:
            raise NonFiniteLossError("diverged")
        return SimpleNamespace(best_metric=loss, steps=pause_at or setting.train.steps)

    return fit


def _args(*extra):
    return load_config("smoke", ["adapt.train={lr: 0.2}", *extra])


def test_base_rates_per_method():
    args = _args("baseline.lora_lr=0.01")
    assert base_rates(args, "mpt") == {"lr": 0.2}  # adapt's train.lr: one rate
    assert base_rates(args, "pt") == {"lr": 0.2} and base_rates(args, "lora") == {"lr": 0.01}
    two = _args("adapt.lr_factors=0.05", "baseline.pt_lr=0.1")
    assert base_rates(two, "mpt") == {"lr_shared": 0.2, "lr_factors": 0.05}
    assert base_rates(two, "pt") == {"lr": 0.1}
    assert rates_of(None, None, 0.3) == {"lr": 0.3}
    assert rates_of(0.1, None, 0.3) == {"lr_shared": 0.1, "lr_factors": 0.3}
    assert rate_label({"lr": 0.003}) == "0.003"
    assert rate_label({"lr_shared": 0.3, "lr_factors": 0.03}) == "0.3/0.03"
    with pytest.raises(ValueError, match="unknown method"):
        base_rates(args, "ft")


def test_apply_rates():
    train = _args().stage_train()
    one, groups = apply_rates(train, {"lr": 0.7})
    assert one.lr == 0.7 and groups == []
    same, groups = apply_rates(train, {"lr_shared": 0.2, "lr_factors": 0.05})
    assert same == train
    assert groups == [
        LrGroup("shared", ("prompt.shared",), 0.2),
        LrGroup("factors", ("prompt.cols", "prompt.rows"), 0.05),
    ]


def test_no_search_trains_nothing(tmp_path):
    calls: list = []
    for multipliers in ("[]", "[1.0]"):
        args = _args(f"adapt.lr_search={multipliers}")
        assert not searching(args.adapt.lr_search)
        choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path), _fit({}, calls))
        assert choice.rates == {"lr": 0.2} and choice.record() == {
            "chosen_lr": {"lr": 0.2},
            "lr_candidates": {},
        }
    assert calls == [] and not (tmp_path / "lr_search").exists()


def test_lowest_dev_loss_wins_and_is_kept(tmp_path):
    args = _args("adapt.lr_search=[3.0, 0.5, 1.0]", "adapt.lr_factors=0.05")
    calls: list = []
    fit = _fit({0.1: 1.5, 0.2: 1.2, 0.6: None}, calls)  # keyed by P*'s rate
    choice = choose_rates("mpt", TARGET, args, RunLayout(tmp_path), fit)
    # Candidates in increasing order; MPT's two rates are scaled together; 3x diverged.
    assert calls == [
        ({"lr_shared": 0.1, "lr_factors": 0.025}, "x0.5"),
        ({"lr_shared": 0.2, "lr_factors": 0.05}, "x1"),
        ({"lr_shared": pytest.approx(0.6), "lr_factors": pytest.approx(0.15)}, "x3"),
    ]
    assert choice.rates == {"lr_shared": 0.2, "lr_factors": 0.05}
    record = choice.record()
    assert record["chosen_lr"] == {"lr_shared": 0.2, "lr_factors": 0.05}
    assert record["lr_candidates"] == {"0.1/0.025": 1.5, "0.2/0.05": 1.2, "0.6/0.15": None}
    saved = read_json(tmp_path / "lr_search" / "mpt" / "toy" / "search.json")
    assert saved["rates"] == choice.rates and saved["steps"] == 3
    assert saved["run_dir"].endswith("x1")
    # A finished search is read back, not run again.
    again = choose_rates("mpt", TARGET, args, RunLayout(tmp_path), _fit({}, calls))
    assert again == choice and len(calls) == 3


def test_ties_go_to_the_smaller_rate_and_all_diverged_fails(tmp_path):
    args = _args("adapt.lr_search=[2.0, 0.5]")
    calls: list = []
    tie = choose_rates(
        "pt", TARGET, args, RunLayout(tmp_path / "b"), _fit({0.1: 0.9, 0.4: 0.9}, calls)
    )
    assert tie.rates == {"lr": 0.1}
    with pytest.raises(LrSearchError, match="no candidate has a dev loss"):
        choose_rates(
            "pt", TARGET, args, RunLayout(tmp_path / "c"), _fit({0.1: None, 0.4: None}, [])
        )


def test_an_edge_winner_extends_the_grid_until_the_edge_loses(tmp_path):
    # Base 0.2, grid [0.5, 1, 2]: the smallest rate wins, so the search goes on to 0.25x (one
    # grid step down), which wins again, then 0.125x, which loses: the choice is 0.25x = 0.05.
    args = _args("adapt.lr_search=[2.0, 0.5, 1.0]", "adapt.lr_search_extend=3")
    calls: list = []
    losses = {0.4: 1.4, 0.2: 1.2, 0.1: 1.0, 0.05: 0.8, 0.025: 0.9, 0.0125: 0.7}
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path), _fit(losses, calls))
    assert [name for _, name in calls] == ["x0.5", "x1", "x2", "x0.25", "x0.125"]
    assert choice.rates == {"lr": pytest.approx(0.05)}
    saved = read_json(tmp_path / "lr_search" / "pt" / "toy" / "search.json")
    assert [c["multiplier"] for c in saved["candidates"]] == [0.125, 0.25, 0.5, 1.0, 2.0]
    assert list(choice.record()["lr_candidates"]) == ["0.025", "0.05", "0.1", "0.2", "0.4"]


def test_extension_goes_up_stops_at_its_count_and_leaves_an_inner_winner(tmp_path):
    up = {0.1: 1.5, 0.2: 1.2, 0.4: 1.0, 0.8: 0.9, 1.6: 0.8, 3.2: 0.7}
    calls: list = []
    args = _args("adapt.lr_search=[0.5, 1.0, 2.0]", "adapt.lr_search_extend=2")
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path / "up"), _fit(up, calls))
    assert [name for _, name in calls] == ["x0.5", "x1", "x2", "x4", "x8"]  # two more, no third
    assert choice.rates == {"lr": pytest.approx(1.6)}
    calls.clear()
    inner = {0.1: 1.5, 0.2: 1.0, 0.4: 1.2}
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path / "in"), _fit(inner, calls))
    assert len(calls) == 3 and choice.rates == {"lr": 0.2}
    # Diverging past the top edge ends the extension: the last finite edge stays the choice.
    calls.clear()
    diverged = {0.1: 1.5, 0.2: 1.2, 0.4: 1.0, 0.8: None}
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path / "nan"), _fit(diverged, calls))
    assert [name for _, name in calls] == ["x0.5", "x1", "x2", "x4"]
    assert choice.rates == {"lr": 0.4}
    # Without adapt.lr_search_extend (the default 0) the grid is all that is tried.
    calls.clear()
    plain = _args("adapt.lr_search=[0.5, 1.0, 2.0]")
    choice = choose_rates("pt", TARGET, plain, RunLayout(tmp_path / "pl"), _fit(up, calls))
    assert len(calls) == 3 and choice.rates == {"lr": 0.4}


def test_extension_goes_below_a_grid_whose_higher_rates_all_diverged(tmp_path):
    # Only the smallest rate trains; the optimum lies below the grid, so the search goes there.
    args = _args("adapt.lr_search=[0.5, 1.0, 2.0]", "adapt.lr_search_extend=2")
    calls: list = []
    losses = {0.1: 1.5, 0.2: None, 0.4: None, 0.05: 1.1, 0.025: 1.3}
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path), _fit(losses, calls))
    assert [name for _, name in calls] == ["x0.5", "x1", "x2", "x0.25", "x0.125"]
    assert choice.rates == {"lr": pytest.approx(0.05)}
    # A lone finite rate in the middle of the grid is not an edge: nothing more is tried.
    calls.clear()
    middle = {0.1: None, 0.2: 1.0, 0.4: None}
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path / "m"), _fit(middle, calls))
    assert len(calls) == 3 and choice.rates == {"lr": 0.2}


def test_candidates_paused_at_lr_search_steps_are_judged_there(tmp_path):
    pauses: list = []

    def fit(rates, setting, run_dir, pause_at):
        pauses.append(pause_at)
        return SimpleNamespace(best_metric=1.0 / rates["lr"], steps=pause_at or 3)

    args = _args("adapt.lr_search=[0.5, 1.0]", "adapt.lr_search_steps=2")  # budget: 3 steps
    choice = choose_rates("pt", TARGET, args, RunLayout(tmp_path / "a"), fit)
    assert pauses == [2, 2] and choice.judged_at == 2 and choice.rates == {"lr": 0.2}
    assert choice.record()["lr_judged_at"] == 2
    saved = read_json(tmp_path / "a" / "lr_search" / "pt" / "toy" / "search.json")
    assert saved["judged_at"] == 2 and saved["steps"] == 3
    assert [c["steps"] for c in saved["candidates"]] == [2, 2]
    # A judging step at or past the budget is the budget's end: no pause, no lr_judged_at.
    pauses.clear()
    whole = choose_rates(
        "pt", TARGET, _args("adapt.lr_search=[0.5, 1.0]", "adapt.lr_search_steps=3"),
        RunLayout(tmp_path / "b"), fit,
    )  # fmt: skip
    assert pauses == [None, None] and whole.judged_at is None
    assert "lr_judged_at" not in whole.record()


def _judge(scores: dict[str, float], judged: list):
    """A stand-in dev-score judge: the score of each candidate's run directory."""

    def judge(run_dir: Path) -> float:
        judged.append(run_dir.name)
        return scores[run_dir.name]

    return judge


def test_judged_by_score_the_highest_dev_score_wins_not_the_lowest_loss(tmp_path):
    args = _args("adapt.lr_search=[0.5, 1.0, 2.0]", "adapt.lr_search_judge=score")
    calls: list = []
    judged: list = []
    losses = {0.1: 0.9, 0.2: 1.0, 0.4: None}  # by loss 0.1 would win; 2x diverged
    scores = {"x0.5": 0.30, "x1": 0.55, "x2": 0.99}
    choice = choose_rates(
        "pt", TARGET, args, RunLayout(tmp_path), _fit(losses, calls), _judge(scores, judged)
    )
    assert choice.rates == {"lr": 0.2} and choice.judged_by == "score"
    assert judged == ["x0.5", "x1"]  # right after each fit; a diverged candidate is not judged
    record = choice.record()
    assert record["lr_judged_by"] == "score"
    assert record["lr_candidate_scores"] == {"0.1": 0.30, "0.2": 0.55, "0.4": None}
    assert record["lr_candidates"] == {"0.1": 0.9, "0.2": 1.0, "0.4": None}
    saved = read_json(tmp_path / "lr_search" / "pt" / "toy" / "search.json")
    assert saved["judged_by"] == "score" and saved["run_dir"].endswith("x1")
    assert [c["dev_score"] for c in saved["candidates"]] == [0.30, 0.55, None]
    # Read back as it was chosen, judging nothing again.
    again = choose_rates("pt", TARGET, args, RunLayout(tmp_path), _fit({}, calls), _judge({}, []))
    assert again == choice


def test_score_ties_go_to_the_lower_loss_then_the_smaller_rate(tmp_path):
    args = _args("adapt.lr_search=[0.5, 1.0, 2.0]", "adapt.lr_search_judge=score")
    losses = {0.1: 0.9, 0.2: 0.8, 0.4: 0.8}
    tied = {"x0.5": 0.5, "x1": 0.5, "x2": 0.5}
    choice = choose_rates(
        "pt", TARGET, args, RunLayout(tmp_path / "a"), _fit(losses, []), _judge(tied, [])
    )
    assert choice.rates == {"lr": 0.2}  # 0.2 and 0.4 tie on loss too: the smaller rate
    # Judged by loss (the default), the same runs choose by loss alone and record no scores.
    by_loss = choose_rates("pt", TARGET, _args("adapt.lr_search=[0.5, 1.0, 2.0]"),
                           RunLayout(tmp_path / "b"), _fit(losses, []))  # fmt: skip
    assert by_loss.judged_by == "loss" and "lr_judged_by" not in by_loss.record()


def test_score_judging_extends_past_the_edge_the_score_picks(tmp_path):
    # By loss the middle rate would win (no extension); by score the top edge wins, so one more
    # candidate is tried above it, which scores lower: the edge stays the choice.
    args = _args(
        "adapt.lr_search=[0.5, 1.0, 2.0]", "adapt.lr_search_judge=score", "adapt.lr_search_extend=1"
    )
    calls: list = []
    losses = {0.1: 1.2, 0.2: 1.0, 0.4: 1.1, 0.8: 1.3}
    scores = {"x0.5": 0.1, "x1": 0.2, "x2": 0.4, "x4": 0.3}
    choice = choose_rates(
        "pt", TARGET, args, RunLayout(tmp_path), _fit(losses, calls), _judge(scores, [])
    )
    assert [name for _, name in calls] == ["x0.5", "x1", "x2", "x4"]
    assert choice.rates == {"lr": 0.4}


def test_score_judging_without_a_judge_is_refused(tmp_path):
    args = _args("adapt.lr_search=[0.5, 1.0]", "adapt.lr_search_judge=score")
    with pytest.raises(ValueError, match="no dev-score judge"):
        choose_rates("lora", TARGET, args, RunLayout(tmp_path), _fit({0.1: 1.0}, []))
    with pytest.raises(ConfigError, match="lr_search_judge"):
        _args("adapt.lr_search_judge=f1")
