"""The dtype the frozen backbone computes in, chosen by the hardware it runs on.

``auto`` (the default everywhere) means:

* CUDA: bf16 (fp16 on a GPU without bf16 support);
* CPU: bf16 when a short measured probe shows bf16 matrix products faster than fp32 on this
  machine (Intel Xeons with AMX or AVX512-BF16 units run them 5-7x faster), else fp32. A CPU
  without bf16 units emulates it about 100x *slower* than fp32, so assuming either way is wrong.

The probe multiplies matrices of the backbone's own shapes ((rows, D) @ (D, FFN)) in both dtypes
for a bounded time (well under a second in all) and is cached per machine (CPU model, flags,
torch version, threads) in ``<cache>/precision-probe.json``, so only the first load on a machine
pays for it. Trainable weights (soft prompts, factors, LoRA) and optimizer states always stay
fp32: only the frozen backbone's compute runs in the chosen dtype.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

__all__ = [
    "DTYPE_CHOICES",
    "DTYPE_NAMES",
    "DtypeChoice",
    "PrecisionError",
    "ProbeResult",
    "attach_choice",
    "bf16_cpu_flags",
    "canonical_dtype",
    "choice_of",
    "choose_dtype",
    "cpu_model",
    "dtype_name",
    "machine_info",
    "machine_key",
    "probe_matmul",
]

# Accepted spellings of a forced dtype (``--dtype``, ``backbone.dtype``); ``auto`` decides itself.
DTYPE_NAMES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
# The names a config or a command line offers (the long spellings above are mapped onto these).
DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16")
# bf16 must beat fp32 by this factor on the probe: a training step gains less than a bare matmul
# (attention, norms and the fp32 loss do not speed up), so a marginal win is not worth the numerics.
BF16_MARGIN = 1.5
PROBE_FILE = "precision-probe.json"


class PrecisionError(ValueError):
    """A dtype name that is not accepted."""


@dataclass(frozen=True)
class ProbeResult:
    """Measured matmul throughput of one machine, both dtypes, at one shape."""

    fp32_gflops: float
    bf16_gflops: float
    shape: tuple[int, int, int]  # (rows, D, FFN)
    threads: int

    @property
    def bf16_faster(self) -> bool:
        return self.bf16_gflops >= BF16_MARGIN * self.fp32_gflops


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype chosen for a backbone and why (recorded in every artifact's provenance)."""

    dtype: torch.dtype
    requested: str
    reason: str
    probe: ProbeResult | None = None

    @property
    def name(self) -> str:
        return dtype_name(self.dtype)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "dtype": self.name,
            "requested": self.requested,
            "reason": self.reason,
        }
        if self.probe is not None:
            out["probe"] = asdict(self.probe)
        return out


def dtype_name(dtype: torch.dtype) -> str:
    """``fp32`` / ``bf16`` / ``fp16`` (the short names the CLI accepts)."""
    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
        dtype, str(dtype).removeprefix("torch.")
    )


def canonical_dtype(name: str | None) -> str:
    """``auto`` or the short name of a dtype spelling: ``bfloat16`` → ``bf16``, None → ``auto``.

    Raises:
        PrecisionError: a name that is neither ``auto`` nor in :data:`DTYPE_NAMES`.
    """
    req = (name or "auto").strip().lower()
    if req == "auto":
        return req
    if req not in DTYPE_NAMES:
        raise PrecisionError(
            f"dtype {name!r} is not accepted; expected auto, fp32, bf16 or fp16 "
            f"(also {', '.join(n for n in DTYPE_NAMES if len(n) > 4)})"
        )
    return dtype_name(DTYPE_NAMES[req])


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    return _cpu_model()


def bf16_cpu_flags() -> list[str]:
    """The CPU's bf16 matrix flags present (``amx_bf16``, ``avx512_bf16``); empty without them."""
    flags = set(_cpu_flags().split())
    return [f for f in ("amx_bf16", "amx_tile", "avx512_bf16") if f in flags]


