"""The ``clinprompt`` app: every command module of the package is registered."""

from __future__ import annotations

import pkgutil

import clinprompt.cli as package
from clinprompt.cli import COMMAND_MODULES


def test_every_command_module_is_registered():
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert set(COMMAND_MODULES) == modules and len(COMMAND_MODULES) == len(modules)
