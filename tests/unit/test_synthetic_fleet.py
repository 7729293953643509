"""The synthetic fleet speaks the contract as a gateway does: order, seq, snapshots, types."""

from __future__ import annotations

from collections import defaultdict

from firmware_sim import SHELTER_DEVICES
from firmware_sim.synthetic import SyntheticFleet, SyntheticSpec
from shelterwatch.contract import (
    DeviceData,
    DeviceState,
    GatewayState,
    TopicKind,
    parse_topic,
)
from shelterwatch.profiles import DataType, load_profile

P = "shelterwatch/v1"
T0 = 1_800_000_000_000


def test_births_come_gateway_first_then_its_devices_retained() -> None:
    fleet = SyntheticFleet(SyntheticSpec(shelters=3, connections=2))
    births = fleet.births(T0)
    assert len(births) == 3 * (1 + len(SHELTER_DEVICES))
    assert all(b.retain for b in births)
    first = parse_topic(births[0].topic, P)
    assert first.kind is TopicKind.GATEWAY_STATE
    state = GatewayState.model_validate_json(births[0].payload)
    assert (state.online, state.site, state.devices) == (True, "syn-00001", list(SHELTER_DEVICES))
    for b in births[1 : 1 + len(SHELTER_DEVICES)]:
        topic = parse_topic(b.topic, P)
        assert (topic.kind, topic.gateway) == (TopicKind.DEVICE_STATE, first.gateway)
        dev = DeviceState.model_validate_json(b.payload)
        assert set(dev.points) == {p.name for p in load_profile(dev.profile).points}
    # A gateway stays on one connection, so its messages keep their order.
    assert {b.connection for b in births if "gw-syn-00002" in b.topic} == {1}


def test_data_is_valid_with_contiguous_seqs_and_snapshots_when_due() -> None:
    fleet = SyntheticFleet(SyntheticSpec(shelters=4, snapshot_s=1.0))
    devices = 4 * len(SHELTER_DEVICES)
    seqs: dict[str, list[int]] = defaultdict(list)
    full: dict[str, list[bool]] = defaultdict(list)
    values = 0
    # Three rounds over every device, each round 0.5 s later.
    for n in range(3 * devices):
        pub = fleet.next_data(T0 + (n // devices) * 500)
        topic = parse_topic(pub.topic, P)
        data = DeviceData.model_validate_json(pub.payload)
        assert data.site == topic.gateway.removeprefix("gw-")
        assert data.kind == load_profile(SHELTER_DEVICES[topic.device]).kind
        seqs[topic.gateway].append(data.seq)
        full[f"{topic.gateway}/{topic.device}"].append(data.full)
        values += len(data.values)
        if not data.full:
            assert 1 <= len(data.values) <= 2
    assert all(s == list(range(3 * len(SHELTER_DEVICES))) for s in seqs.values())
    # First visit: snapshot; 0.5 s later: changes; 1 s after the snapshot: snapshot again.
    assert all(f == [True, False, True] for f in full.values())
    assert (fleet.stats.messages, fleet.stats.values) == (3 * devices, values)


def test_numbers_keep_the_codecs_types() -> None:
    fleet = SyntheticFleet(SyntheticSpec(shelters=1, snapshot_s=3600))
    for _ in range(200):
        pub = fleet.next_data(T0)
        device = parse_topic(pub.topic, P).device
        profile = load_profile(SHELTER_DEVICES[device])
        for name, value in DeviceData.model_validate_json(pub.payload).values.items():
            point = profile.point(name)
            if point.value_kind == "bool":
                assert isinstance(value, bool)
            elif point.value_kind == "string":
                assert isinstance(value, str)
                if point.enum:
                    assert value in point.enum.values()
            elif point.type in (DataType.FLOAT32, DataType.FLOAT64) or (
                point.scale != 1.0 or point.offset != 0.0
            ):
                assert isinstance(value, float), (name, value)
            else:
                assert isinstance(value, int) and not isinstance(value, bool), (name, value)


def test_a_device_never_repeats_a_timestamp() -> None:
    # One shelter at a high rate visits each device several times per millisecond.
    fleet = SyntheticFleet(SyntheticSpec(shelters=1))
    stamps: dict[str, list[int]] = defaultdict(list)
    for _ in range(50):
        pub = fleet.next_data(T0)
        stamps[pub.topic].append(DeviceData.model_validate_json(pub.payload).ts)
    assert all(len(set(ts)) == len(ts) for ts in stamps.values())


def test_deaths_are_retained_offline_states() -> None:
    fleet = SyntheticFleet(SyntheticSpec(shelters=2))
    deaths = fleet.deaths(T0)
    assert [GatewayState.model_validate_json(d.payload).online for d in deaths] == [False, False]
    assert all(d.retain for d in deaths)
