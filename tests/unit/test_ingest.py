from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from collector.ingest import Ingest
from shelterwatch.store import DeviceStatus, Sample

P = "shelterwatch/v1"
NOW = 1_800_000_000_000


def _data(seq: int, **extra: object) -> bytes:
    doc = {
        "ts": NOW - 1000,
        "seq": seq,
        "site": "shelter-01",
        "kind": "ventilation",
        "values": {"overpressure": 41.5, "mode": "filtered", "fan_running": True},
    }
    doc.update(extra)
    return json.dumps(doc).encode()


def test_data_message_becomes_a_sample() -> None:
    ing = Ingest(P)
    rec = ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(0), NOW)
    assert rec == Sample(
        "ventilation",
        "shelter-01",
        "gw-1",
        "vent",
        NOW - 1000,
        {"overpressure": 41.5, "mode": "filtered", "fan_running": True},
    )
    assert ing.stats.values == 3


def test_device_state_carries_units_and_site_from_gateway_state() -> None:
    ing = Ingest(P)
    gw_state = {"online": True, "ts": NOW, "site": "shelter-01", "devices": ["vent"]}
    assert ing.convert(f"{P}/gw/gw-1/state", json.dumps(gw_state).encode(), NOW) is None
    dev_state = {
        "online": False,
        "ts": NOW,
        "kind": "ventilation",
        "error": "timeout",
        "points": {"overpressure": {"unit": "Pa"}},
    }
    rec = ing.convert(f"{P}/gw/gw-1/dev/vent/state", json.dumps(dev_state).encode(), NOW)
    assert isinstance(rec, DeviceStatus)
    assert (rec.site, rec.online, rec.error, dict(rec.units)) == (
        "shelter-01",
        False,
        "timeout",
        {"overpressure": "Pa"},
    )


def test_district_travels_from_messages_to_records() -> None:
    ing = Ingest(P)
    data = f"{P}/gw/gw-1/dev/vent/data"
    # Without a district anywhere (an older gateway): no district, not an invented one.
    old = ing.convert(data, _data(0), NOW)
    assert isinstance(old, Sample) and old.district == ""
    # A data message names its own district.
    rec = ing.convert(data, _data(1, district="xihu"), NOW)
    assert isinstance(rec, Sample) and rec.district == "xihu"
    # The gateway state's district stands in for a data message without one, and goes on
    # the device statuses, which carry no district of their own.
    gw_state = {"online": True, "ts": NOW, "site": "shelter-01", "district": "shangcheng"}
    ing.convert(f"{P}/gw/gw-1/state", json.dumps(gw_state).encode(), NOW)
    rec = ing.convert(data, _data(2), NOW)
    assert isinstance(rec, Sample) and rec.district == "shangcheng"
    dev_state = {"online": True, "ts": NOW, "kind": "ventilation"}
    status = ing.convert(f"{P}/gw/gw-1/dev/vent/state", json.dumps(dev_state).encode(), NOW)
    assert isinstance(status, DeviceStatus) and status.district == "shangcheng"
    # A gateway whose district was removed stores none again.
    gw_state.pop("district")
    ing.convert(f"{P}/gw/gw-1/state", json.dumps(gw_state).encode(), NOW)
    rec = ing.convert(data, _data(3), NOW)
    assert isinstance(rec, Sample) and rec.district == ""
    # A district that is not a slug makes the message malformed, like a bad site.
    assert ing.convert(data, _data(4, district="Xi Hu"), NOW) is None
    assert ing.stats.malformed == 1


def test_malformed_and_unknown_are_counted_not_raised() -> None:
    ing = Ingest(P)
    assert ing.convert(f"{P}/gw/gw-1/dev/vent/data", b"{not json", NOW) is None
    assert ing.convert(f"{P}/gw/gw-1/dev/vent/data", b'{"ts": "x"}', NOW) is None
    assert ing.convert(f"{P}/gw/GW 1/dev/vent/data", _data(0), NOW) is None
    assert ing.convert("other/topic", b"{}", NOW) is None
    assert (ing.stats.malformed, ing.stats.unknown_topic) == (2, 2)


def test_out_of_range_values_and_times() -> None:
    ing = Ingest(P)
    far_future = _data(0, ts=NOW + 10 * 86_400_000)
    assert ing.convert(f"{P}/gw/gw-1/dev/vent/data", far_future, NOW) is None
    huge = _data(1, values={"a": 2**70, "b": 1.5})
    rec = ing.convert(f"{P}/gw/gw-1/dev/vent/data", huge, NOW)
    assert isinstance(rec, Sample) and dict(rec.fields) == {"b": 1.5}
    assert ing.stats.out_of_range == 2


def test_seq_gaps_are_counted() -> None:
    ing = Ingest(P)
    for seq in (0, 1, 2, 5, 6):
        ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(seq), NOW)
    assert (ing.stats.seq_gaps, ing.stats.missing) == (1, 2)


@given(st.binary(max_size=300), st.text(max_size=80))
def test_never_raises_on_any_input(payload: bytes, topic: str) -> None:
    ing = Ingest(P)
    ing.convert(topic, payload, NOW)
    ing.convert(f"{P}/gw/gw-1/dev/vent/data", payload, NOW)
    assert ing.stats.messages == 2


def test_replayed_messages_fill_seq_gaps() -> None:
    ing = Ingest(P)
    for seq in (0, 1, 5, 6):
        ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(seq), NOW)
    assert ing.stats.missing == 3
    for seq in (2, 3, 4):
        ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(seq, historical=True), NOW)
    assert (ing.stats.missing, ing.stats.recovered, ing.stats.seq_gaps) == (0, 3, 1)


def test_replay_that_arrives_before_the_live_gap_is_not_missing() -> None:
    ing = Ingest(P)
    ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(0), NOW)
    for seq in (1, 2, 3):  # a restarted gateway replays before its first live message lands
        ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(seq, historical=True), NOW)
    ing.convert(f"{P}/gw/gw-1/dev/vent/data", _data(4), NOW)
    assert (ing.stats.missing, ing.stats.seq_gaps) == (0, 0)
