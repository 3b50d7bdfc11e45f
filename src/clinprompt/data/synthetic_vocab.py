"""Vocabulary of the SYNTHETIC suite: real drug, condition, symptom and lab names.

The drug table is the shared "knowledge" of the synthetic tasks (indications, doses, adverse
effects); :mod:`clinprompt.data.synthetic` fills its templates from these lists.
"""

from __future__ import annotations

import random

__all__ = ["DRUGS", "EXAMS", "LABS", "STATUSES", "SYMPTOMS", "lab", "vital"]

# fmt: off
# drug, class, indication, doses, adverse effects — the shared knowledge table.
DRUGS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("metformin", "biguanide", "type 2 diabetes", ("500 mg", "850 mg", "1000 mg"), ("lactic acidosis", "diarrhea")),
    ("lisinopril", "ACE inhibitor", "hypertension", ("10 mg", "20 mg", "40 mg"), ("dry cough", "angioedema")),
    ("atorvastatin", "statin", "hyperlipidemia", ("20 mg", "40 mg", "80 mg"), ("myalgia", "rhabdomyolysis")),
    ("levothyroxine", "thyroid hormone", "hypothyroidism", ("50 mcg", "75 mcg", "100 mcg"), ("palpitations", "tremor")),
    ("albuterol", "beta-2 agonist", "asthma", ("90 mcg", "180 mcg"), ("tachycardia", "tremor")),
    ("warfarin", "vitamin K antagonist", "atrial fibrillation", ("2 mg", "5 mg", "7.5 mg"), ("gastrointestinal bleeding", "hematuria")),
    ("omeprazole", "proton pump inhibitor", "gastroesophageal reflux disease", ("20 mg", "40 mg"), ("hypomagnesemia", "headache")),
    ("sertraline", "SSRI", "major depressive disorder", ("50 mg", "100 mg"), ("nausea", "hyponatremia")),
    ("amoxicillin", "penicillin", "acute otitis media", ("500 mg", "875 mg"), ("rash", "diarrhea")),
    ("furosemide", "loop diuretic", "heart failure", ("20 mg", "40 mg", "80 mg"), ("hypokalemia", "acute kidney injury")),
    ("allopurinol", "xanthine oxidase inhibitor", "gout", ("100 mg", "300 mg"), ("Stevens-Johnson syndrome", "rash")),
    ("gabapentin", "gabapentinoid", "neuropathic pain", ("300 mg", "600 mg"), ("dizziness", "somnolence")),
    ("prednisone", "corticosteroid", "polymyalgia rheumatica", ("10 mg", "20 mg", "40 mg"), ("hyperglycemia", "insomnia")),
    ("insulin glargine", "long-acting insulin", "type 1 diabetes", ("10 units", "20 units"), ("hypoglycemia", "weight gain")),
    ("amlodipine", "calcium channel blocker", "stable angina", ("5 mg", "10 mg"), ("ankle edema", "flushing")),
    ("metoprolol", "beta blocker", "coronary artery disease", ("25 mg", "50 mg", "100 mg"), ("bradycardia", "fatigue")),
    ("alendronate", "bisphosphonate", "osteoporosis", ("70 mg",), ("esophagitis", "osteonecrosis of the jaw")),
    ("tamsulosin", "alpha blocker", "benign prostatic hyperplasia", ("0.4 mg",), ("orthostatic hypotension", "dizziness")),
    ("sumatriptan", "triptan", "migraine", ("50 mg", "100 mg"), ("chest tightness", "paresthesia")),
    ("ciprofloxacin", "fluoroquinolone", "urinary tract infection", ("250 mg", "500 mg"), ("tendon rupture", "QT prolongation")),
    ("donepezil", "cholinesterase inhibitor", "Alzheimer disease", ("5 mg", "10 mg"), ("bradycardia", "vivid dreams")),
    ("levetiracetam", "antiepileptic", "epilepsy", ("500 mg", "1000 mg"), ("irritability", "somnolence")),
    ("methotrexate", "antimetabolite", "rheumatoid arthritis", ("7.5 mg", "15 mg"), ("mucositis", "hepatotoxicity")),
    ("apixaban", "factor Xa inhibitor", "deep vein thrombosis", ("2.5 mg", "5 mg"), ("epistaxis", "gastrointestinal bleeding")),
)
SYMPTOMS = (
    "chest pain", "shortness of breath", "fever", "cough", "headache", "abdominal pain", "nausea",
    "vomiting", "dizziness", "fatigue", "palpitations", "back pain", "joint pain", "leg swelling",
    "dysuria", "confusion", "syncope", "weight loss", "sore throat", "night sweats",
)
# lab name, unit, low, high, decimals
LABS = (
    ("hemoglobin", "g/dL", 6.5, 17.0, 1), ("white blood cell count", "K/uL", 1.5, 25.0, 1),
    ("platelet count", "K/uL", 40, 450, 0), ("sodium", "mmol/L", 121, 151, 0),
    ("potassium", "mmol/L", 2.8, 6.4, 1), ("creatinine", "mg/dL", 0.5, 4.8, 1),
    ("glucose", "mg/dL", 52, 430, 0), ("hemoglobin A1c", "%", 5.0, 13.5, 1),
    ("troponin I", "ng/mL", 0.01, 2.5, 2), ("lactate", "mmol/L", 0.6, 6.5, 1),
    ("TSH", "mIU/L", 0.1, 12.0, 1), ("INR", "", 0.9, 4.6, 1), ("ALT", "U/L", 9, 320, 0),
    ("total bilirubin", "mg/dL", 0.2, 6.0, 1), ("BUN", "mg/dL", 6, 85, 0),
    ("magnesium", "mg/dL", 1.1, 3.0, 1), ("LDL cholesterol", "mg/dL", 55, 230, 0),
    ("C-reactive protein", "mg/L", 1, 190, 0), ("calcium", "mg/dL", 7.4, 11.8, 1),
    ("albumin", "g/dL", 1.9, 5.1, 1),
)
# fmt: on
EXAMS = (
    "afebrile, lungs clear",
    "mild bibasilar crackles",
    "regular rate and rhythm",
    "mild epigastric tenderness",
    "trace pedal edema",
    "no focal deficits",
    "dry mucous membranes",
    "soft, non-tender abdomen",
)
STATUSES = ("newly diagnosed", "poorly controlled", "stable", "worsening", "improving")


def vital(rng: random.Random) -> tuple[str, str]:
    """A vital sign name and a plausible value with its unit."""
    kind = rng.randrange(7)
    if kind == 0:
        return "blood pressure", f"{rng.randint(88, 196)}/{rng.randint(48, 112)} mmHg"
    if kind == 1:
        return "heart rate", f"{rng.randint(42, 148)} bpm"
    if kind == 2:
        return "temperature", f"{rng.randint(355, 404) / 10:.1f} C"
    if kind == 3:
        return "respiratory rate", f"{rng.randint(10, 34)} breaths/min"
    if kind == 4:
        return "oxygen saturation", f"{rng.randint(82, 100)}%"
    if kind == 5:
        return "weight", f"{rng.randint(45, 140)} kg"
    return "pain score", f"{rng.randint(0, 10)}/10"


def lab(rng: random.Random, name: str | None = None) -> tuple[str, str]:
    """A lab test name and a value with its unit (the named test, else a random one)."""
    row = next(x for x in LABS if x[0] == name) if name else rng.choice(LABS)
    value = f"{rng.uniform(row[2], row[3]):.{row[4]}f}"
    return row[0], f"{value} {row[1]}".strip()
