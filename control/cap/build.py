"""Building CAP 1.2 alerts for siren activations and test-day programmes.

One message per activation, with one ``info`` block per language (zh-CN, then en-US) so that
broadcast, SMS and TV each pick their own. Every message is checked against the official
schema before it leaves: a message that breaks it is a bug here, and is never published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree

from control.cap.mapping import (
    CANCEL_ASSESSMENT,
    STATUS_OF_KIND,
    TEST_ASSESSMENT,
    TEST_INSTRUCTION,
    Assessment,
    profile_of,
)
from control.cap.model import (
    Area,
    CapSender,
    CapStatus,
    MsgType,
    Reference,
    SirenAlert,
    TestDayProgramme,
)
from control.cap.schema import CAP_NS, validate_element
from control.cap.words import (
    cap_time,
    coordinate,
    cycle_s,
    pattern_en,
    pattern_zh,
    time_en,
    time_zh,
)

__all__ = [
    "DEFAULT_EXERCISE_LABEL",
    "DEFAULT_VALIDITY",
    "LANGUAGES",
    "PARAM_ACTIVATION",
    "PARAM_EXERCISE",
    "PARAM_KIND",
    "PARAM_SIGNAL",
    "PARAM_STEP",
    "build_alert",
]

LANGUAGES = ("zh-CN", "en-US")
PARAM_SIGNAL = "shelterwatch:signal"
PARAM_ACTIVATION = "shelterwatch:activation"
PARAM_KIND = "shelterwatch:kind"
PARAM_EXERCISE = "shelterwatch:exercise"
PARAM_STEP = "shelterwatch:step"
DEFAULT_EXERCISE_LABEL = "演习 EXERCISE"
# How long after the last sound a message stays in force unless the caller says otherwise.
DEFAULT_VALIDITY = timedelta(hours=1)

_CANCEL_INSTRUCTION = (
    "此前发布的警报已撤销。请听从现场人员指挥，恢复正常活动。",
    "The earlier alert is cancelled. Follow the wardens on site and resume normal activity.",
)


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every language's info block of one message says alike."""

    categories: tuple[str, ...]
    responses: tuple[str, ...]
    assessment: Assessment
    effective: datetime
    onset: datetime
    expires: datetime
    contact: str | None
    parameters: tuple[tuple[str, str], ...]
    areas: tuple[Area, ...]


@dataclass(frozen=True, slots=True)
class _Info:
    """One language's info block, before it becomes XML."""

    language: str
    event: str
    sender_name: str
    headline: str
    description: str
    instruction: str
    shared: _Shared


