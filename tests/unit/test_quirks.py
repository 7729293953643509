"""Vendor quirks as configuration: word orders, 4-20 mA scaling, sentinels, valid ranges,
1-based register numbers, and the link settings that devices on one bus must share."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.hub import ModbusHub, hubs_for
from gateway.poller import _decode
from gateway.settings import (
    DeviceConfig,
    RtuOverTcpTransport,
    RtuTransport,
    TcpTransport,
    check_shared_links,
)
from shelterwatch import codec
from shelterwatch.errors import CodecError, ConfigError
from shelterwatch.profiles import DataType, Order, Point, load_profile


def point(**kw: Any) -> Point:
    fields: dict[str, Any] = {"name": "p", "register": "holding", "address": 0} | kw
    return Point.model_validate(fields)


# -- float32 word orders ---------------------------------------------------------------------

# 1.5 is 0x3FC00000: bytes A=3F B=C0 C=00 D=00.
WIRE_1_5 = {
    Order.ABCD: [0x3FC0, 0x0000],
    Order.CDAB: [0x0000, 0x3FC0],
    Order.BADC: [0xC03F, 0x0000],
    Order.DCBA: [0x0000, 0xC03F],
}


@pytest.mark.parametrize("order", list(Order))
def test_float32_orders_match_the_vendor_layouts(order: Order) -> None:
    p = point(type="float32", order=order)
    assert codec.encode(p, 1.5) == WIRE_1_5[order]
    assert codec.reading(p, WIRE_1_5[order]) == 1.5


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False)


@given(value=float32s, order=st.sampled_from(list(Order)))
def test_float32_every_order_round_trips(value: float, order: Order) -> None:
    p = point(type="float32", order=order)
    assert codec.reading(p, codec.encode(p, value)) == value


@pytest.mark.parametrize("order", list(Order))
def test_float32_nan_is_no_reading(order: Order) -> None:
    p = point(type="float32", order=order)
    nan = codec.to_words(struct.pack(">f", math.nan), order)
    with pytest.raises(CodecError):
        _decode(p, nan, 0)


# -- 4-20 mA ---------------------------------------------------------------------------------


def test_builtin_water_inlet_pressure_is_a_4_20_ma_input_with_a_valid_range() -> None:
    p = load_profile("water").point("inlet_pressure")
    # NAMUR NE 43: 3.8-20.5 mA is a live signal; outside it the loop or transmitter failed.
    assert p.valid_range == (-0.0125, 1.03125)
    # µA on the wire: 4 mA is 0 MPa, 12 mA half scale, 20 mA full scale.
    assert _decode(p, [4000], 0) == pytest.approx(0.0, abs=1e-12)
    assert _decode(p, [12000], 0) == pytest.approx(0.5)
    assert _decode(p, [20000], 0) == pytest.approx(1.0)
    assert _decode(p, [3990], 0) == pytest.approx(-0.000625)  # resting just under 4 mA
    # Below 3.8 mA: a broken wire. Above 20.5 mA: a shorted or failed transmitter.
    for broken in (0, 3000, 3790, 20600, 65535):
        with pytest.raises(CodecError, match="outside"):
            _decode(p, [broken], 0)


@given(micro_amps=st.integers(0, 0xFFFF))
def test_4_20_ma_is_bad_exactly_outside_the_namur_range(micro_amps: int) -> None:
    p = load_profile("water").point("inlet_pressure")
    healthy = 3800 <= micro_amps <= 20500
    try:
        value = codec.reading(p, [micro_amps])
    except CodecError:
        assert not healthy
    else:
        assert healthy
        assert value == pytest.approx(micro_amps / 16000 - 0.25)


# -- sentinels and valid ranges ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "sentinel", "word"),
    [
        ("int16", 0x7FFF, 0x7FFF),
        ("int16", -32768, 0x8000),
        ("int16", 0x8000, 0x8000),  # the same int16, spelled as the register word
        ("int16", 0xFFFF, 0xFFFF),  # -1
        ("uint16", 0xFFFF, 0xFFFF),
        ("uint16", -1, 0xFFFF),
    ],
)
def test_integer_sentinels_match_by_bit_pattern(kind: str, sentinel: int, word: int) -> None:
    p = point(type=kind, scale=0.1, sentinel=[sentinel])
    with pytest.raises(CodecError, match="no reading"):
        _decode(p, [word], 0)
    # Neighbours are readings.
    for other in ((word + 1) & 0xFFFF, (word - 1) & 0xFFFF):
        _decode(p, [other], 0)


def test_sentinel_is_compared_before_scaling() -> None:
    p = point(type="int16", scale=0.1, offset=-40, sentinel=[-32768])
    with pytest.raises(CodecError):
        codec.reading(p, [0x8000])
    assert codec.reading(p, [0x0100]) == pytest.approx(256 * 0.1 - 40)


def test_float32_sentinels_compare_as_float32() -> None:
    p = point(type="float32", order="CDAB", sentinel=[-9999, 3.4028235e38])
    for value in (-9999.0, 3.4028234663852886e38):
        with pytest.raises(CodecError):
            codec.reading(p, codec.encode(p, value))
    assert codec.reading(p, codec.encode(p, -9998.0)) == -9998.0


def test_32_bit_sentinel() -> None:
    p = point(type="uint32", order="CDAB", sentinel=[0xFFFFFFFF])
    with pytest.raises(CodecError):
        codec.reading(p, [0xFFFF, 0xFFFF])
    assert codec.reading(p, [0xFFFF, 0xFFFE]) == 0xFFFEFFFF


def test_valid_range_is_inclusive_and_in_engineering_units() -> None:
    p = point(type="int16", scale=0.1, valid_range=[-20, 60])
    assert codec.reading(p, codec.encode(p, -20.0)) == pytest.approx(-20.0)
    assert codec.reading(p, codec.encode(p, 60.0)) == pytest.approx(60.0)
    for outside in (-20.1, 60.1):
        with pytest.raises(CodecError, match="outside"):
            codec.reading(p, codec.encode(p, outside))
    # decode (used by the simulator and for writes) does not apply the checks.
    assert codec.decode(p, codec.encode(p, 60.1)) == pytest.approx(60.1)


def test_points_without_quirks_decode_as_before() -> None:
    for kind in ("int16", "uint16", "float32"):
        p = point(type=kind)
        for words in ([0x7FFF] * p.words, [0xFFFF] * p.words, [0] * p.words):
            try:
                expected = codec.decode(p, words)
            except CodecError:
                continue
            assert codec.reading(p, words) == expected


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"type": "string", "length": 2, "valid_range": [0, 1]}, "numeric"),
        ({"type": "uint16", "enum": {0: "off"}, "valid_range": [0, 1]}, "numeric"),
        ({"type": "uint16", "valid_range": [2, 1]}, "min <= max"),
        ({"type": "bit", "bit": 0, "sentinel": [1]}, "numeric"),
        ({"type": "int16", "sentinel": [70000]}, "16-bit"),
        ({"type": "int16", "sentinel": [1.5]}, "16-bit"),
        ({"type": "float32", "sentinel": [1e39]}, "float32"),
    ],
)
def test_bad_quirk_settings_are_refused(fields: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        point(**fields)


def test_other_points_are_unaffected_by_a_bad_one() -> None:
    good = point(name="good", address=0, type="uint16")
    bad = point(name="bad", address=1, type="uint16", sentinel=[0xFFFF])
    block = [42, 0xFFFF]
    assert _decode(good, block, 0) == 42
    with pytest.raises(CodecError):
        _decode(bad, block, 1)


# -- address_base ------------------------------------------------------------------------------


def _profile(tmp_path: Path, *points: str) -> str:
    path = tmp_path / "one_based.yaml"
    body = "\n".join(f"  - {p}" for p in points)
    path.write_text(f"name: one_based\nkind: meter\npoints:\n{body}\n", encoding="utf-8")
    return str(path)


def test_address_base_1_subtracts_one_on_the_wire(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "{name: a, register: holding, address: 1, type: uint16}")
    device = DeviceConfig.model_validate(
        {"id": "m", "profile": profile, "transport": {"host": "h"}, "address_base": 1}
    )
    assert device.wire_address(1) == 0
    plain = device.model_copy(update={"address_base": 0})
    assert plain.wire_address(1) == 1


def test_address_base_1_refuses_a_profile_with_register_0(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "{name: a, register: holding, address: 0, type: uint16}")
    with pytest.raises(ValidationError, match="address 0"):
        DeviceConfig.model_validate(
            {"id": "m", "profile": profile, "transport": {"host": "h"}, "address_base": 1}
        )


# -- transports and link settings ---------------------------------------------------------------


def device(id: str, transport: dict[str, Any], **kw: Any) -> DeviceConfig:
    return DeviceConfig.model_validate({"id": id, "profile": "water", "transport": transport} | kw)


def test_transport_types() -> None:
    tcp = device("a", {"type": "tcp", "host": "10.0.0.5"}).transport
    assert isinstance(tcp, TcpTransport) and tcp.port == 502 and tcp.link_id == "10.0.0.5:502"
    rtu = device("b", {"type": "rtu", "port": "/dev/ttyUSB0"}).transport
    assert isinstance(rtu, RtuTransport)
    assert (rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize) == (9600, "N", 1, 8)
    assert rtu.link_id == "/dev/ttyUSB0"
    over = device("c", {"type": "rtu_over_tcp", "host": "10.0.0.9", "port": 4001}).transport
    assert isinstance(over, RtuOverTcpTransport) and over.link_id == "10.0.0.9:4001"


def test_transport_without_type_is_tcp_as_before() -> None:
    assert isinstance(device("a", {"host": "h", "port": 1502}).transport, TcpTransport)


@pytest.mark.parametrize(
    "transport",
    [
        {"type": "rtu", "port": "/dev/ttyUSB0", "parity": "X"},
        {"type": "rtu", "port": "/dev/ttyUSB0", "stopbits": 3},
        {"type": "rtu", "port": "/dev/ttyUSB0", "bytesize": 7},
        {"type": "rtu", "port": ""},
        {"type": "rtu", "host": "h"},
        {"type": "rtu_over_tcp", "host": "h"},
        {"type": "udp", "host": "h"},
        {"type": "tcp", "host": "h", "inter_request_pause_s": -1},
    ],
)
def test_bad_transports_are_refused(transport: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        device("a", transport)


def test_device_level_timeout_and_retries_move_into_the_transport() -> None:
    d = device("a", {"type": "tcp", "host": "h"}, timeout_s=2.5, retries=3)
    assert (d.transport.timeout_s, d.transport.retries) == (2.5, 3)
    assert (d.timeout_s, d.retries) == (2.5, 3)
    d = device("a", {"type": "rtu", "port": "/dev/x", "timeout_s": 0.4, "retries": 0})
    assert (d.timeout_s, d.retries) == (0.4, 0)
    d = device("a", {"type": "tcp", "host": "h"})
    assert (d.transport.timeout_s, d.transport.retries, d.timeout_s) == (1.0, 1, 1.0)
    # Built in Python from a transport object, too.
    d = DeviceConfig(
        id="a", profile="water", transport=TcpTransport(host="h", timeout_s=3), retries=2
    )
    assert (d.transport.timeout_s, d.transport.retries, d.timeout_s) == (3, 2, 3)


def test_device_and_transport_timeouts_that_disagree_are_refused() -> None:
    with pytest.raises(ValidationError, match="timeout_s is set both"):
        device("a", {"type": "tcp", "host": "h", "timeout_s": 1}, timeout_s=2)


def test_devices_on_one_serial_port_must_agree() -> None:
    bus = {"type": "rtu", "port": "/dev/ttyUSB0", "baudrate": 9600}
    a = device("tank", bus, unit_id=1)
    b = device("pump", bus | {"baudrate": 19200, "parity": "E"}, unit_id=2)
    c = device("env", bus, unit_id=3)
    assert check_shared_links([a, c]) == [a, c]
    with pytest.raises(ValueError, match="'tank' and 'pump'") as info:
        check_shared_links([a, b, c])
    assert "baudrate 9600 vs 19200" in str(info.value)
    assert "parity 'N' vs 'E'" in str(info.value)
    with pytest.raises(ConfigError, match="/dev/ttyUSB0"):
        hubs_for([a, b])


def test_tcp_and_rtu_over_tcp_on_one_endpoint_disagree() -> None:
    a = device("a", {"type": "tcp", "host": "h", "port": 4001})
    b = device("b", {"type": "rtu_over_tcp", "host": "h", "port": 4001})
    with pytest.raises(ValueError, match="type 'tcp' vs 'rtu_over_tcp'"):
        check_shared_links([a, b])


def test_one_hub_per_link() -> None:
    bus = {"type": "rtu", "port": "/dev/ttyUSB0", "inter_request_pause_s": 0.05}
    devices = [
        device("a", bus, unit_id=1),
        device("b", bus, unit_id=2),
        device("c", {"type": "tcp", "host": "h", "port": 502}),
        device("d", {"type": "tcp", "host": "h", "port": 503}),
        device("e", {"type": "rtu", "port": "/dev/ttyUSB1"}),
    ]
    hubs = hubs_for(devices)
    assert hubs["a"] is hubs["b"]
    assert len({id(h) for h in hubs.values()}) == 4
    assert hubs["a"].name == "/dev/ttyUSB0"
    assert hubs["a"].link.inter_request_pause_s == 0.05


def test_hub_keeps_the_older_host_port_form() -> None:
    hub = ModbusHub("10.1.1.1", 1502, timeout_s=2.0, retries=0)
    assert (hub.name, hub.timeout_s, hub.retries) == ("10.1.1.1:1502", 2.0, 0)
    assert hub.link == TcpTransport(host="10.1.1.1", port=1502, timeout_s=2.0, retries=0)


def test_data_types_table_is_unchanged_for_quirk_free_points() -> None:
    # Guard: the new optional fields default to None and keep profiles loading as before.
    for name in ("blast_door", "ventilation", "environment", "power", "siren"):
        for p in load_profile(name).points:
            assert p.sentinel is None
    assert DataType.FLOAT32.words == 2
