"""Record validation: every kind of problem reported as file:line: field 'x': expected ..."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinprompt.tasks.records import (
    Issue,
    RecordError,
    find_issues,
    read_records,
    validate_records,
)
from clinprompt.tasks.spec import TaskSpec

NER_SPEC = TaskSpec(name="n", task_type="ner", labels=("Drug", "Problem"))
RE_SPEC = TaskSpec(name="r", task_type="re", labels=("causes",))
NLI_SPEC = TaskSpec(name="i", task_type="nli", labels=("entailment", "contradiction"))


def write(tmp_path: Path, rows: list, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join(
            (r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    return path


def problems(tmp_path: Path, rows: list, spec) -> list[str]:
    path = write(tmp_path, rows)
    with pytest.raises(RecordError) as info:
        read_records(path, spec)
    lines = str(info.value).splitlines()
    assert lines == [str(i) for i in info.value.issues]
    return [line.replace(f"{path}:", "") for line in lines]


def test_issue_str_format():
    assert (
        str(Issue("a.jsonl", 3, "entities[0].end", "expected an integer"))
        == "a.jsonl:3: field 'entities[0].end': expected an integer"
    )
    assert str(Issue("a.jsonl", 1, None, "expected UTF-8 text")) == "a.jsonl:1: expected UTF-8 text"


def test_valid_file_keeps_extra_fields_and_skips_blank_lines(tmp_path):
    rows = [
        {
            "id": "a",
            "text": "metformin",
            "entities": [{"start": 0, "end": 9, "type": "Drug", "text": "metformin"}],
            "note": {"x": 1},
        },
        "  ",
        {"id": "b", "text": "nothing", "entities": []},
    ]
    records = read_records(write(tmp_path, rows), NER_SPEC)
    assert [r["id"] for r in records] == ["a", "b"] and records[0]["note"] == {"x": 1}


def test_file_level_problems(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    with pytest.raises(RecordError, match=r"empty\.jsonl:1: expected at least one JSON record"):
        read_records(empty, "ner")
    bad = tmp_path / "bytes.jsonl"
    good_line = b'{"id": "a", "text": "x", "entities": []}\n'
    bad.write_bytes(good_line + b'{"id": "b", "text": "caf\xe9", "entities": []}\n')
    with pytest.raises(RecordError) as info:
        read_records(bad, "ner")
    offset = len(good_line) + len(b'{"id": "b", "text": "caf')
    assert (
        str(info.value)
        == f"{bad}:2: expected UTF-8 text; invalid byte 0xe9 at byte offset {offset} (column 25 of the line)"
    )
    assert problems(tmp_path, ['{"id": "a",', "[1, 2]", '"text"'], "ner") == [
        "1: expected one JSON object per line; invalid JSON at column 12: Expecting property name enclosed in double quotes",
        "2: expected a JSON object ({...}) per line, got a list of 2",
        "3: expected a JSON object ({...}) per line, got 'text'",
    ]
    with pytest.raises(RecordError, match="missing.jsonl:0: expected a readable JSONL file"):
        read_records(tmp_path / "missing.jsonl", "ner")


def test_ids(tmp_path):
    rows = [
        {"text": "x", "entities": []},
        {"id": 5, "text": "x", "entities": []},
        {"id": "a", "text": "x", "entities": []},
        {"id": "a", "text": "y", "entities": []},
    ]
    assert problems(tmp_path, rows, "ner") == [
        "1: field 'id': expected a non-empty string, got nothing (the field is missing)",
        "2: field 'id': expected a non-empty string, got 5",
        "4: field 'id': expected a unique id; 'a' is already used on line 3",
    ]


def test_ner_problems(tmp_path):
    text = "Started metformin."
    rows = [
        {"id": "1", "entities": []},
        {"id": "2", "text": text, "entities": {"start": 0}},
        {
            "id": "3",
            "text": text,
            "entities": [{"start": 8, "end": 17, "type": "Drug", "text": "Metformin"}],
        },
        {
            "id": "4",
            "text": text,
            "entities": [
                {"start": 8, "end": 8, "type": "Drug"},
                {"start": -1, "end": 2, "type": "Drug"},
            ],
        },
        {
            "id": "5",
            "text": text,
            "entities": [
                {"start": 8, "end": 99, "type": "Drug"},
                {"start": 8.0, "end": 17, "type": "Drug"},
            ],
        },
        {
            "id": "6",
            "text": text,
            "entities": [
                {"start": 8, "end": 17, "type": "Vital"},
                "metformin",
                {"start": 8, "end": 17},
            ],
        },
    ]
    assert problems(tmp_path, rows, NER_SPEC) == [
        "1: field 'text': expected a non-empty string, got nothing (the field is missing)",
        "2: field 'entities': expected a list of entity objects (may be empty), got an object",
        "3: field 'entities[0].text': expected text[8:17] = 'metformin', got 'Metformin'",
        "4: field 'entities[0].end': expected an integer > start (8), got 8",
        "4: field 'entities[1].start': expected an integer >= 0 (character offset), got -1",
        "5: field 'entities[0].end': expected an offset <= len(text) (18), got 99",
        "5: field 'entities[1].start': expected an integer >= 0 (character offset), got 8.0",
        "6: field 'entities[0].type': expected one of the dataset's entity types ['Drug', 'Problem'], got 'Vital'",
        "6: field 'entities[1]': expected an object with start, end, type, got 'metformin'",
        "6: field 'entities[2].type': expected a non-empty entity type string, got nothing (the field is missing)",
    ]
    # without a label list any type is fine
    validate_records(
        [{"id": "1", "text": text, "entities": [{"start": 8, "end": 17, "type": "Vital"}]}], "ner"
    )


def test_re_problems(tmp_path):
    text = "Severe hepatotoxicity after ketoconazole."
    ents = [
        {"id": "T1", "start": 7, "end": 21, "type": "AE"},
        {"id": "T2", "start": 28, "end": 40, "type": "Drug"},
    ]
    rows = [
        {"id": "1", "text": text, "entities": ents},
        {
            "id": "2",
            "text": text,
            "entities": [
                *ents,
                {"id": "T1", "start": 0, "end": 6, "type": "Sev"},
                {"start": 0, "end": 6, "type": "Sev"},
            ],
            "relations": [],
        },
        {
            "id": "3",
            "text": text,
            "entities": ents,
            "relations": [
                {"head": "T2", "tail": "T7", "type": "causes"},
                {"head": "T2", "tail": "T1", "type": "treats"},
                "T2-T1",
            ],
        },
    ]
    assert problems(tmp_path, rows, RE_SPEC) == [
        "1: field 'relations': expected a list of relation objects (may be empty), got nothing (the field is missing)",
        "2: field 'entities[2].id': expected a unique entity id; 'T1' is also entities[0]",
        "2: field 'entities[3].id': expected a non-empty string id, got nothing (the field is missing)",
        "3: field 'relations[0].tail': expected the id of one of the record's entities, got 'T7'",
        "3: field 'relations[1].type': expected one of the dataset's relation types ['causes'], got 'treats'",
        "3: field 'relations[2]': expected an object with head, tail, type, got 'T2-T1'",
    ]


def test_qa_nli_sum_problems(tmp_path):
    rows = [
        {"id": "1", "question": "Q?", "options": {"A": "x", "B": ""}, "answer": "C"},
        {"id": "2", "question": "Q?", "options": ["x", "y"], "answer": "A"},
        {"id": "3", "question": "", "context": 7, "answer": []},
        {"id": "4", "question": "Q?", "answer": ["ok", 3]},
        {"id": "5", "question": "Q?"},
        {"id": "6", "question": "Q?", "answer": ["fine", "also fine"], "context": ""},
    ]
    assert problems(tmp_path, rows, "qa") == [
        "1: field 'options.B': expected a non-empty option text, got an empty string",
        "1: field 'answer': expected one of the option keys ['A', 'B'], got 'C'",
        '2: field \'options\': expected an object mapping option keys to texts, e.g. {"A": "..."}, got a list of 2',
        "3: field 'question': expected a non-empty string, got an empty string",
        "3: field 'context': expected a string (the passage), got 7",
        "3: field 'answer': expected a non-empty list of non-empty strings, got a list of 0",
        "4: field 'answer': expected a non-empty list of non-empty strings, got a list of 2",
        "5: field 'answer': expected a non-empty string (or a list of them, any is right), got nothing (the field is missing)",
    ]
    rows = [
        {"id": "1", "premise": "p", "hypothesis": "h", "label": "neutral"},
        {"id": "2", "premise": "p", "label": 1},
    ]
    assert problems(tmp_path, rows, NLI_SPEC) == [
        "1: field 'label': expected one of the dataset's labels ['entailment', 'contradiction'], got 'neutral'",
        "2: field 'hypothesis': expected a non-empty string, got nothing (the field is missing)",
        "2: field 'label': expected a non-empty label string, got 1",
    ]
    assert problems(tmp_path, [{"id": "1", "source": "long note", "summary": " "}], "sum") == [
        "1: field 'summary': expected a non-empty string, got ' '",
    ]


def test_validate_records_in_memory_uses_positions():
    with pytest.raises(RecordError) as info:
        validate_records(
            [{"id": "a", "source": "s", "summary": "t"}, {"id": "a", "source": "s"}],
            "sum",
            source="loader",
        )
    assert str(info.value).splitlines() == [
        "loader:2: field 'summary': expected a non-empty string, got nothing (the field is missing)",
        "loader:2: field 'id': expected a unique id; 'a' is already used on line 1",
    ]
    assert find_issues([], "sum") == []
