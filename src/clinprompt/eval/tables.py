"""The report rendered as text: the Markdown table (with intervals, few-shot rows, notes and
provenance), the paper's table as CSV, and every metric as a long CSV."""

from __future__ import annotations

import csv
import io

from clinprompt.eval.report import Report
from clinprompt.eval.runs import MAIN_COLUMNS, METHOD_LABELS, METHODS, metric_label

__all__ = ["fewshot_rows", "render_csv", "render_long_csv", "render_markdown"]


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _average_cell(report: Report, method: str) -> str:
    if method not in report.averages:
        return "–"
    value, used = report.averages[method]
    # An average over fewer targets than the table has is not comparable: say so.
    return (
        _pct(value)
        if used == len(report.targets)
        else f"{_pct(value)} ({used}/{len(report.targets)} targets)"
    )


def _params(report: Report, method: str, setting: str) -> tuple[str, str]:
    evs = [report.get(method, t, setting) for t in report.targets]
    counts = sorted(
        {ev.trainable_params for ev in evs if ev is not None and ev.trainable_params is not None}
    )
    totals = [ev.backbone_params for ev in evs if ev is not None and ev.backbone_params]
    if not counts:
        return "–", "–"
    text = f"{counts[0]:,}" if len(counts) == 1 else f"{counts[0]:,}–{counts[-1]:,}"
    if not totals:
        return text, "–"
    share = [100 * c / totals[0] for c in counts]
    pct = f"{share[0]:.3f}%" if len(share) == 1 else f"{share[0]:.3f}–{share[-1]:.3f}%"
    return text, pct


def _table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["type", "target", "metric", "n", *[METHOD_LABELS.get(m, m) for m, _ in MAIN_COLUMNS]]
    rows = []
    for t in report.targets:
        evs = [report.get(m, t, s) for m, s in MAIN_COLUMNS]
        n = max((ev.n for ev in evs if ev is not None), default=0)
        for metric in report.metrics[t]:
            cells = [_pct(report.value(m, t, s, metric)) for m, s in MAIN_COLUMNS]
            rows.append([report.task_types[t].upper(), t, metric_label(metric), str(n), *cells])
    avg = [_average_cell(report, m) for m, _ in MAIN_COLUMNS]
    rows.append(["", "**average**", "primary", "", *avg])
    params = [_params(report, m, s) for m, s in MAIN_COLUMNS]
    rows.append(["", "trainable params", "", "", *[p[0] for p in params]])
    rows.append(["", "% of backbone", "", "", *[p[1] for p in params]])
    return header, rows


def fewshot_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """The few-shot/zero-shot table (header, rows); no rows when every method has one setting."""
    methods = [
        m for m in METHODS if m not in ("floor", "zeroshot") and len(report.settings_of(m)) > 0
    ]
    settings = report.curve_settings(methods)
    if len(settings) < 2:  # only full-data runs: the main table already shows them
        return [], []
    header = [
        "target",
        "metric",
        "method",
        *[("k=" + s[1:]) if s != "full" else "full" for s in settings],
    ]
    rows = []
    for t in report.targets:
        metric = report.metrics[t][0]
        for m in methods:
            if any(report.get(m, t, s) for s in settings):
                rows.append(
                    [
                        t,
                        metric_label(metric),
                        METHOD_LABELS.get(m, m),
                        *[_pct(report.value(m, t, s)) for s in settings],
                    ]
                )
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _unparseable_note(report: Report) -> str:
    bad = [ev for ev in report.evaluations.values() if ev.unparseable]
    if not bad:
        return "Every generation was parseable."
    parts = [
        f"{METHOD_LABELS.get(ev.method, ev.method)}/{ev.target}/{ev.setting}: {ev.unparseable}/{ev.n}"
        for ev in sorted(bad, key=lambda e: e.key)
    ]
    return "Unparseable generations (scored as wrong, never dropped): " + "; ".join(parts) + "."


