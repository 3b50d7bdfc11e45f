"""Continuous batching: rows joining and leaving a running DecodeBatch, taking over freed slots and
being compacted, decode exactly as they would alone."""

from __future__ import annotations

from tests.decoding.conftest import generate

from clinprompt.decoding import DecodeBatch, PromptKVCache


def test_rows_joining_a_running_batch_decode_as_alone(lively, batch):
    ids, prompts, keys = batch
    tok = lively.tokenizer
    alone = [generate(lively, prompts[i : i + 1], [ids[i]], n=8)[0] for i in range(3)]
    cache = PromptKVCache(lively.model)
    cache.set_prefix("a", ids[0][:4])  # rows 0 and 2 share their first 4 ids (the instruction)
    running = DecodeBatch(lively.model, tok.eos_token_id, tok.pad_token_id, cache)
    done = dict(running.add(prompts[2:3], [ids[2]], [3], ["short"], ["a"]))
    for _ in range(2):
        done.update(running.step())
    assert done == {"short": alone[2][:3]} and not running  # finished on its budget
    done.update(running.add(prompts[:1], [ids[0]], [8], ["r0"], ["a"]))
    for _ in range(3):
        done.update(running.step())
    done.update(
        running.add(prompts[1:3], ids[1:3], [8, 0], ["r1", "r2"], ["b", "a"])
    )  # join mid-flight
    assert done.pop("r2") == []  # a zero budget finishes at once
    while running:
        done.update(running.step())
    assert done == {"short": alone[2][:3], "r0": alone[0], "r1": alone[1]}


def test_freed_slots_are_taken_over_and_compacted_with_outputs_as_alone(lively, batch):
    """Rows leave and join over many steps: freed slots are reused in place (no new slot), a row
    finding none is merged, free slots are compacted; every row decodes as it would alone."""
    ids, prompts, keys = batch
    tok = lively.tokenizer
    alone = {i: generate(lively, prompts[i : i + 1], [ids[i]], n=12)[0] for i in range(3)}
    cache = PromptKVCache(lively.model)
    running = DecodeBatch(
        lively.model, tok.eos_token_id, tok.pad_token_id, cache, compact_ratio=10.0
    )
    done: dict[str, list[int]] = {}
    budget = {"a2": 2, "b0": 12, "c1": 12, "d0": 5, "e2": 9, "f1": 12}

    def join(*tags: str) -> None:
        rows = [int(t[1]) for t in tags]
        done.update(
            running.add(
                prompts[rows],
                [ids[r] for r in rows],
                [budget[t] for t in tags],
                list(tags),
                [keys[r] for r in rows],
            )
        )

    join("a2", "b0", "c1")
    for _ in range(2):
        done.update(running.step())
    assert (
        "a2" in done and running.slots == 3 and len(running) == 2
    )  # a2's slot is free, not dropped
    join("d0")  # narrower than the batch: takes a2's slot in place
    assert running.slots == 3 and len(running) == 3
    for _ in range(5):
        done.update(running.step())
    assert "d0" in done
    join("e2")  # takes d0's slot
    assert running.slots == 3
    for _ in range(6):
        done.update(running.step())
    assert set(done) == {"a2", "d0", "b0", "c1"} and running.slots == 3 and len(running) == 1
    running.compact_ratio = 0.25
    done.update(running.step())  # two free slots for one live row: compacted
    assert running.slots == 1
    join("f1")
    while running:
        done.update(running.step())
    assert done == {t: alone[int(t[1])][: budget[t]] for t in budget}
