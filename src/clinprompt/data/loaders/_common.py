"""Helpers shared by the native-format loaders: strict reading, clear errors, spans.

Every problem in a native file raises :class:`NativeFormatError` naming the file, the place
(line, row, element id...) and the field — never a silently skipped or half-loaded file.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "NativeFormatError",
    "check_mention",
    "dataset_dir",
    "decode_text",
    "read_csv_rows",
    "read_json",
    "read_jsonl_lines",
    "read_text",
    "read_xlsx_rows",
    "require_file",
    "zip_member",
]


class NativeFormatError(ValueError):
    """A native dataset file that breaks its format: ``file:where: field 'x': message``."""

    def __init__(self, path: str | Path, where: int | str | None, field: str | None, message: str):
        self.path, self.where, self.field = str(path), where, field
        place = f"{self.path}:{where}:" if where not in (None, "") else f"{self.path}:"
        text = f"{place} field '{field}': {message}" if field else f"{place} {message}"
        super().__init__(text)


def dataset_dir(data_root: Path, subdir: str) -> Path:
    """``data_root/subdir``, with a clear error when the folder is missing."""
    folder = Path(data_root) / subdir
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset folder {folder} is missing under the data root {Path(data_root).resolve()} "
            f"(set --data-root or $CLINPROMPT_DATA_ROOT to the folder that contains {subdir}/)"
        )
    return folder


def require_file(path: Path) -> Path:
    """``path`` if it is a non-empty file, else a clear error naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected a dataset file here; it is missing")
    if path.stat().st_size == 0:
        raise NativeFormatError(path, None, None, "the file is empty")
    return path


def decode_text(data: bytes, path: str | Path) -> str:
    """UTF-8 bytes as text (a BOM dropped); invalid bytes raise with the line and byte offset."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise NativeFormatError(
            path,
            line,
            None,
            f"expected UTF-8 text; invalid byte 0x{data[e.start]:02x} at byte offset {e.start}",
        ) from None


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text (a BOM is dropped; newlines kept exactly as in the file)."""
    text = decode_text(require_file(path).read_bytes(), path)
    if not text.strip():
        raise NativeFormatError(path, None, None, "the file holds only whitespace")
    return text


def read_json(path: Path) -> Any:
    """A JSON file, with the line and column of a syntax error."""
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise NativeFormatError(
            path, e.lineno, None, f"invalid JSON at column {e.colno}: {e.msg}"
        ) from None


def read_jsonl_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL file."""
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise NativeFormatError(
                path, number, None, f"invalid JSON at column {e.colno}: {e.msg}"
            ) from None
        if not isinstance(value, dict):
            raise NativeFormatError(
                path, number, None, f"expected a JSON object per line, got {type(value).__name__}"
            )
        yield number, value


def read_csv_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(row number, row)`` of a CSV file with a header; cells keep their text, with CRLF → LF.

    Row numbers count the header as row 1 (as a spreadsheet shows them).
    """
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise NativeFormatError(
            path, 1, missing[0], f"expected a header with columns {list(required)}, got {header}"
        )
    rows = []
    for number, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise NativeFormatError(
                path, number, None, f"expected {len(header)} columns as in the header"
            )
        rows.append(
            (number, {k: v.replace("\r\n", "\n").replace("\r", "\n") for k, v in row.items()})
        )
    if not rows:
        raise NativeFormatError(path, None, None, "expected at least one data row after the header")
    return rows


def read_xlsx_rows(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """``(row number, row)`` of the first sheet of an XLSX file; the first row is the header.

    Cells are strings (numbers as their text, empty cells as ""); rows that are entirely empty
    are ignored; columns without a header are ignored only when empty.
    """
    import openpyxl

    require_file(path)
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for a broken workbook
        raise NativeFormatError(path, None, None, f"expected an XLSX workbook: {e}") from None
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header_row = next(rows, None)
        if header_row is None:
            raise NativeFormatError(path, 1, None, f"sheet {sheet.title!r} is empty")
        header = ["" if c is None else str(c).strip() for c in header_row]
        missing = [c for c in required if c not in header]
        if missing:
            raise NativeFormatError(
                path,
                1,
                missing[0],
                f"expected header columns {list(required)}, got {[h for h in header if h]}",
            )
        out = []
        for number, values in enumerate(rows, start=2):
            cells = [
                ""
                if v is None
                else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                for v in values
            ]
            if not any(c.strip() for c in cells):
                continue
            for name, cell in zip(header, cells, strict=False):
                if not name and cell.strip():
                    raise NativeFormatError(
                        path, number, None, f"a value {cell[:30]!r} in a column without a header"
                    )
            out.append(
                (number, {name: cell for name, cell in zip(header, cells, strict=False) if name})
            )
    finally:
        workbook.close()
    if not out:
        raise NativeFormatError(path, None, None, "expected at least one data row after the header")
    return out


def zip_member(archive: zipfile.ZipFile, archive_path: Path, name: str) -> bytes:
    """The bytes of ``name`` inside a zip, with a clear error when it is absent."""
    try:
        return archive.read(name)
    except KeyError:
        raise NativeFormatError(
            archive_path, None, None, f"expected a member {name!r} in the zip archive"
        ) from None


def check_mention(
    text: str,
    start: int,
    end: int,
    mention: str | None,
    path: Path | str,
    where: int | str,
    field: str,
) -> None:
    """Raise unless ``0 <= start < end <= len(text)`` and ``text[start:end] == mention`` (if given)."""
    if not (0 <= start < end <= len(text)):
        raise NativeFormatError(
            path, where, field, f"offsets {start}-{end} fall outside the text (length {len(text)})"
        )
    if mention is not None and text[start:end] != mention:
        raise NativeFormatError(
            path,
            where,
            field,
            f"text[{start}:{end}] is {text[start:end]!r}, expected the mention {mention!r}",
        )
