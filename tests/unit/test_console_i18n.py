"""The console's catalogues: both languages hold the same keys, and every key the templates
and scripts use exists. Also the vendored chart library is the one its README names."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from control.auth import Role
from control.console.i18n import LANGS, catalogue, choose_lang, translator
from control.console.readiness import READINESS, Readiness, SiteFacts, assess
from control.console.thresholds import all_labels
from control.conversions.execution import OrderState, StepState
from control.sirens.activations import ActivationState
from control.sirens.outcomes import TargetState
from shelterwatch.contract import SirenKind

CONSOLE = Path(__file__).resolve().parents[2] / "control" / "console"
TEMPLATES = sorted((CONSOLE / "templates").glob("*.html"))
SCRIPTS = sorted((CONSOLE / "static").glob("*.js"))

# t("key") in templates, T("key") in scripts, and tv("group", value) for states.
T_CALL = re.compile(r"""\bt\(\s*["']([^"']+)["']\s*\)""")
JS_CALL = re.compile(r"""\bT\(\s*["']([^"']+)["']\s*\)""")
TV_CALL = re.compile(r"""\btv\(\s*["']([a-z_]+)["']""")
# Computed keys: nav links (a literal list in base.html), readiness reasons, the sign-in
# errors and chart limit labels.
DYNAMIC = {"key", "reason", "error", "line.label"}


def test_both_catalogues_have_the_same_keys_and_no_empty_string() -> None:
    zh, en = catalogue("zh-CN"), catalogue("en")
    assert set(zh) == set(en), {
        "only zh-CN": sorted(set(zh) - set(en)),
        "only en": sorted(set(en) - set(zh)),
    }
    for lang in LANGS:
        assert all(v.strip() for v in catalogue(lang).values()), lang


def test_templates_and_scripts_use_only_known_keys() -> None:
    known = set(catalogue("zh-CN"))
    used: dict[str, set[str]] = {}
    for path in TEMPLATES:
        text = path.read_text(encoding="utf-8")
        used[path.name] = set(T_CALL.findall(text))
        # Every call names its key literally, or is one of the few computed keys whose every
        # value is checked in test_every_state_shown_has_words_in_both_languages.
        for arg in re.findall(r"\bt\(([^)]*)\)", text):
            assert arg[:1] in "\"'" or arg in DYNAMIC, f"{path.name}: t({arg}) is not checkable"
    for path in SCRIPTS:
        text = path.read_text(encoding="utf-8")
        used[path.name] = set(JS_CALL.findall(text))
    base = (CONSOLE / "templates" / "base.html").read_text(encoding="utf-8")
    used["base.html (nav)"] = set(re.findall(r'"(nav\.[a-z]+)"', base))
    missing = {name: sorted(keys - known) for name, keys in used.items() if keys - known}
    assert not missing, missing
    assert all(used[p.name] for p in SCRIPTS if p.name == "console.js")


def test_scripts_get_their_strings_only_from_the_catalogue() -> None:
    # No user-facing text in the scripts: a quoted string with Chinese in it, or with two
    # words in a row, would be a hard-coded message (selectors and names have neither).
    for path in SCRIPTS:
        for literal in re.findall(r'"([^"\n]*)"', path.read_text(encoding="utf-8")):
            if literal == "use strict" or literal.startswith(("#", ".")):
                continue  # the directive, and CSS selectors
            assert not re.search(r"[\u3000-\u9fff]|[A-Za-z]+ [A-Za-z]+", literal), (
                path.name,
                literal,
            )


def test_every_state_shown_has_words_in_both_languages() -> None:
    groups: dict[str, set[str]] = {
        "readiness": set(READINESS),
        "severity": {"critical", "major", "minor", "warning"},
        "alert_state": {"raised", "acknowledged", "cleared"},
        "activation_state": {s.value for s in ActivationState},
        "target": {s.value for s in TargetState} | {"self_test_pass", "self_test_fail"},
        "kind_act": {k.value for k in SirenKind},
        "role": {r.value for r in Role},
        "posture": {"peacetime", "converting", "wartime"},
        "conv_direction": {"to_wartime", "to_peacetime"},
        "conv_kind": {"drill", "real"},
        "conv_state": {s.value for s in OrderState},
        "step_kind": {"automated", "verified", "manual"},
        "step_state": {s.value for s in StepState},
        "range": {"1h", "6h", "24h", "7d"},
    }
    used_groups = {g for p in TEMPLATES for g in TV_CALL.findall(p.read_text(encoding="utf-8"))}
    # kind and activation_event fall back to the raw value for kinds a profile adds later.
    assert used_groups - set(groups) <= {"kind", "activation_event"}
    keys = {f"{g}.{v}" for g, values in groups.items() for v in values}
    keys |= {f"reason.{r}" for r in ("no_data", "critical_alerts", "major_alerts")}
    keys |= all_labels() | {"login.refused", "login.csrf", "login.too_many"}
    for lang in LANGS:
        assert not keys - set(catalogue(lang)), (lang, sorted(keys - set(catalogue(lang))))
    reasons = {
        key
        for facts in (
            SiteFacts("s"),
            SiteFacts(
                "s",
                latest=(),
                alerts=(),
                flagged_sirens=1,
            ),
        )
        for key in assess(facts).reasons
    }
    assert reasons <= set(catalogue("en"))


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        (None, None, None, "zh-CN"),
        (None, None, "fr-FR,fr;q=0.9", "zh-CN"),
        (None, None, "en-US,en;q=0.9", "en"),
        (None, None, "zh-TW,en;q=0.5", "zh-CN"),
        (None, "en", "zh-CN", "en"),
        ("zh-CN", "en", "en-US", "zh-CN"),
        ("en", None, None, "en"),
        ("xx", None, None, "zh-CN"),
    ],
)
def test_the_language_is_chosen_by_query_cookie_browser_then_chinese(
    query: str | None, cookie: str | None, accept: str | None, expected: str
) -> None:
    assert choose_lang(query, cookie, accept) == expected


def test_an_unknown_key_shows_itself_rather_than_failing_the_page() -> None:
    assert translator("en")("no.such.key") == "no.such.key"
    assert translator("zh-CN")("nav.fleet") == "工程总览"


def test_the_vendored_chart_library_matches_its_readme() -> None:
    vendor = CONSOLE / "static" / "vendor"
    readme = (vendor / "README.md").read_text(encoding="utf-8")
    listed = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", readme, re.M)
    )
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((vendor / name).read_bytes()).hexdigest()
        assert listed.get(name) == digest, name
    assert (vendor / "uPlot.LICENSE").read_text(encoding="utf-8").startswith("The MIT License")


def test_readiness_order() -> None:
    assert Readiness.NO_DATA > Readiness.NOT_READY > Readiness.DEGRADED > Readiness.READY
