"""A collector's shared group: what it subscribes to, what it refuses, what it stops counting."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from collector import CollectorSettings
from collector.ingest import Ingest
from collector.settings import AlertSettings
from shelterwatch.config import MqttSettings

P = "shelterwatch/v1"
NOW = 1_800_000_000_000


def test_alone_a_collector_takes_everything() -> None:
    assert CollectorSettings().topic_filters() == [
        f"{P}/gw/+/state",
        f"{P}/gw/+/dev/+/data",
        f"{P}/gw/+/dev/+/state",
    ]


def test_a_member_shares_the_data_and_reads_every_state() -> None:
    settings = CollectorSettings(
        mqtt=MqttSettings(prefix="x/v1"), client_id="c-1", shared_group="collectors"
    )
    assert settings.topic_filters() == [
        "x/v1/gw/+/state",
        "$share/collectors/x/v1/gw/+/dev/+/data",
        "x/v1/gw/+/dev/+/state",
    ]


def test_a_group_name_is_a_slug() -> None:
    # "/", "+" and "#" in a share name would change the filter itself.
    with pytest.raises(ValidationError):
        CollectorSettings(shared_group="a/b")


def test_the_alert_engine_is_refused_in_a_shared_group() -> None:
    with pytest.raises(ValidationError, match="without shared_group"):
        CollectorSettings(shared_group="collectors", alerts=AlertSettings(enabled=True))


def _data(seq: int) -> bytes:
    doc = {"ts": NOW - 1000, "seq": seq, "site": "s", "kind": "k", "values": {"x": 1.0}}
    return json.dumps(doc).encode()


def test_a_member_does_not_count_the_seqs_it_was_not_dealt_as_missing() -> None:
    shared = Ingest(P, track_gaps=False)
    alone = Ingest(P)
    for seq in (0, 2, 5, 6, 9):
        for ing in (shared, alone):
            assert ing.convert(f"{P}/gw/gw-1/dev/d/data", _data(seq), NOW) is not None
    assert (shared.stats.missing, shared.stats.seq_gaps) == (0, 0)
    assert (alone.stats.missing, alone.stats.seq_gaps) == (5, 3)
