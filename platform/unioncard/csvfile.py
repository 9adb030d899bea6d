"""CSV uploads: decoding (UTF-8, UTF-8 with BOM, GBK), header mapping and collected errors."""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from unioncard.errors import DomainError

UTF8_BOM = b"\xef\xbb\xbf"


class CsvRejected(Exception):
    """A file rejected whole; `errors` lists every problem: {"line", "column", "message"}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = sorted(errors, key=lambda error: error["line"])
        super().__init__(f"{len(self.errors)} problem(s) in the file")


def problem(line: int, column: str | None, message: str) -> dict[str, Any]:
    """One entry of CsvRejected.errors; line 1 is the header."""
    return {"line": line, "column": column, "message": message}


def import_rejected(errors: list[dict[str, Any]]) -> DomainError:
    """The kernel's problem+json error for a rejected file, listing every problem."""
    lines = len({error["line"] for error in errors})
    detail = f"{len(errors)} problem(s) on {lines} line(s); nothing was imported"
    return DomainError("import_rejected", detail, errors=errors)


@contextlib.contextmanager
def rejection_as_domain_error() -> Iterator[None]:
    """Turn a CsvRejected raised inside the block into DomainError import_rejected."""
    try:
        yield
    except CsvRejected as exc:
        raise import_rejected(exc.errors) from exc


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) first, strictly; then GB 18030, a superset of GBK.

    Raises CsvRejected when the bytes are neither.
    """
    if data.startswith(UTF8_BOM):
        # A BOM says UTF-8: falling back to GBK would only turn the text into mojibake.
        try:
            return data[len(UTF8_BOM) :].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _undecodable(data, len(UTF8_BOM) + exc.start) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise _undecodable(data, exc.start) from exc


def _undecodable(data: bytes, position: int) -> CsvRejected:
    line = data[:position].count(b"\n") + 1
    return CsvRejected([problem(line, None, "the file is neither UTF-8 nor GBK text")])


def header_key(name: str) -> str:
    """What two spellings of a header have in common: no case, spaces, '_' or '-'."""
    return "".join(name.split()).replace("_", "").replace("-", "").casefold()


def read_rows(
    data: bytes,
    columns: Mapping[str, tuple[str, ...]],
    required: set[str],
    *,
    required_any: Iterable[set[str]] = (),
) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every non-blank record; the header is line 1.

    `columns` maps each canonical name to its accepted headers (English, Chinese); every
    row has every canonical name, "" where the file has no such column. `required_any`
    names groups of columns of which the file must have at least one. Values are stripped.
    Raises CsvRejected with every structural problem: undecodable bytes, unknown,
    repeated or missing columns, a line with more values than the header.
    """
    reader = csv.reader(io.StringIO(decode_csv(data), newline=""), strict=True)
    try:
        header = next(reader, [])
        mapping = _map_header(header, columns, required, required_any)
        return _records(reader, mapping, list(columns))
    except csv.Error as exc:
        raise CsvRejected([problem(reader.line_num, None, f"not valid CSV: {exc}")]) from exc


def _map_header(
    header: list[str],
    columns: Mapping[str, tuple[str, ...]],
    required: set[str],
    required_any: Iterable[set[str]],
) -> list[str]:
    """The canonical name of each header column, or CsvRejected."""
    aliases = {header_key(alias): name for name, names in columns.items() for alias in (name, *names)}
    if not any(cell.strip() for cell in header):
        raise CsvRejected([problem(1, None, "the file is empty: line 1 must be the header")])
    errors, mapping = [], []
    for cell in header:
        name = aliases.get(header_key(cell))
        if name is None:
            errors.append(problem(1, cell, "unknown column"))
        elif name in mapping:
            errors.append(problem(1, cell, f"the column {name} appears twice"))
        mapping.append(name or "")
    for name in sorted(required - set(mapping)):
        errors.append(problem(1, name, "required column missing"))
    for group in required_any:
        if not group & set(mapping):
            errors.append(problem(1, " / ".join(sorted(group)), "one of these columns is required"))
    if errors:
        raise CsvRejected(errors)
    return mapping


def _records(reader: Any, mapping: list[str], names: list[str]) -> list[tuple[int, dict[str, str]]]:
    rows: list[tuple[int, dict[str, str]]] = []
    errors: list[dict[str, Any]] = []
    end_of_previous = reader.line_num
    for record in _until_csv_error(reader, errors):
        # A quoted value may span lines: report the line the record starts on.
        line, end_of_previous = end_of_previous + 1, reader.line_num
        values = [value.strip() for value in record]
        if not any(values):
            continue  # blank lines, and the ",,,," lines spreadsheets leave at the end
        if any(values[len(mapping) :]):
            errors.append(problem(line, None, f"{len(values)} values for {len(mapping)} columns"))
            continue
        row = dict.fromkeys(names, "")
        row.update(zip(mapping, values, strict=False))
        rows.append((line, row))
    if errors:
        raise CsvRejected(errors)
    if not rows:
        raise CsvRejected([problem(1, None, "the file has a header but no rows")])
    return rows


def _until_csv_error(reader: Any, errors: list[dict[str, Any]]) -> Iterator[list[str]]:
    """The records, ending at the first one the csv module cannot read, noted in errors."""
    try:
        yield from reader
    except csv.Error as exc:
        errors.append(problem(reader.line_num, None, f"not valid CSV: {exc}"))
