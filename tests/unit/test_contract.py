"""Topics and payload models of the MQTT contract v1."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shelterwatch.contract import (
    DEFAULT_PREFIX,
    Alert,
    CommandAck,
    CommandRequest,
    CommandState,
    DeviceData,
    DeviceState,
    GatewayState,
    PointInfo,
    Quality,
    Topic,
    TopicKind,
    alert_topic,
    cmd_ack_topic,
    cmd_topic,
    data_topic,
    device_state_topic,
    gateway_state_topic,
    is_slug,
    parse_topic,
    subscriptions,
)
from shelterwatch.errors import ContractError

slugs = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,63}\Z")
prefixes = st.sampled_from([DEFAULT_PREFIX, "shelterwatch/v2", "site-a/shelterwatch/v1"])
BAD_SLUGS = ["", "Door", "door 1", "door/1", "+", "#", "-door", "_door", "d" * 65, "门", "a.b"]
TS = 1_758_160_800_000


# --------------------------------------------------------------------------------------------
# Topics


@given(gw=slugs, dev=slugs, prefix=prefixes)
def test_gateway_topics_round_trip(gw: str, dev: str, prefix: str) -> None:
    assert parse_topic(gateway_state_topic(gw, prefix), prefix) == Topic(
        TopicKind.GATEWAY_STATE, gateway=gw
    )
    assert parse_topic(data_topic(gw, dev, prefix), prefix) == Topic(
        TopicKind.DEVICE_DATA, gateway=gw, device=dev
    )
    assert parse_topic(device_state_topic(gw, dev, prefix), prefix) == Topic(
        TopicKind.DEVICE_STATE, gateway=gw, device=dev
    )
    assert parse_topic(cmd_topic(gw, prefix), prefix) == Topic(TopicKind.COMMAND, gateway=gw)
    assert parse_topic(cmd_ack_topic(gw, prefix), prefix) == Topic(
        TopicKind.COMMAND_ACK, gateway=gw
    )


@given(site=slugs, rule=slugs, dev=slugs, prefix=prefixes)
def test_alert_topic_round_trips(site: str, rule: str, dev: str, prefix: str) -> None:
    topic = alert_topic(site, rule, dev, prefix)
    assert parse_topic(topic, prefix) == Topic(TopicKind.ALERT, site=site, rule=rule, device=dev)


def test_topic_shapes() -> None:
    assert gateway_state_topic("gw-shelter-01") == "shelterwatch/v1/gw/gw-shelter-01/state"
    assert data_topic("gw-shelter-01", "vent") == "shelterwatch/v1/gw/gw-shelter-01/dev/vent/data"
    assert device_state_topic("gw-1", "door") == "shelterwatch/v1/gw/gw-1/dev/door/state"
    assert cmd_topic("gw-1") == "shelterwatch/v1/gw/gw-1/cmd"
    assert cmd_ack_topic("gw-1") == "shelterwatch/v1/gw/gw-1/cmd/ack"
    assert alert_topic("shelter-01", "co2_high", "env") == (
        "shelterwatch/v1/alert/shelter-01/co2_high/env"
    )


@given(slugs)
def test_slugs_match_the_pattern(slug: str) -> None:
    assert is_slug(slug)


@pytest.mark.parametrize("bad", BAD_SLUGS)
def test_bad_slugs_raise(bad: str) -> None:
    assert not is_slug(bad)
    for build in (gateway_state_topic, cmd_topic, cmd_ack_topic):
        with pytest.raises(ContractError, match="not a slug"):
            build(bad)
    with pytest.raises(ContractError, match="device"):
        data_topic("gw-1", bad)
    with pytest.raises(ContractError, match="gateway"):
        device_state_topic(bad, "door")
    with pytest.raises(ContractError, match="rule"):
        alert_topic("shelter-01", bad, "door")
    if "/" not in bad:
        with pytest.raises(ContractError):
            parse_topic(f"shelterwatch/v1/gw/{bad}/state")
        with pytest.raises(ContractError):
            parse_topic(f"shelterwatch/v1/alert/shelter-01/{bad}/door")


@pytest.mark.parametrize("bad", ["gw-1\n", "door\n"])
def test_slug_with_trailing_newline_is_rejected(bad: str) -> None:
    assert not is_slug(bad)
    with pytest.raises(ContractError):
        parse_topic(f"shelterwatch/v1/gw/{bad}/state")


@pytest.mark.parametrize(
    "topic",
    [
        "shelterwatch/v2/gw/gw-1/state",  # another prefix
        "spBv1.0/shelters/NBIRTH/gw-1",
        "shelterwatch/v1",
        "shelterwatch/v1/",
        "shelterwatch/v1/gw/gw-1",
        "shelterwatch/v1/gw/gw-1/status",
        "shelterwatch/v1/gw/gw-1/state/",
        "shelterwatch/v1/gw/gw-1/dev/door",
        "shelterwatch/v1/gw/gw-1/dev/door/data/extra",
        "shelterwatch/v1/gw/gw-1/cmd/nack",
        "shelterwatch/v1/gw/+/dev/+/data",  # a filter, not a topic
        "shelterwatch/v1/alert/shelter-01/co2_high",
        "shelterwatch/v1/alert/shelter-01/co2_high/env/x",
        "/shelterwatch/v1/gw/gw-1/state",
        "shelterwatch/v1x/gw/gw-1/state",
    ],
)
def test_foreign_topics_raise(topic: str) -> None:
    with pytest.raises(ContractError):
        parse_topic(topic)


def test_subscriptions_cover_telemetry_only() -> None:
    subs = subscriptions("p/v1")
    assert subs == ["p/v1/gw/+/state", "p/v1/gw/+/dev/+/data", "p/v1/gw/+/dev/+/state"]


# --------------------------------------------------------------------------------------------
# Payloads


def _data(values: Any) -> DeviceData:
    return DeviceData.model_validate_json(json.dumps({"ts": TS, "seq": 1, "values": values}))


@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        ("true", True, bool),
        ("false", False, bool),
        ("1", 1, int),
        ("0", 0, int),
        ("-7", -7, int),
        ("1.5", 1.5, float),
        ("1.0", 1.0, float),
        ('"x"', "x", str),
        ('"1"', "1", str),
    ],
)
def test_value_keeps_json_types_apart(raw: str, expected: object, kind: type) -> None:
    body = f'{{"ts": {TS}, "seq": 0, "values": {{"p": {raw}}}}}'
    value = DeviceData.model_validate_json(body).values["p"]
    assert value == expected
    assert type(value) is kind


def test_value_keeps_python_types_apart() -> None:
    data = DeviceData(ts=TS, seq=0, values={"b": True, "i": 1, "f": 1.5, "s": "x"})
    assert [type(v) for v in data.values.values()] == [bool, int, float, str]


@pytest.mark.parametrize("bad", [None, [1], {"a": 1}])
def test_value_rejects_non_scalars(bad: object) -> None:
    with pytest.raises(ValidationError):
        _data({"p": bad})


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (GatewayState, {"online": True, "ts": -1, "site": "shelter-01"}),
        (DeviceData, {"ts": -1, "seq": 0}),
        (DeviceData, {"ts": TS, "seq": -1}),
        (DeviceState, {"online": False, "ts": -5}),
        (CommandAck, {"id": "c1", "state": "accepted", "ts": -1}),
        (Alert, {"active": True, "ts": -1}),
        (
            CommandRequest,
            {"id": "c", "device": "siren", "action": "x", "ts": TS, "expires": -1, "actor": "a"},
        ),
    ],
)
def test_negative_times_and_seq_rejected(model: type[Any], payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(payload)


@pytest.mark.parametrize(
    ("model", "payload"),
    [
        (GatewayState, {"online": True, "ts": TS, "site": "Shelter 01"}),
        (GatewayState, {"online": True, "ts": TS, "site": "s", "devices": ["Door"]}),
        (GatewayState, {"online": True, "ts": TS}),
        (DeviceData, {"ts": TS, "seq": 0, "quality": {"p": "good"}}),
        (DeviceData, {"ts": TS, "seq": 0, "site": "a/b"}),
        (DeviceData, {"ts": TS, "seq": 0, "district": "Xi Hu"}),
        (GatewayState, {"online": True, "ts": TS, "site": "s", "district": ""}),
        (CommandAck, {"id": "c1", "state": "done", "ts": TS}),
        (CommandAck, {"id": "", "state": "accepted", "ts": TS}),
        (CommandRequest, {"id": "c", "device": "siren", "action": "", "ts": TS, "expires": TS}),
        (
            CommandRequest,
            {"id": "c", "device": "Siren", "action": "x", "ts": TS, "expires": TS, "actor": "a"},
        ),
        (Alert, {"active": True, "ts": TS, "severity": "fatal"}),
        (DeviceState, {"online": True, "ts": TS, "points": {"p": {"kind": "float"}}}),
    ],
)
def test_invalid_payloads_rejected(model: type[Any], payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(payload)


def test_unknown_keys_are_ignored() -> None:
    body = {"online": True, "ts": TS, "site": "shelter-01", "firmware": "2.1", "extra": {"a": 1}}
    state = GatewayState.model_validate(body)
    assert state.site == "shelter-01"
    assert not hasattr(state, "firmware")
    assert b"firmware" not in state.to_json()
    ack = CommandAck.model_validate_json(
        '{"id": "c1", "state": "running", "ts": 5, "progress": 0.5}'
    )
    assert ack.state is CommandState.RUNNING


def test_payloads_are_frozen() -> None:
    ack = CommandAck(id="c1", state=CommandState.ACCEPTED, ts=TS)
    with pytest.raises(ValidationError):
        ack.ts = 0  # type: ignore[misc]


def test_defaults() -> None:
    data = DeviceData(ts=TS, seq=0)
    assert (data.values, data.quality, data.full, data.historical) == ({}, {}, False, False)
    assert data.site is None and data.kind is None and data.district is None
    # Messages from before the district field stay valid, and none is written back.
    state = GatewayState.model_validate({"online": True, "ts": TS, "site": "s"})
    assert state.district is None and b"district" not in state.to_json()
    assert b"district" not in data.to_json()
    assert PointInfo().kind == "number"
    assert Alert(active=True, ts=TS).severity == "warning"


EXAMPLES = [
    GatewayState(online=True, ts=TS, site="shelter-01", version="0.1.0", devices=["door", "vent"]),
    GatewayState(online=False, ts=TS, site="shelter-01"),
    GatewayState(online=True, ts=TS, site="shelter-01", district="xihu"),
    DeviceData(
        ts=TS,
        seq=42,
        site="shelter-01",
        district="xihu",
        kind="ventilation",
        values={"mode": "filtered", "fan_running": True, "fan_hours": 12873, "airflow": 1180.5},
        quality={"overpressure": Quality.BAD, "filter_dp": Quality.STALE},
        full=True,
        historical=True,
    ),
    DeviceData(ts=0, seq=0),
    DeviceState(
        online=True,
        ts=TS,
        kind="door",
        profile="blast_door",
        points={"position": PointInfo(kind="string"), "seal_pressure": PointInfo(unit="kPa")},
    ),
    DeviceState(online=False, ts=TS, error="timeout"),
    CommandRequest(
        id="cmd-1",
        device="siren",
        action="sound",
        params={"signal": "air_raid", "repeat": 1, "loud": True, "gain": 0.5},
        ts=TS,
        expires=TS + 30_000,
        actor="duty.officer",
        sig="abc",
    ),
    *(CommandAck(id="cmd-1", state=s, detail=s.value, ts=TS) for s in CommandState),
    Alert(active=True, ts=TS, severity="critical", message="CO2 2.6 %", value=2.6),
    Alert(active=False, ts=TS),
    Alert(active=True, ts=TS, value=True),
]


@pytest.mark.parametrize("payload", EXAMPLES, ids=lambda p: type(p).__name__)
def test_to_json_round_trips(payload: Any) -> None:
    data = payload.to_json()
    assert isinstance(data, bytes)
    again = type(payload).model_validate_json(data)
    assert again == payload
    # Values keep their JSON types through the round trip.
    for name in ("values", "params"):
        if hasattr(payload, name):
            before, after = getattr(payload, name), getattr(again, name)
            assert [type(v) for v in before.values()] == [type(v) for v in after.values()]
    # None fields are left out rather than sent as null.
    assert b"null" not in data


@given(
    values=st.dictionaries(
        st.from_regex(r"\A[a-z][a-z0-9_]{0,10}\Z"),
        st.one_of(
            st.booleans(),
            st.integers(-(2**63), 2**64 - 1),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(max_size=20),
        ),
        max_size=8,
    ),
    seq=st.integers(0, 2**63 - 1),
    ts=st.integers(0, 2**53),
)
def test_device_data_round_trips(values: dict[str, Any], seq: int, ts: int) -> None:
    data = DeviceData(ts=ts, seq=seq, site="shelter-01", kind="water", values=values)
    again = DeviceData.model_validate_json(data.to_json())
    assert again == data
    assert [type(v) for v in again.values.values()] == [type(v) for v in values.values()]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_value_is_refused_or_round_trips(bad: float) -> None:
    try:
        data = DeviceData(ts=TS, seq=0, values={"co2": bad})
    except ValidationError:
        return
    DeviceData.model_validate_json(data.to_json())
