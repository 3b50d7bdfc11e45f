"""The built-in SYNTHETIC suite: small, deterministic clinical-style tasks of all five types.

Used by the offline demo and the tests; no external data. Every task is generated from regular
templates filled from vocabulary lists of real drug, condition, symptom and lab names with a seeded
:class:`random.Random`, so a small LM can learn it from a few hundred examples. Targets reuse the
structure of a source (vitals NER ~ lab NER, dose RE ~ ADE RE, drug-class QA ~ formulary QA,
symptom NLI ~ triage NLI, plan summary ~ note summary) with their own templates, so transfer can
help while no target text occurs in a source (see :func:`clinprompt.data.suite.check_leakage`).

Records follow ``../shared/spec/records.md``. Within a task, inputs are unique across splits; the
test split is generated first, so it does not change when the train size does.
"""

from __future__ import annotations

import functools
import random
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records
from clinprompt.data.synthetic_vocab import DRUGS, EXAMS, LABS, STATUSES, SYMPTOMS, lab, vital

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_SIZES",
    "SYNTHETIC_SOURCES",
    "SYNTHETIC_TARGETS",
    "generate_splits",
]

DEFAULT_SIZES: dict[str, int] = {"train": 200, "dev": 50, "test": 50}
DEFAULT_SEED = 0
NLI_LABELS = ("entailment", "neutral", "contradiction")


def _fill(template: str, slots: dict[str, str]) -> tuple[str, dict[str, dict[str, Any]]]:
    """Fill a template: ``{name}`` is plain text, ``{Type:name}`` an entity of that type.

    Returns the text (first letter capitalised) and its entities (character offsets) by slot name.
    """
    text, spans = "", {}
    pieces = re.split(r"\{(?:(\w+):)?(\w+)\}", template)  # text, type, name, text, ...
    for i in range(0, len(pieces), 3):
        text += pieces[i]
        if i + 2 < len(pieces):
            etype, name = pieces[i + 1], pieces[i + 2]
            if etype:
                assert name not in spans, f"entity slot {name!r} used twice in {template!r}"
                spans[name] = (len(text), len(text) + len(slots[name]), etype)
            text += slots[name]
    text = text[:1].upper() + text[1:]
    ents = {
        k: {"start": a, "end": b, "type": t, "text": text[a:b]} for k, (a, b, t) in spans.items()
    }
    return text, ents


def _ner_record(template: str, slots: dict[str, str]) -> dict[str, Any]:
    text, ents = _fill(template, slots)
    return {"text": text, "entities": sorted(ents.values(), key=lambda e: e["start"])}


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def _patient(rng: random.Random) -> tuple[int, str]:
    return rng.randint(19, 92), rng.choice(("man", "woman"))


# ---------------------------------------------------------------- NER
_MED_NER = (
    "Patient with {Problem:p1} was started on {Drug:d1} {dose} daily.",
    "{age}-year-old {sex} with {Problem:p1} and {Problem:p2}, currently taking {Drug:d1}.",
    "History of {Problem:p1}; home medications include {Drug:d1} and {Drug:d2}.",
    "Presented with {Problem:p1} after {Drug:d1} was stopped.",
    "{Drug:d1} was increased for worsening {Problem:p1}.",
    "Denies {Problem:p1}. Continues {Drug:d1} {dose} without issues.",
    "Admitted for {Problem:p1}; {Drug:d1} and {Drug:d2} were held on arrival.",
)


def _med_ner(rng: random.Random, k: int) -> dict[str, Any]:
    d1, d2 = rng.sample(DRUGS, 2)
    p1, p2 = rng.sample([*SYMPTOMS, *(d[2] for d in DRUGS)], 2)
    age, sex = _patient(rng)
    slots = dict(d1=d1[0], d2=d2[0], p1=p1, p2=p2, dose=rng.choice(d1[3]), age=str(age), sex=sex)
    return _ner_record(rng.choice(_MED_NER), slots)


