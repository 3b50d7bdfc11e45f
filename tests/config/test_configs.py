"""Every shipped config loads and validates; YAML + dotted overrides; every problem at once."""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass

import pytest

from clinprompt.config import (
    PROFILES,
    ConfigError,
    ExperimentArgs,
    TrainArgs,
    arg,
    config_keys,
    load_config,
    save_config,
    to_dict,
)
from clinprompt.config.cli_options import options_from


@pytest.mark.parametrize(
    "profile", PROFILES, ids=[f"{p}-profile" for p in PROFILES]
)  # an id "gpu" would be skipped as a GPU test
def test_shipped_profiles_validate(profile):
    args = load_config(profile)
    assert isinstance(args, ExperimentArgs) and args.name == profile
    for stage in (args.teachers.train, args.distill.train, args.adapt.train):
        assert isinstance(args.stage_train(stage), TrainArgs)


def test_profiles_match_the_budgets_they_promise():
    smoke, cpu, gpu, demo = (load_config(p) for p in ("smoke", "cpu", "gpu", "demo"))
    assert smoke.backbone.name == "tiny-llama" and smoke.data.suite == "synthetic"
    assert cpu.backbone.name == "smollm2-135m" and cpu.data.suite == "open-clinical"
    assert cpu.prompt.tokens <= 50 and cpu.data.max_input_tokens <= 256
    assert cpu.data.max_train_examples and 100 <= cpu.data.max_test_examples <= 200
    assert gpu.prompt.tokens == 100 and gpu.data.max_train_examples is None
    # the demo: the built-in backbone on the synthetic suite, under the benchmark's protocol
    # (every method's rates chosen on dev by the cpu profile's grid and judge)
    assert demo.backbone.name == "smollm2-135m" and demo.data.suite == "synthetic"
    assert demo.adapt.lr_search == cpu.adapt.lr_search == [0.3, 1.0, 3.0]
    assert demo.adapt.lr_search_judge == cpu.adapt.lr_search_judge
    assert demo.baseline.methods == ["pt", "lora"] and demo.lr_search_judged_at is None


def test_overrides_are_typed_by_the_dataclass():
    args = load_config(
        "smoke",
        [
            "train.lr=3e-2",
            "prompt.tokens=20",
            "adapt.shots=4,8",
            "train.bucket=false",
            "data.max_train_examples=null",
            "distill.train={steps: 3}",
            "adapt.modes=[full]",
        ],
    )
    assert args.train.lr == 0.03 and args.prompt.tokens == 20 and args.adapt.shots == [4, 8]
    assert args.train.bucket is False and args.data.max_train_examples is None
    assert args.stage_train(args.distill.train).steps == 3 and args.adapt.modes == ["full"]


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        load_config(
            "smoke",
            [
                "train.lrr=1",
                "prompt.tokens=zero",
                "train.grad_accum=3",
                "distill.terms=lm,kll",
                "prompt.init=words",
                "oops",
            ],
        )
    text = str(err.value)
    assert len(err.value.problems) == 6
    for needle in (
        "train.lrr: unknown key; did you mean train.lr?",
        "prompt.tokens: 'zero' is not a valid int",
        "train.grad_accum: 3",
        "must divide batch_size=4",
        "distill.terms",
        "prompt.init: 'words'",
        "expected one of vocab, random, text",
        "override 'oops': expected key=value",
    ):
        assert needle in text


