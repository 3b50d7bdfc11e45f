"""The target × setting × seed plan shared by adaptation and the baselines; setting names,
k-shot budgets and the learning-rate search's plan."""

from __future__ import annotations

import pytest

from clinprompt.config import load_config
from clinprompt.train.data import sample
from clinprompt.train.plan import (
    PlanError,
    adapt_settings,
    k_of,
    kshot_steps,
    plan_targets,
    seeded,
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


def test_seeds_kshot_epochs_and_search_plan(tiny):
    args = load_config(
        "smoke",
        [
            "data.sources=[syn_med_ner]",
            "data.targets=[syn_vitals_ner]",
            "adapt.shots=[4]",
            "adapt.seeds=[0, 2]",
            "adapt.kshot_epochs=3",
            "adapt.train={steps: 6, batch_size: 4}",
            "adapt.kshot_train={steps: 99}",
            "train.seed=10",
        ],
    )
    (plan,) = plan_targets(args, tiny)
    names = [(s.name, s.seed, s.task, s.label) for s in plan.settings]
    assert names == [
        ("full", 0, "syn_vitals_ner", "full"),
        ("full", 2, "syn_vitals_ner.s2", "full.s2"),
        ("k4", 0, "syn_vitals_ner.k4", "k4"),
        ("k4", 2, "syn_vitals_ner.k4.s2", "k4.s2"),
        ("k0", 0, "syn_vitals_ner.k0", "k0"),  # zero-shot is deterministic: once
    ]
    full0, full2, k0, k2, zero = plan.settings
    # The seed offsets the training seed (data order, init) and the k-shot draw.
    assert [s.train.seed for s in plan.settings] == [10, 12, 10, 12, 10]
    assert full0.records == full2.records == plan.task.train
    assert k0.records == sample(plan.task.train, 4, args.data.seed)
    assert k2.records == sample(plan.task.train, 4, args.data.seed + 2)
    assert len(k0.records) == len(k2.records) == 4 and k0.records != k2.records
    # kshot_epochs wins over kshot_train's steps: ceil(4 x 3 / 4) = 3 steps, three epochs.
    assert k0.train.steps == kshot_steps(4, 3, 4) == 3
    assert k0.training() == {"train_examples": 4, "train_steps": 3, "epochs": 3.0}
    assert k0.training(steps=2)["epochs"] == 2.0  # what an early-stopped run trained
    assert full0.training() == {
        "train_examples": len(plan.task.train),
        "train_steps": 6,
        "epochs": round(6 * 4 / len(plan.task.train), 4),
    }
    assert zero.training() == {"train_examples": 0, "train_steps": 0, "epochs": 0.0}
    assert kshot_steps(16, 10, 8) == 20 and kshot_steps(5, 1, 4) == 2
    # The learning-rate search trains the full pool at seed 0 with the full budget.
    assert plan.lr_search.records == full0.records and plan.lr_search.train == full0.train
    short = next(
        plan_targets(
            load_config("smoke", ["data.targets=[syn_vitals_ner]", "adapt.lr_search_steps=2"]),
            tiny,
        )
    )
    # adapt.lr_search_steps pauses the candidates; their plan stays the seed-0 full plan.
    assert short.lr_search.train == short.settings[0].train and short.lr_search.train.steps != 2


def test_kshot_needs_k_examples(tiny):
    args = load_config(
        "smoke", ["data.targets=[syn_vitals_ner]", "adapt.shots=[25]", "data.max_train_examples=20"]
    )
    with pytest.raises(PlanError, match=r"has \d+ training examples.*a 25-shot run needs 25"):
        list(plan_targets(args, tiny))


def test_seeded_names():
    assert seeded("k16", 0) == "k16" and seeded("k16", 3) == "k16.s3"
    assert task_name("t", "full", 1) == "t.s1" and task_name("t", "k16", 2) == "t.k16.s2"


def test_kshot_seeds_apply_to_the_kshot_settings_only():
    from clinprompt.config import AdaptArgs
    from clinprompt.train.plan import _seeds

    a = AdaptArgs(seeds=[0, 1, 2], kshot_seeds=[0])
    assert _seeds(a, None) == [0, 1, 2] and _seeds(a, 16) == [0] and _seeds(a, 0) == [0]
    assert _seeds(AdaptArgs(seeds=[0, 1]), 16) == [0, 1]


def test_kshot_seeds_are_validated():
    import pytest

    from clinprompt.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="adapt.kshot_seeds"):
        load_config("smoke", ["adapt.kshot_seeds=[1,1]"])


def test_max_empty_fraction_reaches_every_setting_of_the_target(tiny, monkeypatch):
    """adapt.max_empty_fraction caps the target's pool for full, k-shot and the search alike."""
    from clinprompt.train import data as train_data

    def ner(i, empty):
        if empty:
            return {"id": f"e{i}", "text": f"Slept well on day {i}.", "entities": []}
        entity = {"start": 8, "end": 15, "type": "Drug", "text": "aspirin"}
        return {"id": f"f{i}", "text": f"Started aspirin on day {i}.", "entities": [entity]}

    train = [ner(i, empty=i % 4 != 0) for i in range(40)]  # 10 with an entity, 30 without
    dev = [ner(100 + i, empty=i % 2 == 0) for i in range(6)]
    monkeypatch.setattr(
        train_data, "load_splits", lambda spec, root=None: {"train": train, "dev": dev}
    )
    overrides = [
        "data.targets=[syn_vitals_ner]",
        "data.max_train_examples=null",
        "adapt.shots=[4]",
        "adapt.modes=[full, kshot]",
    ]
    (natural,) = plan_targets(load_config("smoke", overrides), tiny)
    (capped,) = plan_targets(
        load_config("smoke", [*overrides, "adapt.max_empty_fraction=0.5"]), tiny
    )
    assert sum(not r["entities"] for r in natural.task.train) == 30
    # 10 with an entity + at most 10 empty ones
    assert sum(not r["entities"] for r in capped.task.train) == 10
    assert len(capped.task.train) == 20 and capped.task.dev == natural.task.dev
    for setting in capped.settings:
        assert set(map(str, setting.records)) <= set(map(str, capped.task.train))
    assert capped.lr_search.records == capped.task.train
