"""collector/posture.py: reading the control service's posture messages for the engine."""

from __future__ import annotations

import logging

import pytest

from collector.alerts.engine import AlertEngine
from collector.alerts.rules import load_rules
from collector.posture import apply_posture, posture_filter, read_posture
from shelterwatch.contract import Posture, SitePosture

P = "shelterwatch/v1"


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Posture, int]] = []

    def set_posture(self, site: str, posture: Posture, now_ms: int) -> None:
        self.calls.append((site, posture, now_ms))


def test_a_posture_message_reaches_the_engine() -> None:
    body = SitePosture(posture="wartime", ts=5, order="conv-0123456789ab", kind="drill")
    update = read_posture(f"{P}/posture/shelter-01", body.to_json(), P)
    assert update is not None
    assert (update.site, update.posture, update.order) == ("shelter-01", "wartime", body.order)
    sink = Sink()
    apply_posture(sink, update, 10)
    assert sink.calls == [("shelter-01", "wartime", 10)]
    assert posture_filter(P) == f"{P}/posture/+"


@pytest.mark.parametrize(
    "topic",
    [f"{P}/gw/gw-1/dev/door/data", f"{P}/alert/s/r/d", "other/v1/posture/shelter-01"],
)
def test_other_topics_are_not_postures(topic: str) -> None:
    assert read_posture(topic, b'{"posture": "wartime", "ts": 1}', P) is None


def test_a_malformed_posture_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert read_posture(f"{P}/posture/shelter-09", b'{"posture": "war"}', P) is None
        assert read_posture(f"{P}/posture/Bad_Site", b'{"posture": "wartime", "ts": 1}', P) is None
        assert read_posture(f"{P}/posture/shelter-09", b"", P) is None
    assert "malformed posture" in caplog.text


def test_the_real_engine_takes_the_posture() -> None:
    engine = AlertEngine(load_rules(None))
    update = read_posture(f"{P}/posture/shelter-01", b'{"posture": "converting", "ts": 1}', P)
    assert update is not None
    apply_posture(engine, update, 1)
    assert engine.posture("shelter-01") == "converting"
