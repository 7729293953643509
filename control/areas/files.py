"""Area trees in and out of files: nested YAML, or flat CSV with a parent column.

YAML, as people write it::

    areas:
      - code: zj
        name: 浙江省
        level: province
        children:
          - code: hz
            name: 杭州市
            level: city
            children:
              - code: hz-xihu
                name: 西湖区
                level: county
                children:
                  - {code: shelter-01, name: 一号工程, level: site, gateways: [gw-shelter-01]}

CSV, as spreadsheets export it: ``code,name,level,parent,gateways`` with gateways separated by
spaces or semicolons, one row per area, parents before or after their children.
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from control.areas.errors import AreaError
from control.areas.tree import CODE_PATTERN, Area, AreaTree, Level

__all__ = ["CSV_COLUMNS", "dump_csv", "dump_yaml", "parse_areas"]

CSV_COLUMNS = ("code", "name", "level", "parent", "gateways")
# A province of tens of thousands of shelters fits many times over; a larger body is a mistake.
MAX_AREAS = 200_000

Code = Annotated[str, Field(pattern=CODE_PATTERN)]


class AreaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    level: Level
    gateways: list[Code] = []
    children: list[AreaSpec] = []


AreaSpec.model_rebuild()


class AreaFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    areas: list[AreaSpec]


def parse_areas(text: str, *, fmt: str) -> AreaTree:
    """Read a tree from YAML or CSV text; every fault names the entry it is in."""
    if fmt == "yaml":
        return AreaTree.build(_from_yaml(text))
    if fmt == "csv":
        return AreaTree.build(_from_csv(text))
    raise AreaError(f"unknown area file format {fmt!r}: use yaml or csv")


def _from_yaml(text: str) -> list[Area]:
    try:
        raw: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AreaError(f"the area file is not valid YAML: {exc}") from exc
    try:
        spec = AreaFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AreaError(f"area file, at {where}: {first['msg']}") from exc
    out: list[Area] = []
    stack: list[tuple[AreaSpec, str | None]] = [(a, None) for a in reversed(spec.areas)]
    while stack:
        node, parent = stack.pop()
        out.append(Area(node.code, node.name, node.level, parent, tuple(node.gateways)))
        if len(out) > MAX_AREAS:
            raise AreaError(f"the area file holds more than {MAX_AREAS} areas")
        stack.extend((child, node.code) for child in reversed(node.children))
    return out


def _from_csv(text: str) -> list[Area]:
    try:
        return _csv_rows(text)
    except csv.Error as exc:
        raise AreaError(f"the area file is not valid CSV: {exc}") from exc


def _csv_rows(text: str) -> list[Area]:
    # newline="": the csv module reads quoted line breaks and bare \r itself.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in CSV_COLUMNS[:3] if c not in header]
    if missing:
        raise AreaError(
            f"area CSV: missing column(s) {', '.join(missing)}; the header must be "
            f"{','.join(CSV_COLUMNS)}"
        )
    out: list[Area] = []
    for line, row in enumerate(reader, start=2):
        if len(out) >= MAX_AREAS:
            raise AreaError(f"the area file holds more than {MAX_AREAS} areas")
        code = (row.get("code") or "").strip()
        level = (row.get("level") or "").strip()
        try:
            parsed = Level(level)
        except ValueError:
            raise AreaError(
                f"area CSV line {line} ({code!r}): level {level!r} is not one of "
                f"{', '.join(lv.value for lv in Level)}"
            ) from None
        gateways = (row.get("gateways") or "").replace(";", " ").split()
        parent = (row.get("parent") or "").strip() or None
        out.append(Area(code, (row.get("name") or "").strip(), parsed, parent, tuple(gateways)))
    return out


def dump_yaml(tree: AreaTree) -> str:
    def node(area: Area) -> dict[str, Any]:
        out: dict[str, Any] = {"code": area.code, "name": area.name, "level": area.level.value}
        if area.gateways:
            out["gateways"] = list(area.gateways)
        kids = [node(tree.areas[c]) for c in tree.children(area.code)]
        if kids:
            out["children"] = kids
        return out

    root = tree.root_code()
    body = {"areas": [node(tree.areas[root])] if root else []}
    return yaml.safe_dump(body, allow_unicode=True, sort_keys=False)


def dump_csv(tree: AreaTree) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for area in tree.walk(tree.root_code()):
        writer.writerow(
            [area.code, area.name, area.level.value, area.parent or "", " ".join(area.gateways)]
        )
    return buffer.getvalue()
