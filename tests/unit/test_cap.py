"""CAP 1.2: what Shelterwatch publishes validates against the official OASIS schema and reads
back to the same request; upstream messages pre-fill requests; hostile input is refused."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from control.cap import (
    CAP_NS,
    MAX_CAP_BYTES,
    PARAM_ACTIVATION,
    PARAM_EXERCISE,
    PARAM_SIGNAL,
    Area,
    CapError,
    CapRefused,
    CapSchemaError,
    CapSender,
    CapStatus,
    CapSyntaxError,
    Circle,
    MsgType,
    Polygon,
    Reference,
    SirenAlert,
    TestDayProgramme,
    build_alert,
    parse_alert,
    programme_steps,
    suggest_signal,
    validate,
)
from control.cap.schema import SCHEMA_FILE, SCHEMA_SHA256
from shelterwatch.contract import SirenKind
from shelterwatch.signals import SignalDefinition, builtin_signals

CST = timezone(timedelta(hours=8))
SENT = datetime(2025, 5, 1, 9, 30, tzinfo=CST)
SENDER = CapSender(
    id="rfb@shelters.example.cn",
    name_zh="示范市人民防空办公室",
    name_en="Demo City Civil Air Defence Office",
    contact="12345",
)
AREAS = (
    Area("虹口区 1号警报点", circles=(Circle(31.2646, 121.5051, 1.5),)),
    Area("浦东新区"),
)
NS = {"cap": CAP_NS}


def signal(name: str) -> SignalDefinition:
    return builtin_signals()[name]


def air_raid(**changes: object) -> SirenAlert:
    fields: dict[str, object] = {
        "identifier": "SW-act-42",
        "sender": SENDER,
        "sent": SENT,
        "activation": "act-42",
        "kind": SirenKind.LIVE,
        "signal": signal("air_raid"),
        "areas": AREAS,
    }
    fields.update(changes)
    return SirenAlert(**fields)  # type: ignore[arg-type]


def texts(xml: bytes, path: str) -> list[str]:
    root = etree.fromstring(xml)
    return [element.text or "" for element in root.iterfind(path, NS)]


def parameters(xml: bytes, name: str) -> list[str]:
    root = etree.fromstring(xml)
    found = root.iterfind(f"cap:info/cap:parameter[cap:valueName='{name}']/cap:value", NS)
    return [element.text or "" for element in found]


# --------------------------------------------------------------------------------------------
# The schema


def test_schema_is_the_pinned_oasis_file() -> None:
    data = SCHEMA_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SCHEMA_SHA256
    assert b"<!-- Copyright OASIS Open 2010 All Rights Reserved -->" in data
    assert f'targetNamespace = "{CAP_NS}"'.encode() in data


# --------------------------------------------------------------------------------------------
# What Shelterwatch publishes


def test_live_air_raid_alert_is_valid_and_round_trips() -> None:
    xml = build_alert(air_raid())
    validate(xml)
    assert xml.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    assert texts(xml, "cap:sent") == ["2025-05-01T09:30:00+08:00"]
    assert texts(xml, "cap:status") == ["Actual"]
    assert texts(xml, "cap:scope") == ["Public"]
    assert texts(xml, "cap:info/cap:language") == ["zh-CN", "en-US"]
    assert texts(xml, "cap:info/cap:event") == ["空袭警报", "Air raid"]
    assert texts(xml, "cap:info/cap:category") == ["Safety", "Security"] * 2
    assert texts(xml, "cap:info/cap:responseType") == ["Shelter"] * 2
    assert texts(xml, "cap:info/cap:urgency") == ["Immediate"] * 2
    assert texts(xml, "cap:info/cap:severity") == ["Extreme"] * 2
    assert texts(xml, "cap:info/cap:certainty") == ["Observed"] * 2
    description_zh, description_en = texts(xml, "cap:info/cap:description")
    assert "鸣6秒停6秒，反复15遍，共3分钟" in description_zh
    assert "6 s on, 6 s off, repeated 15 times" in description_en
    assert all(texts(xml, "cap:info/cap:instruction"))
    assert texts(xml, "cap:info/cap:area/cap:circle") == ["31.2646,121.5051 1.5"] * 2
    assert parameters(xml, PARAM_SIGNAL) == ["air_raid"] * 2
    assert parameters(xml, PARAM_ACTIVATION) == ["act-42"] * 2

    request = parse_alert(xml)
    assert (request.identifier, request.sender, request.sent) == ("SW-act-42", SENDER.id, SENT)
    assert (request.status, request.msg_type) == (CapStatus.ACTUAL, MsgType.ALERT)
    assert (request.kind, request.signal, request.activation) == (
        SirenKind.LIVE,
        "air_raid",
        "act-42",
    )
    assert request.areas == AREAS
    assert request.exercise is None
    assert request.expires == SENT + timedelta(minutes=63)  # 3-min signal + 1 h
    assert request.reason.startswith("CAP SW-act-42 (rfb@shelters.example.cn): ")


def test_signal_mapping_per_signal() -> None:
    expected = {
        "prealert": ("Prepare", "Expected", "Severe", "Likely"),
        "air_raid": ("Shelter", "Immediate", "Extreme", "Observed"),
        "all_clear": ("AllClear", "Past", "Minor", "Observed"),
        "disaster": ("Avoid", "Immediate", "Severe", "Observed"),
    }
    for name, (response, urgency, severity, certainty) in expected.items():
        xml = build_alert(air_raid(signal=signal(name)))
        assert texts(xml, "cap:info/cap:responseType")[0] == response
        assert texts(xml, "cap:info/cap:urgency")[0] == urgency
        assert texts(xml, "cap:info/cap:severity")[0] == severity
        assert texts(xml, "cap:info/cap:certainty")[0] == certainty
        assert parse_alert(xml).signal == name
    all_clear = build_alert(air_raid(signal=signal("all_clear")))
    assert "连续鸣响3分钟" in texts(all_clear, ".//cap:description")[0]


def test_cancel_references_the_alert_and_round_trips() -> None:
    cancel_sent = SENT + timedelta(minutes=1)
    cancel = air_raid(
        identifier="SW-act-42-cancel",
        sent=cancel_sent,
        msg_type=MsgType.CANCEL,
        references=(Reference(SENDER.id, "SW-act-42", SENT),),
    )
    xml = build_alert(cancel)
    validate(xml)
    assert texts(xml, "cap:msgType") == ["Cancel"]
    assert texts(xml, "cap:references") == [
        "rfb@shelters.example.cn,SW-act-42,2025-05-01T09:30:00+08:00"
    ]
    assert texts(xml, "cap:info/cap:responseType") == ["AllClear"] * 2
    assert texts(xml, "cap:info/cap:urgency") == ["Past"] * 2
    assert texts(xml, "cap:info/cap:headline")[0].startswith("撤销：")

    request = parse_alert(xml)
    assert request.msg_type is MsgType.CANCEL
    assert request.references == (Reference(SENDER.id, "SW-act-42", SENT),)
    assert (request.kind, request.signal, request.areas) == (SirenKind.LIVE, "air_raid", AREAS)


def test_exercise_drill_is_labelled_in_note_and_parameter() -> None:
    drill = air_raid(kind=SirenKind.DRILL, exercise="2025 城市防空演习")
    xml = build_alert(drill)
    validate(xml)
    assert texts(xml, "cap:status") == ["Exercise"]
    assert "2025 城市防空演习" in texts(xml, "cap:note")[0]
    assert parameters(xml, PARAM_EXERCISE) == ["2025 城市防空演习"] * 2
    headline_zh, headline_en = texts(xml, "cap:info/cap:headline")
    assert headline_zh.startswith("【演习】") and headline_en.startswith("EXERCISE: ")

    request = parse_alert(xml)
    assert (request.status, request.kind) == (CapStatus.EXERCISE, SirenKind.DRILL)
    assert (request.signal, request.areas) == ("air_raid", AREAS)
    assert request.exercise == "2025 城市防空演习"

    unlabelled = build_alert(air_raid(kind=SirenKind.DRILL))
    assert parameters(unlabelled, PARAM_EXERCISE) == ["演习 EXERCISE"] * 2


def test_audible_test_is_status_test_with_no_action() -> None:
    xml = build_alert(air_raid(kind=SirenKind.AUDIBLE_TEST, signal=signal("test_tone")))
    validate(xml)
    assert texts(xml, "cap:status") == ["Test"]
    assert texts(xml, "cap:info/cap:responseType") == ["None"] * 2
    assert texts(xml, "cap:info/cap:urgency") == ["Unknown"] * 2
    request = parse_alert(xml)
    assert (request.kind, request.signal) == (SirenKind.AUDIBLE_TEST, "test_tone")


def test_test_day_programme_is_one_test_message_listing_times() -> None:
    start = datetime(2025, 9, 18, 10, 0, tzinfo=CST)
    chain = (signal("prealert"), signal("air_raid"), signal("all_clear"))
    steps = programme_steps(start, chain, timedelta(minutes=3))
    assert [step.at.strftime("%H:%M") for step in steps] == ["10:00", "10:06", "10:12"]
    programme = TestDayProgramme(
        identifier="SW-testday-2025",
        sender=SENDER,
        sent=datetime(2025, 9, 15, 9, 0, tzinfo=CST),
        activation="testday-2025",
        steps=steps,
        areas=AREAS,
    )
    xml = build_alert(programme)
    validate(xml)
    assert texts(xml, "cap:status") == ["Test"]
    assert len(texts(xml, "cap:info")) == 2
    description_zh, description_en = texts(xml, "cap:info/cap:description")
    for line in ("10:00 预先警报：鸣36秒停24秒，反复3遍", "10:06 空袭警报", "10:12 解除警报"):
        assert line in description_zh
    assert "10:12 All clear: continuous for 3 min" in description_en
    assert texts(xml, "cap:info/cap:onset") == ["2025-09-18T10:00:00+08:00"] * 2

    request = parse_alert(xml)
    assert (request.kind, request.signal, request.areas) == (SirenKind.AUDIBLE_TEST, None, AREAS)
    assert request.programme == tuple((step.at, step.signal.name) for step in steps)
    assert request.activation == "testday-2025"


def test_programme_steps_must_not_overlap() -> None:
    start = datetime(2025, 9, 18, 10, 0, tzinfo=CST)
    steps = programme_steps(start, (signal("prealert"), signal("air_raid")), timedelta(0))
    overlapping = (steps[0], type(steps[1])(start + timedelta(minutes=2), signal("air_raid")))
    with pytest.raises(CapError, match="starts before prealert"):
        TestDayProgramme("SW-t", SENDER, SENT, "t", overlapping, AREAS)


def test_utc_is_written_as_minus_zero() -> None:
    xml = build_alert(air_raid(sent=datetime(2025, 5, 1, 1, 30, 15, 999, tzinfo=UTC)))
    assert texts(xml, "cap:sent") == ["2025-05-01T01:30:15-00:00"]
    assert parse_alert(xml).sent == datetime(2025, 5, 1, 1, 30, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": SirenKind.SILENT_TEST}, "silent test makes no sound"),
        ({"sent": datetime(2025, 5, 1, 9, 30)}, "has no timezone"),
        ({"exercise": "演习"}, "live alert cannot carry an exercise label"),
        ({"msg_type": MsgType.CANCEL}, "must reference"),
        ({"identifier": "SW 42"}, "without spaces, commas"),
        ({"areas": ()}, "at least one area"),
        ({"expires": SENT}, "expires must come after"),
        ({"note": "bad\x00byte"}, "control characters"),
    ],
)
def test_build_refuses_what_cap_cannot_carry(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CapError, match=message):
        build_alert(air_raid(**changes))


def test_shapes_check_their_coordinates() -> None:
    with pytest.raises(CapError, match="latitude 91"):
        Circle(91, 0, 1)
    with pytest.raises(CapError, match="radius"):
        Circle(0, 0, -1)
    with pytest.raises(CapError, match="at least 4 points"):
        Polygon(((0, 0), (1, 1), (0, 0)))


# --------------------------------------------------------------------------------------------
# Upstream messages

UPSTREAM = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>CN-RF-310000-20250501-0007</identifier>
  <sender>warning@rf.example.gov.cn</sender>
  <sent>2025-05-01T09:28:00+08:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <source>上级人防指挥所</source>
  <scope>Public</scope>
  <info>
    <language>en-US</language>
    <category>Security</category>
    <event>Air raid warning</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Likely</certainty>
    <headline>Air raid warning for the city centre</headline>
    <area>
      <areaDesc>City centre</areaDesc>
    </area>
  </info>
  <info>
    <language>zh-CN</language>
    <category>Security</category>
    <event>空袭警报</event>
    <responseType>Shelter</responseType>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Likely</certainty>
    <eventCode>
      <valueName>CN-RF</valueName>
      <value>KX</value>
    </eventCode>
    <expires>2025-05-01T10:30:00+08:00</expires>
    <senderName>示范省人民防空指挥部</senderName>
    <headline>中心城区发布空袭警报</headline>
    <description>  敌机临近，中心城区即将遭受空袭。 </description>
    <instruction>立即进入人防工程。</instruction>
    <area>
      <areaDesc>黄浦区、静安区</areaDesc>
      <polygon>31.20,121.45 31.25,121.45 31.25,121.50 31.20,121.50 31.20,121.45</polygon>
      <circle>31.2304,121.4737 5</circle>
      <geocode>
        <valueName>GB/T 2260</valueName>
        <value>310101</value>
      </geocode>
    </area>
  </info>
</alert>
"""


