"""The bench scripts' ``--json`` objects: one shape for all, each headline ratio by its name.

The scripts take minutes on the real backbone, so these tests feed their JSON-building functions
hand-made figures and check the shape and the arithmetic of the ratios.
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import pytest
import torch

from clinprompt.precision import DtypeChoice

KEYS = {
    "bench",
    "command",
    "dtype",
    "threads",
    "machine",
    "settings",
    "figures",
    "peer",
    "ratios",
    "notes",
}
FP32_AUTO = {"dtype": "fp32", "requested": "auto", "reason": "CPU probe ... -> fp32"}


def _machine_ok(record: dict) -> None:
    assert set(record) >= KEYS
    machine = record["machine"]
    assert machine["cpu"] and "bf16_cpu_flags" in machine and machine["torch_threads"] >= 1
    json.dumps(record)  # plain JSON all the way down


def test_write_record_writes_one_object(tmp_path):
    from figures import bench_record, ratio, write_record

    record = bench_record("x", "python bench/x.py", FP32_AUTO, {"a": 1}, {"b": 2}, {"r": 1.5})
    write_record(tmp_path / "out" / "x.json", record)
    assert json.loads((tmp_path / "out" / "x.json").read_text()) == record
    _machine_ok(record)
    assert ratio(3.0, 2.0) == 1.5 and ratio(1.0, 0.0) is None and ratio(None, 2.0) is None


def test_train_speed_record_names_its_headline_ratios():
    from train_speed import Method, figures_record

    def method(key, tokens, seconds, side="figures"):
        m = Method(key, key, lambda ids: None, [[0], [1]], "fp32", side)
        m.tokens, m.seconds = tokens, seconds
        return m

    methods = [
        method("pt", 1000, 10.0),
        method("pt_fp32", 1000, 20.0),
        method("peft_pt_same_batches", 1000, 16.0, "peer"),
        method("peft_pt_own_batches", 1000, 25.0, "peer"),
        method("pt_unbucketed", 1000, 15.0),
        method("pt_prompt_per_row", 1000, 12.0),
        method("lora", 1000, 8.0),
        method("peft_lora_same_batches", 1000, 12.0, "peer"),
    ]

    # the record reads only the backbone's dtype choice
    bb = SimpleNamespace(dtype_choice=DtypeChoice(torch.bfloat16, "auto", "CPU probe -> bf16"))
    record = figures_record(methods, bb, "python bench/train_speed.py", {"examples": 2}, {}, [])
    _machine_ok(record)
    assert record["bench"] == "train_speed" and record["dtype"]["dtype"] == "bf16"
    assert record["ratios"]["auto_vs_fp32"] == 2.0
    assert record["ratios"]["vs_peft_same_batches"] == 1.6
    assert record["ratios"]["vs_peft_own_batches"] == 2.5
    assert record["ratios"]["lm_head_lever_alone"] == pytest.approx(25 / 15, abs=1e-3)
    assert record["ratios"]["prompt_sharing_lever"] == 1.2
    assert record["ratios"]["lora_vs_peft_lora_same_batches"] == 1.5
    assert set(record["figures"]) == {"pt", "pt_fp32", "pt_unbucketed", "pt_prompt_per_row", "lora"}
    assert set(record["peer"]) == {
        "peft_pt_same_batches",
        "peft_pt_own_batches",
        "peft_lora_same_batches",
    }
    assert record["figures"]["pt"]["useful_tokens_per_s"] == 100.0
    assert record["figures"]["pt"]["s_per_step"] == 5.0


def test_serve_load_record_names_its_headline_ratios_and_counts_shifted_outputs():
    from serve_load import figures_record

    res = {
        "sent": 4,
        "answered": 4,
        "failed": 0,
        "wall_s": 2.0,
        "latencies": [0.5, 1.0, 1.5, 2.0],
        "answers": [
            ("ner_0", "a", "x", 10),
            ("ner_0", "b", "y", 10),
            ("sum_1", "a", "z", 10),
            ("sum_1", "c", "w", 10),
        ],
    }
    peer1 = {
        "done": 2,
        "tokens": 20,
        "wall_s": 4.0,
        "call_s": [2.0, 2.0],
        "outputs": [("ner_0", "a", "x"), ("sum_1", "a", "z")],
    }
    peerb = {
        "done": 4,
        "tokens": 40,
        "wall_s": 2.0,
        "call_s": [1.0, 1.0],
        # left padding shifted ner_0/a: it differs from batch 1 and from the server
        "outputs": [
            ("ner_0", "a", "x2"),
            ("ner_0", "b", "y"),
            ("sum_1", "a", "z"),
            ("sum_1", "c", "w"),
        ],
    }
    args = argparse.Namespace(
        backbone="tiny-llama",
        tasks=2,
        prompt_tokens=4,
        clients=2,
        duration=2.0,
        peer_duration=2.0,
        max_new_tokens=8,
        max_batch=4,
        prefill_group=4,
        max_defer_steps=4,
    )
    record = figures_record(res, peer1, peerb, args, "python bench/serve_load.py", FP32_AUTO)
    _machine_ok(record)
    server = record["figures"]["server"]
    assert server["generated_tokens_per_s"] == 20.0 and server["lost"] == 0
    assert (
        server["latency_p50_s"] is not None and server["latency_p95_s"] >= server["latency_p50_s"]
    )
    assert record["ratios"]["vs_peft_batched"] == 1.0  # 20 tok/s against 20 tok/s
    assert record["ratios"]["vs_peft_batch1"] == 4.0  # 20 against 5
    batched = record["peer"]["peft_batched"]
    assert batched["differing_from_batch1"] == {"compared": 2, "differing": 1}
    assert batched["differing_from_server"] == {"compared": 4, "differing": 1}
    assert record["peer"]["peft_batch1"]["differing_from_server"] == {"compared": 2, "differing": 0}
    assert record["notes"]  # auto resolved to fp32: said so


def test_decode_step_record():
    from decode_step import step_record

    args = argparse.Namespace(batch=4, steps=4, repeats=2)
    record = step_record(
        {"reserved": [10.0, 9.0], "dynamic": [12.0, 11.7]},
        {1: 10.0, 4: 6.0},
        0.12,
        FP32_AUTO,
        "python bench/decode_step.py",
        "tiny-llama",
        args,
    )
    _machine_ok(record)
    assert record["ratios"]["vs_dynamic_cache"] == 1.3
    assert record["peer"]["cat_share_of_dynamic_step"] == 0.12


def test_precision_numerics_record():
    from precision_numerics import numerics_record, parse_args

    args = parse_args(["--backbone", "tiny-llama", "--steps", "2"])
    assert args.dtypes == ["fp32", "bf16"]

    def run(dtype, losses, score, seconds):
        return {
            "precision": {"dtype": dtype, "requested": dtype, "reason": "forced"},
            "dev_loss_curve": [[i, v] for i, v in enumerate(losses)],
            "test_primary": score,
            "train_s": seconds,
        }

    runs = {
        "fp32": run("fp32", [3.0, 2.0, 1.0], 0.5, 10.0),
        "bf16": run("bf16", [3.0, 2.1, 1.1], 0.45, 5.0),
    }
    record = numerics_record(runs, args, "python bench/precision_numerics.py")
    _machine_ok(record)
    assert record["peer"] == {"fp32": runs["fp32"]} and record["figures"] == {"bf16": runs["bf16"]}
    assert record["ratios"] == {"final_dev_loss_bf16_vs_fp32": 1.1, "train_speed_bf16_vs_fp32": 2.0}
    assert record["differences"]["test_primary_bf16_minus_fp32"] == -0.05
    assert record["differences"]["max_abs_dev_loss_gap_bf16_vs_fp32"] == 0.1
    with pytest.raises(SystemExit):
        parse_args(["--dtypes", "fp32"])
