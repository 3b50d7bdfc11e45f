"""Request and response bodies of the HTTP API (pydantic models → the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ErrorBody",
    "ErrorResponse",
    "HealthResponse",
    "PredictOutput",
    "PredictRequest",
    "PredictResponse",
    "ReloadResponse",
    "TaskInfo",
    "TasksResponse",
]


class PredictRequest(BaseModel):
    """A batch of inputs for one task (strict types: ``"5"`` or ``true`` is not an integer)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "task": "bc5cdr_ner",
                    "inputs": [{"text": "Started metformin 500 mg for type 2 diabetes."}],
                },
                {
                    "task": "mednli",
                    "inputs": [
                        {
                            "premise": "The patient denies chest pain.",
                            "hypothesis": "The patient has chest pain.",
                        }
                    ],
                },
            ]
        },
    )

    task: str = Field(description="A task name from GET /v1/tasks.")
    inputs: list[dict[str, Any]] = Field(
        description="Records of the task's type without the answer fields: ner {text}; re {text, entities}; "
        "qa {question, context?, options?}; nli {premise, hypothesis}; sum {source}. An optional 'id' is echoed back.",
    )
    mode: Literal["auto", "generate", "score"] = Field(
        "auto",
        description="auto: rank the candidate answers by likelihood where the task has them (nli labels, qa options), "
        "else generate; generate: always generate; score: always rank (422 when there are no candidates).",
    )
    max_new_tokens: int | None = Field(
        None, description="Generation budget per input (default: per task type)."
    )

    @field_validator("task")
    @classmethod
    def _valid_text(cls, value: str) -> str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("not valid Unicode text (a lone surrogate such as \\ud800)") from None
        return value


class PredictOutput(BaseModel):
    """The answer to one input."""

    id: str = Field(description="The input's id (its index when it had none).")
    prediction: dict[str, Any] = Field(
        description="The parsed answer fields: entities with offsets, relations, label, answer or summary."
    )
    generation: str = Field(
        description="The raw generated text (or the chosen candidate in score mode)."
    )
    parsed_ok: bool = Field(description="False when the generation could not be (fully) parsed.")
    mode: Literal["generate", "score"]
    generated_tokens: int = Field(description="Tokens generated (EOS excluded); 0 in score mode.")
    scores: dict[str, float] | None = Field(
        None, description="score mode: the log-likelihood of each candidate."
    )


class PredictResponse(BaseModel):
    task: str
    task_type: str
    outputs: list[PredictOutput]


class TaskInfo(BaseModel):
    name: str
    task_type: str
    labels: list[str]
    dataset: str | None
    instruction: str | None
    input_fields: dict[str, str] = Field(
        description="Field → JSON type and whether it is required."
    )
    prompt_kind: str
    available: bool
    reason: str | None = None


class TasksResponse(BaseModel):
    backbone: dict[str, Any]
    prompt_tokens: int
    bank_version: int
    tasks: list[TaskInfo]


class HealthResponse(BaseModel):
    status: str = Field(description="ok, starting, or draining (shutting down: work is refused).")
    backbone: str
    tasks: int
    queue_depth: int
    in_flight: int = Field(description="Inputs admitted and not yet answered.")
    bank_version: int
    requests: int
    items: int
    batches: int
    reloads: int


class ReloadResponse(BaseModel):
    tasks: list[str]
    added: list[str]
    removed: list[str]
    changed: list[str]


class ErrorBody(BaseModel):
    code: str = Field(
        description="Machine-readable: unauthorized, unknown_task, invalid_request, input_too_long, "
        "body_too_large, json_too_deep, scoring_too_large, queue_full, timeout, shutting_down..."
    )
    message: str
    limit: str | None = Field(
        None,
        description="The limit that was hit (max_inputs, max_input_tokens, max_input_chars, "
        "max_body_bytes, max_json_depth, max_options, max_option_tokens, max_scoring_tokens, "
        "max_new_tokens, max_queue, request_timeout_s).",
    )
    value: float | None = Field(None, description="The limit's value.")

    model_config = ConfigDict(extra="allow")


class ErrorResponse(BaseModel):
    error: ErrorBody