def test_yaml_base_profile_and_saved_config_round_trip(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("base: smoke\nname: exp\ntrain:\n  lr: 1e-2\n")  # YAML reads 1e-2 as a string
    args = load_config(path, ["output_dir=" + str(tmp_path / "run")])
    assert (
        args.train.lr == 0.01
        and args.train.steps == load_config("smoke").train.steps
        and args.name == "exp"
    )
    save_config(args, tmp_path / "config.json")
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved == to_dict(args)
    again = tmp_path / "again.yaml"
    again.write_text(json.dumps(saved))  # JSON is YAML: a saved config loads back as is
    assert to_dict(load_config(again)) == saved


def test_missing_file_and_every_key_documented(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.yaml")
    keys = config_keys()
    assert len(keys) > 50 and all(help_text for _, _, _, help_text in keys)
    assert "train.lr" in {k for k, *_ in keys}


@dataclass
class _ToyArgs:
    name: str = arg(MISSING, "Required name.")
    size: int | None = arg(None, "Optional size.")
    mode: str = arg("fast", "The mode.", ("fast", "slow"))
    token: str | None = arg(None, "A secret.", envvar="TOY_TOKEN")
    loud: bool = arg(False, "A switch.")
    plots: bool = arg(True, "On unless --no-plots.")


def _toy_app():
    import typer

    app = typer.Typer()
    seen = {}

    @app.command()
    @options_from(_ToyArgs)
    def toy(args: _ToyArgs, extra: int = typer.Option(1, help="The command's own.")) -> None:
        seen.update(args=args, extra=extra)

    return app, seen


def test_options_from_builds_one_option_per_field():
    from typer.testing import CliRunner

    app, seen = _toy_app()
    runner = CliRunner()
    ok = runner.invoke(app, ["--name", "x", "--size", "3", "--loud", "--no-plots", "--extra", "2"])
    assert ok.exit_code == 0, ok.output
    assert seen == {
        "args": _ToyArgs(name="x", size=3, mode="fast", loud=True, plots=False),
        "extra": 2,
    }
    from_env = runner.invoke(app, ["--name", "y"], env={"TOY_TOKEN": "t"})
    assert from_env.exit_code == 0 and seen["args"] == _ToyArgs(name="y", token="t")
    assert runner.invoke(app, []).exit_code == 2  # --name is required
    bad = runner.invoke(app, ["--name", "x", "--mode", "medium"])
    assert bad.exit_code == 2 and "medium" in bad.output  # choices are checked by the parser
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    for flag, help_text in (("--name", "Required name."), ("--no-plots", "On unless --no-plots.")):
        assert flag in shown.output and help_text in shown.output
    assert "--no-loud" not in shown.output  # a False default is a plain switch


def test_options_from_refuses_a_command_it_cannot_build():
    def no_args(x: int = 0) -> None: ...

    def clash(args: _ToyArgs, name: str = "") -> None: ...

    with pytest.raises(TypeError, match="takes no parameter 'args'"):
        options_from(_ToyArgs)(no_args)
    with pytest.raises(TypeError, match=r"\['name'\] are also fields of _ToyArgs"):
        options_from(_ToyArgs)(clash)


def test_protocol_keys_validate_and_report_their_problems():
    args = load_config(
        "smoke",
        [
            "distill.hidden_layers=[-3, -1]",
            "distill.hidden_positions=input",
            "distill.teacher_cache=false",
            "distill.lm_weight=0.5",
            "distill.lr_shared=0.1",
            "adapt.lr_factors=0.03",
            "adapt.lr_search=[0.3, 1.0, 3.0]",
            "adapt.lr_search_steps=20",
            "adapt.seeds=[0, 1, 2]",
            "adapt.kshot_epochs=10",
            "baseline.pt_lr=0.1",
        ],
    )
    assert args.distill.hidden_layers == [-3, -1] and args.adapt.seeds == [0, 1, 2]
    assert args.adapt.lr_search == [0.3, 1.0, 3.0] and args.baseline.pt_lr == 0.1
    with pytest.raises(ConfigError) as err:
        load_config(
            "smoke",
            [
                "distill.hidden_layers=[-1]",
                "distill.hidden_positions=all",  # smoke caches the teachers
                "adapt.lr_search=[0, 1]",
                "adapt.seeds=[1, 1]",
                "adapt.kshot_epochs=0",
                "adapt.lr_shared=-1",
                "baseline.pt_init=zeros",
            ],
        )
    text = str(err.value)
    assert len(err.value.problems) == 6
    for needle in (
        "distill.teacher_cache: True",
        "set teacher_cache=false",
        "adapt.lr_search: [0.0, 1.0]",
        "adapt.seeds: [1, 1]",
        "adapt.kshot_epochs: 0",
        "adapt.lr_shared: -1.0",
        "baseline.pt_init: 'zeros'",
    ):
        assert needle in text
    keys = {k: default for k, _, default, _ in config_keys()}
    for key, default in (
        ("distill.lr_shared", None),
        ("distill.lr_factors", None),
        ("distill.lm_weight", 1.0),
        ("distill.hidden_layers", [-1]),
        ("distill.hidden_positions", "target"),
        ("adapt.lr_shared", None),
        ("adapt.lr_factors", None),
        ("adapt.lr_search", []),
        ("adapt.lr_search_steps", None),
        ("adapt.seeds", [0]),
        ("adapt.kshot_epochs", 10),
        ("baseline.pt_lr", None),
        ("baseline.pt_init", "vocab"),
    ):
        assert keys[key] == default, key


def test_a_search_judged_inside_the_warm_up_is_refused():
    train = "adapt.train={steps: 20, warmup: 0.25}"  # 5 warm-up steps
    with pytest.raises(ConfigError) as err:
        load_config("smoke", [train, "adapt.lr_search=[0.3, 1.0]", "adapt.lr_search_steps=5"])
    assert "adapt.lr_search_steps: 5" in str(err.value)
    assert "inside adapt.train's warm-up (5 of its 20 steps)" in str(err.value)
    for fine in ("6", "20", "null"):  # past the warm-up, at the budget's end, or the end itself
        args = load_config("smoke", [train, f"adapt.lr_search_steps={fine}"])
        assert args.adapt.lr_search_steps == (None if fine == "null" else int(fine))
