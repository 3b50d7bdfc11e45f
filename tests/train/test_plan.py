"""The target × setting plan shared by adaptation and the baselines; setting names."""

from __future__ import annotations

import pytest

from clinprompt.config import load_config
from clinprompt.train.data import sample
from clinprompt.train.plan import (
    adapt_settings,
    k_of,
    plan_targets,
    setting_name,
    sort_settings,
    task_name,
)


def test_setting_names_round_trip_and_sort():
    assert [setting_name(k) for k in (None, 16, 0)] == ["full", "k16", "k0"]
    assert [k_of(s) for s in ("full", "k16", "k0")] == [None, 16, 0]
    with pytest.raises(ValueError, match="expected full or k<N>"):
        k_of("few")
    assert sort_settings({"full", "k64", "k0", "k8", "k16"}) == ["k0", "k8", "k16", "k64", "full"]
    assert task_name("t", "full") == "t" and task_name("t", "k16") == "t.k16"


def test_adapt_settings_follow_modes_and_shots():
    args = load_config("smoke", ["adapt.modes=[zero,full,kshot]", "adapt.shots=[4,8]"])
    assert adapt_settings(args.adapt) == [("full", None), ("k4", 4), ("k8", 8), ("k0", 0)]
    only = load_config("smoke", ["adapt.modes=[kshot]", "adapt.shots=[4]"])
    assert adapt_settings(only.adapt) == [("k4", 4)]


@pytest.mark.parametrize("zero_shot", ["mean", "closest"])
def test_plan_records_budgets_names_and_zero_shot_source(tiny, zero_shot):
    args = load_config(
        "smoke",
        [
            "data.sources=[syn_med_ner,syn_ade_re]",
            "data.targets=[syn_vitals_ner,syn_dose_re]",
            "adapt.shots=[4]",
            "adapt.train={steps: 6}",
            "adapt.kshot_train={steps: 3}",
            f"adapt.zero_shot={zero_shot}",
        ],
    )
    plans = list(plan_targets(args, tiny))
    assert [p.name for p in plans] == ["syn_vitals_ner", "syn_dose_re"]
    ner = plans[0]
    full, kshot, zero = ner.settings
    assert [s.name for s in ner.settings] == ["full", "k4", "k0"]
    assert [s.task for s in ner.settings] == [
        "syn_vitals_ner",
        "syn_vitals_ner.k4",
        "syn_vitals_ner.k0",
    ]
    assert full.records == ner.task.train and full.train.steps == 6
    assert kshot.records == sample(ner.task.train, 4, args.data.seed) and len(kshot.records) == 4
    assert kshot.train.steps == 3  # adapt.kshot_train on top of adapt.train
    assert zero.zero_shot and zero.records == [] and not full.zero_shot
    assert len(ner.dev_set) == len(ner.task.dev) and len(ner.encode(kshot.records)) == 4
    # The bank entry's meta names the shots of k-shot settings only.
    assert full.entry_meta("mpt") == {"method": "mpt", "setting": "full"}
    meta = kshot.entry_meta("pt")
    assert meta["shots"] == 4 and meta["shots_split"] == ner.task.pool_split
    assert meta["shot_ids"] == [r.get("id") for r in kshot.records]
    expected = {"mean": [None, None], "closest": ["syn_med_ner", "syn_ade_re"]}[zero_shot]
    assert [p.zero_shot_source for p in plans] == expected  # the source of the same task type
