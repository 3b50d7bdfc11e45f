"""Tasks: the task spec, and per task type the record schema, text-to-text template, output
parser, metrics, floor and serving facts for ner, re, qa, nli, sum."""

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
    unregister_task_type,
)
from clinprompt.tasks.floors import Floor, floor_predictions
from clinprompt.tasks.records import Issue, RecordError, read_records, validate_records
from clinprompt.tasks.spec import TaskSpec, TaskSpecError

__all__ = [
    "ANSWER_CUE",
    "TASK_TYPES",
    "TEMPLATE_VERSION",
    "UNPARSEABLE",
    "Example",
    "Floor",
    "Issue",
    "Parsed",
    "Problem",
    "RecordError",
    "TaskSpec",
    "TaskSpecError",
    "TaskType",
    "floor_predictions",
    "format_example",
    "get_task_type",
    "read_records",
    "register_task_type",
    "unregister_task_type",
    "validate_records",
]
