"""The fair-comparison protocol on the tiny model: the dev learning-rate search of MPT, PT and
LoRA, training seeds, k-shot epochs, MPT's two rates, and what evaluation records of each."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from clinprompt.artifacts import load_tensors, read_json
from clinprompt.config import load_config
from clinprompt.eval.artifact import resolve_artifact
from clinprompt.eval.predict import answer_records, generation_budget
from clinprompt.eval.runs import Evaluation, evaluation_dir
from clinprompt.prompts import MultitaskPrompt
from clinprompt.prompts.bank import PromptBank
from clinprompt.recipes.adapt import adapt
from clinprompt.recipes.baseline import train_baselines
from clinprompt.recipes.dev_score import dev_records
from clinprompt.recipes.distill import distill
from clinprompt.recipes.evaluate import evaluate_run
from clinprompt.recipes.teachers import train_teachers
from clinprompt.train import lr_at
from clinprompt.train.data import load_task

TARGET = "syn_vitals_ner"
OVERRIDES = [
    "data.sources=[syn_med_ner,syn_ade_re]",
    f"data.targets=[{TARGET}]",
    "train.steps=2",
    "adapt.shots=[4]",
    "adapt.train={steps: 4, eval_every: 2}",
    "baseline.lora_lr=1e-2",
]
PROTOCOL = [
    "adapt.seeds=[0, 1]",
    "adapt.lr_search=[0.1, 1.0]",  # two candidates, the full budget: the seed-0 run is reused
    "adapt.kshot_epochs=2",  # k = 4, batch 4: ceil(4 x 2 / 4) = 2 steps
    "adapt.lr_shared=0.3",
    "adapt.lr_factors=0.03",
]
SCORED = ["adapt.lr_search=[0.1, 1.0]", "adapt.lr_search_judge=score", "adapt.modes=[full]"]


@pytest.fixture(scope="module")
def distilled(tiny, tmp_path_factory):
    path = tmp_path_factory.mktemp("distilled")
    args = load_config("smoke", [f"output_dir={path}", *OVERRIDES])
    train_teachers(args, backbone=tiny)
    distill(args, backbone=tiny)
    return path


def _adapt_and_baselines(tiny, distilled, path, protocol: list[str]):
    """Adaptation and both baselines under ``protocol`` in ``path``, from the distilled stages."""
    for stage in ("teachers", "distill"):
        shutil.copytree(distilled / stage, path / stage)
    args = load_config("smoke", [f"output_dir={path}", *OVERRIDES, *protocol])
    return args, adapt(args, backbone=tiny).artifacts + train_baselines(
        args, backbone=tiny
    ).artifacts


@pytest.fixture(scope="module")
def protocol(tiny, distilled, tmp_path_factory):
    return _adapt_and_baselines(tiny, distilled, tmp_path_factory.mktemp("protocol"), PROTOCOL)


def test_search_picks_the_lowest_dev_loss_for_every_method(protocol):
    args, _ = protocol
    for method, base in (
        ("mpt", {"lr_shared": 0.3, "lr_factors": 0.03}),
        ("pt", {"lr": 0.3}),
        ("lora", {"lr": 1e-2}),
    ):
        search = read_json(args.run_dir / "lr_search" / method / TARGET / "search.json")
        assert search["base"] == base and search["steps"] == 4
        candidates = search["candidates"]
        assert [c["multiplier"] for c in candidates] == [0.1, 1.0]
        for c in candidates:  # each candidate is a real run; its loop's best dev loss ranks it
            run = read_json(
                args.run_dir
                / "lr_search"
                / method
                / TARGET
                / f"x{c['multiplier']:g}"
                / "result.json"
            )
            assert c["best_dev_loss"] == run["best_metric"] and math.isfinite(run["best_metric"])
            assert c["lr"] == {k: pytest.approx(v * c["multiplier"]) for k, v in base.items()}
        best = min(candidates, key=lambda c: (c["best_dev_loss"], c["multiplier"]))
        assert search["rates"] == best["lr"]


def test_the_chosen_candidate_is_the_seed0_full_run(protocol):
    args, refs = protocol
    search = read_json(args.run_dir / "lr_search" / "mpt" / TARGET / "search.json")
    full = args.run_dir / "adapt" / "runs" / TARGET / "full"
    chosen = args.run_dir / "lr_search" / "mpt" / TARGET / search["run_dir"].rsplit("/", 1)[-1]
    assert read_json(full / "result.json")["losses"] == read_json(chosen / "result.json")["losses"]
    bank = PromptBank.load(args.run_dir / "bank")
    saved = load_tensors(full / "final.safetensors")
    assert torch.equal(bank.task_tensors(TARGET)["u"], saved["prompt.cols"][0])
    # Seed 1 trained on its own, at the same rates.
    s1 = read_json(args.run_dir / "adapt" / "runs" / TARGET / "full.s1" / "result.json")
    assert s1["losses"] != read_json(full / "result.json")["losses"]


def test_seeds_give_distinct_artifacts_with_the_contract(protocol):
    args, refs = protocol
    keys = [(r.method, r.setting, r.seed) for r in refs]
    assert keys == [
        ("mpt", "full", 0), ("mpt", "full", 1), ("mpt", "k4", 0), ("mpt", "k4", 1), ("mpt", "k0", 0),
        ("pt", "full", 0), ("lora", "full", 0), ("pt", "full", 1), ("lora", "full", 1),
        ("pt", "k4", 0), ("lora", "k4", 0), ("pt", "k4", 1), ("lora", "k4", 1), ("pt", "k0", 0),
    ]  # fmt: skip
    bank = PromptBank.load(args.run_dir / "bank")
    names = [TARGET, f"{TARGET}.s1", f"{TARGET}.k4", f"{TARGET}.k4.s1", f"{TARGET}.k0"]
    assert [r.task for r in refs if r.method == "mpt"] == names
    assert not torch.equal(bank.task_prompt(TARGET), bank.task_prompt(f"{TARGET}.s1"))
    pt_bank = PromptBank.load(args.run_dir / "baselines" / "pt" / "bank")
    assert not torch.equal(
        pt_bank.task_prompt(f"{TARGET}.k4"), pt_bank.task_prompt(f"{TARGET}.k4.s1")
    )
    lora = args.run_dir / "baselines" / "lora" / TARGET
    assert (lora / "full.s1" / "adapter" / "adapter_model.safetensors").exists()
    for ref in refs:
        if ref.setting == "k0":
            assert ref.train == {"train_examples": 0, "train_steps": 0, "epochs": 0.0}
            continue
        search = read_json(args.run_dir / "lr_search" / ref.method / TARGET / "search.json")
        assert ref.train["chosen_lr"] == search["rates"]  # the same rates for every seed and k
        assert set(ref.train["lr_candidates"]) == {
            "/".join(f"{v:g}" for v in c["lr"].values()) for c in search["candidates"]
        }
        assert {"train_examples", "train_steps", "epochs"} <= set(ref.train)
    # The record lives in the bank entry and the adapter sidecar too.
    entry = bank.entry(f"{TARGET}.k4.s1")
    assert entry.meta["seed"] == 1 and entry.meta["train"] == refs[3].train
    sidecar = read_json(lora / "k4.s1" / "adapter" / "clinprompt_task.json")
    assert sidecar["seed"] == 1 and sidecar["train"] == refs[12].train


def test_kshot_trains_on_exactly_k_examples_for_the_stated_steps(protocol):
    args, refs = protocol
    bank = PromptBank.load(args.run_dir / "bank")
    draws = []
    for seed, name in ((0, f"{TARGET}.k4"), (1, f"{TARGET}.k4.s1")):
        meta = bank.entry(name).meta
        assert meta["shots"] == 4 and len(set(meta["shot_ids"])) == 4
        assert meta["train"]["train_examples"] == 4
        assert meta["train"]["train_steps"] == 2 and meta["train"]["epochs"] == 2.0
        label = "k4" if seed == 0 else "k4.s1"
        run = read_json(args.run_dir / "adapt" / "runs" / TARGET / label / "result.json")
        assert run["steps"] == 2  # kshot_epochs, not kshot_train's steps
        draws.append(set(meta["shot_ids"]))
    assert draws[0] != draws[1]  # each seed draws its own k examples
    full = next(r for r in refs if (r.method, r.setting, r.seed) == ("pt", "full", 0))
    assert full.train["train_steps"] == 4 and full.train["train_examples"] > 4


def test_two_rate_groups_get_their_rates(protocol):
    args, refs = protocol
    chosen = next(r for r in refs if r.method == "mpt" and r.setting == "full").train["chosen_lr"]
    assert set(chosen) == {"lr_shared", "lr_factors"}
    targs = args.stage_train(args.adapt.train)
    log = args.run_dir / "adapt" / "runs" / TARGET / "full.s1" / "metrics.jsonl"
    rows = [r for r in map(json.loads, log.read_text().splitlines()) if "lr_shared" in r]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r["lr_shared"] == pytest.approx(lr_at(r["step"] - 1, targs, chosen["lr_shared"]))
        assert r["lr_factors"] == pytest.approx(lr_at(r["step"] - 1, targs, chosen["lr_factors"]))


def test_evaluation_records_seed_and_training(tiny, protocol):
    args, refs = protocol
    picked = [r for r in refs if r.setting == "full" and r.method in ("mpt", "lora")]
    evaluate_run(args.run_dir, args, picked, tiny, limit=2)
    for ref in picked:
        out = evaluation_dir(args.run_dir, ref.method, TARGET, "full", ref.seed)
        assert out.name == ("full" if ref.seed == 0 else f"full.s{ref.seed}")
        metrics = read_json(out / "metrics.json")
        assert metrics["train_seed"] == ref.seed and metrics["training"] == ref.train
        assert Evaluation.load(out / "metrics.json").seed == ref.seed
    floor = read_json(evaluation_dir(args.run_dir, "floor", TARGET, "full") / "metrics.json")
    assert floor["train_seed"] == 0 and floor["training"] is None
    # An evaluation written without the record (an older run) gets it, without re-evaluating.
    path = evaluation_dir(args.run_dir, "mpt", TARGET, "full", 1) / "metrics.json"
    stale = read_json(path)
    path.write_text(
        json.dumps({k: v for k, v in stale.items() if k not in ("train_seed", "training")})
    )
    assert evaluate_run(args.run_dir, args, picked, tiny, limit=2) == [None] * (2 + len(picked))
    assert read_json(path) == stale


@pytest.fixture(scope="module")
def paused(tiny, distilled, tmp_path_factory):
    """The search judged after 2 of 4 steps: candidates paused, the winner continued."""
    extra = ["adapt.lr_search=[0.1, 1.0]", "adapt.lr_search_steps=2", "adapt.modes=[full]"]
    return _adapt_and_baselines(tiny, distilled, tmp_path_factory.mktemp("paused"), extra)


def test_a_paused_search_continues_only_the_winner(paused):
    args, refs = paused
    assert {(r.method, r.setting) for r in refs} == {
        ("mpt", "full"),
        ("pt", "full"),
        ("lora", "full"),
    }
    runs = {
        "mpt": args.run_dir / "adapt" / "runs" / TARGET / "full",
        "pt": args.run_dir / "baselines" / "pt" / "runs" / TARGET / "full",
        "lora": args.run_dir / "baselines" / "lora" / TARGET / "full" / "run",
    }
    for ref in refs:
        search_dir = args.run_dir / "lr_search" / ref.method / TARGET
        search = read_json(search_dir / "search.json")
        assert search["judged_at"] == 2 and search["steps"] == 4
        for c in search["candidates"]:  # every candidate stopped at step 2, unfinished
            cand = search_dir / f"x{c['multiplier']:g}"
            assert c["steps"] == 2 and not (cand / "result.json").exists()
            state = read_json(cand / "checkpoint" / "state.json")
            assert (
                state["position"]["step"] == 2 and c["best_dev_loss"] == state["position"]["best"]
            )
        assert ref.train["lr_judged_at"] == 2 and ref.train["train_steps"] == 4
        assert ref.train["chosen_lr"] == search["rates"]
        # The seed-0 run is the winner continued: its first two steps are the candidate's.
        run = runs[ref.method]
        chosen = search_dir / search["run_dir"].rsplit("/", 1)[-1]
        assert read_json(run / "result.json")["steps"] == 4

        def steps(path):
            rows = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
            return [{k: v for k, v in r.items() if k != "elapsed_s"} for r in rows if "loss" in r]

        assert [r["step"] for r in steps(run)] == [1, 2, 3, 4]
        assert steps(run)[:2] == steps(chosen)
    adapter = args.run_dir / "baselines" / "lora" / TARGET / "full" / "adapter"
    assert read_json(adapter / "clinprompt_task.json")["train"]["lr_judged_at"] == 2


@pytest.fixture(scope="module")
def scored(tiny, distilled, tmp_path_factory):
    """The search judged by dev score (adapt.lr_search_judge: score), and what the judge saw
    each time it answered: (method, candidate directory, the prompt it was given, the LoRA
    weights inside the backbone then)."""
    import clinprompt.recipes.dev_score as dev_score

    seen: list[tuple[str, str, torch.Tensor | None, dict[str, torch.Tensor]]] = []
    answer = dev_score.answer_records

    def spy(backbone, artifact, *rest):
        lora = {n: p.detach().clone() for n, p in backbone.model.named_parameters() if "lora_" in n}
        prompt = None if artifact.prompt is None else artifact.prompt.clone()
        seen.append((artifact.method, Path(artifact.path).name, prompt, lora))
        return answer(backbone, artifact, *rest)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dev_score, "answer_records", spy)
        args, refs = _adapt_and_baselines(
            tiny, distilled, tmp_path_factory.mktemp("scored"), SCORED
        )
    return args, refs, seen


def test_the_judge_answers_with_each_candidates_best_weights(scored):
    args, _, seen = scored
    assert sorted((m, d) for m, d, _, _ in seen) == [
        (m, d) for m in ("lora", "mpt", "pt") for d in ("x0.1", "x1")
    ]
    for method, name, prompt, lora in seen:
        best = load_tensors(
            args.run_dir / "lr_search" / method / TARGET / name / "best.safetensors"
        )
        if method == "pt":
            assert torch.equal(prompt, best["prompt.weight"]) and not lora
        elif method == "mpt":
            composed = MultitaskPrompt(
                best["prompt.shared"], best["prompt.cols"], best["prompt.rows"]
            )
            assert torch.allclose(prompt, composed.task_prompt(0)) and not lora
        else:  # the candidate's LoRA layers, loaded into the backbone while it answered
            assert prompt is None and lora
            assert {f"model.{n}" for n in lora} == set(best)
            assert all(torch.equal(w, best[f"model.{n}"]) for n, w in lora.items())
    # Each judged candidate differs from the other (two rates): no set of weights judged twice.
    pts = [p for m, _, p, _ in seen if m == "pt"]
    assert not torch.equal(pts[0], pts[1])


def test_a_search_judged_by_score_scores_the_weights_it_ships(tiny, scored):
    args, refs, _ = scored
    task = load_task(TARGET, args.data, max_empty_fraction=args.adapt.max_empty_fraction)
    records = dev_records(task.dev)
    budget = generation_budget(
        task.spec, task.train, tiny.tokenizer, args.data.max_target_tokens + 1
    )
    assert len(refs) == 3 and records
    for ref in refs:
        search_dir = args.run_dir / "lr_search" / ref.method / TARGET
        search = read_json(search_dir / "search.json")
        assert search["judged_by"] == "score"
        scores = {}
        for c in search["candidates"]:  # every candidate answered the dev records, cached
            cached = read_json(search_dir / f"x{c['multiplier']:g}" / "dev_score.json")
            assert cached["split"] == "dev" and cached["n"] == len(records)
            assert cached["seconds"] > 0
            assert cached["score"] == c["dev_score"] and 0.0 <= c["dev_score"] <= 1.0
            assert [a["id"] for a in cached["answers"]] == [r.get("id") for r in records]
            scores[c["multiplier"]] = cached
        best = min(
            search["candidates"],
            key=lambda c: (-c["dev_score"], c["best_dev_loss"], c["multiplier"]),
        )
        assert search["rates"] == best["lr"] and ref.train["chosen_lr"] == best["lr"]
        assert ref.train["lr_judged_by"] == "score"
        assert set(ref.train["lr_candidate_scores"].values()) == {
            c["dev_score"] for c in search["candidates"]
        }
        # The judge scored the very weights the method ships (the seed-0 full artifact is the
        # chosen candidate's run): evaluating that artifact gives the judge's answers.
        shipped = answer_records(
            tiny,
            resolve_artifact(ref.path, ref.task, TARGET),
            task.spec,
            records,
            args.data.max_input_tokens,
            budget,
        )
        assert [a.text for a in shipped] == [
            a["raw"] for a in scores[best["multiplier"]]["answers"]
        ]


def test_a_paused_search_judged_by_score_continues_the_best_scored(tiny, distilled, tmp_path):
    extra = [
        "adapt.lr_search=[0.1, 1.0]",
        "adapt.lr_search_steps=2",
        "adapt.lr_search_judge=score",
        "adapt.modes=[full]",
    ]
    args, refs = _adapt_and_baselines(tiny, distilled, tmp_path, extra)
    for ref in refs:
        search_dir = args.run_dir / "lr_search" / ref.method / TARGET
        search = read_json(search_dir / "search.json")
        assert search["judged_at"] == 2 and search["judged_by"] == "score"
        for c in search["candidates"]:  # judged on the weights of their best dev loss at step 2
            cand = search_dir / f"x{c['multiplier']:g}"
            assert c["steps"] == 2 and not (cand / "result.json").exists()
            assert read_json(cand / "dev_score.json")["score"] == c["dev_score"]
        best = min(
            search["candidates"],
            key=lambda c: (-c["dev_score"], c["best_dev_loss"], c["multiplier"]),
        )
        assert ref.train["chosen_lr"] == best["lr"] and ref.train["train_steps"] == 4
        assert ref.train["lr_judged_at"] == 2 and ref.train["lr_judged_by"] == "score"


def test_a_resumed_search_reads_the_judged_scores_back_without_loading_weights(
    tiny, scored, tmp_path, monkeypatch
):
    """A search interrupted after its candidates were judged (search.json not yet written, no
    artifact shipped) resumes from each candidate's dev_score.json: no candidate is rebuilt,
    loaded or answered again, and the same rates are chosen."""
    import clinprompt.recipes.adapt as adapt_recipe
    import clinprompt.recipes.baseline as baseline_recipe
    import clinprompt.recipes.dev_score as dev_score

    args, refs, _ = scored
    resumed = tmp_path / "resumed"
    shutil.copytree(args.run_dir, resumed)
    for search in resumed.glob(f"lr_search/*/{TARGET}/search.json"):
        search.unlink()
    for shipped in ("adapt", "bank", "baselines"):
        shutil.rmtree(resumed / shipped)
    assert len(list(resumed.glob(f"lr_search/*/{TARGET}/x*/dev_score.json"))) == 6

    def refuse(*_):
        raise AssertionError("a judged candidate was loaded or answered again")

    monkeypatch.setattr(adapt_recipe, "load_best", refuse)
    monkeypatch.setattr(baseline_recipe, "load_best", refuse)
    monkeypatch.setattr(dev_score, "answer_records", refuse)
    args2 = load_config("smoke", [f"output_dir={resumed}", *OVERRIDES, *SCORED])
    again = adapt(args2, backbone=tiny).artifacts + train_baselines(args2, backbone=tiny).artifacts
    assert [(r.method, r.train["chosen_lr"]) for r in again] == [
        (r.method, r.train["chosen_lr"]) for r in refs
    ]
    assert all(r.train["lr_judged_by"] == "score" for r in again)
