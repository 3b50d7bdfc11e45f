"""The budgets a run records are the ones its plan trains: k-shot steps from epochs, the judged step."""

from __future__ import annotations

from clinprompt.config import load_config
from clinprompt.eval.provenance import budgets


def test_kshot_steps_follow_the_epochs_that_replace_kshot_train():
    plain = budgets(load_config("smoke"))
    assert plain["adapt_kshot_steps"] == 2 and "adapt_kshot_epochs" not in plain

    cfg = load_config("smoke", ["adapt.kshot_epochs=12", "adapt.shots=[8, 16]"])
    out = budgets(cfg)
    # ceil(k x 12 / 4 per step): what the plan trains, not kshot_train's 2 steps.
    assert out["adapt_kshot_epochs"] == 12
    assert out["adapt_kshot_steps"] == {"k8": 24, "k16": 48}


def test_the_search_judged_step_is_recorded_only_when_it_pauses():
    search = ["adapt.lr_search=[0.3, 1.0]", "adapt.train={steps: 8}"]
    assert "adapt_lr_search_judged_at" not in budgets(load_config("smoke", search))
    paused = budgets(load_config("smoke", [*search, "adapt.lr_search_steps=4"]))
    assert paused["adapt_lr_search_judged_at"] == 4 and paused["adapt_steps"] == 8
    # At or past the budget the search does not pause, so nothing is recorded.
    late = budgets(load_config("smoke", [*search, "adapt.lr_search_steps=8"]))
    assert "adapt_lr_search_judged_at" not in late
