"""Command-line options from an ``*Args`` dataclass: its fields are declared once, with :func:`arg`.

:func:`options_from` turns a typer command that takes ``args: SomeArgs`` into one with an option
per field of ``SomeArgs``, then calls the command with the dataclass built from them:

* the flag is the field's name with dashes (``batch_size`` → ``--batch-size``);
* the type is the field's (``X | None`` is an optional X), the default is the field's (a field
  without a default is a required option);
* help, choices (checked by the parser) and the environment variable it also reads come from
  :func:`arg`'s metadata;
* a boolean that defaults to False is a plain switch (``--generate``), one that defaults to True
  also gets its negation (``--plots/--no-plots``).

The command may take other parameters of its own (``--floor``, say); they come after the fields.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

__all__ = ["option_parameters", "options_from"]


def _option_type(tp: Any) -> Any:
    """``X | None`` → ``X``; anything else unchanged."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{tp} has more than one type besides None; an option has one type")
        return inner[0]
    return tp


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ...  # typer's mark of a required option


def option_parameters(cls: type) -> list[inspect.Parameter]:
    """One keyword-only parameter per field of the dataclass ``cls``, its default a typer option."""
    import typer

    hints = typing.get_type_hints(cls)
    params = []
    for f in dataclasses.fields(cls):
        tp, default, flag = _option_type(hints[f.name]), _default(f), f.name.replace("_", "-")
        decls = [f"--{flag}/--no-{flag}" if tp is bool and default is True else f"--{flag}"]
        if f.metadata.get("choices"):
            tp = typing.Literal[tuple(f.metadata["choices"])]  # the parser refuses other values
        extra = {"envvar": f.metadata["envvar"]} if f.metadata.get("envvar") else {}
        option = typer.Option(default, *decls, help=f.metadata.get("help"), **extra)
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=tp)
        )
    return params


def options_from(
    cls: type, name: str = "args"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command taking ``name: cls`` so every field of ``cls`` is an option.

    Use it under ``@app.command()``::

        @app.command()
        @options_from(EvalArgs)
        def evaluate(args: EvalArgs, floor: bool = typer.Option(False, "--floor")) -> None: ...

    Raises:
        TypeError: the command has no parameter ``name``, or one of its own parameters has the
            name of a field.
    """

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        if name not in signature.parameters:
            raise TypeError(
                f"{command.__name__} takes no parameter {name!r} to build {cls.__name__}"
            )
        fields = option_parameters(cls)
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.name != name
        ]
        clash = {p.name for p in fields} & {p.name for p in own}
        if clash:
            raise TypeError(
                f"{command.__name__}: {sorted(clash)} are also fields of {cls.__name__}"
            )
        field_names = [p.name for p in fields]

        @functools.wraps(command)
        def parsed(**kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in field_names}
            return command(**{name: cls(**values)}, **kwargs)

        # typer reads the parameters from the signature and their types from the annotations.
        params = [*fields, *own]
        parsed.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        parsed.__annotations__ = {p.name: p.annotation for p in params}
        parsed.__annotations__["return"] = signature.return_annotation
        return parsed

    return decorate
