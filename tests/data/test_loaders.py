"""Native-format loaders: every public dataset's split counts and record shape, the seeded
splitter, error messages for malformed native files, and user YAML configs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clinprompt.data.loaders import NativeFormatError
from clinprompt.data.loaders.chemprot import read_chemprot, strip_markers
from clinprompt.data.loaders.conll import read_iob
from clinprompt.data.loaders.ctparser import read_ctparser
from clinprompt.data.registry import DataRootError, get_dataset, load_splits
from clinprompt.data.splits import seeded_split, split_by_blocks
from clinprompt.data.user import load_dataset_config
from clinprompt.tasks.records import RecordError

# name → (train, dev, test) as observed on ../shared/data (MANIFEST.tsv commits).
COUNTS = {
    "bc5cdr_ner": (4560, 4581, 4797),
    "bc2gm_ner": (12574, 2519, 5038),
    "e3c_en_clinical_ner": (594, 75, 851),
    "ctparser_eligibility_ner": (3583, 449, 450),
    "ddi2013_ner": (6162, 743, 665),
    "biored_ner": (4328, 1137, 1092),
    "ade_corpus_v2": (14847, 2071, 4042),
    "ddi2013_re": (3382, 406, 790),
    "chemprot": (4169, 2427, 3469),
    "biored_re": (400, 100, 100),
    "euadr": (286, 32, 37),
    "mediqa_oe": (49, 77, 80),
    "pubmedqa": (450, 50, 500),
    "medqa_usmle": (764, 127, 382),
    "medmcqa": (2253, 281, 282),
    "covid_qa": (908, 221, 251),
    "medicationqa": (554, 67, 69),
    "mediqa2019_qa": (1701, 234, 1107),
    "nli4ct": (1700, 200, 500),
    "mediqa2019_rqe": (8587, 302, 230),
    "meqsum": (800, 100, 100),
    "mediqa2021_qs": (40, 10, 100),
    "mts_dialog": (1201, 100, 400),
    "aci_bench": (67, 20, 120),
}


def _check_spans(record: dict[str, Any], types: tuple[str, ...]) -> None:
    text = record["text"]
    for e in record["entities"]:
        assert 0 <= e["start"] < e["end"] <= len(text), record["id"]
        assert text[e["start"] : e["end"]] == e["text"], record["id"]
        if types:
            assert e["type"] in types, (record["id"], e["type"])


def _check(name: str, splits: dict[str, list[dict[str, Any]]]) -> None:
    spec = get_dataset(name)
    all_ids = [r["id"] for records in splits.values() for r in records]
    assert all(isinstance(i, str) and i for i in all_ids)
    assert len(set(all_ids)) == len(all_ids), "ids must be unique across the dataset"
    for records in splits.values():
        for r in records:
            if spec.task_type == "ner":
                _check_spans(r, spec.labels)
            elif spec.task_type == "re":
                _check_spans(r, tuple(spec.extra.get("entity_types", ())))
                ids = {e["id"] for e in r["entities"]}
                assert len(ids) == len(r["entities"])
                for rel in r["relations"]:
                    assert (
                        rel["head"] in ids and rel["tail"] in ids and rel["type"] in spec.labels
                    ), r["id"]
            elif spec.task_type == "qa":
                assert r["question"].strip()
                if "options" in r:
                    assert r["answer"] in r["options"]
                else:
                    assert r["answer"]
            elif spec.task_type == "nli":
                assert (
                    r["premise"].strip() and r["hypothesis"].strip() and r["label"] in spec.labels
                )
            else:
                assert r["source"].strip() and r["summary"].strip()


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(COUNTS))
def test_dataset_loads_with_exact_counts(name: str, data_root: Path) -> None:
    splits = load_splits(name, data_root)
    assert tuple(len(splits[s]) for s in ("train", "dev", "test")) == COUNTS[name]
    _check(name, splits)
    spot = SPOT_CHECKS.get(name)
    if spot:
        spot(splits)


def _bc5cdr(splits):
    r = splits["train"][0]
    assert r["text"].startswith("Selegiline - induced postural hypotension")
    assert " ".join(r["tokens"]) == r["text"] and len(r["tags"]) == len(r["tokens"])
    assert [(e["text"], e["type"]) for e in r["entities"]][:2] == [
        ("Selegiline", "Chemical"),
        ("postural hypotension", "Disease"),
    ]


def _bc2gm(splits):
    tags = {t for r in splits["train"] for t in r["tags"]}
    assert tags == {"O", "B-Gene", "I-Gene"}  # native GENE renamed to the registered type


def _ddi_re(splits):
    (r,) = [r for r in splits["train"] + splits["dev"] if r["id"] == "DDI-DrugBank.d216.s16"]
    (e2,) = [
        e for e in r["entities"] if e["id"] == "e2"
    ]  # the erratum: a discontinuous, corrected mention
    assert (
        e2["text"] == "(R)- or (S)-warfarin"
        and e2["mention"] == "(R)-warfarin"
        and e2["fragments"] == [[96, 100], [108, 116]]
    )
    assert not any(
        r["id"] == "DDI-DrugBank.d236.s29" for s in splits.values() for r in s
    )  # untyped DDI left out
    assert all(len(r["entities"]) >= 2 for s in splits.values() for r in s)
    documents = [{r["document"] for r in splits[s]} for s in ("train", "dev")]
    assert not documents[0] & documents[1]


def _ade(splits):
    r = next(r for r in splits["train"] + splits["dev"] + splits["test"] if r["id"] == "10030778-0")
    assert r["text"] == "Intravenous azithromycin-induced ototoxicity."
    assert r["relations"] == [{"head": "T1", "tail": "T2", "type": "causes"}]
    assert {e["type"] for s in splits.values() for r in s for e in r["entities"]} == {
        "Drug",
        "AdverseEffect",
        "Dose",
    }
    pmids = [{r["pmid"] for r in splits[s]} for s in ("train", "dev", "test")]
    assert not (pmids[0] & pmids[1] or pmids[0] & pmids[2] or pmids[1] & pmids[2])


def _chemprot(splits):
    r = splits["train"][0]
    assert "<<" not in r["text"] and "[[" not in r["text"].split("(")[0]
    assert [e["text"] for e in r["entities"]] == ["Epidermal growth factor receptor", "gefitinib"]
    assert r["relations"] == [{"head": "T1", "tail": "T2", "type": "INHIBITOR"}]


def _biored_re(splits):
    r = next(r for r in splits["train"] if r["id"] == "10491763")
    hnf6 = next(e for e in r["entities"] if e["id"] == "3175")
    assert hnf6["text"] == "Hepatocyte nuclear factor-6" and len(hnf6["mentions"]) > 1
    assert {"head": "3175", "tail": "D003924", "type": "Association", "novel": False} in r[
        "relations"
    ]


def _pubmedqa(splits):
    assert splits["test"][0]["options"] == {"A": "yes", "B": "no", "C": "maybe"}
    assert {r["id"] for r in splits["test"]}.isdisjoint(
        r["id"] for r in splits["train"] + splits["dev"]
    )


def _covid(splits):
    for r in splits["train"][:50]:
        assert r["answer"][0] in r["context"] and len(r["context"]) <= 1100 + len(r["answer"][0])
    docs = [{r["document_id"] for r in splits[s]} for s in ("train", "dev", "test")]
    assert not (docs[0] & docs[1] or docs[0] & docs[2] or docs[1] & docs[2])


def _mediqa_oe(splits):
    assert all(r["id"].startswith("acibench_") for s in splits.values() for r in s)
    assert get_dataset("mediqa_oe").extra["train_allowed"] is False


def _nli4ct(splits):
    comparison = next(r for r in splits["test"] if r["type"] == "Comparison")
    assert (
        comparison["premise"].startswith("Primary trial:\n")
        and "\n\nSecondary trial:\n" in comparison["premise"]
    )


SPOT_CHECKS = {
    "bc5cdr_ner": _bc5cdr,
    "bc2gm_ner": _bc2gm,
    "ddi2013_re": _ddi_re,
    "ade_corpus_v2": _ade,
    "chemprot": _chemprot,
    "biored_re": _biored_re,
    "pubmedqa": _pubmedqa,
    "covid_qa": _covid,
    "mediqa_oe": _mediqa_oe,
    "nli4ct": _nli4ct,
}


@pytest.mark.data
def test_seeded_dataset_split_is_deterministic(data_root: Path) -> None:
    first, again = load_splits("medqa_usmle", data_root), load_splits("medqa_usmle", data_root)
    assert {s: [r["id"] for r in v] for s, v in first.items()} == {
        s: [r["id"] for r in v] for s, v in again.items()
    }


def test_missing_data_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataRootError, match="bc5cdr_ner"):
        load_splits("bc5cdr_ner", tmp_path)


# ----------------------------------------------------------------------------- splitter


def test_seeded_split_is_deterministic_disjoint_and_complete() -> None:
    records = [{"id": f"r{i}"} for i in range(1000)]
    ratios = {"train": 0.8, "dev": 0.1, "test": 0.1}
    a = seeded_split(records, ratios, seed=7)
    b = seeded_split(list(reversed(records)), ratios, seed=7)  # input order does not matter
    assert {k: sorted(r["id"] for r in v) for k, v in a.items()} == {
        k: sorted(r["id"] for r in v) for k, v in b.items()
    }
    assert [len(a[k]) for k in ratios] == [800, 100, 100]
    ids = [r["id"] for v in a.values() for r in v]
    assert sorted(ids) == sorted(r["id"] for r in records)
    c = seeded_split(records, ratios, seed=8)
    assert {r["id"] for r in c["test"]} != {r["id"] for r in a["test"]}


def test_seeded_split_keeps_groups_together_and_order() -> None:
    records = [{"id": f"q{i}", "doc": i // 5} for i in range(200)]
    parts = seeded_split(records, {"train": 0.5, "test": 0.5}, group=lambda r: r["doc"])
    assert not {r["doc"] for r in parts["train"]} & {r["doc"] for r in parts["test"]}
    assert parts["train"] == sorted(parts["train"], key=lambda r: int(r["id"][1:]))
    blocks = split_by_blocks(records, {"train": 0.9, "dev": 0.1}, block=10)
    assert len(blocks["dev"]) == 20 and all(
        int(r["id"][1:]) // 10 == int(blocks["dev"][0]["id"][1:]) // 10 for r in blocks["dev"][:10]
    )


def test_seeded_split_rejects_bad_ratios() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        seeded_split([{"id": "a"}], {"train": 0.8, "test": 0.1})
    with pytest.raises(ValueError, match=">= 0"):
        seeded_split([{"id": "a"}], {"train": 1.2, "test": -0.2})


# ----------------------------------------------------------------------------- native errors


def test_iob_sample_asset(assets: Path) -> None:
    records = read_iob(
        assets / "iob" / "sample.tsv", {"Chemical": "Chemical", "Disease": "Disease"}
    )
    assert [r["text"] for r in records] == ["Aspirin relieves head pain .", "No findings"]
    assert [(e["start"], e["end"], e["type"], e["text"]) for e in records[0]["entities"]] == [
        (0, 7, "Chemical", "Aspirin"),
        (17, 26, "Disease", "head pain"),
    ]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("a\tO\nb\tI-Gene\n", 2, "follows O"),
        ("a\tB-Gene\nb\tI-Drug\n", 2, "type in"),
        ("a\tO\n\nb O\n", 3, "token<TAB>tag"),
        ("a\tX-Gene\n", 1, "expected O or B-/I-"),
    ],
)
def test_malformed_iob_names_file_and_line(
    tmp_path: Path, content: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(NativeFormatError, match=message) as err:
        read_iob(path, {"Gene": "Gene"})
    assert str(err.value).startswith(f"{path}:{line}:")


def test_bad_encoding_and_empty_files_are_errors(tmp_path: Path) -> None:
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("caf\xe9\tO\n".encode("latin-1"))
    with pytest.raises(NativeFormatError, match=r"latin\.tsv:1: expected UTF-8"):
        read_iob(latin, {})
    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    with pytest.raises(NativeFormatError, match="empty"):
        read_iob(empty, {})
    with pytest.raises(FileNotFoundError, match="missing"):
        read_iob(tmp_path / "absent.tsv", {})


def test_ctparser_offsets_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "ct.tsv"
    path.write_text("1:9:chronic_disease\tepilepsy\n")
    assert read_ctparser(path)[0]["entities"] == [
        {"start": 0, "end": 8, "type": "chronic_disease", "text": "epilepsy"}
    ]
    path.write_text("1:9:chronic_disease\tepilepsy\n1:40:cancer\tcancer\n")
    with pytest.raises(NativeFormatError, match=r"ct\.tsv:2: field 'spans'.*outside"):
        read_ctparser(path)
    path.write_text("2:9:nonsense\tepilepsy\n")
    with pytest.raises(NativeFormatError, match="unknown label 'nonsense'"):
        read_ctparser(path)


def test_chemprot_markers(tmp_path: Path) -> None:
    text, entities = strip_markers("<< EGFR >> is blocked by [[ gefitinib ]] (x >> y).")
    assert text == "EGFR is blocked by gefitinib (x >> y)."
    assert [(text[e["start"] : e["end"]], e["id"]) for e in entities] == [
        ("EGFR", "T1"),
        ("gefitinib", "T2"),
    ]
    path = tmp_path / "train.txt"
    path.write_text('{"text": "<< a >> b", "label": "INHIBITOR", "metadata": []}\n')
    with pytest.raises(
        NativeFormatError, match=r"train\.txt:1: field 'text': expected exactly one '\[\['"
    ):
        read_chemprot(path, "train")


# ----------------------------------------------------------------------------- user configs


def test_user_jsonl_config_registers_with_resolved_paths(assets: Path) -> None:
    spec = load_dataset_config(assets / "user" / "my_ner.yaml")
    assert spec.name == "user_asset_ner" and spec.labels == ("Drug",) and spec.loader is None
    assert Path(spec.paths["train"]) == (assets / "user" / "train.jsonl").resolve()
    assert get_dataset("user_asset_ner") is spec
    assert load_dataset_config(assets / "user" / "my_ner.yaml") is spec  # loading again is harmless


def test_user_config_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: Bad Name\ntask_type: nerr\nsplits: {train: nowhere.jsonl, validation: x.jsonl}\ninstrucion: hi\n"
    )
    with pytest.raises(RecordError) as err:
        load_dataset_config(path)
    message = str(err.value)
    assert f"{path}:1: field 'name': expected a snake_case name" in message
    assert f"{path}:2: field 'task_type'" in message
    assert "field 'splits.train': expected a JSONL file at" in message
    assert "unknown split 'validation'" in message
    assert f"{path}:4: field 'instrucion': unknown setting (did you mean 'instruction'?)" in message


def test_user_config_name_clash_is_an_error(tmp_path: Path, assets: Path) -> None:
    (tmp_path / "t.jsonl").write_text((assets / "user" / "train.jsonl").read_text())
    path = tmp_path / "clash.yaml"
    path.write_text("name: bc5cdr_ner\ntask_type: ner\nsplits: {train: t.jsonl}\n")
    with pytest.raises(RecordError, match="already registered"):
        load_dataset_config(path)
