"""bench/heldout_dev.py's records: dev records outside the ones the search judged."""

from __future__ import annotations

from clinprompt.config import load_config
from clinprompt.data.registry import load_splits
from clinprompt.recipes.dev_score import dev_records

TARGET = "syn_vitals_ner"


def test_held_out_dev_records_never_include_a_judged_one():
    from heldout_dev import heldout_records

    cfg = load_config("smoke", [f"data.targets=[{TARGET}]", "data.max_dev_examples=6"])
    task, held, judged = heldout_records(cfg, TARGET, 10)
    judged_ids = {r["id"] for r in dev_records(task.dev)}
    dev_ids = {r["id"] for r in load_splits(TARGET).get("dev")}
    assert judged == len(judged_ids) == 6
    assert len(held) == min(10, len(dev_ids) - 6)
    assert {r["id"] for r in held} <= dev_ids - judged_ids
    # The same sample every time (and so for every run and method compared).
    assert [r["id"] for r in heldout_records(cfg, TARGET, 10)[1]] == [r["id"] for r in held]
