"""Stage 1 — teachers: one soft prompt per source task, collected into a prompt bank.

``clinprompt teachers CONFIG [key=value ...] [--shard i/n]``

Reads top to bottom: setup (suite, backbone, this shard's tasks) → train each unfinished task
with the one loop → collect every finished task into ``RUN/teachers/bank``. A task whose run has
``result.json`` is finished and skipped on restart; an interrupted task resumes from its
checkpoint. With ``--shard i/n`` a machine takes every n-th source starting at i (all shards
share the run directory); collection into the bank happens under a lock, so shards can finish
in any order, and the stage is done once every source is in the bank.
"""

from __future__ import annotations

import contextlib
import os
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from clinprompt.artifacts import load_tensors
from clinprompt.backbone import Backbone
from clinprompt.config import ExperimentArgs, save_config
from clinprompt.data.registry import get_dataset
from clinprompt.prompts import SoftPrompt
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.train import PromptObjective, train
from clinprompt.train.data import encode_records, instruction_of, load_task, suite_tasks
from clinprompt.train.workspace import RunLayout, is_main, load_run_backbone, wait

__all__ = ["TeachersResult", "collect_teachers", "parse_shard", "train_teachers"]


@dataclass
class TeachersResult:
    """The teachers bank and what this call did."""

    bank: Path
    trained: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # sources not in the bank yet (other shards)

    @property
    def complete(self) -> bool:
        return not self.missing


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"i/n"`` → (i, n) with 0 <= i < n; None → None."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError as err:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4 (shard 0 of 4)") from err
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def train_teachers(
    args: ExperimentArgs, shard: tuple[int, int] | None = None, backbone: Backbone | None = None
) -> TeachersResult:
    """Train the teacher prompts of this shard's source tasks, then collect finished ones into the bank."""
    # ---- setup
    layout = RunLayout(args.run_dir)
    suite, sources, _ = suite_tasks(args.data)
    mine = sources[shard[0] :: shard[1]] if shard else sources
    backbone = backbone or load_run_backbone(args.backbone)
    tokenizer, model = backbone.tokenizer, backbone.model
    targs = args.stage_train(args.teachers.train)
    if is_main():
        save_config(args, layout.teachers_bank.parent / "config.json")
    result = TeachersResult(layout.teachers_bank)

    # ---- train each unfinished task
    for name in mine:
        out = layout.teacher_run(name)
        if (out / "result.json").exists():
            result.skipped.append(name)
            continue
        task = load_task(name, args.data, suite.cap(name), suite)
        train_set = encode_records(task.train, task.spec, tokenizer, args.data)
        dev_set = encode_records(task.dev, task.spec, tokenizer, args.data)
        text = args.prompt.init_text or instruction_of(task.spec)
        prompt = SoftPrompt.create(
            args.prompt.tokens,
            model.get_input_embeddings().weight,
            method=args.prompt.init,
            text_ids=tokenizer(text, add_special_tokens=False)["input_ids"],
            seed=targs.seed
            + zlib.crc32(name.encode()),  # a different start per task, fixed by the seed
        ).to(backbone.device)
        train(
            PromptObjective(model, prompt),
            train_set,
            targs,
            out,
            pad_id=tokenizer.pad_token_id,
            dev_set=dev_set,
            desc=f"teacher {name}",
        )
        result.trained.append(name)

    # ---- collect into the bank
    result.missing = collect_teachers(args, backbone)
    if result.complete:
        layout.mark_done("teachers", {"bank": str(layout.teachers_bank), "sources": sources})
    return result


def collect_teachers(args: ExperimentArgs, backbone: Backbone) -> list[str]:
    """Add every finished teacher run to the teachers bank; return the sources still missing."""
    layout = RunLayout(args.run_dir)
    _, sources, _ = suite_tasks(args.data)
    if is_main():
        with _lock(layout.teachers_bank.parent / ".bank.lock"):
            if (layout.teachers_bank / "bank.json").exists():
                bank = PromptBank.load(layout.teachers_bank, expect=backbone.fingerprint)
            else:
                bank = PromptBank.create(
                    layout.teachers_bank, backbone.fingerprint, args.prompt.tokens
                )
            for name in sources:
                run = layout.teacher_run(name)
                if name in bank.tasks or not (run / "result.json").exists():
                    continue
                spec = get_dataset(name)
                entry = TaskEntry(
                    name=name,
                    task_type=spec.task_type,
                    kind="prompt",
                    labels=list(spec.labels),
                    instruction=instruction_of(spec),
                    dataset=name,
                    meta={"method": "teacher", "run": str(run)},
                    spec=spec.task_spec(),
                )
                bank.add_prompt(entry, load_tensors(run / "final.safetensors")["prompt.weight"])
    wait()
    bank = PromptBank.load(layout.teachers_bank)
    return [s for s in sources if s not in bank.tasks]


@contextlib.contextmanager
def _lock(path: Path, timeout_s: float = 600.0) -> Iterator[None]:
    """An exclusive lock file (shards on several machines share the run directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(
                    f"{path} is held by another process for over {timeout_s:.0f} s; remove it if no shard is running"
                ) from None
            time.sleep(0.2)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)
