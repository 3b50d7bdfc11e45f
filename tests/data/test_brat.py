"""BRAT standoff loader on the hand-made files in tests/assets/brat (and broken copies of them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from clinprompt.data.loaders import NativeFormatError, load_brat
from clinprompt.data.registry import load_splits
from clinprompt.data.user import load_dataset_config


@pytest.fixture()
def brat(assets: Path) -> Path:
    return assets / "brat"


def _copy(brat: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "brat"
    shutil.copytree(brat, folder)
    return folder


def test_ner_per_document(brat: Path) -> None:
    doc1, doc2 = load_brat(brat, "ner")
    assert doc1["id"] == "doc1" and doc2 == {
        "id": "doc2",
        "text": "No known drug allergies.\n",
        "entities": [],
    }
    spans = [(e["text"], e["type"]) for e in doc1["entities"]]
    assert spans[:3] == [("warfarin", "Drug"), ("5 mg", "Strength"), ("daily", "Frequency")]
    for e in doc1["entities"]:
        assert doc1["text"][e["start"] : e["end"]] == e["text"] and "id" not in e


def test_discontinuous_entities(brat: Path) -> None:
    (left,) = [
        e for e in load_brat(brat, "ner")[0]["entities"] if e.get("mention") == "left knee pain"
    ]
    assert left["text"] == "left and right knee pain" and left["fragments"] == [
        [94, 98],
        [109, 118],
    ]
    (first,) = [
        e for e in load_brat(brat, "ner", discontinuous="first")[0]["entities"] if e["start"] == 94
    ]
    assert first["text"] == "left" and "fragments" not in first
    with pytest.raises(NativeFormatError, match=r"doc1\.ann:6: field 'T6': discontinuous"):
        load_brat(brat, "ner", discontinuous="error")


def test_re_per_document_ignores_events_attributes_notes(brat: Path) -> None:
    doc1 = load_brat(brat, "re")[0]
    by_id = {e["id"]: e["text"] for e in doc1["entities"]}
    triples = [(by_id[r["head"]], r["type"], by_id[r["tail"]]) for r in doc1["relations"]]
    assert triples == [
        ("5 mg", "Strength-Drug", "warfarin"),
        ("daily", "Frequency-Drug", "warfarin"),
        ("severe rash", "ADE-Drug", "amoxicillin"),
    ]
    assert set(doc1) == {"id", "text", "entities", "relations"}


def test_sentence_units(brat: Path) -> None:
    records = load_brat(brat, "re", unit="sentence")
    assert [r["id"] for r in records] == ["doc1-s0", "doc1-s1", "doc1-s2", "doc2-s0"]
    assert records[0]["text"] == "Patient started on warfarin 5 mg daily."
    assert len(records[0]["relations"]) == 2 and len(records[1]["relations"]) == 1
    for r in records:
        for e in r["entities"]:
            assert r["text"][e["start"] : e["end"]] == e["text"]


def test_relation_across_lines_keeps_the_lines_together(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("Took aspirin.\nThen bleeding started.\nStable.\n")
    (tmp_path / "n.ann").write_text(
        "T1\tDrug 5 12\taspirin\nT2\tADE 19 27\tbleeding\nR1\tADE-Drug Arg1:T2 Arg2:T1\n"
    )
    records = load_brat(tmp_path, "re", unit="sentence")
    assert [r["text"] for r in records] == ["Took aspirin.\nThen bleeding started.", "Stable."]
    assert len(records[0]["relations"]) == 1


def test_crlf_offsets_count_every_character(tmp_path: Path) -> None:
    (tmp_path / "w.txt").write_bytes(b"Home meds:\r\nlisinopril 10 mg.\r\n")
    (tmp_path / "w.ann").write_text("T1\tDrug 12 22\tlisinopril\n")
    (record,) = load_brat(tmp_path, "ner")
    assert record["text"][12:22] == "lisinopril"


def test_labels_and_entity_type_filter(brat: Path) -> None:
    with pytest.raises(
        NativeFormatError,
        match=r"doc1\.ann:1: field 'T1': entity type 'Drug' is not one of the labels",
    ):
        load_brat(brat, "ner", labels=["Problem"])
    doc1 = load_brat(brat, "re", entity_types=["Drug", "ADE"])[0]
    assert {e["type"] for e in doc1["entities"]} == {"Drug", "ADE"} and [
        r["type"] for r in doc1["relations"]
    ] == ["ADE-Drug"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "T9\tDrug 19 27\twarfarine",
            r"doc1\.ann:14: field 'T9': the text at '19 27' is 'warfarin', expected the mention 'warfarine'",
        ),
        ("T9\tDrug 19 9999\twarfarin", r"doc1\.ann:14: field 'T9': offsets 19 9999 fall outside"),
        (
            "R9\tADE-Drug Arg1:T4 Arg2:T42",
            r"doc1\.ann:14: field 'R9': argument 'T42' is not a T entity",
        ),
        ("X1\tsomething", r"doc1\.ann:14: expected a T, R"),
        ("T1\tDrug 19 27\twarfarin", r"doc1\.ann:14: field 'T1': this entity id is used twice"),
    ],
)
def test_malformed_ann_names_file_line_and_id(
    brat: Path, tmp_path: Path, line: str, message: str
) -> None:
    folder = _copy(brat, tmp_path)
    with (folder / "doc1.ann").open("a") as f:
        f.write(line + "\n")
    with pytest.raises(NativeFormatError, match=message):
        load_brat(folder, "re")


def test_missing_pairs_and_folders(brat: Path, tmp_path: Path) -> None:
    folder = _copy(brat, tmp_path)
    (folder / "doc2.ann").unlink()
    with pytest.raises(FileNotFoundError, match=r"doc2\.ann: expected the annotation file"):
        load_brat(folder)
    (folder / "doc3.ann").write_text("")
    (folder / "doc2.ann").write_text("")
    with pytest.raises(FileNotFoundError, match=r"doc3\.ann: an annotation file without its \.txt"):
        load_brat(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .txt file"):
        load_brat(empty)
    with pytest.raises(FileNotFoundError, match="expected a folder"):
        load_brat(tmp_path / "absent")


def test_yaml_config_points_at_a_brat_folder(assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "CLINPROMPT_DATA_ROOT", str(assets / "no-such-root")
    )  # a BRAT config needs no data root
    spec = load_dataset_config(assets / "user" / "brat_re.yaml")
    assert spec.task_type == "re" and spec.extra["format"] == "brat" and spec.splits == ("train",)
    splits = load_splits("user_asset_brat_re")
    assert [r["id"] for r in splits["train"]] == ["doc1-s0", "doc1-s1", "doc1-s2", "doc2-s0"]
