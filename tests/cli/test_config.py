"""``clinprompt config show|keys``: the resolved config, every problem at once, every key."""

from __future__ import annotations


def test_config_show_and_keys(cli):
    shown = cli("config", "show", "smoke", "train.lr=0.1")
    assert shown.exit_code == 0 and "lr: 0.1" in shown.output and "name: smoke" in shown.output
    bad = cli("config", "show", "smoke", "train.lrr=1")
    assert bad.exit_code == 2 and "train.lrr: unknown key; did you mean train.lr?" in bad.output
    keys = cli("config", "keys")
    assert keys.exit_code == 0 and "train.lr (float, default 0.3)" in keys.output