_LAB_NER = (
    "Labs notable for {Lab:l1} of {Value:v1}.",
    "{Lab:l1} was {Value:v1} on admission.",
    "Admission labs: {Lab:l1} {Value:v1}, {Lab:l2} {Value:v2}.",
    "Repeat {Lab:l1} this morning was {Value:v1}, down from {Value:v0}.",
    "{Lab:l1} {Value:v1} and {Lab:l2} {Value:v2}; {Lab:l3} pending.",
    "Patient with {cond}; {Lab:l1} remains {Value:v1}.",
)


def _lab_ner(rng: random.Random, k: int) -> dict[str, Any]:
    names = rng.sample([x[0] for x in LABS], 3)
    (l1, v1), (l2, v2), (_, v0) = (lab(rng, n) for n in (names[0], names[1], names[0]))
    slots = dict(l1=l1, v1=v1, l2=l2, v2=v2, l3=names[2], v0=v0, cond=rng.choice(DRUGS)[2])
    return _ner_record(rng.choice(_LAB_NER), slots)


_VITALS_NER = (
    "On arrival, {Vital:a1} was {Value:v1}.",
    "Vitals: {Vital:a1} {Value:v1}, {Vital:a2} {Value:v2}, {Vital:a3} {Value:v3}.",
    "{Vital:a1} improved to {Value:v1} after fluids.",
    "Triage {Vital:a1} {Value:v1} with {Vital:a2} of {Value:v2}; patient appears {look}.",
    "Overnight the {Vital:a1} rose to {Value:v1}.",
)


def _vitals_ner(rng: random.Random, k: int) -> dict[str, Any]:
    vitals: dict[str, str] = {}
    while len(vitals) < 3:
        name, value = vital(rng)
        vitals.setdefault(name, value)
    (a1, v1), (a2, v2), (a3, v3) = vitals.items()
    look = rng.choice(("comfortable", "ill", "anxious", "diaphoretic"))
    slots = dict(a1=a1, v1=v1, a2=a2, v2=v2, a3=a3, v3=v3, look=look)
    return _ner_record(rng.choice(_VITALS_NER), slots)


# ---------------------------------------------------------------- RE
def _re_record(
    template: str, slots: dict[str, str], pairs: list[tuple[str, str]], rel: str
) -> dict[str, Any]:
    """An RE record: entities numbered T1.. in text order; ``pairs`` are (head slot, tail slot)."""
    text, ents = _fill(template, slots)
    order = sorted(ents, key=lambda s: ents[s]["start"])
    ids = {slot: f"T{i + 1}" for i, slot in enumerate(order)}
    entities = [{"id": ids[s], **ents[s]} for s in order]
    relations = [{"head": ids[h], "tail": ids[t], "type": rel} for h, t in pairs]
    return {"text": text, "entities": entities, "relations": relations}


_CAUSES = [("d1", "e1")]
_ADE_RE = (  # (template, related pairs)
    ("Patient developed {AdverseEffect:e1} after starting {Drug:d1}.", _CAUSES),
    ("{AdverseEffect:e1} attributed to {Drug:d1}; the drug was stopped.", _CAUSES),
    ("{Drug:d1} was discontinued because of {AdverseEffect:e1}.", _CAUSES),
    ("{age}-year-old {sex} on {Drug:d1} presented with {AdverseEffect:e1}.", _CAUSES),
    ("{AdverseEffect:e1} after {Drug:d1} was added to {Drug:d2}; the new drug was held.", _CAUSES),
    ("{Drug:d2} was continued; new {AdverseEffect:e1} was attributed to {Drug:d1}.", _CAUSES),
    ("Tolerating {Drug:d1} well without {AdverseEffect:e1}.", []),
    ("{AdverseEffect:e1} predated the start of {Drug:d1} by {n} months.", []),
)


def _ade_re(rng: random.Random, k: int) -> dict[str, Any]:
    d1, d2 = rng.sample(DRUGS, 2)
    age, sex = _patient(rng)
    slots = dict(
        d1=d1[0], d2=d2[0], e1=rng.choice(d1[4]), age=str(age), sex=sex, n=str(rng.randint(2, 18))
    )
    template, pairs = rng.choice(_ADE_RE)
    return _re_record(template, slots, pairs, "causes")


