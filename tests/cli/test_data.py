"""``clinprompt data stats`` (and ``data list``): what the dataset commands print."""

from __future__ import annotations

import json

from clinprompt.data.synthetic import SYNTHETIC_SOURCES, SYNTHETIC_TARGETS


def test_cli_data_stats_json(cli):
    result = cli("data", "stats", "synthetic", "--no-tokens", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["suite"] == "synthetic" and len(payload["tasks"]) == len(
        SYNTHETIC_SOURCES + SYNTHETIC_TARGETS
    )
    result = cli("data", "stats", "no-such-suite")
    assert result.exit_code == 1 and "unknown suite" in result.output
