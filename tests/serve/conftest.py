"""A small bank on the tiny backbone, a test-only task type, and an engine serving them."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.tasks.base import (
    Parsed,
    Problem,
    TaskType,
    register_task_type,
    unregister_task_type,
)
from clinprompt.tasks.spec import TaskSpec

P = 4


class EchoTask(TaskType):
    """Test-only task type: input ``text``; the answer is the generated text; labels → candidates."""

    name = "echo"
    default_instruction = "Repeat the text."

    def validate(self, record: dict[str, Any], spec: TaskSpec | None = None) -> list[Problem]:
        return []

    def format_input(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return record["text"]

    def format_target(self, record: dict[str, Any], spec: TaskSpec) -> str:
        return record["answer"]

    def parse(self, text: str, record: dict[str, Any], spec: TaskSpec) -> Parsed:
        return Parsed({**record, "answer": text}, True)

    def score(self, golds, preds, spec):  # pragma: no cover - unused
        return {}

    def candidates(self, record: dict[str, Any], spec: TaskSpec) -> list[str] | None:
        return list(spec.labels) or None


@pytest.fixture(autouse=True)
def echo_task_type():
    """The test-only ``echo`` type, registered for each serving test and removed after it."""
    register_task_type(EchoTask())
    yield
    unregister_task_type("echo")


def make_bank(path, tiny, seed: int = 0) -> PromptBank:  # tiny: any Backbone
    """Three tasks: two factor tasks on P* (one free-text, one with labels) and a single prompt."""
    gen = torch.Generator().manual_seed(seed)
    d = tiny.hidden_size
    bank = PromptBank.create(
        path, tiny.fingerprint, prompt_tokens=P, rank=1, shared=torch.randn(P, d, generator=gen)
    )
    bank.add_factors(
        TaskEntry("notes", "echo", "factors"),
        torch.randn(P, 1, generator=gen),
        torch.randn(1, d, generator=gen),
    )
    bank.add_factors(
        TaskEntry("triage", "echo", "factors", labels=["urgent", "routine"]),
        torch.randn(P, 1, generator=gen),
        torch.randn(1, d, generator=gen),
    )
    bank.add_prompt(TaskEntry("teacher", "echo", "prompt"), torch.randn(P, d, generator=gen))
    return bank


@pytest.fixture(scope="session")
def lively():
    """The tiny backbone with a larger init scale: greedy outputs vary from token to token."""
    from clinprompt.backbone import tiny_backbone

    return tiny_backbone(seed=0, device="cpu", initializer_range=0.2)


@pytest.fixture()
def bank(tmp_path, lively):
    return make_bank(tmp_path / "bank", lively)