_HAS_DOSE = [("d1", "s1")]
_DOSE_RE = (
    ("Continue {Drug:d1} {Dose:s1} daily.", _HAS_DOSE),
    ("Started {Drug:d1} {Dose:s1} twice daily for {cond}.", _HAS_DOSE),
    ("Home medications: {Drug:d1} {Dose:s1} and {Drug:d2} {Dose:s2}.", [*_HAS_DOSE, ("d2", "s2")]),
    ("Switched from {Drug:d2} to {Drug:d1} {Dose:s1}.", _HAS_DOSE),
    ("{Drug:d1} was increased to {Dose:s1} at bedtime.", _HAS_DOSE),
    ("Held {Drug:d2}; resume {Drug:d1} {Dose:s1} tomorrow.", _HAS_DOSE),
)


def _dose_re(rng: random.Random, k: int) -> dict[str, Any]:
    d1, d2 = rng.sample(DRUGS, 2)
    slots = dict(d1=d1[0], d2=d2[0], s1=rng.choice(d1[3]), s2=rng.choice(d2[3]), cond=d1[2])
    template, pairs = rng.choice(_DOSE_RE)
    return _re_record(template, slots, pairs, "has_dose")


# ---------------------------------------------------------------- QA (multiple choice with a context)
def _options(
    rng: random.Random, k: int, answer: str, distractors: list[str]
) -> tuple[dict[str, str], str]:
    """Options A-D with the answer at position ``k % 4`` (balanced letters)."""
    items = rng.sample(distractors, 3)
    items.insert(k % 4, answer)
    return dict(zip("ABCD", items, strict=True)), "ABCD"[k % 4]


def _med_qa(rng: random.Random, k: int) -> dict[str, Any]:
    listed = rng.sample(DRUGS, 4)
    context = "Formulary: " + " ".join(f"{d[0]} ({d[1]}) is used for {d[2]}." for d in listed)
    gold = listed[rng.randrange(4)]
    question = rng.choice(
        (
            "Which drug on the formulary is used for {c}?",
            "A patient has {c}. According to the formulary, which medication should be prescribed?",
            "Which formulary medication treats {c}?",
        )
    ).format(c=gold[2])
    options, answer = _options(rng, k, gold[0], [d[0] for d in listed if d is not gold])
    return {"question": question, "context": context, "options": options, "answer": answer}


def _drug_class_qa(rng: random.Random, k: int) -> dict[str, Any]:
    listed = rng.sample(DRUGS, 4)
    context = "Reference table. " + " ".join(
        f"{d[0].capitalize()}: {d[1]}, indicated for {d[2]}." for d in listed
    )
    gold = listed[rng.randrange(4)]
    field = rng.randrange(2) + 1  # 1: class, 2: indication
    question = (
        f"To which drug class does {gold[0]} belong?"
        if field == 1
        else f"According to the reference table, what is {gold[0]} indicated for?"
    )
    options, answer = _options(rng, k, gold[field], [d[field] for d in listed if d is not gold])
    return {"question": question, "context": context, "options": options, "answer": answer}


# ---------------------------------------------------------------- NLI (labels balanced by k)
def _triage_nli(rng: random.Random, k: int) -> dict[str, Any]:
    age, sex = _patient(rng)
    cond, other = rng.sample([d[2] for d in DRUGS], 2)
    symptom, drug = rng.choice(SYMPTOMS), rng.choice(DRUGS)[0]
    hr = rng.randint(52, 140)
    premise = f"{age}-year-old {sex} with a history of {cond} presents to triage with {symptom}; heart rate {hr} bpm."
    label = NLI_LABELS[k % 3]
    choices = {
        "entailment": [
            f"The patient has a history of {cond}.",
            f"The patient reports {symptom}.",
            f"The patient is a {sex}.",
            "The patient is tachycardic." if hr > 100 else "The patient is not tachycardic.",
        ],
        "neutral": [
            f"The patient has a history of {other}.",
            f"The patient was given {drug} in triage.",
            "The patient smokes.",
            f"The patient's {symptom} started after exercise.",
        ],
        "contradiction": [
            f"The patient has no history of {cond}.",
            f"The patient denies {symptom}.",
            f"The patient is a {'woman' if sex == 'man' else 'man'}.",
            "The patient is not tachycardic." if hr > 100 else "The patient is tachycardic.",
        ],
    }
    return {"premise": premise, "hypothesis": rng.choice(choices[label]), "label": label}


