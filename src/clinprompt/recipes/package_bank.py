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
from clinprompt.config import ConfigError, load_config
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
    config = read_json(bank.path / "config.json") if (bank.path / "config.json").exists() else {}
    provenance = _provenance(bank, sources, config, command, training_command)
    model_config = _model_config(backbone, bank)
    with atomic_dir(dest) as tmp:
        packaged = PromptBank.create(
            tmp,
            bank.fingerprint,
            bank.prompt_tokens,
            bank.rank,
            shared=bank.shared(),
            config=config or None,
        )
        for name in sources:
            packaged.add_from(bank, name)
        write_json(tmp / PROVENANCE, provenance)
        if model_config is not None:
            write_json(tmp / BACKBONE_CONFIG, model_config)
        atomic_write_text(tmp / "README.md", _readme(provenance, builtin))
    size = sum(f.stat().st_size for f in dest.rglob("*.safetensors"))
    return PackageResult(dest, sources, provenance, size)


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


def _examples(config: Path) -> dict[str, Any]:
    """Training examples per source as distillation drew them (the run's config: its data
    limits, decontaminated against the suite's targets); why not, when the data are not here."""
    from clinprompt.train.data import load_task, suite_tasks

    try:
        args = load_config(config)  # the saved JSON config reads as YAML
        suite, sources, _ = suite_tasks(args.data)
        return {s: len(load_task(s, args.data, suite.cap(s), suite).train) for s in sources}
    except (ConfigError, ValueError, OSError, KeyError) as err:
        return {"unknown": f"the sources' data could not be read here ({err})"}


def _provenance(
    bank: PromptBank,
    sources: list[str],
    config: dict[str, Any],
    command: str | None,
    training_command: str | None,
) -> dict[str, Any]:
    run = bank.path.parent.parent  # RUN/distill/bank → RUN
    recorded = read_json(run / PROVENANCE) if (run / PROVENANCE).exists() else {}
    distill_done = run / "distill" / "DONE.json"
    data = config.get("data", {})
    train = config.get("train", {})

    def stage(overrides: dict[str, Any]) -> dict[str, Any]:
        merged = {**train, **overrides}
        keys = ("steps", "batch_size", "lr", "warmup", "eval_every", "eval_examples", "seed")
        return {k: merged.get(k) for k in keys}

    distill = config.get("distill", {})
    return {
        "what": "P* and the source factors of a distilled bank (no target task)",
        "run_dir": config.get("output_dir", "").replace("{name}", str(config.get("name", ""))),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": command,
        "training_command": training_command or recorded.get("command"),
        "clinprompt": {
            "version": __version__,
            "commit": _git("rev-parse", "HEAD"),
            "uncommitted_changes": bool(_git("status", "--porcelain")),
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
        "budgets": {
            "teachers": stage(config.get("teachers", {}).get("train", {})),
            "distill": stage(distill.get("train", {})),
            "distill_terms": distill.get("terms"),
            "distill_temperature": distill.get("temperature"),
            "prompt_tokens": config.get("prompt", {}).get("tokens"),
            "prompt_init": config.get("prompt", {}).get("init"),
            "max_train_examples": data.get("max_train_examples"),
            "max_dev_examples": data.get("max_dev_examples"),
            "max_input_tokens": data.get("max_input_tokens"),
            "max_target_tokens": data.get("max_target_tokens"),
        },
        "data": {
            "suite": data.get("suite"),
            "sources": sources,
            "examples": (
                _examples(bank.path / "config.json") if config else {"unknown": "no config.json"}
            ),
        },
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
    teach, dist = budgets["teachers"], budgets["distill"]
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
        f"examples over the sources (at most {budgets['max_train_examples']} per source).",
        f"- Budgets: teachers {teach['steps']} steps x batch {teach['batch_size']}, distillation "
        f"{dist['steps']} steps x batch {dist['batch_size']} (terms {', '.join(budgets['distill_terms'] or [])}).",
        "",
        "Adapt it to your dataset (docs/your-data.md):",
        "",
        f"    clinprompt adapt {'cpu' if builtin else 'PROFILE'} "
        f"--bank {'builtin' if builtin else 'THIS_FOLDER'} --dataset my.yaml --out my_bank",
        "",
        f"{trained} To rebuild it exactly, with a data root holding the suite's sources "
        f"(RUN is the config's output_dir, {provenance['run_dir']}):",
        "",
        f"    clinprompt run {folder}/config.json data.data_root=DATA_ROOT",
        f"    clinprompt bank package RUN/distill/bank {'--builtin' if builtin else '--out DIR'}",
        "",
    ]
    return "\n".join(lines)
