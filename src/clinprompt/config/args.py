"""The ``*Args`` dataclasses: every config key, its type, default and help, defined once.

A field declared with :func:`arg` is at the same time the YAML key, the dotted command-line
override (``section.key=value``) and its documentation line (``clinprompt config keys``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinprompt.config.build import build, to_dict

__all__ = [
    "LR_SEARCH_JUDGES",
    "PROFILES",
    "STAGES",
    "AdaptArgs",
    "BackboneArgs",
    "BaselineArgs",
    "DataArgs",
    "DistillArgs",
    "ExperimentArgs",
    "PromptArgs",
    "TeachersArgs",
    "TrainArgs",
    "arg",
    "config_keys",
]

PROFILES = ("smoke", "cpu", "gpu", "demo")
LR_SEARCH_JUDGES = ("loss", "score")  # what ranks learning-rate search candidates
# Long dtype spellings of older configs → the names backbone.dtype offers (torch-free, for the CLI).
DTYPE_SPELLINGS = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def arg(
    default: Any,
    help: str,
    choices: tuple[str, ...] | None = None,
    *,
    envvar: str | None = None,
) -> Any:
    """A config field with its help text (and allowed values): the single definition of a key.

    Args:
        default: the value when the key is not given (a list or dict is copied per instance).
        help: one line, shown by ``clinprompt config keys`` and as the command-line help.
        choices: the allowed values, checked by validation (and by a command-line option).
        envvar: an environment variable a command-line option also reads (e.g. an API key).

    A ``default`` of :data:`dataclasses.MISSING` makes the field required (a required option).
    """
    meta = {"help": help, "choices": choices, "envvar": envvar}
    if default is dataclasses.MISSING:
        return field(metadata=meta)
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class BackboneArgs:
    """Which frozen LM to load, and where."""

    name: str = arg(
        "smollm2-135m",
        "Built-in name (smollm2-135m, tiny-llama), a local Hugging Face model directory, or a hub id.",
    )
    device: str | None = arg(
        None,
        "cpu, cuda, cuda:1...; default: CUDA when available (each process's own GPU under accelerate).",
    )
    dtype: str = arg(
        "auto",
        "Compute dtype of the frozen backbone. auto: bf16 on CUDA; on a CPU bf16 only where a "
        "cached matmul probe shows it faster (bf16 units: AMX, AVX512-BF16), else fp32. "
        "float32/bfloat16/float16 are read as fp32/bf16/fp16. Prompts, factors, LoRA and "
        "optimizer states stay fp32.",
        ("auto", "fp32", "bf16", "fp16"),
    )
    compile: bool = arg(
        False,
        "torch.compile the backbone's decoder (dynamic shapes). Off: on SmolLM2 in fp32 on a "
        "CPU a step ran 1.08x faster after 107 s (warm cache) to ~10 min of compiling per "
        "process and graph, which runs of tens of steps never earn back.",
    )

    def __post_init__(self) -> None:
        # Older configs spell the dtype float32/bfloat16/float16, or leave it null (= auto);
        # anything else is left as written for validation to report.
        name = (self.dtype or "auto").strip().lower()
        self.dtype = DTYPE_SPELLINGS.get(name, name)


@dataclass
class PromptArgs:
    """Shape and initialisation of the soft prompts."""

    tokens: int = arg(50, "Prompt length P (the paper uses 100).")
    init: str = arg(
        "vocab",
        "Initialisation of teacher prompts: rows of frequent-token embeddings, random normal, or the embeddings of init_text.",
        ("vocab", "random", "text"),
    )
    init_text: str = arg("", "Text for init=text; empty: each task's instruction.")
    rank: int = arg(1, "Rank R of the per-task factors u (P, R), v (R, D) (the paper uses 1).")


@dataclass
class DataArgs:
    """The suite of source and target tasks and how examples are subsampled and truncated."""

    suite: str = arg("synthetic", "Suite name (synthetic, open-clinical) or a suite YAML file.")
    data_root: str | None = arg(
        None, "Folder holding the public datasets; default $CLINPROMPT_DATA_ROOT or ../shared/data."
    )
    sources: list[str] | None = arg(None, "Only these source tasks (default: all of the suite's).")
    targets: list[str] | None = arg(None, "Only these target tasks (default: all of the suite's).")
    max_train_examples: int | None = arg(
        None, "Training examples kept per task, drawn from the seed (None: all)."
    )
    max_dev_examples: int | None = arg(None, "Dev examples kept per task (None: all).")
    max_test_examples: int | None = arg(
        None, "Test examples per target for evaluation (None: all)."
    )
    dev_fraction: float = arg(
        0.1, "Share of train carved out as dev (deterministically) when a task has no dev split."
    )
    max_input_tokens: int = arg(
        256, "Input tokens kept per example (the instruction and answer cue are never cut)."
    )
    max_target_tokens: int = arg(128, "Target tokens kept per example (before EOS).")
    seed: int = arg(0, "Seed of every subsample and k-shot draw.")


@dataclass
class TrainArgs:
    """The one training loop: optimiser, schedule, batching, evaluation, checkpoints."""

    steps: int = arg(100, "Optimizer steps per training run.")
    batch_size: int = arg(
        8, "Examples per optimizer step (split into grad_accum micro-batches and across processes)."
    )
    grad_accum: int = arg(
        1, "Micro-batches per optimizer step; does not change the examples a step sees."
    )
    lr: float = arg(
        0.3,
        "Peak learning rate of AdamW (prompt tuning works with 0.1-0.3; LoRA uses baseline.lora_lr).",
    )
    weight_decay: float = arg(1e-5, "AdamW weight decay.")
    warmup: float = arg(
        0.06, "Linear warm-up as a share of steps, then linear decay to min_lr_ratio * lr."
    )
    min_lr_ratio: float = arg(0.0, "Learning rate at the last step, relative to lr.")
    max_grad_norm: float = arg(1.0, "Gradient clipping norm (0: no clipping).")
    bucket: bool = arg(
        True,
        "Batch by length: examples of similar length share a batch, so little padding is computed.",
    )
    bucket_window: int = arg(
        32,
        "Batches per window that is sorted by length before batching (larger: less padding, less randomness).",
    )
    eval_every: int = arg(
        50,
        "Evaluate on the dev split every N steps (0: only at the end); the best checkpoint is kept.",
    )
    eval_examples: int = arg(200, "Dev examples per task used for the dev loss.")
    eval_batch_size: int = arg(16, "Examples per dev batch.")
    patience: int = arg(
        0, "Stop after this many evaluations without improvement (0: never stop early)."
    )
    save_every: int = arg(
        0, "Also checkpoint every N steps for resuming (0: at each evaluation only)."
    )
    log_every: int = arg(10, "Write a metrics line (JSONL) every N steps.")
    progress: bool = arg(True, "Show a progress bar with loss and ETA.")
    seed: int = arg(0, "Seed of data order and random initialisations.")

    @property
    def warmup_steps(self) -> int:
        """The optimizer steps of the linear warm-up (``warmup`` × ``steps``, rounded)."""
        return round(self.warmup * self.steps)


@dataclass
class TeachersArgs:
    """Stage 1: one soft prompt per source task."""

    train: dict[str, Any] = arg({}, "Overrides of train.* for teachers, e.g. {steps: 200}.")


@dataclass
class DistillArgs:
    """Stage 2: the shared prompt P* and per-task factors, distilled from the teachers."""

    terms: list[str] = arg(
        ["lm", "logits", "hidden"],
        "Loss terms (ablations drop some): lm (target CE), logits (KL(teacher||student)), hidden (MSE of hidden states at distill.hidden_layers x distill.hidden_positions).",
    )
    lm_weight: float = arg(1.0, "λ_lm, the weight of the target cross-entropy term.")
    logits_weight: float = arg(1.0, "λ_logits, the weight of the KL term.")
    hidden_weight: float = arg(1.0, "λ_hidden, the weight of the hidden-state MSE term.")
    hidden_layers: list[int] = arg(
        [-1],
        "Hidden states the hidden term matches, as indices into the backbone's L + 1 hidden states (0: the embeddings, -1: the final layer after its norm; negative count from the end). The term is the mean of the per-layer MSEs, so its scale does not grow with the number of layers.",
    )
    hidden_positions: str = arg(
        "target",
        "Positions of the hidden term: target (those predicting an answer token), input (every non-prompt, non-pad position: instruction, input and answer) or all (input plus the prompt's positions).",
        ("target", "input", "all"),
    )
    lr_shared: float | None = arg(
        None, "Peak learning rate of P* (None: distill's train.lr, one rate for all)."
    )
    lr_factors: float | None = arg(
        None, "Peak learning rate of the task factors u, v (None: distill's train.lr)."
    )
    temperature: float = arg(
        2.0, "Distillation temperature τ; the KL is scaled by τ² so gradients keep their size."
    )
    task_temperature: float = arg(
        2.0,
        "Task sampling ∝ n_k^(1/T): 1 = proportional to size, larger = flatter, so small tasks are not drowned.",
    )
    task_cap: int | None = arg(
        None, "Cap each task's size at this many examples in the sampling weights (None: no cap)."
    )
    factor_init: str = arg(
        "ones",
        "Factors start at ones (every task's prompt starts at P* = mean of teachers) or normal(0, 0.02).",
        ("ones", "normal"),
    )
    teacher_cache: bool = arg(
        False,
        "Precompute the teachers' outputs once (top-k logits + final hidden states at target positions, safetensors): worth it when training runs more than one epoch. Only with the default hidden_layers [-1] and hidden_positions target.",
    )
    cache_top_k: int = arg(
        64,
        "Teacher logits kept per position in the cache (KL over the teacher's top-k, renormalised).",
    )
    train: dict[str, Any] = arg({}, "Overrides of train.* for distillation.")


@dataclass
class AdaptArgs:
    """Stage 3: adapt P* to each unseen target task."""

    modes: list[str] = arg(
        ["full", "kshot", "zero"],
        "Which adaptations to run per target: full data, k-shot, zero-shot (no training).",
    )
    shots: list[int] = arg([16, 64], "k values of the k-shot runs (drawn from the seed).")
    factor_init: str = arg(
        "mean",
        "Target factors start at the mean of the source factors, at the factors of the closest source of the same task type (chosen as adapt.zero_shot: closest chooses it, from instructions and label names only), or fresh (ones: the prompt starts at P*).",
        ("mean", "closest", "ones"),
    )
    train_shared: bool = arg(True, "Also train P* (the target then stores its own copy of P*).")
    zero_shot: str = arg(
        "mean",
        "Zero-shot prompt: P* with the mean source factors, or the factors of the closest source of the same task type.",
        ("mean", "closest"),
    )
    lr_shared: float | None = arg(
        None,
        "Peak learning rate of the target's P* (None: adapt's train.lr, one rate for all); the base of adapt.lr_search.",
    )
    lr_factors: float | None = arg(
        None, "Peak learning rate of the target's factors u, v (None: adapt's train.lr)."
    )
    lr_search: list[float] = arg(
        [],
        "Multipliers of each method's base rate(s) tried on the target's dev split (MPT: lr_shared and lr_factors together, PT: baseline.pt_lr, LoRA: baseline.lora_lr), e.g. [0.3, 1.0, 3.0]; the best candidate by adapt.lr_search_judge wins (ties: the smaller rate; by score, the lower dev loss first), on the full setting at seed 0, and its rates serve every seed and k-shot setting. [] or [1.0]: no search.",
    )
    lr_search_extend: int = arg(
        0,
        "How many more candidates the search may try past the edge of adapt.lr_search when the smallest or largest multiplier wins, one grid step further each (the edge's ratio to its neighbour: [0.3, 1, 3] goes on to 0.09 or 9); it stops once the edge no longer wins. 0: the grid only.",
    )
    lr_search_steps: int | None = arg(
        None,
        "Step at which search candidates are judged (None: the end of adapt.train's budget). Every candidate runs the full budget's schedule; with a step s below the budget each is paused after s steps and ranked by its best dev loss so far, and only the winner goes on to the end. The chosen candidate's run is the seed-0 full run either way (reused or continued, never retrained). A step inside adapt.train's warm-up is refused.",
    )
    lr_search_judge: str = arg(
        "loss",
        "What ranks the search's candidates: loss, the lowest best dev loss (cheap: no generation); score, the highest dev score: the task's primary metric of the candidate's weights at its best dev loss on the target's dev records (data.max_dev_examples), answered as the test evaluation answers (generation or option scoring), ties to the lower dev loss. The same rule for every method.",
        LR_SEARCH_JUDGES,
    )
    max_empty_fraction: float | None = arg(
        None,
        "Largest share of a target's training units whose answer is empty (NER: no entity; RE: "
        "no relation, or a pair's `none`), for MPT adaptation and both baselines alike; the "
        "surplus is dropped (seeded) before data.max_train_examples is drawn. Dev and test keep "
        "the data's own share; source tasks are not touched. None: the data's own share.",
    )
    seeds: list[int] = arg(
        [0],
        "Training seeds of MPT adaptation and both baselines: each target and setting is trained once per seed (data order, prompt/LoRA init, k-shot draw); zero-shot (k0) runs once, seed 0.",
    )
    kshot_seeds: list[int] | None = arg(
        None,
        "Training seeds of the k-shot settings (None: adapt.seeds); a CPU budget may afford several seeds for the full-data rows only.",
    )
    kshot_epochs: int | None = arg(
        10,
        "Epochs over the k examples of a k-shot run: ceil(k * epochs / batch_size) steps, replacing adapt.kshot_train's steps (None: kshot_train's steps).",
    )
    train: dict[str, Any] = arg({}, "Overrides of train.* for full-data adaptation.")
    kshot_train: dict[str, Any] = arg(
        {},
        "Overrides of train.* for k-shot adaptation (on top of adapt.train); its steps give way to adapt.kshot_epochs when that is set.",
    )


@dataclass
class BaselineArgs:
    """Single-task baselines trained with the same loop, data and budgets as adaptation."""

    methods: list[str] = arg(
        ["pt", "lora"], "Baselines to train per target: prompt tuning, LoRA (PEFT)."
    )
    pt_init: str = arg(
        "vocab",
        "Initialisation of the prompt-tuning baseline (vocab: as the teachers by default; text: prompt.init_text or the target's instruction).",
        ("vocab", "random", "text"),
    )
    pt_lr: float | None = arg(
        None, "Peak learning rate of the PT baseline (None: adapt's train.lr, as MPT's one rate)."
    )
    lora_r: int = arg(8, "LoRA rank.")
    lora_alpha: int = arg(16, "LoRA alpha (scaling alpha / r).")
    lora_dropout: float = arg(0.0, "LoRA dropout.")
    lora_targets: list[str] = arg(["q_proj", "v_proj"], "Module names LoRA adapts.")
    lora_lr: float = arg(
        1e-3, "Peak learning rate of LoRA (replaces train.lr); the base of adapt.lr_search."
    )


@dataclass
class ExperimentArgs:
    """A whole experiment: teachers → distill → adapt → baselines, into one run directory."""

    name: str = arg("experiment", "Name of the run (used in output_dir).")
    output_dir: str = arg("runs/{name}", "Run directory; {name} is replaced by the name.")
    stages: list[str] = arg(
        ["teachers", "distill", "adapt", "baseline"],
        "Stages `clinprompt run` executes, in this order.",
    )
    backbone: BackboneArgs = field(default_factory=BackboneArgs)
    prompt: PromptArgs = field(default_factory=PromptArgs)
    data: DataArgs = field(default_factory=DataArgs)
    train: TrainArgs = field(default_factory=TrainArgs)
    teachers: TeachersArgs = field(default_factory=TeachersArgs)
    distill: DistillArgs = field(default_factory=DistillArgs)
    adapt: AdaptArgs = field(default_factory=AdaptArgs)
    baseline: BaselineArgs = field(default_factory=BaselineArgs)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))

    @property
    def lr_search_judged_at(self) -> int | None:
        """The step the rate search pauses and judges its candidates at: ``adapt.lr_search_steps``
        when it falls before the end of ``adapt.train``'s budget; None: judged at the end."""
        step = self.adapt.lr_search_steps
        budget = self.stage_train(self.adapt.train).steps
        return step if step is not None and step < budget else None

    def stage_train(self, *overrides: dict[str, Any]) -> TrainArgs:
        """``train`` with stage overrides applied in order, e.g. ``stage_train(self.distill.train)``."""
        merged = to_dict(self.train)
        for extra in overrides:
            merged.update(extra)
        return build(TrainArgs, merged, "train", [])


STAGES = ("teachers", "distill", "adapt", "baseline")


def config_keys(cls: type = ExperimentArgs, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """Every key as (dotted key, type, default, help): the reference printed by ``clinprompt config keys``."""
    rows: list[tuple[str, str, Any, str]] = []
    hints = typing.get_type_hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        key, tp = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows += config_keys(tp, f"{key}.")
            continue
        help_text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help_text += f" One of: {', '.join(f.metadata['choices'])}."
        type_name = str(tp).replace("typing.", "") if not isinstance(tp, type) else tp.__name__
        rows.append((key, type_name, getattr(defaults, f.name), help_text))
    return rows
