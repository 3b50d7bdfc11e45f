"""Checkpoints for exact resume: safetensors for tensors, JSON for everything else (no pickle).

Layout of a checkpoint directory (written atomically, so a crash mid-save keeps the previous one)::

    trainable.safetensors   the trained parameters by name
    optimizer.safetensors   AdamW state tensors as ``state.<param index>.<name>`` (step, exp_avg, ...)
    rng.safetensors         torch CPU (and CUDA) generator states
    state.json              loop position (step, epoch, batch), best metric, early-stopping
                            counters, optimizer param groups and scalars, Python/NumPy RNG states
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from clinprompt.artifacts import atomic_dir, load_tensors, read_json, save_tensors, write_json

__all__ = ["load_checkpoint", "load_weights", "save_checkpoint", "save_weights"]


def save_weights(path: str | Path, params: dict[str, nn.Parameter]) -> Path:
    """Trainable parameters (fp32) to a safetensors file."""
    return save_tensors(path, {name: p.detach().float() for name, p in params.items()})


def load_weights(path: str | Path, params: dict[str, nn.Parameter]) -> None:
    """Copy saved tensors into ``params`` in place; names and shapes must match."""
    saved = load_tensors(path)
    missing, extra = set(params) - set(saved), set(saved) - set(params)
    if missing or extra:
        raise ValueError(
            f"{path}: parameters differ from the model's (missing {sorted(missing)}, unexpected {sorted(extra)})"
        )
    with torch.no_grad():
        for name, p in params.items():
            if saved[name].shape != p.shape:
                raise ValueError(
                    f"{path}: {name} has shape {tuple(saved[name].shape)}; expected {tuple(p.shape)}"
                )
            p.copy_(saved[name].to(p.device, p.dtype))


def _optimizer_split(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_join(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [
        {k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]
    ]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [
            np_state[0],
            np_state[1].tolist(),
            *[x.item() if hasattr(x, "item") else x for x in np_state[2:]],
        ],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("torch_cuda."))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = meta["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))


def save_checkpoint(
    directory: str | Path,
    params: dict[str, nn.Parameter],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write a complete checkpoint atomically (replacing the previous one only when done)."""
    opt_tensors, opt_meta = _optimizer_split(optimizer)
    rng_tensors, rng_meta = _rng_state()
    with atomic_dir(directory) as tmp:
        save_weights(tmp / "trainable.safetensors", params)
        save_tensors(tmp / "optimizer.safetensors", opt_tensors)
        save_tensors(tmp / "rng.safetensors", rng_tensors)
        write_json(tmp / "state.json", {**state, "optimizer": opt_meta, "rng": rng_meta})
    return Path(directory)


def load_checkpoint(
    directory: str | Path, params: dict[str, nn.Parameter], optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore parameters, optimizer and RNG states; return the loop state from ``state.json``."""
    directory = Path(directory)
    state = read_json(directory / "state.json")
    load_weights(directory / "trainable.safetensors", params)
    _optimizer_join(
        optimizer, load_tensors(directory / "optimizer.safetensors"), state.pop("optimizer")
    )
    _set_rng_state(load_tensors(directory / "rng.safetensors"), state.pop("rng"))
    return state
