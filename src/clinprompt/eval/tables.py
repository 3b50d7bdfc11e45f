"""The report rendered as text: the Markdown table (with intervals, few-shot rows, training
learning rates and budgets, loss curves, notes and provenance), the paper's table as CSV, and
every metric as a long CSV.

A cell trained with several seeds reads ``mean ± sd`` (sample standard deviation over seeds);
the CSVs then gain the standard deviation, the number of seeds and (long CSV) each seed's value.
A report whose every evaluation has one seed renders exactly as it did before seeds existed.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from clinprompt.eval.curves import STAGE_LABELS, STAGES, LossLog
from clinprompt.eval.report import Cell, Report
from clinprompt.eval.runs import MAIN_COLUMNS, METHOD_LABELS, METHODS, Evaluation, metric_label
from clinprompt.train.plan import sort_settings

__all__ = [
    "fewshot_rows",
    "lr_text",
    "render_csv",
    "render_long_csv",
    "render_markdown",
    "training_rows",
]

_TRAINED = ("pt", "lora", "mpt")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _score(
    report: Report, method: str, target: str, setting: str, metric: str | None = None
) -> str:
    """``40.0``, or ``40.0 ± 2.1`` over seeds; ``(2 seeds)`` where a cell has fewer seeds than
    its method's others, so a missing seed is never hidden in a mean."""
    cell = report.get(method, target, setting)
    if cell is None:
        return "–"
    text = _pct(cell.mean(metric))
    sd = cell.sd(metric)
    if sd is not None:
        text += f" ± {100 * sd:.1f}"
    used = len(cell.values(metric))
    if report.seeds_of(method) > 1 and used < report.seeds_of(method):
        text += f" ({used} seed{'s' if used != 1 else ''})"
    return text


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
            cells = [_score(report, m, t, s, metric) for m, s in MAIN_COLUMNS]
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
                        *[_score(report, m, t, s) for s in settings],
                    ]
                )
    return header, rows


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _unparseable_note(report: Report) -> str:
    bad = [ev for ev in report.runs() if ev.unparseable]
    if not bad:
        return "Every generation was parseable."
    seeded = {key for key, cell in report.evaluations.items() if len(cell.runs) > 1}
    parts = [
        f"{METHOD_LABELS.get(ev.method, ev.method)}/{ev.target}/{ev.setting}"
        + (f" seed {ev.seed}" if ev.key in seeded else "")
        + f": {ev.unparseable}/{ev.n}"
        for ev in bad
    ]
    return "Unparseable generations (scored as wrong, never dropped): " + "; ".join(parts) + "."


CONSTANT_SHARE = 0.9  # one candidate chosen for at least this share of the scored answers
CONSTANT_MIN_ANSWERS = 10  # ... of at least this many answers


def constant_answers(report: Report) -> list[tuple[Evaluation, str, int, int]]:
    """Evaluations whose option-scored answers are (nearly) one candidate: (evaluation, that
    candidate, its count, the answers scored), for those with at least
    :data:`CONSTANT_MIN_ANSWERS` answers, one candidate making :data:`CONSTANT_SHARE` of them."""
    found = []
    for ev in report.runs():
        counts = ev.scored_answers()
        total = sum(counts.values())
        if total >= CONSTANT_MIN_ANSWERS:
            answer, count = counts.most_common(1)[0]
            if count >= CONSTANT_SHARE * total:
                found.append((ev, answer, count, total))
    return found


def _constant_note(report: Report) -> str | None:
    found = constant_answers(report)
    if not found:
        return None
    seeded = {key for key, cell in report.evaluations.items() if len(cell.runs) > 1}
    parts = [
        f"{METHOD_LABELS.get(ev.method, ev.method)}/{ev.target}/{ev.setting}"
        + (f" seed {ev.seed}" if ev.key in seeded else "")
        + f": `{answer}` {count}/{total}"
        for ev, answer, count, total in found
    ]
    return (
        f"Constant answers (one candidate chosen for at least {CONSTANT_SHARE:.0%} of the "
        "option-scored answers; such a score is what answering that candidate to every input "
        "would score, whatever the model read — `bench/option_margins.py` shows whether the "
        "scores rank inputs at all): " + "; ".join(parts) + "."
    )


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