def test_upstream_message_prefills_a_request() -> None:
    request = parse_alert(UPSTREAM.encode())
    assert request.identifier == "CN-RF-310000-20250501-0007"
    assert request.sender == "warning@rf.example.gov.cn"
    assert request.sent == datetime(2025, 5, 1, 9, 28, tzinfo=CST)
    assert (request.status, request.msg_type, request.kind) == (
        CapStatus.ACTUAL,
        MsgType.ALERT,
        SirenKind.LIVE,
    )
    assert (request.language, request.event, request.signal) == ("zh-CN", "空袭警报", "air_raid")
    assert request.activation is None
    assert request.expires == datetime(2025, 5, 1, 10, 30, tzinfo=CST)
    (area,) = request.areas
    assert area.description == "黄浦区、静安区"
    assert area.circles == (Circle(31.2304, 121.4737, 5.0),)
    assert area.polygons[0].points[:2] == ((31.20, 121.45), (31.25, 121.45))
    assert request.headline == "中心城区发布空袭警报"
    assert request.description == "敌机临近，中心城区即将遭受空袭。"
    assert "中心城区发布空袭警报" in request.reason

    english = parse_alert(UPSTREAM.encode(), language="en")
    assert (english.event, english.signal) == ("Air raid warning", "air_raid")
    assert english.expires is None
    assert english.areas == (Area("City centre"),)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("预先警报", "prealert"),
        ("空袭预警", "prealert"),
        ("空袭警报", "air_raid"),
        ("紧急警报", "air_raid"),
        ("解除警报", "all_clear"),
        ("空袭警报解除", "all_clear"),
        ("灾情警报", "disaster"),
        ("地质灾害预警", "disaster"),
        ("Pre-alert", "prealert"),
        ("AIR RAID WARNING", "air_raid"),
        ("All clear", "all_clear"),
        ("Disaster warning", "disaster"),
        ("SEVERE THUNDERSTORM", None),
        ("Civil emergency message", None),
    ],
)
def test_event_text_suggests_a_signal(event: str, expected: str | None) -> None:
    assert suggest_signal(event) == expected


