"""Stage 2 on the tiny model: P* + factors from the teachers; refusals before any compute."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from clinprompt.artifacts import read_json
from clinprompt.backbone import tiny_backbone
from clinprompt.config import load_config
from clinprompt.prompts.bank import PromptBank, TaskEntry
from clinprompt.recipes import distill as distill_module
from clinprompt.recipes.distill import DistillError, distill
from clinprompt.recipes.teachers import train_teachers
from clinprompt.train import lr_at

OVERRIDES = [
    "data.sources=[syn_med_ner,syn_ade_re]",
    "data.targets=[syn_vitals_ner]",
    "train.steps=2",
]


def _args(path, *extra):
    return load_config("smoke", [f"output_dir={path}", *OVERRIDES, *extra])


@pytest.fixture(scope="module")
def teachers_dir(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("teachers")
    assert train_teachers(_args(path), backbone=tiny).complete
    return path


def _copy(teachers_dir, tmp_path):
    shutil.copytree(teachers_dir, tmp_path / "run")
    return tmp_path / "run"


def test_distill_bank_from_teachers(tiny, teachers_dir, tmp_path):
    run = _copy(teachers_dir, tmp_path)
    # 16 steps: over 8, the tiny random model's distillation loss is still noise.
    args = _args(run, "distill.train={steps: 16, eval_every: 4}")
    result = distill(args, backbone=tiny)
    bank = PromptBank.load(result.bank, expect=tiny.fingerprint)
    assert bank.names() == ["syn_med_ner", "syn_ade_re"] and bank.header["has_shared"]
    assert all(
        bank.entry(n).kind == "factors" and not bank.entry(n).own_shared for n in bank.names()
    )
    teachers = PromptBank.load(run / "teachers" / "bank")
    mean = torch.stack([teachers.task_prompt(n) for n in bank.names()]).mean(0)
    assert not torch.equal(bank.shared(), mean)  # P* started at the teachers' mean and moved
    # ...by at most the sum of Adam's step sizes (|update| <= lr per step): it started there.
    lr_sum = sum(lr_at(s, args.stage_train(args.distill.train)) for s in range(16))
    assert (bank.shared() - mean).abs().max() <= 1.1 * lr_sum
    losses = result.train.losses
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]
    rows = [
        r
        for r in map(
            json.loads, (run / "distill" / "run" / "metrics.jsonl").read_text().splitlines()
        )
        if "kl" in r
    ]
    assert rows and all({"lm", "kl", "mse"} <= set(r) for r in rows)
    assert read_json(run / "distill" / "DONE.json")["sources"] == ["syn_med_ner", "syn_ade_re"]
    assert distill(args, backbone=tiny).train is None  # finished: skipped


def test_teacher_cache_is_built_once_and_reused(tiny, teachers_dir, tmp_path):
    run = _copy(teachers_dir, tmp_path)
    args = _args(
        run,
        "distill.teacher_cache=true",
        "distill.cache_top_k=8",
        "distill.terms=[logits,hidden]",
        "distill.train={steps: 3}",
    )
    distill(args, backbone=tiny)
    cache = run / "distill" / "teacher_cache.safetensors"
    assert cache.exists() and read_json(cache.with_suffix(".json"))["top_k"] == 8


def test_refuses_a_missing_teacher(tiny, tmp_path):
    args = _args(tmp_path / "run")
    train_teachers(args, shard=(0, 2), backbone=tiny)  # syn_med_ner only
    with pytest.raises(DistillError, match=r"no teacher for \['syn_ade_re'\]"):
        distill(args, backbone=tiny)
    assert not (tmp_path / "run" / "distill" / "run").exists()


def test_refuses_teachers_of_another_backbone(tiny, tmp_path):
    other = tiny_backbone(seed=1)
    args = _args(tmp_path / "run")
    bank = PromptBank.create(
        tmp_path / "run" / "teachers" / "bank", other.fingerprint, args.prompt.tokens
    )
    for name in ("syn_med_ner", "syn_ade_re"):
        bank.add_prompt(
            TaskEntry(name=name, task_type="ner", kind="prompt"),
            torch.zeros(args.prompt.tokens, other.hidden_size),
        )
    with pytest.raises(DistillError, match="trained on backbone"):
        distill(args, backbone=tiny)
    assert not (tmp_path / "run" / "distill" / "run").exists()


def test_refuses_a_target_that_is_a_source(tiny, tmp_path, monkeypatch):
    # Suites already refuse this overlap; distillation checks again for suites built in code.
    real = distill_module.suite_tasks
    monkeypatch.setattr(
        distill_module,
        "suite_tasks",
        lambda data: (real(data)[0], ["syn_med_ner", "syn_ade_re"], ["syn_ade_re"]),
    )
    with pytest.raises(DistillError, match=r"\['syn_ade_re'\] are both source and target"):
        distill(_args(tmp_path / "run"), backbone=tiny)