def _number(value: Any) -> str:
    return (
        f"{value:g}"
        if isinstance(value, int | float) and not isinstance(value, bool)
        else str(value)
    )


def lr_text(chosen: dict[str, Any]) -> str:
    """``{"lr": 0.3}`` → ``0.3``; ``{"lr_shared": 0.3, "lr_factors": 0.03}`` → ``P* 0.3, u/v 0.03``."""
    if set(chosen) == {"lr"}:
        return _number(chosen["lr"])
    if set(chosen) == {"lr_shared", "lr_factors"}:
        return f"P* {_number(chosen['lr_shared'])}, u/v {_number(chosen['lr_factors'])}"
    return ", ".join(f"{k} {_number(v)}" for k, v in chosen.items())


def _lr_cell(entry: dict[str, Any]) -> str:
    """The chosen rate; where settings or seeds chose differently, each with where it was chosen."""
    if entry["same_in_all_runs"]:
        return lr_text(entry["chosen_lr"])
    where: dict[str, list[str]] = {}
    for setting in reversed(sort_settings(set(entry["by_setting"]))):
        seeds = entry["by_setting"][setting]
        texts = {seed: lr_text(c) for seed, c in seeds.items()}
        if len(set(texts.values())) == 1:
            where.setdefault(next(iter(texts.values())), []).append(setting)
        else:
            for seed, text in texts.items():
                where.setdefault(text, []).append(f"{setting} seed {seed}")
    return "; ".join(f"{text} ({', '.join(places)})" for text, places in where.items())


def _chosen_label(chosen: dict[str, Any], candidates: dict[str, Any]) -> str | None:
    """The candidate the search chose: its label (as the search writes it), else the lowest loss."""
    from clinprompt.train.lr_search import rate_label

    try:
        label = rate_label(chosen)
    except (KeyError, TypeError, ValueError):
        label = None
    if label in candidates:
        return label
    finite = {c: float(v) for c, v in candidates.items() if v is not None}
    return min(finite, key=finite.__getitem__) if finite else None


def _candidate_md(label: str, loss: Any, score: Any, chosen: bool) -> str:
    """One search candidate: ``rate → best dev loss`` (``/ dev score ×100`` when it was judged
    by score; ``diverged`` without a loss), bold when chosen."""
    if loss is None:
        return f"{label} → diverged"
    value = f"{float(loss):.3f}" + ("" if score is None else f" / {100 * float(score):.1f}")
    return f"**{label} → {value}**" if chosen else f"{label} → {value}"