def build_alert(message: SirenAlert | TestDayProgramme) -> bytes:
    """The CAP 1.2 alert for a siren activation or a test-day programme, as UTF-8 XML."""
    if isinstance(message, TestDayProgramme):
        status, note, infos = CapStatus.TEST, message.note, _programme_infos(message)
    else:
        status = STATUS_OF_KIND[message.kind]
        note, infos = _alert_note(message), _alert_infos(message)
    root = _envelope(
        identifier=message.identifier,
        sender=message.sender,
        sent=message.sent,
        status=status,
        msg_type=message.msg_type,
        note=note,
        references=message.references,
    )
    for info in infos:
        _add_info(root, info)
    validate_element(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --------------------------------------------------------------------------------------------
# Siren alerts


def _exercise_label(alert: SirenAlert) -> str | None:
    if alert.exercise is not None:
        return alert.exercise
    return DEFAULT_EXERCISE_LABEL if STATUS_OF_KIND[alert.kind] is CapStatus.EXERCISE else None


def _alert_note(alert: SirenAlert) -> str | None:
    label = _exercise_label(alert)
    parts = [f"演习 EXERCISE: {label}"] if label is not None else []
    if alert.note:
        parts.append(alert.note)
    return "; ".join(parts) or None


def _prefixes(status: CapStatus, msg_type: MsgType) -> tuple[str, str]:
    zh = {CapStatus.EXERCISE: "【演习】", CapStatus.TEST: "【试鸣】"}.get(status, "")
    en = {CapStatus.EXERCISE: "EXERCISE: ", CapStatus.TEST: "TEST: "}.get(status, "")
    zh += {MsgType.UPDATE: "更新：", MsgType.CANCEL: "撤销："}.get(msg_type, "")
    en += {MsgType.UPDATE: "Update: ", MsgType.CANCEL: "Cancelled: "}.get(msg_type, "")
    return zh, en


def _alert_infos(alert: SirenAlert) -> tuple[_Info, _Info]:
    signal, status = alert.signal, STATUS_OF_KIND[alert.kind]
    profile = profile_of(signal.name)
    cancel = alert.msg_type is MsgType.CANCEL
    onset = alert.onset or alert.sent
    expires = alert.expires or onset + timedelta(seconds=cycle_s(signal)) + DEFAULT_VALIDITY
    label = _exercise_label(alert)

    responses: tuple[str, ...]
    if status is CapStatus.TEST:
        assessment, responses = TEST_ASSESSMENT, ("None",)
        instruction_zh, instruction_en = TEST_INSTRUCTION
    elif cancel:
        assessment, responses = CANCEL_ASSESSMENT, ("AllClear",)
        instruction_zh, instruction_en = _CANCEL_INSTRUCTION
    else:
        assessment, responses = profile.assessment, profile.responses
        instruction_zh, instruction_en = profile.instruction_zh, profile.instruction_en

    places = "、".join(area.description for area in alert.areas)
    places_en = "; ".join(area.description for area in alert.areas)
    if cancel:
        what_zh = f"此前发布的{signal.title_zh}已撤销，警报器停止鸣放。"
        what_en = f"The {signal.title_en} signal issued earlier is cancelled; sirens stop."
    else:
        what_zh = (
            f"{signal.title_zh}：{pattern_zh(signal)}。鸣放时间：{time_zh(onset)}。范围：{places}。"
        )
        what_en = (
            f"{signal.title_en} signal: {pattern_en(signal)}. Sounding at {time_en(onset)}. "
            f"Area: {places_en}."
        )
    if label is not None:
        what_zh += f"本次为演习（{label}），不是真实警报。"
        what_en += f" This is an exercise ({label}), not a real alert."
    elif status is CapStatus.TEST:
        what_zh += "本次为试鸣，不是真实警报。"
        what_en += " This is a test, not a real alert."

    parameters = [
        (PARAM_SIGNAL, signal.name),
        (PARAM_ACTIVATION, alert.activation),
        (PARAM_KIND, alert.kind.value),
    ]
    if label is not None:
        parameters.append((PARAM_EXERCISE, label))
    prefix_zh, prefix_en = _prefixes(status, alert.msg_type)
    shared = _Shared(
        categories=profile.categories,
        responses=responses,
        assessment=assessment,
        effective=alert.sent,
        onset=onset,
        expires=expires,
        contact=alert.sender.contact,
        parameters=tuple(parameters),
        areas=alert.areas,
    )
    zh = _Info(
        language=LANGUAGES[0],
        event=signal.title_zh,
        sender_name=alert.sender.name_zh,
        headline=f"{prefix_zh}{alert.sender.name_zh}发布{signal.title_zh}",
        description=what_zh,
        instruction=f"【演习】{instruction_zh}" if label is not None else instruction_zh,
        shared=shared,
    )
    en = _Info(
        language=LANGUAGES[1],
        event=signal.title_en,
        sender_name=alert.sender.name_en,
        headline=f"{prefix_en}{signal.title_en} from {alert.sender.name_en}",
        description=what_en,
        instruction=f"EXERCISE: {instruction_en}" if label is not None else instruction_en,
        shared=shared,
    )
    return zh, en


# --------------------------------------------------------------------------------------------
# Test-day programmes


def _programme_infos(programme: TestDayProgramme) -> tuple[_Info, _Info]:
    steps = programme.steps
    first, last = steps[0], steps[-1]
    expires = programme.expires or (
        last.at + timedelta(seconds=cycle_s(last.signal)) + DEFAULT_VALIDITY
    )
    lines_zh = [
        f"{step.at:%H:%M} {step.signal.title_zh}：{pattern_zh(step.signal)}" for step in steps
    ]
    lines_en = [
        f"{step.at:%H:%M} {step.signal.title_en}: {pattern_en(step.signal)}" for step in steps
    ]
    head_zh = f"{programme.title_zh}安排（自{time_zh(first.at)}起）："
    head_en = f"{programme.title_en} programme (from {time_en(first.at)}):"
    description_zh = "\n".join([head_zh, *lines_zh, "试鸣不是真实警报，无需采取行动。"])
    description_en = "\n".join(
        [head_en, *lines_en, "The test is not a real alert. No action is needed."]
    )
    parameters = (
        *((PARAM_STEP, f"{cap_time(step.at)} {step.signal.name}") for step in steps),
        (PARAM_ACTIVATION, programme.activation),
        (PARAM_KIND, "audible_test"),
    )
    prefix_zh, prefix_en = _prefixes(CapStatus.TEST, programme.msg_type)
    instruction_zh, instruction_en = TEST_INSTRUCTION
    shared = _Shared(
        categories=("Safety",),
        responses=("None",),
        assessment=TEST_ASSESSMENT,
        effective=programme.sent,
        onset=first.at,
        expires=expires,
        contact=programme.sender.contact,
        parameters=parameters,
        areas=programme.areas,
    )
    zh = _Info(
        language=LANGUAGES[0],
        event=programme.title_zh,
        sender_name=programme.sender.name_zh,
        headline=f"{prefix_zh}{programme.sender.name_zh}：{time_zh(first.at)}{programme.title_zh}",
        description=description_zh,
        instruction=instruction_zh,
        shared=shared,
    )
    en = _Info(
        language=LANGUAGES[1],
        event=programme.title_en,
        sender_name=programme.sender.name_en,
        headline=f"{prefix_en}{programme.title_en} at {time_en(first.at)}",
        description=description_en,
        instruction=instruction_en,
        shared=shared,
    )
    return zh, en


# --------------------------------------------------------------------------------------------
# XML


def _sub(parent: etree._Element, name: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CAP_NS}}}{name}")
    element.text = text
    return element