def machine_info() -> dict[str, object]:
    """What a speed figure depends on: CPU model, its bf16 units, cores, torch threads, GPU."""
    import os

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, object] = {
        "cpu": _cpu_model(),
        "bf16_cpu_flags": bf16_cpu_flags(),
        "cpu_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


# The attribute a loaded model carries its DtypeChoice under: it survives ``copy.deepcopy`` and
# PEFT wrapping (``get_base_model()`` returns the same object), so the training loop and the
# evaluation can record why the model computes in its dtype without the Backbone at hand.
_CHOICE_ATTR = "_clinprompt_dtype_choice"


def attach_choice(model: torch.nn.Module, choice: DtypeChoice) -> None:
    """Record on ``model`` the dtype choice it was loaded with."""
    object.__setattr__(model, _CHOICE_ATTR, choice)


def choice_of(model: torch.nn.Module) -> DtypeChoice:
    """The dtype choice recorded on ``model`` (or on the model PEFT wraps), else its weights' dtype."""
    for candidate in (model, getattr(model, "base_model", None), _peft_base(model)):
        found = getattr(candidate, _CHOICE_ATTR, None) if candidate is not None else None
        if isinstance(found, DtypeChoice):
            return found
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    dtype = weight.dtype if weight is not None else torch.float32
    return DtypeChoice(dtype, "unknown", "not recorded at load: the dtype of the model's weights")


def _peft_base(model: torch.nn.Module) -> torch.nn.Module | None:
    get = getattr(model, "get_base_model", None)
    try:
        return get() if callable(get) else None
    except (AttributeError, TypeError):
        return None


def _cpuinfo(field: str) -> str:
    """The first ``field`` line of /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpu_model() -> str:
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def _cpu_flags() -> str:
    return _cpuinfo("flags")


def machine_key(shape: tuple[int, int, int], threads: int) -> str:
    """What the probe's answer depends on: CPU model and flags, torch, threads, shape."""
    flags = hashlib.sha256(_cpu_flags().encode()).hexdigest()[:12]
    return f"{_cpu_model()}|flags:{flags}|torch:{torch.__version__}|threads:{threads}|shape:{shape}"


def _gflops(dtype: torch.dtype, shape: tuple[int, int, int], budget_s: float) -> float:
    rows, d, ffn = shape
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(rows, d, generator=gen).to(dtype)
    b = torch.randn(d, ffn, generator=gen).to(dtype)
    a @ b  # warm-up (kernel selection, first-touch allocation)
    flops = 2.0 * rows * d * ffn
    done, start = 0, time.perf_counter()
    while True:
        a @ b
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= budget_s:
            return flops * done / elapsed / 1e9


def probe_matmul(
    hidden_size: int, intermediate_size: int, rows: int = 64, budget_s: float = 0.15
) -> ProbeResult:
    """Time ``(rows, D) @ (D, FFN)`` in fp32 and bf16 for about ``budget_s`` each.

    Without bf16 units one bf16 product of the built-in backbone's shapes takes ~0.1 s, so the
    probe stays bounded on every machine (each dtype runs at least once, then until the budget).
    """
    shape = (rows, int(hidden_size), int(intermediate_size))
    return ProbeResult(
        fp32_gflops=round(_gflops(torch.float32, shape, budget_s), 2),
        bf16_gflops=round(_gflops(torch.bfloat16, shape, budget_s), 2),
        shape=shape,
        threads=torch.get_num_threads(),
    )


def _cached_probe(cache_dir: Path | None, hidden_size: int, intermediate_size: int) -> ProbeResult:
    shape = (64, int(hidden_size), int(intermediate_size))
    key = machine_key(shape, torch.get_num_threads())
    file = cache_dir / PROBE_FILE if cache_dir is not None else None
    known: dict[str, dict] = {}
    if file is not None and file.exists():
        try:
            known = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}  # a damaged cache is measured again and rewritten
        if isinstance(known.get(key), dict):
            entry = known[key]
            try:
                return ProbeResult(
                    float(entry["fp32_gflops"]),
                    float(entry["bf16_gflops"]),
                    tuple(entry["shape"]),  # type: ignore[arg-type]
                    int(entry["threads"]),
                )
            except (KeyError, TypeError, ValueError):
                pass
    result = probe_matmul(hidden_size, intermediate_size)
    if file is not None:
        from clinprompt.artifacts import write_json

        known = known if isinstance(known, dict) else {}
        known[key] = asdict(result)
        # a read-only cache only costs the probe again next time
        with contextlib.suppress(OSError):
            write_json(file, known)
    return result


def choose_dtype(
    requested: str | None,
    device: torch.device,
    hidden_size: int,
    intermediate_size: int,
    cache_dir: Path | None = None,
) -> DtypeChoice:
    """The backbone's compute dtype for ``requested`` (None or ``auto``: decided here).

    Args:
        requested: ``auto``/None, or a forced name from :data:`DTYPE_NAMES`.
        device: where the backbone runs.
        hidden_size, intermediate_size: the backbone's D and FFN width (the probe's shapes).
        cache_dir: where the per-machine probe result is kept (None: measure every time).

    Raises:
        PrecisionError: an unknown dtype name.
    """
    req = canonical_dtype(requested)
    if req != "auto":
        return DtypeChoice(DTYPE_NAMES[req], req, "forced")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return DtypeChoice(torch.bfloat16, "auto", "CUDA with bf16 support")
        return DtypeChoice(torch.float16, "auto", "CUDA without bf16 support")
    if device.type != "cpu":
        return DtypeChoice(torch.float32, "auto", f"{device.type}: fp32 (not probed)")
    probe = _cached_probe(cache_dir, hidden_size, intermediate_size)
    verdict = "bf16" if probe.bf16_faster else "fp32"
    reason = (
        f"CPU probe ({probe.threads} threads, {probe.shape[0]}x{probe.shape[1]}x{probe.shape[2]}): "
        f"bf16 {probe.bf16_gflops:g} vs fp32 {probe.fp32_gflops:g} GFLOP/s -> {verdict}"
    )
    return DtypeChoice(
        torch.bfloat16 if probe.bf16_faster else torch.float32, "auto", reason, probe
    )