def _chosen_lr_md(report: Report) -> list[str]:
    methods = [m for m in _TRAINED if m in report.chosen_lr]
    if not methods:
        return []
    searched = {
        (m, t) for m in methods for t, e in report.chosen_lr[m].items() if e["lr_candidates"]
    }

    def cell(m: str, t: str) -> str:
        if t not in report.chosen_lr[m]:
            return "–"
        text = _lr_cell(report.chosen_lr[m][t])
        return text if (m, t) in searched or not searched else f"{text} (config, not searched)"

    header = ["target", *[METHOD_LABELS.get(m, m) for m in methods]]
    rows = [
        [t, *[cell(m, t) for m in methods]]
        for t in report.targets
        if any(t in report.chosen_lr[m] for m in methods)
    ]
    if not searched:  # no dev search ran: nothing was chosen on dev
        return [
            "### Learning rates",
            "Set by the config, not chosen on dev: no learning-rate search ran "
            "(`adapt.lr_search` is empty or [1.0]), so each method trained at its configured "
            "rate (PT: `baseline.pt_lr`; LoRA: `baseline.lora_lr`; MPT: `adapt.lr_shared` for "
            "P* and `adapt.lr_factors` for u, v; unset: the adaptation's `train.lr`). "
            "`adapt.lr_search=[0.3, 1.0, 3.0]` chooses them on each target's dev split.",
            _markdown_table(header, rows),
        ]
    lines = []
    for m in methods:
        for t in report.targets:
            entry = report.chosen_lr[m].get(t)
            if not entry or not entry["lr_candidates"]:
                continue
            candidates = entry["lr_candidates"]
            scores = entry.get("lr_candidate_scores") or {}
            chosen = _chosen_label(entry["chosen_lr"], candidates)
            parts = [
                _candidate_md(c, loss, scores.get(c), c == chosen) for c, loss in candidates.items()
            ]
            judged = entry.get("lr_judged_at")
            where = f", judged at step {judged}" if judged else ""
            lines.append(
                f"- {METHOD_LABELS.get(m, m)} / {t} ({entry['setting']}, seed {entry['seed']}"
                f"{where}): " + ", ".join(parts)
            )
    paused = sorted(
        {
            e["lr_judged_at"]
            for m in methods
            for e in report.chosen_lr[m].values()
            if e.get("lr_judged_at")
        }
    )
    by_score = any(
        e.get("lr_judged_by") == "score" for m in methods for e in report.chosen_lr[m].values()
    )
    steps = ", ".join(map(str, paused))
    if by_score:
        how = (
            "each candidate trained with the same budget, then its weights at its best dev loss "
            "answered the dev records as the test evaluation answers; the highest dev score "
            "wins (ties: the lower dev loss)"
            + (f", candidates judged after {steps} steps" if paused else "")
        )
    elif paused:
        how = (
            "each candidate trained on the same schedule and judged by its best dev loss after "
            f"{steps} steps, the lowest wins and only the winner trains on to the end"
        )
    else:
        how = "each candidate trained with the same budget, the lowest dev loss wins"
    out = [
        "### Learning rates chosen on dev",
        f"Chosen on each target's dev split by the same search for every method: {how} (MPT: "
        "the rates of the shared prompt P* and of the task factors u, v). A rate chosen "
        "differently by some setting or seed is listed with where.",
        _markdown_table(header, rows),
    ]
    if lines:
        what = "best dev loss / dev score ×100" if by_score else "best dev loss"
        out += [
            f"{what.capitalize()} of each candidate (the chosen one in bold):",
            "\n".join(lines),
        ]
    return out


def _range(values: list[Any], fmt: str) -> str:
    numbers = sorted({v for v in values if isinstance(v, int | float)})
    if not numbers:
        return "?"
    low, high = format(numbers[0], fmt), format(numbers[-1], fmt)
    return low if low == high else f"{low}–{high}"


def training_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Examples, optimizer steps and epochs of each trained (method, target) by setting, from
    the evaluations' ``training`` records (a range where seeds differ); no rows without them."""
    trained = {  # zero-shot settings record no steps: nothing was trained
        key: [ev.training for ev in cell.runs if ev.training and ev.training.get("train_steps")]
        for key, cell in report.evaluations.items()
    }
    trained = {key: recs for key, recs in trained.items() if recs}
    if not trained:
        return [], []
    settings = sort_settings({s for (_, _, s) in trained})
    header = ["method", "target", *[("k=" + s[1:]) if s != "full" else "full" for s in settings]]
    rows = []
    for m in [*_TRAINED, *sorted({m for (m, _, _) in trained} - set(_TRAINED))]:
        for t in report.targets:
            if not any((m, t, s) in trained for s in settings):
                continue
            cells = []
            for s in settings:
                recs = trained.get((m, t, s))
                if not recs:
                    cells.append("–")
                    continue
                examples = _range([r.get("train_examples") for r in recs], ",")
                steps = _range([r.get("train_steps") for r in recs], ",")
                epochs = _range([r.get("epochs") for r in recs], ".3g")
                cells.append(f"{examples} ex, {steps} steps, {epochs} ep")
            rows.append([METHOD_LABELS.get(m, m), t, *cells])
    return header, rows


