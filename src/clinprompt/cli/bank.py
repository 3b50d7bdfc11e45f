"""Prompt-bank commands: ``clinprompt bank list|show|add|remove|upgrade|package``, ``export peft``,
``import peft``.

``bank add`` takes a task from another bank, a PEFT prompt-tuning adapter, or a single-task
training run directory (``final.safetensors`` holding ``prompt.weight``, or the factors
``prompt.shared``/``prompt.cols``/``prompt.rows`` of one task) and writes only that task.

Wherever a bank is read, ``builtin`` names the bank shipped with the package
(:mod:`clinprompt.prompts.bank_location`); commands that write a bank refuse it. ``bank package
RUN/distill/bank --builtin`` builds that shipped bank (P* and the source factors, with their
provenance); ``--out DIR`` packages a bank the same way anywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from clinprompt.cli import app

bank_app = typer.Typer(help="Inspect and edit prompt banks.", no_args_is_help=True)
export_app = typer.Typer(help="Export bank tasks to other formats.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import prompts from other formats into a bank.", no_args_is_help=True
)
app.add_typer(bank_app, name="bank")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")

_BANK = typer.Argument(
    ..., help="The bank directory (holds bank.json), or builtin: the bank shipped with the package."
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _open(path: Path, write: str | None = None):  # -> PromptBank
    """The bank ``path`` names (``builtin`` too); with ``write`` (what the command will do to
    it), the shipped bank is refused."""
    from clinprompt.prompts.bank import BankError, PromptBank
    from clinprompt.prompts.bank_location import refuse_builtin, resolve_bank

    try:
        resolved = resolve_bank(path)
        if write is not None:
            refuse_builtin(resolved, write)
        return PromptBank.load(resolved)
    except (BankError, ValueError) as err:
        raise _fail(str(err)) from err


def _labels(text: str | None) -> list[str] | None:
    from clinprompt.cli.data import split_labels

    labels = split_labels(text)
    return None if labels is None else list(labels)


def _lora(backbone: str, lora_r: int) -> tuple[int | None, int | None, str]:
    """(LoRA trainable parameters, backbone parameters, note); None where the config is unknown."""
    from clinprompt.backbone import load_backbone_config
    from clinprompt.params import backbone_parameter_count, lora_parameter_count, meta_model

    try:
        config = load_backbone_config(backbone)
        model = meta_model(config)
        return lora_parameter_count(model, lora_r), backbone_parameter_count(config, model), ""
    except Exception as err:  # an unresolvable name: show the bank without the comparison
        return (
            None,
            None,
            f"no LoRA comparison: cannot read the config of {backbone!r} ({err}); pass --backbone",
        )


def bank_summary(bank: Any, backbone: str | None = None, lora_r: int = 8) -> dict[str, Any]:
    """Per-task parameters and bytes next to a LoRA adapter (r on q_proj, v_proj) of the same backbone.

    The backbone's config comes from ``backbone``, else the bank's own copy of it
    (``backbone_config.json``, which packaged banks carry: no model is loaded or converted),
    else the bank's backbone name.
    """
    from clinprompt.artifacts import read_json
    from clinprompt.params import prompt_parameter_count

    recorded = bank.path / BACKBONE_CONFIG
    default = str(recorded) if recorded.exists() else bank.fingerprint.name
    lora, total, note = _lora(backbone or default, lora_r)
    p, d, r = bank.prompt_tokens, bank.dim, bank.rank
    tasks = []
    for name, entry in bank.tasks.items():
        params = prompt_parameter_count(entry.kind, p, d, r, own_shared=entry.own_shared)
        tasks.append(
            {
                "name": name,
                "task_type": entry.task_type,
                "kind": entry.kind,
                "dataset": entry.dataset,
                "parameters": params,
                "bytes_fp32": 4 * params,
                "bytes_on_disk": bank.task_bytes(name),
            }
        )
    shared = prompt_parameter_count("prompt", p, d) if bank.header.get("has_shared") else 0
    return {
        "bank": str(bank.path),
        "backbone": bank.fingerprint.to_dict(),
        "prompt_tokens": bank.prompt_tokens,
        "dim": bank.dim,
        "rank": bank.rank,
        "shared_parameters": shared,
        "shared_bytes_fp32": 4 * shared,
        "backbone_parameters": total,
        "lora_r": lora_r,
        "lora_parameters": lora,
        "lora_bytes_fp32": None if lora is None else 4 * lora,
        "lora_bytes_bf16": None if lora is None else 2 * lora,
        "note": note,
        "tasks": tasks,
        "provenance": (
            read_json(bank.path / PROVENANCE) if (bank.path / PROVENANCE).exists() else None
        ),
    }


BACKBONE_CONFIG = "backbone_config.json"  # as recipes/package_bank.py writes them
PROVENANCE = "provenance.json"


def _kb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1024:,.1f} KiB"


@bank_app.command("list")
def list_tasks(
    bank: Path = _BANK, as_json: bool = typer.Option(False, "--json", help="Print JSON.")
) -> None:
    """The tasks of a bank: name, task type, how the prompt is stored, dataset."""
    b = _open(bank)
    rows = [
        {
            "name": n,
            "task_type": e.task_type,
            "kind": e.kind,
            "dataset": e.dataset,
            "labels": e.labels,
        }
        for n, e in b.tasks.items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']}\t{r['task_type']}\t{r['kind']}\t{r['dataset'] or '-'}")
    typer.echo(f"{len(rows)} task(s) in {b.path}")


@bank_app.command("show")
def show(
    bank: Path = _BANK,
    backbone: str = typer.Option(
        None,
        help="Backbone name or directory for the LoRA comparison [default: the bank's backbone name].",
    ),
    lora_r: int = typer.Option(8, help="LoRA rank of the comparison (on q_proj and v_proj)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The bank's backbone, P, D, R and each task's bytes next to a LoRA adapter's."""
    from rich.console import Console
    from rich.table import Table

    s = bank_summary(_open(bank), backbone, lora_r)
    if as_json:
        typer.echo(json.dumps(s, indent=2))
        return
    fp = s["backbone"]
    console = Console()
    console.print(
        f"bank {s['bank']}: backbone {fp['name']} ({fp['architecture']}, D={fp['hidden_size']}), P={s['prompt_tokens']}, R={s['rank']}"
    )
    if s["shared_parameters"]:
        console.print(
            f"shared prompt P*: {s['shared_parameters']:,} parameters, {_kb(s['shared_bytes_fp32'])} (stored once)"
        )
    table = Table(
        title=f"per task vs LoRA r={lora_r} on q_proj, v_proj: {_kb(s['lora_bytes_fp32'])} fp32 / {_kb(s['lora_bytes_bf16'])} bf16"
    )
    for col in (
        "task",
        "type",
        "kind",
        "parameters",
        "bytes (fp32)",
        "on disk",
        "LoRA fp32 / task",
    ):
        table.add_column(col, justify="right" if col not in ("task", "type", "kind") else "left")
    for t in s["tasks"]:
        ratio = (
            "n/a"
            if s["lora_bytes_fp32"] is None
            else f"{s['lora_bytes_fp32'] / t['bytes_fp32']:,.0f}x"
        )
        table.add_row(
            t["name"],
            t["task_type"],
            t["kind"],
            f"{t['parameters']:,}",
            _kb(t["bytes_fp32"]),
            _kb(t["bytes_on_disk"]),
            ratio,
        )
    console.print(table)
    if s["provenance"]:
        console.print(_provenance_line(s["provenance"]), markup=False, highlight=False)
    if s["note"]:
        console.print(s["note"])


