"""Exports for inspectors, JSON Lines and CSV, and reading them back to verify offline.

Every stored field is written exactly as stored and hashed (``params`` stays the canonical
JSON *text*), so an export can be verified on its own with ``shelterwatch audit verify
--input FILE``, or by any tool that recomputes the hash described in docs/security.md. The
``time`` column (ISO 8601, UTC) is for people: it is derived from ``ts_ms`` and not hashed.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncGenerator, Iterable, Iterator, Mapping
from contextlib import aclosing
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum

from control.audit.chain import AuditRecord
from control.audit.reader import CHUNK, iter_records
from control.db import Database

__all__ = ["ExportFormat", "export_chunks", "format_records", "parse_export"]

COLUMNS = ["seq", "ts_ms", "time", "actor", "action", "target", "params", "result"]
COLUMNS += ["prev_hash", "hash"]


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"

    @property
    def media_type(self) -> str:
        return "application/x-ndjson" if self is ExportFormat.jsonl else "text/csv; charset=utf-8"


def _as_dict(record: AuditRecord) -> dict[str, object]:
    data: dict[str, object] = asdict(record)
    data["time"] = (
        datetime.fromtimestamp(record.ts_ms / 1000, UTC).isoformat(timespec="milliseconds")
    ).replace("+00:00", "Z")
    return {column: data[column] for column in COLUMNS}


def format_records(records: Iterable[AuditRecord], fmt: ExportFormat, *, header: bool) -> str:
    """The records as text in ``fmt``; ``header`` adds the CSV header line."""
    if fmt is ExportFormat.jsonl:
        return "".join(
            json.dumps(_as_dict(r), ensure_ascii=False, separators=(",", ":")) + "\n"
            for r in records
        )
    out = io.StringIO()
    # lineterminator "\n": CSV fields may hold newlines anyway; quoting keeps them exact.
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    if header:
        writer.writeheader()
    writer.writerows(_as_dict(r) for r in records)
    return out.getvalue()


async def export_chunks(
    db: Database, fmt: ExportFormat, *, chunk: int = CHUNK
) -> AsyncGenerator[str]:
    """The whole trail in ``fmt``, as text pieces of about ``chunk`` rows each."""
    yield format_records([], fmt, header=True)
    batch: list[AuditRecord] = []
    async with aclosing(iter_records(db, chunk=chunk)) as records:
        async for record in records:
            batch.append(record)
            if len(batch) >= chunk:
                yield format_records(batch, fmt, header=False)
                batch = []
    if batch:
        yield format_records(batch, fmt, header=False)


def parse_export(text_lines: Iterable[str], fmt: ExportFormat) -> Iterator[AuditRecord]:
    """Records back from an export (ValueError naming the record when one is malformed)."""
    rows: Iterable[object]
    if fmt is ExportFormat.jsonl:
        rows = (line for line in text_lines if line.strip())
    else:
        rows = csv.DictReader(text_lines)
    for number, row in enumerate(rows, start=1):
        try:
            data = json.loads(row) if isinstance(row, str) else row
            if not isinstance(data, Mapping):
                raise ValueError("not an object")
            yield _record(data)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"record {number} of the export is malformed: {exc!r}") from exc


def _record(data: Mapping[str, object]) -> AuditRecord:
    return AuditRecord(
        seq=int(str(data["seq"])),
        ts_ms=int(str(data["ts_ms"])),
        actor=str(data["actor"]),
        action=str(data["action"]),
        target=str(data["target"]),
        params=str(data["params"]),
        result=str(data["result"]),
        prev_hash=str(data["prev_hash"]),
        hash=str(data["hash"]),
    )
