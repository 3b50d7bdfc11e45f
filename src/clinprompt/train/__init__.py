"""The one training loop, its batch plans, losses, objectives and checkpoints."""

from clinprompt.train.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights
from clinprompt.train.loop import NonFiniteLossError, TrainResult, lr_at, train
from clinprompt.train.losses import hidden_mse, kl_full, kl_topk
from clinprompt.train.objectives import (
    DistillObjective,
    LossOutput,
    Objective,
    PromptObjective,
    amp_dtype,
)
from clinprompt.train.sampling import BatchPlan, task_sampling_weights
from clinprompt.train.step import accumulate_gradients, clip_gradients, collate, evaluate_loss
from clinprompt.train.teacher_cache import TeacherCache, cache_key

__all__ = [
    "BatchPlan",
    "DistillObjective",
    "LossOutput",
    "NonFiniteLossError",
    "Objective",
    "PromptObjective",
    "TeacherCache",
    "TrainResult",
    "accumulate_gradients",
    "amp_dtype",
    "cache_key",
    "clip_gradients",
    "collate",
    "evaluate_loss",
    "hidden_mse",
    "kl_full",
    "kl_topk",
    "load_checkpoint",
    "load_weights",
    "lr_at",
    "save_checkpoint",
    "save_weights",
    "task_sampling_weights",
    "train",
]
