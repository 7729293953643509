"""Command areas (province → city → county → site) and the scope they give each user."""

from control.areas.errors import AreaError, AreaInUse, OutOfScope
from control.areas.files import CSV_COLUMNS, dump_csv, dump_yaml, parse_areas
from control.areas.records import AreaStore
from control.areas.scope import Scope
from control.areas.tree import CODE_PATTERN, LEVEL_ORDER, Area, AreaTree, Level

__all__ = [
    "CODE_PATTERN",
    "CSV_COLUMNS",
    "LEVEL_ORDER",
    "Area",
    "AreaError",
    "AreaInUse",
    "AreaStore",
    "AreaTree",
    "Level",
    "OutOfScope",
    "Scope",
    "dump_csv",
    "dump_yaml",
    "parse_areas",
]
