"""MEDIQA-OE 2025 medical order extraction (``mediqa_oe``) — kept out of every training suite.

The release ships only the orders (``{"id", "expected_orders": [{order_type, description,
reason, provenance}]}``; ``provenance`` = turn numbers of the original transcript), not the
transcripts. Its encounters come from ACI-Bench (ids ``acibench_<encounter>_<subset>_<file>``,
including ACI-Bench *test* encounters in its train split) and from PriMock57 (not available here).

Record choice: the descriptions are normalised phrases (about a third occur verbatim in the
dialogue), so no faithful span-level RE record exists. Each ACI-Bench encounter becomes a
long-answer **qa** record: ``context`` = the ACI-Bench dialogue (read from ``aci_bench/``),
``question`` = a fixed request for the orders, ``answer`` = the orders, one per line as
``<order_type>: <description> (reason: <reason>)`` (``No orders.`` when empty); the native orders
stay in ``orders`` for a structured scorer. PriMock57 encounters (14 train / 23 dev / 20 test)
have no transcript here and are left out.

Never train on it alongside aci_bench, nor evaluate it after training on aci_bench: it shares
their encounters (``extra["leaks_with"]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clinprompt.data.loaders._common import NativeFormatError, dataset_dir, read_json
from clinprompt.data.loaders.csv_sum import ACI_FILES, read_aci
from clinprompt.data.registry import register
from clinprompt.data.spec import DatasetSpec, Records

ORDER_TYPES = ("medication", "lab", "imaging", "followup")
QUESTION = "Which medical orders (medications, labs, imaging, follow-up) did the clinician place in this encounter, and for what reason?"
FILES = {
    "train": ("orders_data.json", "train"),
    "dev": ("orders_data.json", "dev"),
    "test": ("test_orders_data.json", "test"),
}


def render_orders(orders: list[dict[str, Any]]) -> str:
    """Orders as answer text: one ``type: description (reason: ...)`` line each."""
    lines = []
    for o in orders:
        reason = f" (reason: {o['reason']})" if o.get("reason") else ""
        lines.append(f"{o['order_type']}: {o['description']}{reason}")
    return "\n".join(lines) if lines else "No orders."


def _check_orders(path: Path, where: str, orders: Any) -> list[dict[str, Any]]:
    if not isinstance(orders, list):
        raise NativeFormatError(path, where, "expected_orders", "expected a list of orders")
    for i, o in enumerate(orders):
        field = f"expected_orders[{i}]"
        if not isinstance(o, dict) or o.get("order_type") not in ORDER_TYPES:
            raise NativeFormatError(
                path, where, f"{field}.order_type", f"expected one of {list(ORDER_TYPES)}"
            )
        if not isinstance(o.get("description"), str) or not o["description"].strip():
            raise NativeFormatError(
                path, where, f"{field}.description", "expected a non-empty string"
            )
        if o.get("reason") is not None and not isinstance(o["reason"], str):
            raise NativeFormatError(path, where, f"{field}.reason", "expected a string or null")
    return orders


def _load(data_root: Path) -> dict[str, Records]:
    folder = dataset_dir(data_root, "mediqa_oe")
    aci_folder = dataset_dir(data_root, "aci_bench")
    dialogues: dict[tuple[str, str, str], str] = {}
    for names in ACI_FILES.values():
        for name in names:
            for r in read_aci(aci_folder / name, Path(name).stem):
                dialogues[(r["id"], r["subset"], r["file"])] = r["source"]
    out: dict[str, Records] = {}
    for split, (name, key) in FILES.items():
        path = folder / name
        data = read_json(path)
        items = data.get(key) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise NativeFormatError(
                path,
                None,
                key,
                "expected a top-level object with a list of encounters under this key",
            )
        records: Records = []
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            eid = item.get("id") if isinstance(item, dict) else None
            if not isinstance(eid, str) or not eid:
                raise NativeFormatError(path, where, "id", "expected an encounter id string")
            orders = _check_orders(path, where, item.get("expected_orders"))
            if eid.startswith("primock57_"):
                continue  # transcript not available (documented above)
            parts = eid.split("_", 3)
            if len(parts) != 4 or parts[0] != "acibench":
                raise NativeFormatError(
                    path,
                    where,
                    "id",
                    f"expected 'acibench_<encounter>_<subset>_<file>' or 'primock57_...', got {eid!r}",
                )
            dialogue = dialogues.get((parts[1], parts[2], parts[3]))
            if dialogue is None:
                raise NativeFormatError(
                    path, where, "id", f"encounter {eid!r} is not in {aci_folder}"
                )
            records.append(
                {
                    "id": eid,
                    "question": QUESTION,
                    "context": dialogue,
                    "answer": render_orders(orders),
                    "orders": orders,
                    "aci_encounter": parts[1],
                }
            )
        out[split] = records
    return out


register(
    DatasetSpec(
        name="mediqa_oe",
        task_type="qa",
        answer_style="long",
        instruction="Read the doctor-patient conversation and list every medical order, one per line, as 'type: description (reason: ...)'.",
        loader=_load,
        subdir="mediqa_oe",
        description="MEDIQA-OE 2025 orders on ACI-Bench encounters (dialogues from aci_bench/; PriMock57 ones left out); not for training; CDLA-Permissive-2.0",
        extra={"leaks_with": ("aci_bench",), "train_allowed": False},
    )
)
