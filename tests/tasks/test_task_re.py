"""RE: input listing, triple targets, handles for repeated mentions, joint mode, pairs, scoring."""

from __future__ import annotations

import pytest

from clinprompt.tasks import UNPARSEABLE, get_task_type
from clinprompt.tasks.relations import entity_handles
from clinprompt.tasks.spec import TaskSpec

RE = get_task_type("re")
SPEC = TaskSpec(name="t_re", task_type="re", labels=("causes", "treats"))
JOINT = TaskSpec(name="t_joint", task_type="re", labels=("causes", "treats"), joint=True)
ADE = "Severe hepatotoxicity developed after ketoconazole."


def ent(eid: str, text: str, mention: str, etype: str, nth: int = 1) -> dict:
    start = -1
    for _ in range(nth):
        start = text.index(mention, start + 1)
    return {"id": eid, "start": start, "end": start + len(mention), "type": etype}


def ade_record() -> dict:
    return {
        "id": "ade-17",
        "text": ADE,
        "entities": [
            ent("T1", ADE, "hepatotoxicity", "AdverseEffect"),
            ent("T2", ADE, "ketoconazole", "Drug"),
        ],
        "relations": [{"head": "T2", "tail": "T1", "type": "causes"}],
    }


def triples(rec: dict) -> set:
    spans = {e["id"]: (e["start"], e["end"]) for e in rec["entities"]}
    return {(spans[r["head"]], spans[r["tail"]], r["type"]) for r in rec["relations"]}


def round_trip(rec: dict, spec: TaskSpec = SPEC) -> str:
    target = RE.format_target(rec, spec)
    parsed = RE.parse(target, rec, spec)
    assert parsed.ok, target
    if not spec.joint:  # relations come back between the record's own entity ids
        assert {(r["head"], r["tail"], r["type"]) for r in parsed.prediction["relations"]} == {
            (r["head"], r["tail"], r["type"]) for r in rec["relations"]
        }
    assert triples(parsed.prediction) == triples(rec)
    assert RE.score([rec], [parsed.prediction], spec)["f1"] == (1.0 if rec["relations"] else 0.0)
    return target


def test_input_and_target_format():
    rec = ade_record()
    assert (
        RE.format_input(rec, SPEC)
        == f"Entities: AdverseEffect: hepatotoxicity | Drug: ketoconazole\nText: {ADE}"
    )
    assert round_trip(rec) == "ketoconazole [causes] hepatotoxicity"
    assert round_trip({**rec, "relations": []}) == "none"


def test_repeated_mentions_get_unique_handles():
    t = "insulin raises glucose; insulin lowers glucose uptake in insulin resistance"
    ents = [
        ent("A", t, "insulin", "Gene"),
        ent("B", t, "glucose", "Chem"),
        ent("C", t, "insulin", "Gene", 2),
        ent("D", t, "glucose", "Chem", 2),
        ent("E", t, "insulin", "Gene", 3),
    ]
    rec = {
        "id": "x",
        "text": t,
        "entities": ents,
        "relations": [
            {"head": "C", "tail": "D", "type": "treats"},
            {"head": "A", "tail": "B", "type": "causes"},
        ],
    }
    assert [h for h, _ in entity_handles(t, ents)] == [
        "insulin",
        "glucose",
        "insulin #2",
        "glucose #2",
        "insulin #3",
    ]
    assert round_trip(rec) == "insulin [causes] glucose ; insulin #2 [treats] glucose #2"


def test_handle_collisions_and_awkward_mentions():
    t = "x and x and x #2; a ; b [causes] c; ä"
    ents = [
        ent("1", t, "x", "E"),
        ent("2", t, "x", "E", 2),
        ent("3", t, "x #2", "E"),
        ent("4", t, "a ; b", "E"),
        ent("5", t, "c", "E"),
        ent("6", t, "ä", "E"),
        {"id": "7", "start": 0, "end": 1, "type": "F"},
    ]
    handles = [h for h, _ in entity_handles(t, ents)]
    assert len(set(handles)) == len(handles) and "x #2" in handles and "x #3" in handles
    rels = [
        {"head": "2", "tail": "4", "type": "causes"},
        {"head": "4", "tail": "5", "type": "treats"},
        {"head": "3", "tail": "6", "type": "causes"},
        {"head": "7", "tail": "1", "type": "causes"},
    ]
    round_trip({"id": "y", "text": t, "entities": ents, "relations": rels})


