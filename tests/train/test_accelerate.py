"""Data parallel through ``accelerate launch --num_processes 2`` on the CPU: the same update as one process.

accelerate 1.15's ``--cpu`` launcher starts a single process unless MPI is set up, so the test
uses the torchrun launcher (``--multi_gpu``); without CUDA the processes join a gloo group on
the CPU (``clinprompt.train.workspace.process_state``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clinprompt.artifacts import load_tensors, read_json

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow  # two process launches: ~30 s on 2 cores
def test_two_processes_match_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
    ]
    done = subprocess.run(
        [*launch, str(WORKER), str(tmp_path / "ddp")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr[-3000:]

    assert [read_json(tmp_path / "ddp" / f"process{i}.json")["world"] for i in (0, 1)] == [2, 2]
    ddp, one = (
        read_json(tmp_path / "ddp" / "result.json"),
        read_json(tmp_path / "one" / "result.json"),
    )
    assert ddp["steps"] == one["steps"] == 5 and ddp["tokens"] == one["tokens"]
    torch.testing.assert_close(
        torch.tensor(ddp["losses"]), torch.tensor(one["losses"]), rtol=1e-5, atol=1e-5
    )
    assert (
        abs(ddp["best_metric"] - one["best_metric"]) < 1e-5
    )  # the dev loss is split across processes too
    w_ddp = load_tensors(tmp_path / "ddp" / "final.safetensors")["prompt.weight"]
    w_one = load_tensors(tmp_path / "one" / "final.safetensors")["prompt.weight"]
    torch.testing.assert_close(w_ddp, w_one, rtol=1e-4, atol=1e-5)
