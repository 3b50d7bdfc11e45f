"""Package a distilled bank: its P* and source factors, with where they came from.

``clinprompt bank package RUN/distill/bank --builtin`` (:func:`package_bank`) writes the bank
that ships with the package (``clinprompt/banks/<backbone>/``, what ``--bank builtin`` reads);
``--out DIR`` writes the same folder anywhere else. The folder, written atomically::

    bank.json, shared.safetensors   the bank: P* and one factor task per source (nothing else)
    tasks/<source>.safetensors      u (P, R), v (R, D) of each source
    config.json                     the resolved config of the run that distilled it
    provenance.json                 command, budgets, data (suite, sources, examples per source),
                                    clinprompt version and commit, date, backbone fingerprint
    backbone_config.json            the backbone's model config (``bank show`` reads it offline)
    README.md                       what the folder is and the commands that rebuild it

The built-in bank is refused from a bank trained on another backbone than the built-in one
(the fingerprint error of :meth:`~clinprompt.prompts.bank.PromptBank.check_backbone`).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinprompt import __version__
from clinprompt.artifacts import atomic_dir, atomic_write_text, read_json, write_json
from clinprompt.backbone import DEFAULT_BACKBONE, Backbone, load_backbone, load_backbone_config
from clinprompt.config import ConfigError, ExperimentArgs, TrainArgs, load_config, to_dict
from clinprompt.prompts.bank import PromptBank
from clinprompt.prompts.bank_location import builtin_bank_dir
from clinprompt.recipes.adapt import AdaptError, source_tasks

__all__ = ["PROVENANCE", "PackageResult", "package_bank"]

PROVENANCE = "provenance.json"
BACKBONE_CONFIG = "backbone_config.json"


@dataclass
class PackageResult:
    """Where the packaged bank went and what its provenance says."""

    path: Path
    sources: list[str]
    provenance: dict[str, Any]
    bytes: int


def package_bank(
    source: str | Path,
    out: str | Path | None = None,
    builtin: bool = False,
    command: str | None = None,
    training_command: str | None = None,
    backbone: Backbone | None = None,
    note: str | None = None,
) -> PackageResult:
    """Copy ``source``'s P* and source factors into a packaged bank folder, with provenance.

    Args:
        source: a distilled bank (``RUN/distill/bank``; a serving bank's targets are left out).
        out: the folder to write (replaced atomically); exclusive with ``builtin``.
        builtin: write the package's built-in bank (``clinprompt/banks/<built-in backbone>/``).
        command: the packaging command to record (default: none recorded).
        training_command: the command that trained ``source``, recorded verbatim (default: the
            run's ``provenance.json`` command when it has one, else not recorded: the
            resolved ``config.json`` beside it says everything the run used).
        backbone: the built-in backbone, already loaded (``builtin`` checks the fingerprint
            against it; default: loaded here).
        note: one line recorded first in provenance.json and the README (e.g. that the bank is
            provisional).

    Raises:
        BankError: not a bank, or (``builtin``) a bank of another backbone.
        AdaptError: a bank without source factors.
        ValueError: neither or both of ``out`` and ``builtin``.
    """
    if (out is None) == (not builtin):
        raise ValueError("give exactly one of --out DIR and --builtin")
    bank = PromptBank.load(source)
    if builtin:
        backbone = backbone or load_backbone(DEFAULT_BACKBONE, device="cpu", dtype="fp32")
        bank.check_backbone(backbone.fingerprint)
    sources = source_tasks(bank)
    if not sources:
        raise AdaptError(f"the bank {bank.path} has no source factors on a shared P* to package")
    dest = builtin_bank_dir() if builtin else Path(out).expanduser()  # type: ignore[arg-type]
    args = _run_config(bank)
    provenance = _provenance(bank, sources, args, command, training_command)
    if note:
        provenance = {"note": note, **provenance}
    model_config = _model_config(backbone, bank)
    with atomic_dir(dest) as tmp:
        packaged = PromptBank.create(
            tmp,
            bank.fingerprint,
            bank.prompt_tokens,
            bank.rank,
            shared=bank.shared(),
            config=to_dict(args) if args is not None else None,
        )
        for name in sources:
            packaged.add_from(bank, name)
        write_json(tmp / PROVENANCE, provenance)
        if model_config is not None:
            write_json(tmp / BACKBONE_CONFIG, model_config)
        atomic_write_text(tmp / "README.md", _readme(provenance, builtin))
        _readable(tmp)
    size = sum(f.stat().st_size for f in dest.rglob("*.safetensors"))
    return PackageResult(dest, sources, provenance, size)


def _readable(folder: Path) -> None:
    """Files 0644, folders 0755: an installed package is read by every user (atomic writes
    create their temporary files 0600)."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _git(*args: str) -> str | None:
    """A git command's output in the package's source folder (None outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _run_config(bank: PromptBank) -> ExperimentArgs | None:
    """The resolved config of the run that distilled ``bank`` (its ``config.json``), typed."""
    path = bank.path / "config.json"
    try:
        return load_config(path) if path.exists() else None  # the saved JSON reads as YAML
    except ConfigError:
        return None


def _examples(args: ExperimentArgs) -> dict[str, Any]:
    """Training examples per source as distillation drew them (the run's data limits,
    decontaminated against the suite's targets); why not, when the data are not here."""
    from clinprompt.train.data import load_task, suite_tasks

    try:
        suite, sources, _ = suite_tasks(args.data)
        return {s: len(load_task(s, args.data, suite.cap(s), suite).train) for s in sources}
    except (ValueError, OSError, KeyError) as err:
        return {"unknown": f"the sources' data could not be read here ({err})"}


def _provenance(
    bank: PromptBank,
    sources: list[str],
    args: ExperimentArgs | None,
    command: str | None,
    training_command: str | None,
) -> dict[str, Any]:
    run = bank.path.parent.parent  # RUN/distill/bank → RUN
    recorded = read_json(run / PROVENANCE) if (run / PROVENANCE).exists() else {}
    distill_done = run / "distill" / "DONE.json"

    def stage(train: TrainArgs) -> dict[str, Any]:
        keys = ("steps", "batch_size", "lr", "warmup", "eval_every", "eval_examples", "seed")
        return {k: getattr(train, k) for k in keys}

    budgets: dict[str, Any] = {}
    data: dict[str, Any] = {"suite": None, "sources": sources}
    if args is not None:
        d = args.data
        budgets = {
            "teachers": stage(args.stage_train(args.teachers.train)),
            "distill": stage(args.stage_train(args.distill.train)),
            "distill_terms": list(args.distill.terms),
            "distill_temperature": args.distill.temperature,
            "prompt_tokens": args.prompt.tokens,
            "prompt_init": args.prompt.init,
            "max_train_examples": d.max_train_examples,
            "max_dev_examples": d.max_dev_examples,
            "max_input_tokens": d.max_input_tokens,
            "max_target_tokens": d.max_target_tokens,
        }
        data = {"suite": d.suite, "sources": sources, "examples": _examples(args)}
    else:
        data["examples"] = {"unknown": "no config.json beside the bank"}
    return {
        "what": "P* and the source factors of a distilled bank (no target task)",
        "run_dir": str(args.run_dir) if args is not None else None,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "training_command": training_command or recorded.get("command"),
        "clinprompt": {
            "version": __version__,
            "commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        },
        "backbone": bank.fingerprint.to_dict(),
        "bank": {
            "prompt_tokens": bank.prompt_tokens,
            "dim": bank.dim,
            "rank": bank.rank,
            "sources": len(sources),
            "distilled_from": str(bank.path.resolve()),
            "distill_best_dev_loss": (
                read_json(distill_done).get("best_dev_loss") if distill_done.exists() else None
            ),
        },
        "budgets": budgets,
        "data": data,
    }


def _model_config(backbone: Backbone | None, bank: PromptBank) -> dict[str, Any] | None:
    """The backbone's model config as JSON (None when it cannot be read here)."""
    try:
        model_config = (
            backbone.model.config
            if backbone is not None
            else load_backbone_config(bank.fingerprint.name)
        )
    except Exception:  # an unresolvable name: `bank show` then needs --backbone
        return None
    return model_config.to_dict()


def _readme(provenance: dict[str, Any], builtin: bool) -> str:
    b, budgets, data = provenance["bank"], provenance["budgets"], provenance["data"]
    counted = [v for v in data["examples"].values() if isinstance(v, int)]
    fp, code = provenance["backbone"], provenance["clinprompt"]
    teach, dist = budgets.get("teachers", {}), budgets.get("distill", {})
    trained = (
        f"It was trained by `{provenance['training_command']}`."
        if provenance["training_command"]
        else "The command that trained it was not recorded; `config.json` holds every setting."
    )
    folder = f"src/clinprompt/banks/{fp['name']}" if builtin else "THIS_FOLDER"
    lines = [
        f"# {'The built-in bank' if builtin else 'A packaged bank'}: P* and "
        f"{b['sources']} source factors for {fp['name']}",
        "",
        *([f"**{provenance['note']}**", ""] if provenance.get("note") else []),
        f"Written by `clinprompt bank package` on {provenance['built']} (clinprompt "
        f"{code['version']}, commit {code['commit']}"
        + (", with uncommitted changes" if code["uncommitted_changes"] else "")
        + "). Every figure below is in `provenance.json`.",
        "",
        f"- Backbone: {fp['name']} ({fp['architecture']}, D={fp['hidden_size']}, "
        f"{fp['num_layers']} layers, embeddings sha256 {fp['embedding_sha256'][:12]}); "
        "refused on any other backbone.",
        f"- P = {b['prompt_tokens']} tokens, rank R = {b['rank']}; sources: "
        f"{', '.join(data['sources'])}.",
        f"- Data: suite {data['suite']}, {sum(counted) if counted else 'unknown'} training "
        f"examples over the sources (at most {budgets.get('max_train_examples')} per source).",
        f"- Budgets: teachers {teach.get('steps')} steps x batch {teach.get('batch_size')}, distillation "
        f"{dist.get('steps')} steps x batch {dist.get('batch_size')} (terms {', '.join(budgets.get('distill_terms') or [])}).",
        "",
        "Adapt it to your dataset (docs/your-data.md):",
        "",
        f"    clinprompt adapt {'cpu' if builtin else 'PROFILE'} "
        f"--bank {'builtin' if builtin else 'THIS_FOLDER'} --dataset my.yaml --out my_bank",
        "",
        f"{trained} To rebuild it exactly, with a data root holding the suite's sources "
        f"(RUN is the config's output_dir, {provenance['run_dir']}):",
        "",
        # the saved config's stages are whatever the run last ran: a bank needs both of these
        f"    clinprompt run {folder}/config.json 'stages=[teachers,distill]' data.data_root=DATA_ROOT",
        f"    clinprompt bank package RUN/distill/bank {'--builtin' if builtin else '--out DIR'}",
        "",
    ]
    return "\n".join(lines)
