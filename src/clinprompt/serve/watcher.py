"""The task table of a bank, kept current: reloaded on demand or when ``bank.json`` changes.

A reload builds a new :class:`~clinprompt.serve.runtime.TaskTable` and swaps it in with one
reference assignment, so an admission sees the old table or the new one, whole; items already
queued keep the task runtime (prompt included) they were admitted with. The prompt KV caches follow
the table: each task's instruction is declared as its cached prefix, and the entries of prompts no
longer served are dropped. A bank that fails to load leaves the previous table serving.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from clinprompt.backbone import Backbone
from clinprompt.decoding import PromptKVCache
from clinprompt.prompts.bank import PromptBank
from clinprompt.serve.logs import log_event
from clinprompt.serve.runtime import TaskTable, load_task_table

__all__ = ["BankWatcher"]


class BankWatcher:
    """Loads a bank into a :class:`TaskTable` and reloads it when asked or when it changes.

    Args:
        bank_path: the bank directory.
        backbone: the served backbone (the bank's fingerprint must match; prompts go to its
            device and dtype).
        prompt_cache: the prompt KV caches kept in step with the table.

    Raises:
        BankError, ValueError, OSError: the bank cannot be loaded at construction.
    """

    def __init__(
        self, bank_path: str | Path, backbone: Backbone, prompt_cache: PromptKVCache
    ) -> None:
        self.bank_path = Path(bank_path)
        self.backbone = backbone
        self.prompt_cache = prompt_cache
        self.reloads = 0
        self._lock = threading.Lock()
        self._mtime = 0  # of bank.json when it was last read (or found broken)
        self.table = self._load(0)

    def _load(self, version: int) -> TaskTable:
        bank = PromptBank.load(self.bank_path, expect=self.backbone.fingerprint)
        self._mtime = self.bank_mtime()
        table = load_task_table(
            bank, self.backbone.tokenizer, self.backbone.device, self.backbone.dtype, version
        )
        for rt in table.tasks.values():  # every request of a task starts with its instruction
            self.prompt_cache.set_prefix(rt.key, rt.head_ids)
        return table

    def bank_mtime(self) -> int:
        """The modification time of ``bank.json`` in ns (0 when it is missing)."""
        try:
            return (self.bank_path / "bank.json").stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def reload(self, trigger: str = "api") -> dict[str, list[str]]:
        """Re-read the bank and swap the new table in; the outcome is logged either way.

        Args:
            trigger: what asked for it (``api`` or ``watch``), for the log.

        Returns:
            ``{"tasks": [...], "added": [...], "removed": [...], "changed": [...]}``.

        Raises:
            BankError, ValueError, OSError: the bank cannot be loaded (the table is kept).
        """
        with self._lock:
            old = self.table
            try:
                new = self._load(old.version + 1)
            except Exception as err:
                log_event(
                    logging.WARNING,
                    "reload_failed",
                    f"bank reload failed, still serving the previous tasks: {err}",
                    trigger=trigger,
                    bank=str(self.bank_path),
                    file=str(getattr(err, "filename", None) or self.bank_path / "bank.json"),
                    error=str(err),
                    version=old.version,
                )
                raise
            self.table = new  # one reference swap: admissions see the old or the new table, whole
            self.prompt_cache.invalidate(keep={rt.key for rt in new.tasks.values()})
            self.reloads += 1
        changed = [n for n in new.tasks if n in old.tasks and new.tasks[n].key != old.tasks[n].key]
        summary = {
            "tasks": new.names(),
            "added": [n for n in new.tasks if n not in old.tasks],
            "removed": [n for n in old.tasks if n not in new.tasks],
            "changed": changed,
        }
        log_event(
            logging.INFO,
            "reload",
            f"bank reloaded ({trigger}): version {new.version}, {len(new.tasks)} tasks",
            trigger=trigger,
            bank=str(self.bank_path),
            version=new.version,
            **summary,
        )
        return summary

    def poll(self) -> dict[str, Any] | None:
        """Reload when ``bank.json`` changed since it was last read; the reload's summary, or None.

        A bank that fails to load is logged once (not at every poll) and the table is kept.
        """
        mtime = self.bank_mtime()
        if mtime == self._mtime:
            return None
        self._mtime = mtime  # a broken bank is reported once, not at every poll
        try:
            return self.reload(trigger="watch")
        except Exception:  # a half-edited bank (logged by reload): keep serving the old table
            return None

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Poll every ``interval_s`` seconds until ``stop`` is set (the watcher thread)."""
        while not stop.wait(interval_s):
            self.poll()
