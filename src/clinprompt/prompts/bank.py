"""The prompt bank: one backbone's kilobyte-sized task prompts, in one directory.

Layout::

    BANK/
      bank.json                 format, backbone fingerprint, P, D, R, the tasks: each one's
                                TaskSpec whole (what it is: type, labels, instruction, switches)
                                and its metadata
      shared.safetensors        P* (P, D), the shared metaprompt (when the bank has one)
      tasks/<name>.safetensors  per task: ``u`` (P, R) and ``v`` (R, D) factors — and ``shared``
                                (P, D) when the task adapted its own copy of P* — or ``prompt``
                                (P, D) for a single-task prompt (teacher, PT baseline, PEFT import)
      config.json               (optional) the resolved run config that produced the bank

Task k's effective prompt is ``P* ⊙ (u_k v_k)`` or its single ``prompt``. Every write is atomic
(tensor file first, then ``bank.json``), so a crash never leaves a half-written bank and adding a
task never rewrites the others. Loading checks the backbone fingerprint.

Format versions: 2 stores each task's :class:`~clinprompt.tasks.spec.TaskSpec` whole, so serving
needs no dataset registry. A version-1 bank (no specs) is refused on load with the command that
upgrades it once, in place (``clinprompt bank upgrade BANK``: :meth:`PromptBank.upgrade` rebuilds
each spec from the entry's fields and, through a lookup the caller passes in, from the registered
dataset it names, as version-1 servers resolved it; the tensors are not touched).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from clinprompt.artifacts import load_tensors, read_json, save_tensors, write_json
from clinprompt.backbone import Fingerprint
from clinprompt.prompts.soft_prompt import MultitaskPrompt, PromptError
from clinprompt.tasks.base import TEMPLATE_VERSION, get_task_type
from clinprompt.tasks.spec import TaskSpec, TaskSpecError

__all__ = [
    "BANK_FORMAT",
    "BANK_VERSION",
    "BankError",
    "PromptBank",
    "TaskEntry",
    "spec_of_v1_entry",
]

BANK_FORMAT = "clinprompt-bank"
BANK_VERSION = 2  # 2: each task stores its TaskSpec; 1: no spec (rebuilt on load)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class BankError(ValueError):
    """A bank that cannot be read, or an operation it refuses."""


@dataclass
class TaskEntry:
    """One task of a bank: what it is (its :class:`TaskSpec`) and how its prompt is stored.

    ``task_type``, ``labels`` and ``instruction`` say what training used and agree with
    ``spec`` after construction: labels and an instruction given here are written into the spec
    (the spec's own fill them when not given), and the task types must match. Without a spec,
    one is built from the entry's own fields; code that knows the task passes its spec
    (``DatasetSpec.task_spec()``), so switches such as ``joint`` travel with the prompt.
    """

    name: str
    task_type: str
    kind: str  # "factors" (P* ⊙ u v) or "prompt" (a single (P, D) prompt)
    labels: list[str] = field(default_factory=list)
    instruction: str | None = None
    template_version: str | None = None  # None: the version its task type poses it in now
    own_shared: bool = False  # factors with their own adapted copy of P*
    dataset: str | None = None  # registry name of the dataset it was trained on
    meta: dict[str, Any] = field(default_factory=dict)
    spec: TaskSpec | None = None  # always set after construction

    def __post_init__(self) -> None:
        if self.spec is None:
            self.spec = _spec_from_fields(asdict(self))
        else:
            self._agree_with_spec()
        if self.template_version is None:
            self.template_version = current_template(self.spec)

    def _agree_with_spec(self) -> None:
        assert self.spec is not None
        if self.spec.task_type != self.task_type:
            raise BankError(
                f"task {self.name!r}: its spec is a {self.spec.task_type} task but the entry says "
                f"{self.task_type}; give a spec of the entry's task type"
            )
        if self.labels:
            labels = tuple(self.labels)
            if labels != self.spec.labels:
                self.spec = replace(self.spec, labels=labels)
        else:
            self.labels = list(self.spec.labels)
        if self.instruction is None:
            self.instruction = self.spec.instruction
        elif self.instruction != self.spec.instruction:
            self.spec = replace(self.spec, instruction=self.instruction)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able entry, its spec as :meth:`TaskSpec.to_dict` writes it."""
        assert self.spec is not None  # set by __post_init__
        return {**asdict(self), "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        where: str = "task entry",
        lookup: SpecLookup | None = None,
    ) -> TaskEntry:
        """An entry from :meth:`to_dict` output; one without a spec (written before bank format 2)
        gets the spec :func:`spec_of_v1_entry` rebuilds with ``lookup``.

        Raises:
            TaskSpecError: a stored spec that cannot be read (the message names the field).
        """
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "spec"}
        if data.get("spec") is not None:
            values["spec"] = TaskSpec.from_dict(data["spec"], where=f"{where}: spec")
        else:
            values["spec"] = spec_of_v1_entry(data, lookup)
        return cls(**values)


