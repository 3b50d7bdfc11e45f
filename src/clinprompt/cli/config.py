"""Config commands: ``clinprompt config show`` (the resolved, validated config) and ``config keys``."""

from __future__ import annotations

import typer

from clinprompt.cli import app
from clinprompt.config import ExperimentArgs

config_app = typer.Typer(
    help="Show a resolved experiment config, or list every config key.", no_args_is_help=True
)
app.add_typer(config_app, name="config")

CONFIG_HELP = "A profile (smoke, cpu, gpu, demo) or an experiment YAML file (may say `base: cpu`)."
OVERRIDES_HELP = "Dotted overrides, e.g. train.lr=3e-2 prompt.tokens=20 output_dir=runs/x (`clinprompt config keys`)."


def load_or_exit(config: str, overrides: list[str] | None) -> ExperimentArgs:
    """The loaded, validated config; on any problem, print them all and exit with code 2."""
    from clinprompt.config import ConfigError, load_config

    try:
        return load_config(config, overrides or [])
    except ConfigError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from err


@config_app.command("show")
def config_show(
    config: str = typer.Argument(..., help=CONFIG_HELP),
    overrides: list[str] = typer.Argument(None, help=OVERRIDES_HELP),
) -> None:
    """Print the resolved config (profile + file + overrides) as YAML, after validation."""
    import yaml

    from clinprompt.config import to_dict

    args = load_or_exit(config, overrides)
    typer.echo(yaml.safe_dump(to_dict(args), sort_keys=False))


@config_app.command("keys")
def config_keys() -> None:
    """Every config key with its type, default and meaning."""
    from clinprompt.config import config_keys as keys

    for key, type_name, default, help_text in keys():
        typer.echo(f"{key} ({type_name}, default {default!r})\n    {help_text}")
