"""Device profiles: built-in YAML register maps and the loader for custom ones."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from shelterwatch.config import load_yaml_model
from shelterwatch.errors import ConfigError
from shelterwatch.profiles.model import DataType, Order, Point, Profile, RegisterKind

__all__ = [
    "BUILTIN_DIR",
    "DataType",
    "Order",
    "Point",
    "Profile",
    "RegisterKind",
    "builtin_names",
    "load_profile",
]

BUILTIN_DIR = Path(__file__).parent / "builtin"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


@cache
def load_profile(name_or_path: str) -> Profile:
    """Load a built-in profile by name, or a custom one from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"unknown profile {name_or_path!r}: built-in profiles are "
                f"{', '.join(builtin_names())}, or give the path of a .yaml file"
            )
    return load_yaml_model(Profile, path, what="profile")