def upstream(status: str = "Actual", msg_type: str = "Alert", event: str = "空袭警报") -> bytes:
    return (
        UPSTREAM.replace("<status>Actual</status>", f"<status>{status}</status>")
        .replace("<msgType>Alert</msgType>", f"<msgType>{msg_type}</msgType>")
        .replace("<event>空袭警报</event>", f"<event>{event}</event>")
        .replace("<event>Air raid warning</event>", f"<event>{event}</event>")
        .encode()
    )


def test_upstream_status_gives_the_kind() -> None:
    assert parse_alert(upstream("Exercise")).kind is SirenKind.DRILL
    assert parse_alert(upstream("Exercise")).exercise == "Exercise"
    assert parse_alert(upstream("Test")).kind is SirenKind.AUDIBLE_TEST
    assert parse_alert(upstream(event="台风警报")).signal is None


@pytest.mark.parametrize("status", ["System", "Draft"])
def test_system_and_draft_are_refused(status: str) -> None:
    with pytest.raises(CapRefused, match=f"status {status} is not an alert to the public"):
        parse_alert(upstream(status))


def test_ack_is_refused() -> None:
    with pytest.raises(CapRefused, match="msgType Ack answers another message"):
        parse_alert(upstream(msg_type="Ack"))


def test_bare_cancel_is_read() -> None:
    xml = f"""<alert xmlns="{CAP_NS}"><identifier>c-1</identifier><sender>a@b</sender>
<sent>2025-05-01T10:00:00+08:00</sent><status>Actual</status><msgType>Cancel</msgType>
<scope>Public</scope><references>a@b,x-1,2025-05-01T09:00:00+08:00</references></alert>"""
    request = parse_alert(xml.encode())
    assert request.msg_type is MsgType.CANCEL
    assert request.references == (Reference("a@b", "x-1", datetime(2025, 5, 1, 9, tzinfo=CST)),)
    assert (request.signal, request.areas) == (None, ())


