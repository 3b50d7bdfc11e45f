"""Atomic writes: a failure leaves the previous artifact intact and no temporary files."""

from __future__ import annotations

import pytest
import torch

from clinprompt.artifacts import atomic_dir, load_tensors, read_json, save_tensors, write_json


def test_write_json_and_tensors_round_trip(tmp_path):
    write_json(tmp_path / "a.json", {"x": 1, "p": tmp_path})
    assert read_json(tmp_path / "a.json")["x"] == 1
    save_tensors(tmp_path / "t.safetensors", {"w": torch.arange(6.0).view(2, 3)})
    assert torch.equal(load_tensors(tmp_path / "t.safetensors")["w"], torch.arange(6.0).view(2, 3))


def test_atomic_dir_keeps_old_on_failure(tmp_path):
    target = tmp_path / "bank"
    with atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "f.txt").write_text("v2")
        raise RuntimeError("crash mid-write")
    assert (target / "f.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]


def test_read_json_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "a": 1,\n  oops\n}')
    with pytest.raises(ValueError, match=r"bad.json:3: invalid JSON"):
        read_json(bad)
