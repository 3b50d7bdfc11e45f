"""``clinprompt params``: the parameter table from a backbone's config."""

from __future__ import annotations

import json


def test_params_cli_prints_table(cli):
    result = cli("params", "--backbone", "tiny-llama", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {m["method"] for m in data["methods"]} >= {
        "prompt tuning (per task)",
        "LoRA r=8 (q_proj, v_proj)",
    }
