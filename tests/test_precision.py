"""The backbone's compute dtype: forced names, CUDA, and the cached CPU probe."""

from __future__ import annotations

import json

import pytest
import torch

from clinprompt import precision
from clinprompt.precision import PrecisionError, ProbeResult, choose_dtype

CPU = torch.device("cpu")


def _fake_probe(bf16: float, fp32: float, calls: list[int]):
    def probe(hidden_size: int, intermediate_size: int, rows: int = 64, budget_s: float = 0.15):
        calls.append(1)
        return ProbeResult(fp32, bf16, (rows, hidden_size, intermediate_size), 1)

    return probe


@pytest.mark.parametrize(
    ("name", "dtype"),
    [("fp32", torch.float32), ("float32", torch.float32), ("bf16", torch.bfloat16)],
)
def test_forced_names_are_not_probed(monkeypatch, name, dtype):
    calls: list[int] = []
    monkeypatch.setattr(precision, "probe_matmul", _fake_probe(1.0, 1.0, calls))
    choice = choose_dtype(name, CPU, 64, 128)
    assert choice.dtype == dtype and choice.reason == "forced" and calls == []


def test_unknown_name_is_refused_with_the_accepted_ones():
    with pytest.raises(PrecisionError, match="expected auto, fp32, bf16 or fp16"):
        choose_dtype("fp64", CPU, 64, 128)


@pytest.mark.parametrize(
    ("bf16", "fp32", "expected"),
    [
        (2341.0, 344.0, torch.bfloat16),  # a Xeon with AMX (figures measured on one)
        (0.8, 99.0, torch.float32),  # an EPYC without bf16 units
        (120.0, 100.0, torch.float32),  # a marginal win is not taken
    ],
)
def test_cpu_auto_follows_the_probe(monkeypatch, tmp_path, bf16, fp32, expected):
    calls: list[int] = []
    monkeypatch.setattr(precision, "probe_matmul", _fake_probe(bf16, fp32, calls))
    choice = choose_dtype("auto", CPU, 576, 1536, tmp_path)
    assert choice.dtype == expected
    assert choice.probe is not None and choice.probe.bf16_gflops == bf16
    assert f"bf16 {bf16:g} vs fp32 {fp32:g}" in choice.reason
    assert choice.to_dict()["dtype"] in ("bf16", "fp32")


def test_probe_is_cached_per_machine(monkeypatch, tmp_path):
    calls: list[int] = []
    monkeypatch.setattr(precision, "probe_matmul", _fake_probe(900.0, 300.0, calls))
    first = choose_dtype(None, CPU, 576, 1536, tmp_path)
    again = choose_dtype("auto", CPU, 576, 1536, tmp_path)
    assert first.dtype == again.dtype == torch.bfloat16
    assert len(calls) == 1
    cached = json.loads((tmp_path / precision.PROBE_FILE).read_text())
    (key,) = cached
    assert "threads:" in key and "torch:" in key and cached[key]["bf16_gflops"] == 900.0
    # another shape is another measurement
    choose_dtype("auto", CPU, 64, 128, tmp_path)
    assert len(calls) == 2


def test_damaged_cache_is_measured_again(monkeypatch, tmp_path):
    (tmp_path / precision.PROBE_FILE).write_text("{not json")
    calls: list[int] = []
    monkeypatch.setattr(precision, "probe_matmul", _fake_probe(0.5, 50.0, calls))
    assert choose_dtype("auto", CPU, 576, 1536, tmp_path).dtype == torch.float32
    assert len(calls) == 1
    assert json.loads((tmp_path / precision.PROBE_FILE).read_text())


def test_cuda_auto_is_bf16_where_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_dtype("auto", torch.device("cuda"), 64, 128).dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert choose_dtype("auto", torch.device("cuda"), 64, 128).dtype == torch.float16


