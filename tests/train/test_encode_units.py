"""encode_records: one training example per unit (per ordered entity pair for pair-given RE)."""

from __future__ import annotations

from clinprompt.config import DataArgs
from clinprompt.data.registry import get_dataset, load_splits
from clinprompt.prompts import IGNORE_INDEX
from clinprompt.tasks import get_task_type
from clinprompt.train.data import encode_records


def target_text(tokenizer, encoded) -> str:
    ids = [t for t in encoded.labels if t != IGNORE_INDEX]
    assert ids[-1] == tokenizer.eos_token_id
    return tokenizer.decode(ids[:-1]).strip()


def test_pair_re_records_give_one_example_per_ordered_pair(tokenizer):
    spec = get_dataset("syn_dose_re")
    re_type = get_task_type("re")
    empty = {"id": "e", "text": "Vitals stable.", "entities": [], "relations": []}
    records = [*load_splits("syn_dose_re")["train"][:5], empty]
    examples = encode_records(records, spec, tokenizer, DataArgs())
    units = [u for r in records for u in re_type.units(r, spec)]
    n = [len(r["entities"]) for r in records]
    assert len(examples) == len(units) == sum(k * (k - 1) for k in n)  # the empty record: none
    assert [target_text(tokenizer, x) for x in examples] == [
        re_type.format_target(u, spec) for u in units
    ]
    assert {target_text(tokenizer, x) for x in examples} == {"none", "has dose"}
    head = tokenizer(re_type.instruction(spec), add_special_tokens=False)["input_ids"]
    assert all(x.input_ids[: len(head)] == head for x in examples)


def test_other_task_types_give_one_example_per_record(tokenizer):
    spec = get_dataset("syn_vitals_ner")
    records = load_splits("syn_vitals_ner")["train"][:4]
    examples = encode_records(records, spec, tokenizer, DataArgs(), task_id=2)
    assert len(examples) == 4 and {x.task_id for x in examples} == {2}
    ner = get_task_type("ner")
    assert [target_text(tokenizer, x) for x in examples] == [
        ner.format_target(r, spec) for r in records
    ]