def _symptom_nli(rng: random.Random, k: int) -> dict[str, Any]:
    s1, s2, s3, s4 = rng.sample(SYMPTOMS, 4)
    premise = rng.choice(
        (
            "Patient reports {a} and {b} but denies {c}.",
            "On review of systems, positive for {a} and {b}; negative for {c}.",
        )
    ).format(a=s1, b=s2, c=s3)
    label = NLI_LABELS[k % 3]
    present = rng.choice((s1, s2))
    choices = {
        "entailment": [f"The patient is experiencing {present}.", f"The patient is free of {s3}."],
        "neutral": [f"The patient is experiencing {s4}.", f"The patient is free of {s4}."],
        "contradiction": [
            f"The patient is experiencing {s3}.",
            f"The patient is free of {present}.",
        ],
    }
    return {"premise": premise, "hypothesis": rng.choice(choices[label]), "label": label}


# ---------------------------------------------------------------- SUM
def _note_sum(rng: random.Random, k: int) -> dict[str, Any]:
    age, sex = _patient(rng)
    (d1, d2, d3) = rng.sample(DRUGS, 3)
    symptom, days = rng.choice(SYMPTOMS), _count(rng.randint(1, 14), "day")
    action = rng.choice(("start", "stop", "continue", "increase"))
    source = (
        f"HPI: {age}-year-old {sex} with a history of {d1[2]} and {d2[2]} presents with {days} of "
        f"{symptom}. Exam: {rng.choice(EXAMS)}. Medications: {d1[0]}, {d2[0]}. Plan: {action} {d3[0]}."
    )
    summary = f"{age}{'M' if sex == 'man' else 'F'} with {d1[2]} and {d2[2]}, {days} of {symptom}; {action} {d3[0]}."
    return {"source": source, "summary": summary}


def _plan_sum(rng: random.Random, k: int) -> dict[str, Any]:
    drug, status = rng.choice(DRUGS), rng.choice(STATUSES)
    dose, test = rng.choice(drug[3]), rng.choice(LABS)[0]
    weeks, visit = _count(rng.randint(1, 8), "week"), _count(rng.randint(2, 12), "week")
    source = (
        f"Assessment: {drug[2]}, {status}. Plan: start {drug[0]} {dose} daily. Check {test} in {weeks}. "
        f"Return to clinic in {visit} or sooner if {rng.choice(SYMPTOMS)}."
    )
    summary = f"{drug[2].capitalize()}, {status}: start {drug[0]} {dose}; check {test} in {weeks}; follow up in {visit}."
    return {"source": source, "summary": summary}


