"""The demo's code path end to end on tiny-llama with tiny budgets (the SmolLM2 demo is run by hand)."""

from __future__ import annotations

import io
import json

from rich.console import Console

from clinprompt.recipes.demo import run_demo

TINY = [
    "prompt.tokens=2",
    "train.steps=1",
    "teachers.train={steps: 1}",
    "distill.train={steps: 1}",
    "adapt.kshot_train={steps: 1}",
    "adapt.modes=[full, kshot, zero]",
    "adapt.shots=[4]",
    "data.max_train_examples=8",
    "data.max_dev_examples=2",
    "data.max_test_examples=2",
    "data.max_input_tokens=32",
    "data.max_target_tokens=6",
    "train.eval_examples=2",
    "train.progress=false",
    "data.sources=[syn_med_ner, syn_triage_nli]",
    "data.targets=[syn_vitals_ner, syn_symptom_nli]",
]


def test_demo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    buf = io.StringIO()
    paths = run_demo(
        out, backbone="tiny-llama", overrides=TINY, console=Console(file=buf, width=120)
    )
    printed = buf.getvalue()
    assert "SYNTHETIC" in printed and "[7/7] report" in printed and "| **average** |" in printed
    for key in ("markdown", "csv", "plot_targets", "plot_fewshot"):
        assert paths[key].exists() and paths[key].stat().st_size > 0
    md = paths["markdown"].read_text()
    assert "SYNTHETIC" in md and "## Provenance" in md and "tiny-llama" in md
    # the benchmark's protocol: every method's rate chosen on dev by the same three-rate search
    assert "### Learning rates chosen on dev" in md
    for method in ("mpt", "pt", "lora"):
        for target in ("syn_vitals_ner", "syn_symptom_nli"):
            search = json.loads((out / "lr_search" / method / target / "search.json").read_text())
            assert [c["multiplier"] for c in search["candidates"]] == [0.3, 1.0, 3.0]
    index = json.loads((out / "eval" / "index.json").read_text())["evaluations"]
    got = {(e["method"], e["target"], e["setting"]) for e in index}
    for target in ("syn_vitals_ner", "syn_symptom_nli"):
        assert {
            ("floor", target, "full"),
            ("zeroshot", target, "k0"),
            ("lora", target, "full"),
            ("lora", target, "k4"),
        } <= got
        assert {(m, target, s) for m in ("pt", "mpt") for s in ("full", "k4", "k0")} <= got
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["synthetic"] and provenance["stages"]["teachers"]["status"] == "ran"
    assert {"command", "budgets", "hardware", "wall_time"} <= set(provenance)

    # re-running skips every finished stage and evaluation
    before = (out / "eval" / "mpt" / "syn_vitals_ner" / "full" / "metrics.json").stat().st_mtime_ns
    buf2 = io.StringIO()
    run_demo(out, backbone="tiny-llama", overrides=TINY, console=Console(file=buf2, width=120))
    assert buf2.getvalue().count("already finished: skipped") == 4
    assert (
        out / "eval" / "mpt" / "syn_vitals_ner" / "full" / "metrics.json"
    ).stat().st_mtime_ns == before
    assert (
        json.loads((out / "provenance.json").read_text())["stages"]["teachers"]["status"] == "ran"
    )