# A dataset name → its registered spec, or None; passed in by the layer that owns the registry.
SpecLookup = Callable[[str], "TaskSpec | None"]


def current_template(spec: TaskSpec) -> str:
    """The text template version ``spec``'s task type poses it in (an unknown type: the base)."""
    try:
        return get_task_type(spec.task_type).template_version(spec)
    except KeyError:
        return TEMPLATE_VERSION


def template_mismatch(entry: TaskEntry) -> str | None:
    """Why ``entry``'s prompt cannot be used with today's text for its task, or None."""
    now = current_template(entry.spec)  # type: ignore[arg-type]
    if entry.template_version == now:
        return None
    return (
        f"task {entry.name!r} was trained on text template {entry.template_version}, but "
        f"{entry.task_type} tasks like it are now posed as {now}; its prompt does not fit the "
        "new text: train it again (clinprompt adapt/teachers/baseline)"
    )


def _spec_from_fields(entry: dict[str, Any]) -> TaskSpec:
    """A spec from a task entry's own fields (meta ``answer_style``/``joint`` when recorded)."""
    meta = entry.get("meta") or {}
    return TaskSpec(
        name=entry.get("dataset") or entry["name"],
        task_type=entry["task_type"],
        labels=tuple(entry.get("labels") or ()),
        instruction=entry.get("instruction"),
        answer_style=str(meta.get("answer_style", "short")),
        joint=bool(meta.get("joint", False)),
    )


def spec_of_v1_entry(entry: dict[str, Any], lookup: SpecLookup | None = None) -> TaskSpec:
    """The spec of a task entry written before banks stored specs (format version 1).

    As version-1 servers resolved it: when ``lookup`` knows the entry's ``dataset`` as a dataset
    of the same task type, that dataset's spec with the entry's labels and instruction (the bank
    records what training used); otherwise one built from the entry's fields (task type, labels,
    instruction, meta ``answer_style``/``joint``).
    """
    base = lookup(entry["dataset"]) if lookup is not None and entry.get("dataset") else None
    if base is None or base.task_type != entry.get("task_type"):
        return _spec_from_fields(entry)
    instruction = entry.get("instruction")
    return replace(
        base,
        labels=tuple(entry.get("labels") or ()) or base.labels,
        instruction=instruction if instruction is not None else base.instruction,
    )