# ---------------------------------------------------------------- registry
_Maker = Callable[[random.Random, int], dict[str, Any]]
# name: (task type, labels, instruction, maker, role)
# fmt: off
_TASKS: dict[str, tuple[str, tuple[str, ...], str, _Maker, str]] = {
    "syn_med_ner": ("ner", ("Drug", "Problem"), "Extract every drug and every medical problem mentioned in the clinical sentence.", _med_ner, "source"),
    "syn_lab_ner": ("ner", ("Lab", "Value"), "Extract every lab test and every lab value mentioned in the clinical sentence.", _lab_ner, "source"),
    "syn_ade_re": ("re", ("causes",), "Given the marked drugs and adverse effects, list which drug causes which adverse effect.", _ade_re, "source"),
    "syn_med_qa": ("qa", (), "Answer the multiple-choice question using the formulary. Reply with the letter of the correct option.", _med_qa, "source"),
    "syn_triage_nli": ("nli", NLI_LABELS, "Does the triage note entail, contradict, or say nothing about the statement? Answer entailment, neutral or contradiction.", _triage_nli, "source"),
    "syn_note_sum": ("sum", (), "Summarize the clinical note in one line.", _note_sum, "source"),
    "syn_vitals_ner": ("ner", ("Vital", "Value"), "Extract every vital sign and every vital sign value mentioned in the clinical sentence.", _vitals_ner, "target"),
    "syn_dose_re": ("re", ("has_dose",), "Given the marked drugs and doses, list which dose belongs to which drug.", _dose_re, "target"),
    "syn_drug_class_qa": ("qa", (), "Answer the multiple-choice question using the reference table. Reply with the letter of the correct option.", _drug_class_qa, "target"),
    "syn_symptom_nli": ("nli", NLI_LABELS, "Does the review of symptoms entail, contradict, or say nothing about the statement? Answer entailment, neutral or contradiction.", _symptom_nli, "target"),
    "syn_plan_sum": ("sum", (), "Summarize the assessment and plan in one line.", _plan_sum, "target"),
}
# fmt: on
SYNTHETIC_SOURCES = tuple(n for n, t in _TASKS.items() if t[4] == "source")
SYNTHETIC_TARGETS = tuple(n for n, t in _TASKS.items() if t[4] == "target")
_INPUT_FIELDS = ("text", "question", "context", "premise", "hypothesis", "source")


def generate_splits(
    name: str, sizes: dict[str, int] | None = None, seed: int = DEFAULT_SEED
) -> dict[str, Records]:
    """Generate the splits of synthetic task ``name`` deterministically.

    Args:
        name: a synthetic task (``syn_med_ner`` ...).
        sizes: examples per split (default :data:`DEFAULT_SIZES`); splits are generated in the
            order test, dev, train so that the test set does not depend on the train size.
        seed: base seed; each task derives its own from it and its name.

    Returns:
        ``{split: records}`` with ids ``{name}-{split}-{i:04d}`` and inputs unique across splits.

    Raises:
        KeyError: ``name`` is not a synthetic task.
        RuntimeError: the templates cannot produce that many distinct inputs.
    """
    if name not in _TASKS:
        raise KeyError(f"unknown synthetic task {name!r}; expected one of: {', '.join(_TASKS)}")
    sizes = dict(DEFAULT_SIZES if sizes is None else sizes)
    make = _TASKS[name][3]
    rng = random.Random(zlib.crc32(f"{seed}:{name}".encode()))
    seen: set[tuple[str, ...]] = set()
    out: dict[str, Records] = {}
    for split in sorted(
        sizes,
        key=lambda s: ("test", "dev", "train").index(s) if s in ("test", "dev", "train") else 3,
    ):
        records: Records = []
        tries = 0
        while len(records) < sizes[split]:
            tries += 1
            if tries > 100 * sizes[split] + 1000:
                raise RuntimeError(
                    f"{name}: could not generate {sizes[split]} distinct {split} examples"
                )
            record = make(rng, len(records))
            key = tuple(str(record.get(f, "")) for f in _INPUT_FIELDS)
            if key in seen:
                continue
            seen.add(key)
            records.append(record)
        rng.shuffle(records)  # makers balance labels by position; shuffle the order
        out[split] = [{"id": f"{name}-{split}-{i:04d}", **r} for i, r in enumerate(records)]
    return {s: out[s] for s in sizes}


def _load(name: str, data_root: Path) -> dict[str, Records]:
    # The data root is ignored: synthetic data is generated, not read.
    return generate_splits(name)


for _name, (_type, _labels, _instruction, _maker, _role) in _TASKS.items():
    register(
        DatasetSpec(
            name=_name,
            task_type=_type,
            labels=_labels,
            instruction=_instruction,
            loader=functools.partial(_load, _name),
            synthetic=True,
            description=f"SYNTHETIC {_type} {_role} task generated from templates (clinprompt built-in, no external data).",
        )
    )
