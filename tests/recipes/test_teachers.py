"""Stage 1 on the tiny model: one prompt per source into a bank; shards; finished tasks skipped."""

from __future__ import annotations

import math

import pytest

from clinprompt.artifacts import read_json
from clinprompt.config import load_config
from clinprompt.prompts.bank import PromptBank
from clinprompt.recipes.teachers import parse_shard, train_teachers

SOURCES = "data.sources=[syn_med_ner,syn_ade_re]"


def _args(tmp_path, *extra):
    return load_config(
        "smoke",
        [
            f"output_dir={tmp_path}",
            SOURCES,
            "data.targets=[syn_vitals_ner]",
            "train.steps=6",
            *extra,
        ],
    )


def test_teachers_bank_and_falling_loss(tiny, tmp_path):
    args = _args(tmp_path)
    result = train_teachers(args, backbone=tiny)
    assert result.trained == ["syn_med_ner", "syn_ade_re"] and result.complete
    bank = PromptBank.load(tmp_path / "teachers" / "bank", expect=tiny.fingerprint)
    assert bank.names() == ["syn_med_ner", "syn_ade_re"]
    for name in bank.names():
        entry = bank.entry(name)
        assert entry.kind == "prompt" and entry.meta["method"] == "teacher" and entry.instruction
        assert tuple(bank.task_prompt(name).shape) == (args.prompt.tokens, tiny.hidden_size)
        run = read_json(tmp_path / "teachers" / "runs" / name / "result.json")
        assert all(math.isfinite(x) for x in run["losses"]) and run["losses"][-1] < run["losses"][0]
    assert (tmp_path / "teachers" / "DONE.json").exists() and (
        tmp_path / "teachers" / "config.json"
    ).exists()
    again = train_teachers(args, backbone=tiny)
    assert again.trained == [] and again.skipped == ["syn_med_ner", "syn_ade_re"]


def test_shards_share_one_bank(tiny, tmp_path):
    # prompt.init=text: each teacher starts from its instruction's token embeddings.
    args = _args(tmp_path, "train.steps=2", "prompt.init=text")
    first = train_teachers(args, shard=(1, 2), backbone=tiny)
    assert first.trained == ["syn_ade_re"] and first.missing == ["syn_med_ner"]
    assert not (tmp_path / "teachers" / "DONE.json").exists()
    second = train_teachers(args, shard=(0, 2), backbone=tiny)
    assert second.trained == ["syn_med_ner"] and second.complete
    assert set(PromptBank.load(tmp_path / "teachers" / "bank").names()) == {
        "syn_med_ner",
        "syn_ade_re",
    }


def test_parse_shard():
    assert parse_shard("1/4") == (1, 4) and parse_shard(None) is None
    for bad in ("4/4", "x", "1-2"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
