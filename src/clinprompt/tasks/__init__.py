"""Task types: record schema, text-to-text template and output parser for ner, re, qa, nli, sum."""

from clinprompt.tasks.base import (
    ANSWER_CUE,
    TASK_TYPES,
    TEMPLATE_VERSION,
    Example,
    Parsed,
    Problem,
    TaskType,
    format_example,
    get_task_type,
    register_task_type,
)

__all__ = [
    "ANSWER_CUE",
    "TASK_TYPES",
    "TEMPLATE_VERSION",
    "Example",
    "Parsed",
    "Problem",
    "TaskType",
    "format_example",
    "get_task_type",
    "register_task_type",
]
