"""Task types: record schema, text-to-text template and output parser for ner, re, qa, nli, sum."""

# Importing the five task-type modules registers them.
from clinprompt.tasks import ner, nli, qa, relations, summarization  # noqa: F401
from clinprompt.tasks.base import (
    ANSWER_CUE,
    TASK_TYPES,
    TEMPLATE_VERSION,
    UNPARSEABLE,
    Example,
    Parsed,
    Problem,
    TaskType,
    format_example,
    get_task_type,
    register_task_type,
)
from clinprompt.tasks.records import Issue, RecordError, read_records, validate_records

__all__ = [
    "ANSWER_CUE",
    "TASK_TYPES",
    "TEMPLATE_VERSION",
    "UNPARSEABLE",
    "Example",
    "Issue",
    "Parsed",
    "Problem",
    "RecordError",
    "TaskType",
    "format_example",
    "get_task_type",
    "read_records",
    "register_task_type",
    "validate_records",
]