class PromptBank:
    """A directory of task prompts for one backbone. Use :meth:`create` or :meth:`load`."""

    def __init__(self, path: Path, header: dict[str, Any], tasks: dict[str, TaskEntry]) -> None:
        self.path = Path(path)
        self.header = header
        self.tasks = tasks
        self._shared: torch.Tensor | None = None

    # ----------------------------------------------------------------- construction / loading
    @classmethod
    def create(
        cls,
        path: str | Path,
        fingerprint: Fingerprint,
        prompt_tokens: int,
        rank: int = 1,
        shared: torch.Tensor | None = None,
        config: dict[str, Any] | None = None,
        exist_ok: bool = False,
    ) -> PromptBank:
        """A new, empty bank (with P* when given). Refuses to overwrite a bank unless ``exist_ok``."""
        path = Path(path)
        if (path / "bank.json").exists() and not exist_ok:
            raise BankError(f"{path} already holds a bank; remove it or choose another directory")
        header = {
            "format": BANK_FORMAT,
            "version": BANK_VERSION,
            "backbone": fingerprint.to_dict(),
            "prompt_tokens": int(prompt_tokens),
            "dim": int(fingerprint.hidden_size),
            "rank": int(rank),
            "has_shared": shared is not None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        bank = cls(path, header, {})
        if shared is not None:
            bank._check_shape(shared, (prompt_tokens, fingerprint.hidden_size), "P*")
            save_tensors(path / "shared.safetensors", {"shared": shared.float()})
        if config is not None:
            write_json(path / "config.json", config)
        bank._write_header()
        return bank

    @classmethod
    def load(cls, path: str | Path, expect: Fingerprint | None = None) -> PromptBank:
        """Open a bank; with ``expect``, refuse a bank trained on another backbone."""
        path = Path(path)
        meta_path = path / "bank.json"
        if not meta_path.exists():
            raise BankError(f"{path} is not a prompt bank: {meta_path} is missing")
        data = read_json(meta_path)
        if data.get("format") != BANK_FORMAT:
            raise BankError(
                f"{meta_path}: field 'format' is {data.get('format')!r}; expected {BANK_FORMAT!r}"
            )
        version = data.get("version", 1)
        if version > BANK_VERSION:
            raise BankError(
                f"{meta_path}: bank format version {data['version']} is newer than this clinprompt reads ({BANK_VERSION}); upgrade clinprompt"
            )
        if version < BANK_VERSION:
            raise BankError(
                f"{meta_path}: bank format version {version} does not record each task's spec; "
                f"upgrade it once, in place (the tensors are kept): clinprompt bank upgrade {path}"
            )
        tasks = cls._entries(meta_path, data)
        bank = cls(path, data, tasks)
        if expect is not None:
            bank.check_backbone(expect)
        return bank

    @staticmethod
    def _entries(
        meta_path: Path, data: dict[str, Any], lookup: SpecLookup | None = None
    ) -> dict[str, TaskEntry]:
        """The task entries of a ``bank.json`` (popped from ``data``), specs checked."""
        version = data.get("version", 1)
        tasks: dict[str, TaskEntry] = {}
        for t in data.pop("tasks", []):
            where = f"{meta_path}: task {t.get('name')!r}"
            if version >= 2 and t.get("spec") is None:
                raise BankError(f"{where}: field 'spec' is missing (bank format {version})")
            try:
                tasks[t["name"]] = TaskEntry.from_dict(t, where=where, lookup=lookup)
            except TaskSpecError as err:
                raise BankError(str(err)) from err
        return tasks

    @classmethod
    def upgrade(cls, path: str | Path, lookup: SpecLookup | None = None) -> PromptBank:
        """Rewrite an older bank's ``bank.json`` in the current format, in place (atomically).

        Each task's spec is rebuilt by :func:`spec_of_v1_entry` (``lookup``: a dataset name → its
        registered spec, passed in by the caller, e.g. the CLI); ``header["upgraded"]`` records it.
        A bank already in the current format is returned unchanged.
        """
        path = Path(path)
        meta_path = path / "bank.json"
        if not meta_path.exists():
            raise BankError(f"{path} is not a prompt bank: {meta_path} is missing")
        data = read_json(meta_path)
        version = data.get("version", 1)
        if data.get("format") != BANK_FORMAT or version >= BANK_VERSION:
            return cls.load(path)
        tasks = cls._entries(meta_path, data, lookup)
        data["upgraded"] = (
            f"from bank format {version} to {BANK_VERSION} on "
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: task specs rebuilt "
            "from the entries' fields and registered datasets"
        )
        data["version"] = BANK_VERSION
        bank = cls(path, data, tasks)
        bank._write_header()
        return bank

    def check_backbone(self, fingerprint: Fingerprint) -> None:
        """Raise :class:`BankError` naming both backbones when they differ."""
        mine = self.fingerprint
        if not mine.matches(fingerprint):
            raise BankError(
                f"the bank {self.path} was trained on backbone {mine.describe()}, but the loaded backbone is "
                f"{fingerprint.describe()}; load the bank's backbone or train a bank for this one"
            )

    # ----------------------------------------------------------------------------- properties
    @property
    def fingerprint(self) -> Fingerprint:
        return Fingerprint.from_dict(self.header["backbone"])

    @property
    def prompt_tokens(self) -> int:
        return int(self.header["prompt_tokens"])

    @property
    def dim(self) -> int:
        return int(self.header["dim"])

    @property
    def rank(self) -> int:
        return int(self.header["rank"])

    def names(self) -> list[str]:
        return list(self.tasks)

    def entry(self, name: str) -> TaskEntry:
        if name not in self.tasks:
            raise BankError(
                f"task {name!r} is not in the bank {self.path}; it holds: {', '.join(self.tasks) or '(none)'}"
            )
        return self.tasks[name]

    # --------------------------------------------------------------------------------- tensors
    def shared(self) -> torch.Tensor:
        """P* (P, D)."""
        if self._shared is None:
            file = self.path / "shared.safetensors"
            if not file.exists():
                raise BankError(f"the bank {self.path} has no shared prompt P* ({file} is missing)")
            self._shared = load_tensors(file)["shared"]
        return self._shared

    def task_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """The stored tensors of one task (``u``/``v``[/``shared``] or ``prompt``)."""
        self.entry(name)
        return load_tensors(self._task_file(name))

    def task_prompt(self, name: str) -> torch.Tensor:
        """Task ``name``'s effective prompt (P, D), fp32."""
        entry, t = self.entry(name), self.task_tensors(name)
        if entry.kind == "prompt":
            return t["prompt"].float()
        shared = t["shared"] if entry.own_shared else self.shared()
        return shared.float() * (t["u"].float() @ t["v"].float())

    def task_bytes(self, name: str) -> int:
        """Bytes on disk of the task's own tensors."""
        self.entry(name)
        return self._task_file(name).stat().st_size

    def multitask_prompt(self, names: list[str] | None = None) -> MultitaskPrompt:
        """A :class:`MultitaskPrompt` over factor tasks sharing the bank's P* (task ids = list order)."""
        names = names or [
            n for n, e in self.tasks.items() if e.kind == "factors" and not e.own_shared
        ]
        if not names:
            raise BankError(f"the bank {self.path} has no factor tasks")
        cols, rows = [], []
        for n in names:
            entry = self.entry(n)
            if entry.kind != "factors" or entry.own_shared:
                raise BankError(f"task {n!r} is not a factor task on the shared P*")
            t = self.task_tensors(n)
            cols.append(t["u"])
            rows.append(t["v"])
        return MultitaskPrompt(self.shared(), torch.stack(cols), torch.stack(rows))

    # ------------------------------------------------------------------------------ mutation
    def add_factors(
        self,
        entry: TaskEntry,
        u: torch.Tensor,
        v: torch.Tensor,
        shared: torch.Tensor | None = None,
        replace: bool = False,
    ) -> TaskEntry:
        """Add a task stored as factors u (P, R), v (R, D) (and its own P* when given)."""
        p, d, r = self.prompt_tokens, self.dim, self.rank
        self._check_shape(u, (p, r), "u")
        self._check_shape(v, (r, d), "v")
        tensors = {"u": u.float(), "v": v.float()}
        if shared is not None:
            self._check_shape(shared, (p, d), "P*")
            tensors["shared"] = shared.float()
        elif not self.header.get("has_shared"):
            raise BankError(f"the bank {self.path} has no shared P*; pass the task's own P*")
        entry.kind, entry.own_shared = "factors", shared is not None
        return self._add(entry, tensors, replace)

    def add_prompt(
        self, entry: TaskEntry, prompt: torch.Tensor, replace: bool = False
    ) -> TaskEntry:
        """Add a task stored as a single (P, D) prompt."""
        self._check_shape(prompt, (self.prompt_tokens, self.dim), "prompt")
        entry.kind, entry.own_shared = "prompt", False
        return self._add(entry, {"prompt": prompt.float()}, replace)

    def add_multitask(
        self, prompt: MultitaskPrompt, entries: list[TaskEntry], replace: bool = False
    ) -> None:
        """Add every task of a distilled :class:`MultitaskPrompt` (task k ↔ ``entries[k]``)."""
        if len(entries) != prompt.num_tasks:
            raise BankError(
                f"got {len(entries)} task entries for a prompt with K={prompt.num_tasks} tasks"
            )
        for k, entry in enumerate(entries):
            self.add_factors(
                entry, prompt.cols[k].detach(), prompt.rows[k].detach(), replace=replace
            )

    def add_from(
        self, source: PromptBank, name: str, new_name: str | None = None, replace: bool = False
    ) -> TaskEntry:
        """Copy task ``name`` of another bank of the same backbone and P into this one.

        Factors stay factors when this bank has the same P* and R (byte-identical P*) or when
        the task carries its own P*; a factor task on a different P* keeps the source's P* as its
        own. Other tasks are not touched.
        """
        self.check_backbone(source.fingerprint)
        if (source.prompt_tokens, source.dim) != (self.prompt_tokens, self.dim):
            raise BankError(
                f"the bank {source.path} has prompts of (P={source.prompt_tokens}, D={source.dim}); {self.path} holds (P={self.prompt_tokens}, D={self.dim})"
            )
        entry = TaskEntry.from_dict({**source.entry(name).to_dict(), "name": new_name or name})
        t = source.task_tensors(name)
        if entry.kind == "prompt":
            return self.add_prompt(entry, t["prompt"], replace=replace)
        if source.rank != self.rank:  # the factors do not fit this bank: store the effective prompt
            entry.meta = {**entry.meta, "stored_as_prompt": f"factors of rank {source.rank}"}
            return self.add_prompt(entry, source.task_prompt(name), replace=replace)
        shared = t.get("shared")
        if shared is None and not (
            self.header.get("has_shared") and torch.equal(self.shared(), source.shared())
        ):
            shared = source.shared()
        return self.add_factors(entry, t["u"], t["v"], shared=shared, replace=replace)

    def remove(self, name: str) -> None:
        """Remove a task (header first, so a crash leaves at worst an orphan tensor file)."""
        self.entry(name)
        del self.tasks[name]
        self._write_header()
        self._task_file(name).unlink(missing_ok=True)

    # -------------------------------------------------------------------------------- private
    def _add(self, entry: TaskEntry, tensors: dict[str, torch.Tensor], replace: bool) -> TaskEntry:
        if not _NAME.match(entry.name):
            raise BankError(
                f"task name {entry.name!r} may contain only letters, digits, '_', '-' and '.'"
            )
        if entry.name in self.tasks and not replace:
            raise BankError(
                f"task {entry.name!r} is already in the bank {self.path}; remove it first or pass replace"
            )
        save_tensors(
            self._task_file(entry.name), tensors, metadata={"task": entry.name, "kind": entry.kind}
        )
        self.tasks[entry.name] = entry
        self._write_header()
        return entry

    def _task_file(self, name: str) -> Path:
        return self.path / "tasks" / f"{name}.safetensors"

    def _check_shape(self, t: torch.Tensor, shape: tuple[int, ...], what: str) -> None:
        if tuple(t.shape) != tuple(shape):
            raise PromptError(
                f"{what} has shape {tuple(t.shape)}; this bank expects {tuple(shape)} (P={self.prompt_tokens}, D={self.dim}, R={self.rank})"
            )

    def _write_header(self) -> None:
        write_json(
            self.path / "bank.json",
            {**self.header, "tasks": [e.to_dict() for e in self.tasks.values()]},
        )