def _provenance_line(p: dict[str, Any]) -> str:
    """One paragraph: what the packaged bank was built from, with which budgets, when."""
    budgets, data = p.get("budgets", {}), p.get("data", {})
    examples = [v for v in (data.get("examples") or {}).values() if isinstance(v, int)]
    teach, dist = budgets.get("teachers", {}), budgets.get("distill", {})
    code = p.get("clinprompt", {})
    return (
        (f"{p['note']}\n" if p.get("note") else "")
        + f"provenance: {len(data.get('sources', []))} sources of suite {data.get('suite')}"
        f" ({sum(examples) if examples else 'unknown'} training examples); teachers "
        f"{teach.get('steps')} steps x {teach.get('batch_size')}, distillation {dist.get('steps')}"
        f" steps x {dist.get('batch_size')}; built {p.get('built')} by clinprompt "
        f"{code.get('version')} (commit {str(code.get('commit'))[:12]}); provenance.json"
    )


@bank_app.command("package")
def package(
    source: Path = typer.Argument(
        ..., help="A distilled bank (RUN/distill/bank): its P* and source factors are packaged."
    ),
    builtin: bool = typer.Option(
        False,
        "--builtin",
        help="Write the bank that ships with the package (--bank builtin); refused for a bank "
        "of another backbone than the built-in one.",
    ),
    out: Path = typer.Option(None, help="Write the packaged bank folder here instead."),
    training_command: str = typer.Option(
        None, help="The command that trained SOURCE, recorded verbatim in provenance.json."
    ),
    note: str = typer.Option(
        None, help="One line recorded first in provenance.json and the README (e.g. provisional)."
    ),
) -> None:
    """Package a distilled bank's P* and source factors with their provenance (atomically)."""
    from clinprompt.eval.provenance import command_line
    from clinprompt.prompts.bank import BankError
    from clinprompt.recipes.package_bank import package_bank

    if builtin == (out is not None):
        raise _fail("give exactly one of --builtin and --out DIR", 2)
    try:
        done = package_bank(
            source,
            out,
            builtin,
            command=command_line(),
            training_command=training_command,
            note=note,
        )
    except (BankError, ValueError) as err:
        raise _fail(str(err)) from err
    typer.echo(
        f"packaged {len(done.sources)} source(s) and P* into {done.path} "
        f"({done.bytes / 1024:,.1f} KiB of tensors)"
    )
    typer.echo(_provenance_line(done.provenance))