def _provenance_md(report: Report) -> str:
    if not report.provenance:
        return "_No provenance.json in the run directory (command, budgets, hardware, wall time unknown)._"
    out = []
    for p in report.provenance:
        out.append(f"- run `{p['run']}`")
        for key in ("command", "backbone", "hardware", "wall_time", "budgets", "stages"):
            if key in p:
                value = p[key]
                text = (
                    f"`{value}`"
                    if key == "command"
                    else (
                        ", ".join(f"{k}={v}" for k, v in value.items())
                        if isinstance(value, dict)
                        else str(value)
                    )
                )
                out.append(f"  - {key}: {text}")
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    """The report as Markdown: the main table, intervals, few-shot rows, notes, provenance."""
    title = f"# Results on {report.backbone}" + (
        " — SYNTHETIC data (a functional check, not a clinical result)" if report.synthetic else ""
    )
    header, rows = _table_rows(report)
    parts = [
        title,
        "Scores ×100 on each target's test examples; columns are methods trained on the full target pool "
        "(zero-shot: the backbone with the instruction only). The floor is a trivial baseline "
        "(majority label, most frequent option letter, empty prediction, first sentence of the source).",
        _markdown_table(header, rows),
    ]
    if report.intervals:
        lines = ["Paired bootstrap on the average over targets (95% interval, ×100):", ""]
        for name, iv in report.intervals.items():
            a, b = name.split("-")
            lines.append(
                f"- {METHOD_LABELS[a]} − {METHOD_LABELS[b]}: {iv.describe(100)} "
                f"({iv.resamples} resamples, seed {iv.seed}; {METHOD_LABELS[a]} better in {100 * iv.prob_a_better:.0f}% of resamples)"
            )
        parts.append("\n".join(lines))
    few_header, few_rows = fewshot_rows(report)
    if few_rows:
        parts += [
            "## Few-shot and zero-shot rows",
            "Primary metric ×100 by number of target training examples k (k=0: no target training).",
            _markdown_table(few_header, few_rows),
        ]
    parts += ["## Notes", _unparseable_note(report), "## Provenance", _provenance_md(report)]
    return "\n\n".join(parts) + "\n"


def render_csv(report: Report) -> str:
    """The main table as CSV (values ×100, unrounded to 4 decimals)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task_type", "target", "metric", "n", *[m for m, _ in MAIN_COLUMNS]])
    for t in report.targets:
        n = max(
            (ev.n for ev in (report.get(m, t, s) for m, s in MAIN_COLUMNS) if ev is not None),
            default=0,
        )
        for metric in report.metrics[t]:
            vals = [report.value(m, t, s, metric) for m, s in MAIN_COLUMNS]
            writer.writerow(
                [
                    report.task_types[t],
                    t,
                    metric,
                    n,
                    *["" if v is None else f"{100 * v:.4f}" for v in vals],
                ]
            )
    writer.writerow(
        [
            "",
            "average",
            "primary",
            "",
            *[
                f"{100 * report.averages[m][0]:.4f}" if m in report.averages else ""
                for m, _ in MAIN_COLUMNS
            ],
        ]
    )
    for label, idx in (("trainable_params", 0),):
        writer.writerow(
            [
                "",
                label,
                "",
                "",
                *[_params(report, m, s)[idx].replace(",", "") for m, s in MAIN_COLUMNS],
            ]
        )
    return buf.getvalue()


def render_long_csv(report: Report) -> str:
    """Every metric of every evaluation, one row each."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        [
            "method",
            "target",
            "task_type",
            "setting",
            "metric",
            "value",
            "n",
            "unparseable",
            "trainable_params",
            "backbone_params",
        ]
    )
    for (method, target, setting), ev in sorted(report.evaluations.items()):
        for metric, value in sorted(ev.metrics.items()):
            writer.writerow(
                [
                    method,
                    target,
                    ev.task_type,
                    setting,
                    metric,
                    value,
                    ev.n,
                    ev.unparseable,
                    ev.trainable_params or "",
                    ev.backbone_params or "",
                ]
            )
    return buf.getvalue()
