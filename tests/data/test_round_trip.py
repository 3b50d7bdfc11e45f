"""format(gold) → parse → gold, for every registered dataset (real and synthetic)."""

from __future__ import annotations

import random

import pytest

from clinprompt.data.registry import list_datasets, load_splits
from clinprompt.tasks import get_task_type

SAMPLE = 400  # records per split, drawn with a fixed seed (whole splits run for minutes)
SAMPLE_SUM = 30  # ROUGE-L on 1,000-token notes is quadratic

REAL = [s.name for s in list_datasets(synthetic=False) if not s.extra.get("standalone")]
SYNTHETIC = [s.name for s in list_datasets(synthetic=True)]


def _round_trip(name: str, splits: dict) -> None:
    spec = next(s for s in list_datasets() if s.name == name)
    task = get_task_type(spec.task_type)
    for split, records in splits.items():
        size = SAMPLE_SUM if spec.task_type == "sum" or spec.answer_style == "long" else SAMPLE
        sample = random.Random(f"{name}:{split}").sample(records, min(size, len(records)))
        preds = []
        for record in sample:
            parsed = task.parse(task.format_target(record, spec), record, spec)
            assert parsed.ok, f"{name}/{split}/{record['id']}: gold target did not parse"
            preds.append(parsed.prediction)
        metrics = task.score(sample, preds, spec)
        primary = task.primary_metric(spec)
        assert metrics[primary] == pytest.approx(1.0), (
            f"{name}/{split}: {primary}={metrics[primary]}"
        )
        assert metrics.get("unparseable", 0) == 0


@pytest.mark.parametrize("name", SYNTHETIC)
def test_round_trip_synthetic(name):
    _round_trip(name, load_splits(name))


@pytest.mark.data
@pytest.mark.parametrize("name", REAL)
def test_round_trip_real(name, shared_data_root):
    _round_trip(name, load_splits(name, shared_data_root))
