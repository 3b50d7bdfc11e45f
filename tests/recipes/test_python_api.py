"""The README's Python section runs on the tiny model (its names swapped for the test's bank and
dataset), and ``import clinprompt`` loads no torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.recipes.conftest import CONFIGS, make_source_bank

import clinprompt
from clinprompt.prompts.bank import PromptBank

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python() -> str:
    """The one Python block of the README's "## Python" section."""
    section = README.read_text(encoding="utf-8").split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def test_the_readme_snippet_runs_on_the_tiny_model(tiny, tmp_path, monkeypatch, capsys):
    source = make_source_bank(tmp_path / "source", tiny)
    mine = tmp_path / "my_bank"
    swaps = {
        '"smollm2-135m"': '"tiny-llama"',
        '"my_notes.yaml"': repr(str(CONFIGS["jsonl"])),
        'bank="builtin"': f"bank={str(source)!r}",
        '"my_bank"': repr(str(mine)),
        'profile="cpu"': 'profile="smoke"',
    }
    code = readme_python()
    for old, new in swaps.items():
        assert old in code, f"the README's snippet no longer says {old}"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # the run directory: runs/<dataset name>
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    result, rows = namespace["result"], namespace["rows"]
    assert result.bank == mine and (tmp_path / "runs" / "user_asset_notes_ner").is_dir()
    assert "user_asset_notes_ner" in PromptBank.load(mine).tasks
    assert [r["id"] for r in rows] == ["1"] and isinstance(rows[0]["prediction"]["entities"], list)
    assert "user_asset_notes_ner ner" in capsys.readouterr().out
    assert PromptBank.load(source).names() == ["syn_med_ner", "syn_ade_re"]  # untouched


def test_the_public_names_and_a_fast_import():
    assert clinprompt.__all__ == [
        "__version__",
        "adapt_bank",
        "load_backbone",
        "load_bank",
        "predict",
    ]
    assert all(callable(getattr(clinprompt, n)) for n in clinprompt.__all__[1:])
    code = "import sys, clinprompt; assert 'torch' not in sys.modules, 'torch loaded'; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_predict_refuses_a_task_the_bank_lacks(tiny, tmp_path):
    import pytest

    from clinprompt.eval.artifact import EvalError

    source = make_source_bank(tmp_path / "source", tiny)
    with pytest.raises(EvalError, match="task 'nope' is not in the bank"):
        clinprompt.predict([{"id": "1", "text": "x"}], bank=source, task="nope", backbone=tiny)