def test_real_probe_is_bounded_and_positive():
    result = precision.probe_matmul(64, 128, rows=8, budget_s=0.01)
    assert result.fp32_gflops > 0 and result.bf16_gflops > 0
    assert result.shape == (8, 64, 128)


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (None, "auto"),
        ("auto", "auto"),
        ("float32", "fp32"),
        ("bfloat16", "bf16"),
        ("BFloat16", "bf16"),
        ("float16", "fp16"),
        ("bf16", "bf16"),
    ],
)
def test_backbone_dtype_key_reads_every_spelling(written, read):
    from clinprompt.config import load_config

    overrides = [] if written is None else [f"backbone.dtype={written}"]
    assert load_config("smoke", overrides).backbone.dtype == read
    assert precision.canonical_dtype(written) == read


def test_backbone_dtype_key_defaults_to_auto_and_refuses_others():
    from clinprompt.config import BackboneArgs, ConfigError, load_config

    assert BackboneArgs().dtype == "auto"
    assert load_config("gpu").backbone.dtype == "bf16"  # the profile writes bfloat16
    with pytest.raises(ConfigError, match=r"backbone.dtype: 'fp64' — expected one of auto, fp32"):
        load_config("smoke", ["backbone.dtype=fp64"])
    with pytest.raises(PrecisionError):
        precision.canonical_dtype("fp64")


def test_evaluate_and_serve_take_a_dtype_option_defaulting_to_auto():
    import dataclasses

    from clinprompt.eval.args import EvalArgs
    from clinprompt.serve.args import ServeArgs

    for cls in (EvalArgs, ServeArgs):
        (field,) = [f for f in dataclasses.fields(cls) if f.name == "dtype"]
        assert field.default == "auto"
        assert field.metadata["choices"] == precision.DTYPE_CHOICES


def test_the_choice_travels_with_the_model(tiny):
    """Recorded at load, found again on a deep copy and through PEFT's wrapper; a model loaded
    elsewhere is described by its weights."""
    import copy

    from peft import LoraConfig, TaskType, get_peft_model

    assert precision.choice_of(tiny.model) is tiny.dtype_choice
    wrapped = get_peft_model(
        copy.deepcopy(tiny.model),
        LoraConfig(task_type=TaskType.CAUSAL_LM, r=2, target_modules=["q_proj"]),
    )
    assert precision.choice_of(wrapped).to_dict() == tiny.dtype_choice.to_dict()
    assert precision.choice_of(wrapped.get_base_model()).to_dict() == tiny.dtype_choice.to_dict()
    bare = precision.choice_of(torch.nn.Linear(2, 2).to(torch.bfloat16))
    assert bare.name == "bf16" and bare.requested == "unknown"


def test_machine_info_names_the_cpu_and_its_bf16_units():
    info = precision.machine_info()
    assert info["cpu"] and isinstance(info["bf16_cpu_flags"], list)
    assert set(info["bf16_cpu_flags"]) <= {"amx_bf16", "amx_tile", "avx512_bf16"}
    assert info["torch_threads"] == torch.get_num_threads()


def test_backbone_compile_is_a_runtime_key_off_by_default():
    """``backbone.compile`` (torch.compile of the decoder) is off: measured not to pay for runs of
    tens of steps; on, the decoder is compiled lazily (nothing compiles at load)."""
    from clinprompt.backbone import load_backbone
    from clinprompt.config import BackboneArgs, load_config
    from clinprompt.train.workspace import RUNTIME_KEYS

    assert BackboneArgs().compile is False
    assert load_config("smoke", ["backbone.compile=true"]).backbone.compile is True
    assert "backbone.compile" in RUNTIME_KEYS  # a resumed run may switch it
    # so may the dtype: a run started in fp32 (or before backbone.dtype said auto) resumes on
    # a machine where auto is bf16; every artifact records the dtype it was made in
    assert "backbone.dtype" in RUNTIME_KEYS
    plain = load_backbone("tiny-llama", device="cpu")
    assert plain.model.get_decoder()._compiled_call_impl is None
    compiled = load_backbone("tiny-llama", device="cpu", compile=True)
    assert compiled.model.get_decoder()._compiled_call_impl is not None