# --------------------------------------------------------------------------------------------
# Refusals


def test_malformed_xml_is_refused_with_its_line() -> None:
    with pytest.raises(CapSyntaxError, match="not well-formed XML: line 3"):
        parse_alert(f'<alert xmlns="{CAP_NS}">\n<identifier>x</identifier>\n<sender>'.encode())
    with pytest.raises(CapSyntaxError, match="empty"):
        parse_alert(b"  ")


def test_wrong_namespace_is_refused() -> None:
    with pytest.raises(CapSchemaError, match=r"expected <alert> in the CAP 1\.2 namespace"):
        parse_alert(UPSTREAM.replace(CAP_NS, "urn:example:not-cap").encode())
    older = UPSTREAM.replace(CAP_NS, "urn:oasis:names:tc:emergency:cap:1.1")
    with pytest.raises(CapSchemaError, match=r"ask the sender for CAP 1\.2"):
        parse_alert(older.encode())


def test_missing_required_elements_are_listed_with_lines() -> None:
    broken = UPSTREAM.replace("<sender>warning@rf.example.gov.cn</sender>", "")
    with pytest.raises(CapSchemaError) as caught:
        parse_alert(broken.encode())
    (problem,) = caught.value.problems
    assert problem.startswith("line 5:") and f"Expected is ( {{{CAP_NS}}}sender )" in problem
    assert "1 problem(s)" in str(caught.value)
    with pytest.raises(CapSchemaError, match="sender"):
        validate(broken.encode())
    # Problems in separate blocks are all reported, each with its own line.
    broken = UPSTREAM.replace("<urgency>Immediate</urgency>", "<urgency>Soon</urgency>")
    with pytest.raises(CapSchemaError) as caught:
        parse_alert(broken.encode())
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 14", "line 27"]
    assert all("'Soon'" in p for p in caught.value.problems)