def _curve_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    header = ["stage", "run", "seeds", "steps", "last train loss", "best dev loss (step)"]
    rows = []
    for stage, logs in report.curves.items():
        groups: dict[tuple[str, str | None], list[LossLog]] = {}
        for log in logs:
            groups.setdefault((log.name, log.setting), []).append(log)
        rank = {t: i for i, t in enumerate(report.targets)}
        order = sorted(
            groups, key=lambda g: (rank.get(g[0], len(rank)), g[0], g[1] != "full", g[1] or "")
        )
        for name, setting in order:
            group = groups[(name, setting)]
            last = [x.last_train_loss for x in group if x.last_train_loss is not None]
            lm = [x.last_lm_loss for x in group if x.last_lm_loss is not None]
            best = [x.best_dev for x in group if x.best_dev is not None]
            rows.append(
                [
                    STAGE_LABELS[stage],
                    name if setting is None else f"{name} {setting}",
                    str(len(group)),
                    _range([x.steps for x in group], ","),
                    (f"{sum(last) / len(last):.3f}" if last else "–")
                    + (f" (lm {sum(lm) / len(lm):.3f})" if lm else ""),
                    (
                        f"{sum(b[1] for b in best) / len(best):.3f} "
                        f"({', '.join(str(b[0]) for b in best)})"
                    )
                    if best
                    else "–",
                ]
            )
    return header, rows


def _curves_md(report: Report, figures: dict[str, str] | None) -> list[str]:
    if not report.curves and not report.curve_notes:
        return []
    out = ["## Training curves"]
    if report.curves:
        out.append(
            "Train loss (every logged optimizer step; the mean over the step's target tokens) and "
            "dev loss (each evaluation; distillation: the LM loss alone, so its train LM part is "
            "shown beside the weighted total) of every training stage. "
            "Where a run has several seeds the values are their mean and the best dev steps are "
            "listed per seed."
        )
        header, rows = _curve_rows(report)
        out.append(_markdown_table(header, rows))
    for stage in report.curves:
        if figures and stage in figures:
            out.append(f"![{STAGES[stage]}: train and dev loss]({figures[stage]})")
    if report.curve_notes:
        out.append("\n".join(f"- {note}" for note in report.curve_notes))
    return out


def _seed_note(report: Report) -> str | None:
    if not report.multi_seed:
        return None
    counts = ", ".join(
        f"{METHOD_LABELS.get(m, m)} {report.seeds_of(m)}" for m in METHODS if report.seeds_of(m) > 1
    )
    text = (
        f"Training seeds: a cell of a method trained with several seeds ({counts}) is the mean ± "
        "the sample standard deviation over seeds; the average row averages the per-target means."
    )
    if any(n > 1 for seeds in report.interval_seeds.values() for n in seeds.values()):
        text += (
            " The paired bootstrap resamples seeds and examples: each resample draws every "
            "target's test examples with replacement (the same draw for both methods) and, "
            "independently per method and target, as many training seeds as there are with "
            "replacement; a method's score on a target is the metric recomputed on the drawn "
            "examples for each drawn seed (corpus-level metrics such as F1 rescored), averaged "
            "over the drawn seeds; the 2.5th and 97.5th percentiles of the differences of the "
            "averages over targets are the interval."
        )
    return text


def _formulation_note(report: Report) -> str | None:
    found = report.formulations()
    if not found:
        return None
    parts = []
    for t in report.targets:
        for text, methods in found.get(t, {}).items():
            names = ", ".join(METHOD_LABELS.get(m, m) for m in methods)
            parts.append(f"{t}: {text} ({names})")
    return "Task formulation recorded by the evaluations: " + "; ".join(parts) + "."


