"""The bank watcher on its own: a changed bank swaps in a new table (prompt caches following), a
broken one leaves the previous table serving and is reported once."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from clinprompt.decoding import PromptKVCache
from clinprompt.prompts.bank import TaskEntry
from clinprompt.serve.watcher import BankWatcher


class _Clock:
    """Gives bank.json a new mtime after each write: two writes within one tick of the file
    system's clock can share one, and the watcher would then rightly see no change."""

    def __init__(self, bank_json) -> None:
        self.path, self.ns = bank_json, bank_json.stat().st_mtime_ns

    def tick(self) -> None:
        self.ns += 10**9
        os.utime(self.path, ns=(self.ns, self.ns))


def test_a_changed_bank_is_swapped_in_and_the_prompt_caches_follow(lively, bank):
    cache = PromptKVCache(lively.model)
    watcher = BankWatcher(bank.path, lively, cache)
    clock = _Clock(bank.path / "bank.json")
    first = watcher.table
    assert watcher.poll() is None and watcher.table is first  # unchanged: nothing reloaded
    notes = first.tasks["notes"]
    assert cache.prefix(notes.key) == tuple(notes.head_ids)  # the instruction is cached too
    teacher = first.tasks["teacher"]
    cache.get(teacher.key, teacher.prompt)
    cache.get(notes.key, notes.prompt)
    bank.add_prompt(TaskEntry("late", "echo", "prompt"), torch.randn(4, 64))
    bank.add_prompt(TaskEntry("teacher", "echo", "prompt"), torch.randn(4, 64), replace=True)
    clock.tick()
    summary = watcher.poll()
    assert summary == {
        "tasks": ["notes", "triage", "teacher", "late"],
        "added": ["late"],
        "removed": [],
        "changed": ["teacher"],
    }
    table = watcher.table
    assert table is not first and table.version == 1 and watcher.reloads == 1
    assert first.names() == ["notes", "triage", "teacher"]  # the old table is left whole
    assert table.tasks["teacher"].key != teacher.key
    assert cache.keys() == [notes.key]  # the replaced prompt's cache is dropped
    late = table.tasks["late"]
    assert cache.prefix(late.key) == tuple(late.head_ids)
    assert watcher.poll() is None and watcher.table is table


def test_a_broken_bank_keeps_the_table_and_is_reported_once(lively, bank, caplog):
    watcher = BankWatcher(bank.path, lively, PromptKVCache(lively.model))
    bank_json = bank.path / "bank.json"
    clock = _Clock(bank_json)
    good, good_json = watcher.table, bank_json.read_text()
    bank_json.write_text("{broken")
    clock.tick()
    with caplog.at_level(logging.WARNING, logger="clinprompt.serve"):
        assert watcher.poll() is None
        assert watcher.poll() is None  # the same broken file: not retried, not re-reported
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "still serving the previous tasks" in warnings[0]
    assert watcher.table is good and watcher.reloads == 0
    with pytest.raises(ValueError):  # an explicit reload says why (the app answers 422)
        watcher.reload()
    assert watcher.table is good
    bank_json.write_text(good_json)  # repaired
    clock.tick()
    assert watcher.poll()["tasks"] == ["notes", "triage", "teacher"]
    assert watcher.table is not good and watcher.table.version == good.version + 1