def test_tampered_output_fails_validation() -> None:
    xml = build_alert(air_raid()).replace(b"<scope>Public</scope>", b"<scope>Everyone</scope>")
    with pytest.raises(CapSchemaError, match="Everyone"):
        validate(xml)


def test_external_entity_is_refused() -> None:
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="{CAP_NS}"><identifier>&xxe;</identifier></alert>"""
    with pytest.raises(CapSyntaxError, match="declares a DTD") as caught:
        parse_alert(xxe.encode())
    assert "root:" not in str(caught.value)


def test_billion_laughs_is_refused() -> None:
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
    ]
    bomb = f"""<?xml version="1.0"?>
<!DOCTYPE alert [{"".join(entities)}]>
<alert xmlns="{CAP_NS}"><identifier>&lol9;</identifier></alert>"""
    # libxml2 stops the expansion itself; had it not, the DTD would be refused.
    with pytest.raises(CapSyntaxError, match=r"amplification|declares a DTD"):
        parse_alert(bomb.encode())


def test_oversized_input_is_refused() -> None:
    huge = UPSTREAM.replace("</alert>", "<!--" + "x" * MAX_CAP_BYTES + "--></alert>")
    with pytest.raises(CapSyntaxError, match="over the 262144-byte limit"):
        parse_alert(huge.encode())


def test_bad_shapes_in_upstream_are_refused_with_their_line() -> None:
    bad = UPSTREAM.replace("<circle>31.2304,121.4737 5</circle>", "<circle>91,121 5</circle>")
    with pytest.raises(CapRefused, match="line 42: circle: latitude 91"):
        parse_alert(bad.encode())
    bad = UPSTREAM.replace("<circle>31.2304,121.4737 5</circle>", "<circle>31.2,121.4</circle>")
    with pytest.raises(CapRefused, match="has no radius"):
        parse_alert(bad.encode())


# --------------------------------------------------------------------------------------------
# Property: whatever valid input, valid CAP that reads back

CJK = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
LATIN = st.characters(categories=("Lu", "Ll", "Nd"))
names = st.text(st.one_of(CJK, LATIN, st.just(" ")), min_size=1, max_size=24).map(str.strip)
names = names.filter(bool)
circles = st.builds(
    Circle,
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    radius_km=st.floats(0, 100),
)
areas = st.builds(Area, description=names, circles=st.lists(circles, max_size=3).map(tuple))
offsets = st.integers(-12 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31), timezones=offsets)
tokens = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_.@"), min_size=1)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(
    identifier=tokens,
    sender_name=names,
    sent=moments,
    activation=tokens,
    kind=st.sampled_from([SirenKind.LIVE, SirenKind.DRILL, SirenKind.AUDIBLE_TEST]),
    name=st.sampled_from(sorted(builtin_signals())),
    places=st.lists(areas, min_size=1, max_size=3).map(tuple),
    exercise=st.none() | names,
    msg_type=st.sampled_from([MsgType.ALERT, MsgType.UPDATE, MsgType.CANCEL]),
)
def test_any_valid_input_builds_valid_cap_that_reads_back(
    identifier: str,
    sender_name: str,
    sent: datetime,
    activation: str,
    kind: SirenKind,
    name: str,
    places: tuple[Area, ...],
    exercise: str | None,
    msg_type: MsgType,
) -> None:
    label = exercise if kind is SirenKind.DRILL else None
    earlier = sent.replace(microsecond=0)
    references = () if msg_type is MsgType.ALERT else (Reference("a@b", "prev", earlier),)
    alert = SirenAlert(
        identifier=identifier,
        sender=CapSender("sender@example.cn", sender_name, sender_name),
        sent=sent,
        activation=activation,
        kind=kind,
        signal=signal(name),
        areas=places,
        msg_type=msg_type,
        references=references,
        exercise=label,
    )
    xml = build_alert(alert)
    validate(xml)
    request = parse_alert(xml)
    assert (request.identifier, request.sent) == (identifier, sent.replace(microsecond=0))
    assert (request.kind, request.msg_type, request.references) == (kind, msg_type, references)
    assert (request.signal, request.activation) == (name, activation)
    if kind is SirenKind.DRILL:
        assert request.exercise == (label or "演习 EXERCISE")
    assert [a.description for a in request.areas] == [a.description for a in places]
    for got, want in zip(request.areas, places, strict=True):
        assert len(got.circles) == len(want.circles)
        for back, circle in zip(got.circles, want.circles, strict=True):
            assert back.lat == pytest.approx(circle.lat, abs=1e-6)
            assert back.lon == pytest.approx(circle.lon, abs=1e-6)
            assert back.radius_km == pytest.approx(circle.radius_km, abs=1e-6)
