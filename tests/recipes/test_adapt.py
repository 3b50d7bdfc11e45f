"""Stage 3 on the tiny model: full, k-shot and zero-shot targets added to the serving bank."""

from __future__ import annotations

import math

import pytest
import torch

from clinprompt.artifacts import read_json
from clinprompt.config import load_config
from clinprompt.prompts.bank import PromptBank
from clinprompt.recipes.adapt import AdaptError, adapt
from clinprompt.recipes.distill import distill
from clinprompt.recipes.teachers import train_teachers

OVERRIDES = [
    "data.sources=[syn_med_ner,syn_ade_re]",
    "data.targets=[syn_vitals_ner]",
    "train.steps=2",
    "adapt.shots=[4]",
    "adapt.train={steps: 6}",
    "adapt.zero_shot=closest",
]


@pytest.fixture(scope="module")
def adapted(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("adapt")
    args = load_config("smoke", [f"output_dir={path}", *OVERRIDES])
    train_teachers(args, backbone=tiny)
    distill(args, backbone=tiny)
    return args, adapt(args, backbone=tiny)


def test_targets_in_the_serving_bank(tiny, adapted):
    args, result = adapted
    bank = PromptBank.load(result.bank, expect=tiny.fingerprint)
    # The sources' factors are copied from the distilled bank, on the same P*.
    distilled = PromptBank.load(args.run_dir / "distill" / "bank")
    assert torch.equal(bank.shared(), distilled.shared())
    assert torch.equal(bank.task_prompt("syn_med_ner"), distilled.task_prompt("syn_med_ner"))
    full, kshot, zero = (
        bank.entry("syn_vitals_ner"),
        bank.entry("syn_vitals_ner.k4"),
        bank.entry("syn_vitals_ner.k0"),
    )
    assert (
        full.own_shared and kshot.own_shared and not zero.own_shared
    )  # P* was trained for full and k-shot
    assert (
        kshot.meta["shots"] == 4
        and len(kshot.meta["shot_ids"]) == 4
        and kshot.meta["shots_split"] == "train"
    )
    assert (
        zero.meta["zero_shot"] == "factors of the closest source syn_med_ner"
    )  # the only NER source
    src = bank.task_tensors("syn_med_ner")
    assert torch.equal(bank.task_tensors("syn_vitals_ner.k0")["u"], src["u"])
    assert [(r.method, r.setting, r.task) for r in result.artifacts] == [
        ("mpt", "full", "syn_vitals_ner"),
        ("mpt", "k4", "syn_vitals_ner.k4"),
        ("mpt", "k0", "syn_vitals_ner.k0"),
    ]
    run = read_json(args.run_dir / "adapt" / "runs" / "syn_vitals_ner" / "full" / "result.json")
    assert all(math.isfinite(x) for x in run["losses"]) and run["losses"][-1] < run["losses"][0]
    assert (
        read_json(args.run_dir / "adapt" / "runs" / "syn_vitals_ner" / "k4" / "result.json")[
            "steps"
        ]
        == 2
    )  # kshot_train


def test_rerun_skips_and_frozen_shared(tiny, adapted, tmp_path):
    args, first = adapted
    before = (args.run_dir / "bank" / "bank.json").read_text()
    again = adapt(args, backbone=tiny)
    assert (
        again.artifacts == first.artifacts
        and (args.run_dir / "bank" / "bank.json").read_text() == before
    )


def _adapt_again(tiny, adapted, out, *overrides: str) -> PromptBank:
    """The fixture's distilled bank adapted again into ``out`` with ``overrides``."""
    import shutil

    args, _ = adapted
    shutil.copytree(args.run_dir / "distill", out / "distill")
    again = load_config("smoke", [f"output_dir={out}", *OVERRIDES, *overrides])
    return PromptBank.load(adapt(again, backbone=tiny).bank)


def test_factors_only_on_the_shared_prompt(tiny, adapted, tmp_path):
    bank = _adapt_again(
        tiny,
        adapted,
        tmp_path,
        "adapt.train_shared=false",
        "adapt.modes=[full]",
        "adapt.factor_init=ones",
    )
    assert not bank.entry("syn_vitals_ner").own_shared and set(
        bank.task_tensors("syn_vitals_ner")
    ) == {"u", "v"}


def test_factors_start_from_the_closest_source(tiny, adapted, tmp_path):
    bank = _adapt_again(
        tiny,
        adapted,
        tmp_path,
        "adapt.modes=[full]",
        "adapt.factor_init=closest",
        "adapt.train={steps: 1, lr: 1.0e-9}",  # one Adam step moves each entry by ~1e-9
    )
    entry, start = bank.entry("syn_vitals_ner"), bank.task_tensors("syn_med_ner")
    got = bank.task_tensors("syn_vitals_ner")
    mean_u = torch.stack([bank.task_tensors(s)["u"] for s in ("syn_med_ner", "syn_ade_re")]).mean(0)
    assert entry.meta["start"] == "factors of the closest source syn_med_ner"  # the NER source
    assert torch.allclose(got["u"], start["u"], atol=1e-6)
    assert torch.allclose(got["v"], start["v"], atol=1e-6)
    assert not torch.allclose(got["u"], mean_u, atol=1e-3)  # not the mean's start


def test_refuses_without_a_distilled_bank(tiny, tmp_path):
    with pytest.raises(AdaptError, match="run `clinprompt distill`"):
        adapt(load_config("smoke", [f"output_dir={tmp_path}", *OVERRIDES]), backbone=tiny)
