"""clinprompt: one frozen LLM, many clinical NLP tasks through tiny learned soft prompts.

Multitask prompt tuning (shared prompt ⊙ rank-one task factors) distilled from per-task
teacher prompts, adapted to unseen clinical tasks, and served from one backbone.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
