"""Inventory import and export: CSV (sirens) and YAML (sirens and groups). Pure logic.

Export then import gives the same inventory. An import is checked whole before anything is
written: the first bad row stops it with its row and column named, and nothing is imported.
CSV rows count from 1 at the header, as a spreadsheet shows them; YAML rows count the
entries of ``sirens`` (or ``groups``) from 1.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from control.db import SirenGroup, SirenPost
from control.sirens.errors import ImportRejected
from control.sirens.models import GroupIn, SirenCreate
from shelterwatch.contract import is_slug

__all__ = ["COLUMNS", "Format", "export_csv", "export_yaml", "parse"]

Format = Literal["csv", "yaml"]
COLUMNS = [
    "id",
    "name",
    "site",
    "gateway",
    "device",
    "district",
    "lat",
    "lon",
    "radius_m",
    "profile",
    "enabled",
]
_MAX_BYTES = 10 * 1024 * 1024


def _siren_doc(post: SirenPost) -> dict[str, Any]:
    return {c: getattr(post, c) for c in COLUMNS}


def export_csv(posts: Iterable[SirenPost]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for post in posts:
        doc = _siren_doc(post)
        doc["enabled"] = "true" if post.enabled else "false"
        writer.writerow(doc)
    return out.getvalue()


def export_yaml(posts: Iterable[SirenPost], groups: Iterable[SirenGroup]) -> str:
    doc = {
        "sirens": [_siren_doc(p) for p in posts],
        "groups": [
            {
                "name": g.name,
                "description": g.description,
                "members": json.loads(g.members),
                "districts": json.loads(g.districts),
            }
            for g in groups
        ],
    }
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _first_error(exc: ValidationError) -> tuple[str, str]:
    error = exc.errors()[0]
    column = ".".join(str(p) for p in error["loc"]) or "(row)"
    return column, error["msg"]


def _siren(row: int, doc: Any) -> SirenCreate:
    if not isinstance(doc, dict):
        raise ImportRejected(row, "(row)", "each siren must be a mapping of columns")
    try:
        return SirenCreate.model_validate(doc)
    except ValidationError as exc:
        column, message = _first_error(exc)
        raise ImportRejected(row, column, message) from exc


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise ImportRejected(1, "(header)", f"empty file; the header is {','.join(COLUMNS)}")
        header = [h.strip() for h in header]
        missing = [
            c for c in COLUMNS if c not in header and c not in ("district", "profile", "enabled")
        ]
        unknown = [h for h in header if h not in COLUMNS]
        if missing or unknown:
            what = []
            if missing:
                what.append(f"missing {', '.join(missing)}")
            if unknown:
                what.append(f"unknown {', '.join(unknown)}")
            raise ImportRejected(
                1, "(header)", f"{'; '.join(what)}; the columns are {','.join(COLUMNS)}"
            )
        rows = []
        for number, values in enumerate(reader, start=2):
            if not any(v.strip() for v in values):
                continue  # blank lines are not rows
            if len(values) != len(header):
                raise ImportRejected(
                    number, "(row)", f"{len(values)} values for {len(header)} columns"
                )
            doc: dict[str, Any] = dict(zip(header, (v.strip() for v in values), strict=True))
            if "enabled" in doc:
                flag = doc["enabled"].lower()
                if flag not in ("true", "false", "1", "0", "yes", "no"):
                    raise ImportRejected(
                        number, "enabled", f"{doc['enabled']!r} is not true or false"
                    )
                doc["enabled"] = flag in ("true", "1", "yes")
            for column in ("lat", "lon", "radius_m"):
                try:
                    doc[column] = float(doc[column])
                except ValueError:
                    raise ImportRejected(
                        number, column, f"{doc[column]!r} is not a number"
                    ) from None
            if doc.get("district") is None:
                doc["district"] = ""
            rows.append((number, doc))
        return rows
    except csv.Error as exc:
        raise ImportRejected(reader.line_num, "(row)", f"not valid CSV: {exc}") from exc


def parse(text: str, format: Format) -> tuple[list[SirenCreate], dict[str, GroupIn]]:
    """The sirens and groups a document holds, or ImportRejected for its first bad row."""
    if len(text.encode()) > _MAX_BYTES:
        raise ImportRejected(1, "(file)", f"larger than {_MAX_BYTES // 1024 // 1024} MB")
    groups: dict[str, GroupIn] = {}
    if not text.strip():
        return [], groups  # an empty file imports nothing, and that is not an error
    if format == "csv":
        rows = _csv_rows(text)
    else:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise ImportRejected(line, "(file)", f"not valid YAML: {exc}") from exc
        if not isinstance(doc, dict) or not set(doc) <= {"sirens", "groups"}:
            raise ImportRejected(
                1, "(file)", "a YAML inventory is a mapping with sirens: and groups:"
            )
        sirens_doc = doc.get("sirens") or []
        groups_doc = doc.get("groups") or []
        if not isinstance(sirens_doc, list) or not isinstance(groups_doc, list):
            raise ImportRejected(1, "(file)", "sirens: and groups: must be lists")
        rows = list(enumerate(sirens_doc, start=1))
        for number, item in enumerate(groups_doc, start=1):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ImportRejected(number, "groups.name", "each group needs a name")
            name = item["name"]
            if not is_slug(name) or name == "all":
                raise ImportRejected(number, "groups.name", f"{name!r} is not a usable group name")
            try:
                groups[name] = GroupIn.model_validate(
                    {k: v for k, v in item.items() if k != "name"}
                )
            except ValidationError as exc:
                column, message = _first_error(exc)
                raise ImportRejected(number, f"groups.{column}", message) from exc
    sirens: list[SirenCreate] = []
    seen: dict[str, int] = {}
    devices: dict[tuple[str, str], int] = {}
    for number, item in rows:
        siren = _siren(number, item)
        if siren.id in seen:
            raise ImportRejected(number, "id", f"{siren.id!r} is also in row {seen[siren.id]}")
        key = (siren.gateway, siren.device)
        if key in devices:
            raise ImportRejected(
                number, "device", f"{siren.gateway}/{siren.device} is also in row {devices[key]}"
            )
        seen[siren.id] = devices[key] = number
        sirens.append(siren)
    return sirens, groups