def test_joint_mode_generates_entities_then_relations():
    rec = ade_record()
    assert RE.format_input(rec, JOINT) == ADE
    target = round_trip(rec, JOINT)
    assert (
        target
        == "AdverseEffect: hepatotoxicity | Drug: ketoconazole\nRelations: ketoconazole [causes] hepatotoxicity"
    )
    parsed = RE.parse(target, {"id": "ade-17", "text": ADE}, JOINT)  # inference: no gold entities
    assert parsed.ok and triples(parsed.prediction) == triples(rec)
    missing_cue = RE.parse("Drug: ketoconazole", rec, JOINT)
    assert not missing_cue.ok and missing_cue.prediction["relations"] == []
    scores = RE.score([rec], [parsed.prediction], JOINT)
    assert scores["f1"] == 1.0 and scores["entity_strict_f1"] == 1.0


def test_joint_duplicate_entities_collapse_but_triples_survive():
    t = "drug X causes rash"
    ents = [
        ent("T1", t, "drug X", "Drug"),
        ent("T9", t, "drug X", "Drug"),
        ent("T2", t, "rash", "AE"),
    ]
    rec = {
        "id": "d",
        "text": t,
        "entities": ents,
        "relations": [{"head": "T9", "tail": "T2", "type": "causes"}],
    }
    round_trip(rec, JOINT)


@pytest.mark.parametrize(
    ("output", "expected", "ok"),
    [
        ("ketoconazole [causes] hepatotoxicity", {("T2", "T1", "causes")}, True),
        (
            "Ketoconazole [Causes] hepatotoxicity.",
            {("T2", "T1", "causes")},
            True,
        ),  # a final full stop
        ("KETOCONAZOLE [CAUSES] Hepatotoxicity", {("T2", "T1", "causes")}, True),
        (
            "ketoconazole [causes] hepatotoxicity ; ketoconazole [causes] hepatotoxicity",
            {("T2", "T1", "causes")},
            True,
        ),
        ("ketoconazole [inhibits] hepatotoxicity", set(), False),  # unknown relation type
        ("aspirin [causes] hepatotoxicity", set(), False),  # unknown entity
        (
            "ketoconazole [causes] hepatotoxicity ; ketoconazole [cau",
            {("T2", "T1", "causes")},
            False,
        ),  # truncated
        ("None", set(), True),
        ("", set(), False),
    ],
)
def test_parse_generations(output, expected, ok):
    parsed = RE.parse(output, ade_record(), SPEC)
    assert {(r["head"], r["tail"], r["type"]) for r in parsed.prediction["relations"]} == expected
    assert parsed.ok is ok and parsed.prediction.get(UNPARSEABLE, False) is (not ok)
    assert parsed.prediction["entities"] == ade_record()["entities"]


def test_pair_classification_candidates():
    rec = ade_record()
    # Per pair (the default for given entities): a unit's label words and none; a whole record
    # is answered through its units, which share these candidates.
    assert RE.candidates(rec, SPEC) == ["causes", "treats", "none"]
    for unit in RE.units(rec, SPEC):
        cands = RE.candidates(unit, SPEC)
        assert RE.format_target(unit, SPEC) in cands
        for c in cands:  # every candidate parses
            assert RE.parse(c, unit, SPEC).ok
    assert RE.candidates(rec, JOINT) is None
    opt_out = TaskSpec(name="t", task_type="re", labels=("causes",), pair_classification=False)
    assert RE.candidates(rec, opt_out) is None and RE.units(rec, opt_out) == [rec]


def test_score_counts_and_gold_entity_fallback():
    gold = ade_record()
    other = {**ade_record(), "id": "ade-18", "relations": []}
    pred_file_style = {
        "id": "ade-17",
        "relations": [{"head": "T2", "tail": "T1", "type": "causes"}],
    }  # no entities
    scores = RE.score([gold, other], [pred_file_style, None], SPEC)
    assert scores["f1"] == 1.0 and (scores["n"], scores["missing"], scores["unparseable"]) == (
        2,
        1,
        0,
    )
    wrong_dir = {
        "id": "ade-17",
        "relations": [
            {"head": "T1", "tail": "T2", "type": "causes"},
            {"head": "T9", "tail": "T1", "type": "causes"},
        ],
    }
    scores = RE.score([gold], [wrong_dir], SPEC)
    assert scores["f1"] == 0.0 and scores["unparseable"] == 1  # T9 does not exist
    assert RE.primary_metric(SPEC) == "f1"
