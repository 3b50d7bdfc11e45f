"""``clinprompt serve``: loopback by default, the API key from the environment, early errors."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi.testclient import TestClient
from tests.serve.conftest import make_bank
from typer.testing import CliRunner

import clinprompt.cli.serve as serve_cli
from clinprompt.cli import app
from clinprompt.cli.serve import build_server
from clinprompt.serve.args import ServeArgs


@pytest.fixture()
def bank(tmp_path, tiny):
    # `serve` loads the backbone the bank names (tiny-llama), so the bank is built on that one.
    return make_bank(tmp_path / "bank", tiny)


def test_serve_binds_loopback_and_reads_the_key_from_the_environment(monkeypatch, bank):
    seen = {}
    monkeypatch.setattr(
        "clinprompt.serve.server.run_server",
        lambda fastapi_app, **kw: seen.update(app=fastapi_app, **kw),
    )
    result = CliRunner().invoke(
        app, ["serve", "--bank", str(bank.path), "--watch", "0"], env={serve_cli.API_KEY_ENV: "k1"}
    )
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8000
    with TestClient(seen["app"]) as client:
        assert client.get("/v1/tasks").status_code == 401
        assert client.get("/v1/tasks", headers={"Authorization": "Bearer k1"}).status_code == 200


def test_serve_warns_on_a_public_address_without_a_key(monkeypatch, bank):
    monkeypatch.setattr("clinprompt.serve.server.run_server", lambda *a, **kw: None)
    result = CliRunner().invoke(
        app,
        ["serve", "--bank", str(bank.path), "--host", "0.0.0.0", "--watch", "0"],
        env={serve_cli.API_KEY_ENV: ""},
    )
    assert result.exit_code == 0 and "exposes the server" in result.output


def test_serve_errors_before_loading_anything(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--bank", str(tmp_path)])
    assert result.exit_code == 1 and "bank.json is missing" in result.output
    result = CliRunner().invoke(app, ["serve", "--bank", str(tmp_path), "--engine", "tgi"])
    assert result.exit_code == 1 and "hf or vllm" in result.output


def test_build_server_defaults_to_the_banks_backbone(bank):
    _, engine = build_server(ServeArgs(bank=bank.path, watch=0))
    assert engine.backbone.name == "tiny-llama" and engine.table.names() == [
        "notes",
        "triage",
        "teacher",
    ]


def test_every_serveargs_field_is_an_option_with_its_help(cli, command_options):
    options = command_options("serve")
    fields = dataclasses.fields(ServeArgs)
    assert [f.name for f in fields] == list(options)
    for f in fields:
        option = options[f.name]
        assert option.opts == ["--" + f.name.replace("_", "-")]
        assert option.help == f.metadata["help"]
        assert option.required == (f.name == "bank")
    assert options["api_key"].envvar == serve_cli.API_KEY_ENV
    shown = cli("serve", "--help", env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    for f in fields:
        assert "--" + f.name.replace("_", "-") in shown.output


def test_serve_args_map_onto_the_engine():
    from clinprompt.serve.engine import EngineArgs, Limits

    args = ServeArgs(bank="b", max_batch=8, wait_ms=5.0, watch=0.5, timeout=9.0, max_queue=7)
    assert args.limits() == Limits(
        max_input_tokens=1024,
        max_inputs=32,
        max_queue=7,
        request_timeout_s=9.0,
        max_new_tokens=512,
    )
    assert args.engine_args() == EngineArgs(
        max_batch=8, wait_ms=5.0, prefill_group=4, max_defer_steps=4, watch_interval_s=0.5
    )


def test_serve_bank_builtin_is_the_shipped_bank():
    """``--bank builtin`` resolves to the package's bank: on the tiny backbone its fingerprint
    error names that folder."""
    from pathlib import Path

    from clinprompt.prompts.bank import BankError
    from clinprompt.prompts.bank_location import builtin_bank_dir

    with pytest.raises(BankError) as err:
        build_server(ServeArgs(bank=Path("builtin"), backbone="tiny-llama", watch=0))
    message = str(err.value)
    assert f"the bank {builtin_bank_dir()} was trained on backbone smollm2-135m" in message
    assert "but the loaded backbone is tiny-llama" in message
