"""The console's languages: zh-CN by default, English on request. Pure logic, no IO but the
catalogue files read once.

Every user-facing string lives in ``i18n/<lang>.json`` under a dotted key. Templates call
``t("key")``, scripts ``T("key")`` (console.js), and ``tv("group", value)`` turns a state from
the data (``severity``, ``state``, ...) into its words, keeping the raw value when the
catalogue has no entry for it (a state added later still shows, untranslated).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path

__all__ = [
    "DEFAULT_LANG",
    "LANGS",
    "LANG_COOKIE",
    "Translator",
    "catalogue",
    "choose_lang",
    "translator",
]

DEFAULT_LANG = "zh-CN"
LANGS = ("zh-CN", "en")
LANG_COOKIE = "shelterwatch_lang"
_DIR = Path(__file__).parent / "i18n"

Translator = Callable[[str], str]


@cache
def catalogue(lang: str) -> Mapping[str, str]:
    """The catalogue of ``lang`` (one of LANGS), read once per process."""
    if lang not in LANGS:
        raise ValueError(f"no console catalogue for {lang!r}; there are {', '.join(LANGS)}")
    data = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{_DIR / lang}.json must be one object of strings")
    return data


def _match(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def choose_lang(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins, then the cookie it set, then the browser's first language we have
    (Accept-Language in the order given; q-values are rarely out of order in practice),
    then zh-CN."""
    for explicit in (query, cookie):
        if explicit and (lang := _match(explicit)) is not None:
            return lang
    for part in (accept_language or "").split(","):
        if (lang := _match(part.split(";")[0])) is not None:
            return lang
    return DEFAULT_LANG


def translator(lang: str) -> Translator:
    """``t(key)`` for ``lang``. A key missing from the catalogue is a bug the unit test
    catches; at run time it shows the key itself rather than failing the page."""
    strings = catalogue(lang)

    def t(key: str) -> str:
        return strings.get(key, key)

    return t
