"""The records a dev-score judge answers: each record of the target's dev units, once."""

from __future__ import annotations

from clinprompt.recipes.dev_score import dev_records
from clinprompt.tasks.relations import PAIR


def test_pair_units_are_answered_as_their_whole_records_once():
    a = {"id": "a", "text": "x", "entities": [1, 2, 3], "relations": []}
    b = {"id": "b", "text": "y", "entities": [1, 2], "relations": [{"head": "1"}]}
    units = [
        {**a, PAIR: {"head": "1", "tail": "2"}},
        {**b, PAIR: {"head": "2", "tail": "1"}},
        {**a, PAIR: {"head": "3", "tail": "1"}},
    ]
    assert dev_records(units) == [a, b]  # in first-seen order, without the pair


def test_other_units_are_their_records():
    records = [{"id": "q1", "question": "?"}, {"id": "q2", "question": "!"}]
    assert dev_records(records) == records
    # Records without ids are told apart by their content.
    anonymous = [{"text": "one"}, {"text": "two"}, {"text": "one"}]
    assert dev_records(anonymous) == [{"text": "one"}, {"text": "two"}]
    assert dev_records([]) == []