@bank_app.command("add")
def add(
    bank: Path = _BANK,
    source: Path = typer.Argument(
        ...,
        help="Another bank, a PEFT prompt-tuning adapter, or a single-task run directory (final.safetensors).",
    ),
    task: str = typer.Option(
        None, "--task", help="The task to take from a source bank (needed when it holds several)."
    ),
    name: str = typer.Option(
        None, "--name", help="The task's name in BANK [default: its name in the source]."
    ),
    task_type: str = typer.Option(
        None,
        "--task-type",
        help="ner | re | qa | nli | sum (for an adapter or run directory that does not say).",
    ),
    labels: str = typer.Option(
        None, "--labels", help="Comma-separated labels (for an adapter or run directory)."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="The registered dataset the prompt was trained on."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace a task of the same name."),
) -> None:
    """Add one task to an existing bank; the other tasks are not touched."""
    from clinprompt.prompts.bank import BankError, PromptBank
    from clinprompt.prompts.peft_interop import import_peft
    from clinprompt.prompts.soft_prompt import PromptError

    dest = _open(bank, "add a task to")
    try:
        if (source / "bank.json").exists():
            src = PromptBank.load(source)
            if task is None:
                if len(src.tasks) != 1:
                    raise _fail(
                        f"{source} holds {len(src.tasks)} tasks ({', '.join(src.tasks)}); choose one with --task",
                        2,
                    )
                task = next(iter(src.tasks))
            entry = dest.add_from(src, task, name, replace=replace)
        elif (source / "adapter_config.json").exists():
            if name is None:
                raise _fail("give the new task a name with --name", 2)
            entry = import_peft(
                source, dest, name, task_type, _labels(labels), dataset=dataset, replace=replace
            )
        elif (source / "final.safetensors").exists():
            entry = _add_run(dest, source, name, task_type, _labels(labels), dataset, replace)
        else:
            raise _fail(
                f"{source} is neither a bank (bank.json), a PEFT adapter (adapter_config.json) nor a training run (final.safetensors)",
                2,
            )
    except (BankError, PromptError) as err:
        raise _fail(str(err)) from err
    typer.echo(
        f"added {entry.name} ({entry.task_type}, {entry.kind}) to {bank}: {dest.task_bytes(entry.name):,} bytes"
    )


def _add_run(
    dest: Any,
    run: Path,
    name: str | None,
    task_type: str | None,
    labels: list[str] | None,
    dataset: str | None,
    replace: bool,
):
    """Add the prompt of a single-task training run (``final.safetensors``)."""
    from clinprompt.artifacts import load_tensors
    from clinprompt.prompts.bank import BankError, TaskEntry

    if not name or not task_type:
        raise BankError(f"{run} is a training run: give --name and --task-type")
    t = load_tensors(run / "final.safetensors")
    entry = TaskEntry(
        name,
        task_type,
        "prompt",
        labels=labels or [],
        dataset=dataset,
        meta={"source": "run", "run": str(run)},
        spec=_registered_spec(dataset, task_type),
    )
    if "prompt.weight" in t:
        return dest.add_prompt(entry, t["prompt.weight"], replace=replace)
    if {"prompt.shared", "prompt.cols", "prompt.rows"} <= set(t) and t["prompt.cols"].shape[0] == 1:
        return dest.add_factors(
            entry,
            t["prompt.cols"][0],
            t["prompt.rows"][0],
            shared=t["prompt.shared"],
            replace=replace,
        )
    raise BankError(
        f"{run / 'final.safetensors'} holds {sorted(t)}; expected prompt.weight or one task's prompt.shared/cols/rows"
    )


def _registered_spec(dataset: str | None, task_type: str) -> Any:
    """The task spec of ``dataset`` when it is a registered dataset of ``task_type``, else None
    (the entry then builds its spec from its own fields)."""
    if not dataset:
        return None
    from clinprompt.data.registry import UnknownDatasetError, get_dataset

    try:
        spec = get_dataset(dataset)
    except UnknownDatasetError:
        return None
    return spec.task_spec() if spec.task_type == task_type else None


@bank_app.command("upgrade")
def upgrade(bank: Path = _BANK) -> None:
    """Rewrite a bank of an older format in place (task specs rebuilt; tensors untouched)."""
    from clinprompt.prompts.bank import BankError, PromptBank

    def lookup(dataset: str) -> Any:
        # Only the task type is needed to compare: the spec is rebuilt from the registered dataset.
        from clinprompt.data.registry import UnknownDatasetError, get_dataset

        try:
            return get_dataset(dataset).task_spec()
        except UnknownDatasetError:
            return None

    _refuse_builtin(bank, "upgrade")
    try:
        before = json.loads((bank / "bank.json").read_text()).get("version", 1)
        upgraded = PromptBank.upgrade(bank, lookup)
    except (BankError, ValueError, OSError) as err:
        raise _fail(str(err)) from err
    if before == upgraded.header["version"]:
        typer.echo(f"{bank} is already in bank format {before}; nothing to do")
        return
    typer.echo(
        f"upgraded {bank} from bank format {before} to {upgraded.header['version']}: "
        f"{len(upgraded.tasks)} task spec(s) written"
    )
    for name, entry in upgraded.tasks.items():
        spec = entry.spec
        typer.echo(f"  {name}: {spec.task_type} {spec.name}" + (" (joint)" if spec.joint else ""))


def _refuse_builtin(bank: Path, action: str) -> None:
    from clinprompt.prompts.bank import BankError
    from clinprompt.prompts.bank_location import BUILTIN, refuse_builtin, resolve_bank

    try:
        refuse_builtin(resolve_bank(bank) if str(bank) == BUILTIN else bank, action)
    except BankError as err:
        raise _fail(str(err)) from err


@bank_app.command("remove")
def remove(bank: Path = _BANK, task: str = typer.Argument(..., help="The task to remove.")) -> None:
    """Remove one task from a bank."""
    from clinprompt.prompts.bank import BankError

    b = _open(bank, "remove a task from")
    try:
        b.remove(task)
    except BankError as err:
        raise _fail(str(err)) from err
    typer.echo(f"removed {task} from {bank}; {len(b.tasks)} task(s) left")


@export_app.command("peft")
def export_peft_cmd(
    bank: Path = _BANK,
    task: str = typer.Argument(..., help="The task to export."),
    out_dir: Path = typer.Argument(..., help="The adapter directory to write."),
    base_model: str = typer.Option(
        None, help="base_model_name_or_path to record [default: the bank's backbone name]."
    ),
) -> None:
    """Write a task as a PEFT PROMPT_TUNING adapter (PeftModel.from_pretrained loads it)."""
    from clinprompt.backbone import load_backbone_config
    from clinprompt.prompts.bank import BankError
    from clinprompt.prompts.peft_interop import export_peft

    b = _open(bank)
    try:
        config = load_backbone_config(base_model or b.fingerprint.name)
    except Exception:  # only layer/head counts come from it; PEFT fills them from the model
        config = None
    try:
        export_peft(b, task, out_dir, base_model=base_model, model_config=config)
    except BankError as err:
        raise _fail(str(err)) from err
    typer.echo(
        f"wrote {out_dir} (PROMPT_TUNING, num_virtual_tokens={b.prompt_tokens}, token_dim={b.dim})"
    )


@import_app.command("peft")
def import_peft_cmd(
    adapter_dir: Path = typer.Argument(..., help="A PEFT PROMPT_TUNING adapter directory."),
    bank: Path = _BANK,
    name: str = typer.Option(..., "--name", help="The task's name in the bank."),
    task_type: str = typer.Option(
        None, "--task-type", help="ner | re | qa | nli | sum [default: from a clinprompt export]."
    ),
    labels: str = typer.Option(None, "--labels", help="Comma-separated labels."),
    instruction: str = typer.Option(
        None, "--instruction", help="The instruction the prompt was trained with."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="The registered dataset it was trained on."
    ),
    replace: bool = typer.Option(False, "--replace", help="Replace a task of the same name."),
) -> None:
    """Bring a PEFT prompt-tuning adapter into a bank as a single-prompt task (e.g. a teacher)."""
    from clinprompt.prompts.bank import BankError
    from clinprompt.prompts.peft_interop import import_peft

    b = _open(bank, "import into")
    try:
        entry = import_peft(
            adapter_dir, b, name, task_type, _labels(labels), instruction, dataset, replace
        )
    except BankError as err:
        raise _fail(str(err)) from err
    typer.echo(f"imported {adapter_dir} into {bank} as {entry.name} ({entry.task_type}, prompt)")
