"""bench/option_margins.py's arithmetic: the margin AUC, the signature rule, merged metrics."""

from __future__ import annotations

from clinprompt.data.registry import get_dataset, load_splits
from clinprompt.tasks import get_task_type


def test_margin_auc_reads_the_ranking_not_the_threshold():
    from option_margins import margin_auc

    gold = [0, 0, 1, 1]
    # every unit answers label 0 (a prior), yet the margins rank the units perfectly
    ranked = [[0.0, -5.0], [0.0, -4.0], [0.0, -1.0], [0.0, -2.0]]
    assert margin_auc(ranked, gold) == 1.0
    # the same answers with margins unrelated to the gold label
    flat = [[0.0, -1.0]] * 4
    assert margin_auc(flat, gold) == 0.5
    inverted = [[0.0, -1.0], [0.0, -2.0], [0.0, -5.0], [0.0, -4.0]]
    assert margin_auc(inverted, gold) == 0.0
    # three candidates: labels absent from gold are not averaged; one label only: no AUC
    assert margin_auc([[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]], [0, 1]) == 1.0
    assert margin_auc([[1.0, 0.0]], [0]) is None


def test_signature_rule_is_the_majority_per_signature():
    from option_margins import pair_signature, signature_rule

    rule = signature_rule(
        [(("Drug", "AE"), "causes")] * 3 + [(("Drug", "AE"), "none"), (("AE", "Drug"), "none")]
    )
    assert rule(("Drug", "AE")) == "causes" and rule(("AE", "Drug")) == "none"
    assert rule(("Dose", "Drug")) is None  # never seen in training
    assert signature_rule([(("a", "b"), "y"), (("a", "b"), "x")])(("a", "b")) == "x"  # tie
    unit = {
        "entities": [{"id": "T1", "type": "Drug"}, {"id": "T2", "type": "AE"}],
        "pair": {"head": "T2", "tail": "T1"},
    }
    assert pair_signature(unit) == ("AE", "Drug") and pair_signature({"text": "x"}) is None


def test_record_metric_merges_units_as_evaluation_does():
    from option_margins import _per_record, record_metric

    spec = get_dataset("syn_dose_re")
    task = get_task_type(spec.task_type)
    records = [r for r in load_splits(spec.name)["test"] if r["relations"]][:4]
    units = [task.units(r, spec) for r in records]
    counts = [len(u) for u in units]
    gold = [task.format_target(u, spec) for us in units for u in us]
    assert record_metric(task, spec, records, _per_record(records, counts, gold)) == 1.0
    nothing = ["none"] * len(gold)
    assert record_metric(task, spec, records, _per_record(records, counts, nothing)) == 0.0