def render_markdown(report: Report, figures: dict[str, str] | None = None) -> str:
    """The report as Markdown: the main table, intervals, few-shot rows, training (chosen
    learning rates, examples and steps), loss curves, notes, provenance.

    Args:
        report: the report.
        figures: stage → the loss-curve PNG to link (a path relative to the Markdown file).
    """
    title = f"# Results on {report.backbone}" + (
        " — SYNTHETIC data (a functional check, not a clinical result)" if report.synthetic else ""
    )
    header, rows = _table_rows(report)
    intro = (
        "Scores ×100 on each target's test examples; columns are methods trained on the full target pool "
        "(zero-shot: the backbone with the instruction only). The floor is a trivial baseline "
        "(majority label, most frequent option letter, empty prediction, first sentence of the source)."
    )
    if report.multi_seed:
        counts = ", ".join(
            f"{METHOD_LABELS.get(m, m)} {report.seeds_of(m)}"
            for m in METHODS
            if report.seeds_of(m) > 1
        )
        intro += f" Trained methods: mean ± sd over training seeds ({counts} seeds; see Notes)."
    parts = [title, intro, _markdown_table(header, rows)]
    if report.intervals:
        seeded = any(n > 1 for seeds in report.interval_seeds.values() for n in seeds.values())
        lines = [
            "Paired bootstrap on the average over targets (95% interval, ×100"
            + ("; test examples and training seeds resampled, see Notes" if seeded else "")
            + "):",
            "",
        ]
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
    lr_parts = _chosen_lr_md(report)
    train_header, train_rows = training_rows(report)
    if lr_parts or train_rows:
        parts.append("## Training")
        parts += lr_parts
        if train_rows:
            parts += [
                "### Examples and steps",
                "Distinct training examples, optimizer steps and epochs (passes over those "
                "examples) of each trained setting; a range where seeds differ.",
                _markdown_table(train_header, train_rows),
            ]
    parts += _curves_md(report, figures)
    notes = [
        _unparseable_note(report),
        _constant_note(report),
        _seed_note(report),
        _formulation_note(report),
    ]
    parts += ["## Notes", *[n for n in notes if n], "## Provenance", _provenance_md(report)]
    return "\n\n".join(parts) + "\n"


def _spread_columns(report: Report, t: str, metric: str) -> list[str]:
    """``<m>_sd`` and ``<m>_n_seeds`` of each main column (multi-seed reports only)."""
    cells: list[Cell | None] = [report.get(m, t, s) for m, s in MAIN_COLUMNS]
    sds = [None if c is None else c.sd(metric) for c in cells]
    counts = [0 if c is None else len(c.values(metric)) for c in cells]
    return [
        *["" if v is None else f"{100 * v:.4f}" for v in sds],
        *["" if n == 0 else str(n) for n in counts],
    ]


def render_csv(report: Report) -> str:
    """The main table as CSV (values ×100, unrounded to 4 decimals): the mean over seeds; with
    several seeds, also each column's standard deviation (``<method>_sd``) and seed count
    (``<method>_n_seeds``)."""
    seeded = report.multi_seed
    buf = io.StringIO()
    writer = csv.writer(buf)
    extra = (
        [f"{m}_sd" for m, _ in MAIN_COLUMNS] + [f"{m}_n_seeds" for m, _ in MAIN_COLUMNS]
        if seeded
        else []
    )
    blank = [""] * len(extra)
    writer.writerow(["task_type", "target", "metric", "n", *[m for m, _ in MAIN_COLUMNS], *extra])
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
                    *(_spread_columns(report, t, metric) if seeded else []),
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
            *blank,
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
                *blank,
            ]
        )
    return buf.getvalue()


def render_long_csv(report: Report) -> str:
    """Every metric of every evaluation, one row each; with several seeds, one row per seed with
    its ``seed`` and the cell's ``mean``, ``sd`` and ``n_seeds`` beside the seed's ``value``."""
    seeded = report.multi_seed
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(
        [
            "method",
            "target",
            "task_type",
            "setting",
            *(["seed"] if seeded else []),
            "metric",
            "value",
            *(["mean", "sd", "n_seeds"] if seeded else []),
            "n",
            "unparseable",
            "trainable_params",
            "backbone_params",
        ]
    )
    for (method, target, setting), cell in sorted(report.evaluations.items()):
        for ev in cell.runs:
            for metric, value in sorted(ev.metrics.items()):
                sd = cell.sd(metric)
                writer.writerow(
                    [
                        method,
                        target,
                        ev.task_type,
                        setting,
                        *([ev.seed] if seeded else []),
                        metric,
                        value,
                        *(
                            [cell.mean(metric), "" if sd is None else sd, len(cell.values(metric))]
                            if seeded
                            else []
                        ),
                        ev.n,
                        ev.unparseable,
                        ev.trainable_params or "",
                        ev.backbone_params or "",
                    ]
                )
    return buf.getvalue()
