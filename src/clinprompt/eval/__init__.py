"""Evaluation: artifact resolution, prediction, run indexes, the report model, its tables and
plots, the paired bootstrap and provenance. Metrics are the task types' (:mod:`clinprompt.tasks.metrics`)."""
