"""Where a bank is: a directory, or the word ``builtin`` for the bank shipped with the package.

The built-in bank (``clinprompt/banks/<backbone>/``) holds P* and the source factors distilled
for the built-in backbone (:data:`clinprompt.backbone.DEFAULT_BACKBONE`), with a
``provenance.json`` saying how it was built. Every command that takes a bank resolves it here,
so ``--bank builtin`` works wherever a bank directory does; a local folder named ``builtin`` is
reached as ``./builtin``. The shipped bank is part of the installed package and is never written
to: adapting it needs a new bank (``--out``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from clinprompt.backbone import DEFAULT_BACKBONE
from clinprompt.prompts.bank import BankError

__all__ = [
    "BUILTIN",
    "builtin_bank_dir",
    "is_builtin_bank",
    "refuse_builtin",
    "resolve_bank",
]

BUILTIN = "builtin"
PACKAGE_COMMAND = "clinprompt bank package RUN/distill/bank --builtin"


def builtin_bank_dir(backbone: str = DEFAULT_BACKBONE) -> Path:
    """The package folder of the built-in bank of ``backbone`` (it may not exist yet)."""
    return Path(str(resources.files("clinprompt") / "banks" / backbone))


def is_builtin_bank(path: str | Path) -> bool:
    """Whether ``path`` is (inside) the package's folder of shipped banks."""
    banks = builtin_bank_dir().parent.resolve()
    resolved = Path(path).expanduser().resolve()
    return resolved == banks or banks in resolved.parents


def resolve_bank(name_or_path: str | Path) -> Path:
    """The bank directory ``name_or_path`` stands for: ``builtin`` → the shipped bank's folder,
    anything else → that path (not checked here: :meth:`PromptBank.load` says what is wrong).

    Raises:
        BankError: ``builtin`` in an installation without the shipped bank (with the command
            that builds it).
    """
    if str(name_or_path) != BUILTIN:
        return Path(name_or_path).expanduser()
    path = builtin_bank_dir()
    if not (path / "bank.json").exists():
        raise BankError(
            f"the built-in bank is not in this installation ({path / 'bank.json'} is missing); "
            f"build it with `{PACKAGE_COMMAND}`"
        )
    return path


def refuse_builtin(path: str | Path, action: str) -> None:
    """Raise :class:`BankError` when ``path`` is the shipped bank: ``action`` would write into
    the installed package.

    Args:
        path: the bank a command is about to write.
        action: what it would do, e.g. ``"adapt into"``; the message suggests ``--out``.
    """
    if is_builtin_bank(path):
        raise BankError(
            f"refusing to {action} the built-in bank ({Path(path).resolve()}): it ships with the "
            "package; write a copy with --out NEWBANK"
        )