def _envelope(
    *,
    identifier: str,
    sender: CapSender,
    sent: datetime,
    status: CapStatus,
    msg_type: MsgType,
    note: str | None,
    references: tuple[Reference, ...],
) -> etree._Element:
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})  # type: ignore[dict-item]
    _sub(root, "identifier", identifier)
    _sub(root, "sender", sender.id)
    _sub(root, "sent", cap_time(sent))
    _sub(root, "status", status.value)
    _sub(root, "msgType", msg_type.value)
    _sub(root, "scope", "Public")
    if note:
        _sub(root, "note", note)
    if references:
        triples = (f"{r.sender},{r.identifier},{cap_time(r.sent)}" for r in references)
        _sub(root, "references", " ".join(triples))
    return root


def _add_info(root: etree._Element, info: _Info) -> None:
    # The order below is the schema's sequence; CAP receivers reject any other.
    shared = info.shared
    element = etree.SubElement(root, f"{{{CAP_NS}}}info")
    _sub(element, "language", info.language)
    for category in shared.categories:
        _sub(element, "category", category)
    _sub(element, "event", info.event)
    for response in shared.responses:
        _sub(element, "responseType", response)
    _sub(element, "urgency", shared.assessment.urgency)
    _sub(element, "severity", shared.assessment.severity)
    _sub(element, "certainty", shared.assessment.certainty)
    _sub(element, "effective", cap_time(shared.effective))
    _sub(element, "onset", cap_time(shared.onset))
    _sub(element, "expires", cap_time(shared.expires))
    _sub(element, "senderName", info.sender_name)
    _sub(element, "headline", info.headline)
    _sub(element, "description", info.description)
    _sub(element, "instruction", info.instruction)
    if shared.contact:
        _sub(element, "contact", shared.contact)
    for name, value in shared.parameters:
        parameter = etree.SubElement(element, f"{{{CAP_NS}}}parameter")
        _sub(parameter, "valueName", name)
        _sub(parameter, "value", value)
    for area in shared.areas:
        _add_area(element, area)


def _add_area(info: etree._Element, area: Area) -> None:
    element = etree.SubElement(info, f"{{{CAP_NS}}}area")
    _sub(element, "areaDesc", area.description)
    for polygon in area.polygons:
        points = (f"{coordinate(lat)},{coordinate(lon)}" for lat, lon in polygon.points)
        _sub(element, "polygon", " ".join(points))
    for circle in area.circles:
        centre = f"{coordinate(circle.lat)},{coordinate(circle.lon)}"
        _sub(element, "circle", f"{centre} {coordinate(circle.radius_km)}")
