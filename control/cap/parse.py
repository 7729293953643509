"""Reading an upstream authority's CAP 1.2 alert into a pre-filled siren activation request.

The message is hostile until proven otherwise: size, well-formedness, no DTD and the schema
come first (``control.cap.schema``), then the rules the schema cannot express. What comes out
is a ``CapRequest``: a suggestion that still needs its approver before anything sounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from lxml import etree

from control.cap.build import (
    PARAM_ACTIVATION,
    PARAM_EXERCISE,
    PARAM_SIGNAL,
    PARAM_STEP,
)
from control.cap.errors import CapError, CapRefused
from control.cap.mapping import KIND_OF_STATUS, suggest_signal
from control.cap.model import (
    Area,
    CapRequest,
    CapStatus,
    Circle,
    MsgType,
    Polygon,
    Reference,
)
from control.cap.schema import CAP_NS, read_document, validate_element
from shelterwatch.contract import is_slug

__all__ = ["parse_alert"]


def _q(name: str) -> str:
    return f"{{{CAP_NS}}}{name}"


def _text(parent: etree._Element, name: str) -> str | None:
    element = parent.find(_q(name))
    if element is None:
        return None
    return (element.text or "").strip()


def _required(parent: etree._Element, name: str) -> str:
    # The schema already demanded the element; this only narrows the type.
    return _text(parent, name) or ""


def _time(element: etree._Element, name: str) -> datetime | None:
    text = _text(element, name)
    # The schema checked the pattern and the calendar; fromisoformat reads -00:00 as UTC.
    return None if text is None else datetime.fromisoformat(text)


def _pick_info(infos: list[etree._Element], language: str) -> etree._Element:
    wanted = language.casefold()
    for info in infos:
        lang = (_text(info, "language") or "en-US").casefold()
        if lang == wanted or lang.split("-")[0] == wanted.split("-")[0]:
            return info
    return infos[0]


def _parameters(infos: list[etree._Element]) -> Iterator[tuple[str, str, int | None]]:
    for info in infos:
        for parameter in info.iterfind(_q("parameter")):
            # lxml-stubs leave sourceline untyped; lxml gives an int or None.
            line: int | None = getattr(parameter, "sourceline", None)
            yield _required(parameter, "valueName"), _required(parameter, "value"), line


def _first(infos: list[etree._Element], name: str) -> str | None:
    return next((value for key, value, _ in _parameters(infos) if key == name), None)


def _pair(text: str, where: str) -> tuple[float, float]:
    try:
        lat_text, lon_text = text.split(",")
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        raise CapRefused(f"{where}: {text!r} is not a 'lat,lon' pair") from None
    return lat, lon


def _refuse_at(element: etree._Element, exc: CapError) -> CapRefused:
    return CapRefused(f"line {element.sourceline}: {exc}")


def _circle(element: etree._Element) -> Circle:
    text = (element.text or "").strip()
    centre, _, radius = text.partition(" ")
    lat, lon = _pair(centre, f"line {element.sourceline}: circle")
    try:
        radius_km = float(radius)
    except ValueError:
        raise CapRefused(
            f"line {element.sourceline}: circle {text!r} has no radius; "
            "CAP circles read 'lat,lon radius_km'"
        ) from None
    try:
        return Circle(lat, lon, radius_km)
    except CapError as exc:
        raise _refuse_at(element, exc) from exc


def _polygon(element: etree._Element) -> Polygon:
    where = f"line {element.sourceline}: polygon"
    points = tuple(_pair(pair, where) for pair in (element.text or "").split())
    try:
        return Polygon(points)
    except CapError as exc:
        raise _refuse_at(element, exc) from exc


def _area(element: etree._Element) -> Area:
    circles = tuple(_circle(circle) for circle in element.iterfind(_q("circle")))
    polygons = tuple(_polygon(polygon) for polygon in element.iterfind(_q("polygon")))
    try:
        return Area(_required(element, "areaDesc"), circles, polygons)
    except CapError as exc:
        raise _refuse_at(element, exc) from exc


def _references(root: etree._Element) -> tuple[Reference, ...]:
    text = _text(root, "references")
    if not text:
        return ()
    element = root.find(_q("references"))
    line = element.sourceline if element is not None else None
    references = []
    for triple in text.split():
        parts = triple.split(",")
        try:
            sender, identifier, sent = parts
            references.append(Reference(sender, identifier, datetime.fromisoformat(sent)))
        except ValueError:
            raise CapRefused(
                f"line {line}: reference {triple!r} is not 'sender,identifier,sent'"
            ) from None
    return tuple(references)


def _programme(info: etree._Element) -> tuple[tuple[datetime, str], ...]:
    steps = []
    for key, value, line in _parameters([info]):
        if key != PARAM_STEP:
            continue
        at_text, _, signal = value.partition(" ")
        try:
            at = datetime.fromisoformat(at_text)
        except ValueError:
            at = None
        if at is None or at.utcoffset() is None or not is_slug(signal):
            raise CapRefused(
                f"line {line}: {PARAM_STEP} {value!r} is not '<time with offset> <signal>'"
            )
        steps.append((at, signal))
    return tuple(steps)


def _signal(infos: list[etree._Element], chosen: etree._Element, *, programme: bool) -> str | None:
    for key, value, line in _parameters(infos):
        if key == PARAM_SIGNAL:
            if not is_slug(value):
                raise CapRefused(
                    f"line {line}: {PARAM_SIGNAL} {value!r} is not a signal name "
                    "([a-z0-9][a-z0-9_-]{0,63})"
                )
            return value
    if programme:
        return None
    for info in (chosen, *infos):
        suggestion = suggest_signal(_required(info, "event"))
        if suggestion is not None:
            return suggestion
    return None


def parse_alert(xml: bytes, *, language: str = "zh-CN") -> CapRequest:
    """Validate an upstream CAP 1.2 alert and pre-fill an activation request from it.

    Texts (event, headline, description, areas) come from the info block in ``language``
    (by its primary subtag), else the first one. Raises CapError (a ValueError) saying what
    is wrong and on which line.
    """
    root = read_document(xml)
    validate_element(root)
    status = CapStatus(_required(root, "status"))
    msg_type = MsgType(_required(root, "msgType"))
    if status not in KIND_OF_STATUS:
        raise CapRefused(
            f"status {status} is not an alert to the public (System is for the alerting "
            "network itself, Draft is never acted on): nothing to pre-fill"
        )
    if msg_type in (MsgType.ACK, MsgType.ERROR):
        raise CapRefused(
            f"msgType {msg_type} answers another message; it cannot pre-fill a siren request"
        )
    infos = root.findall(_q("info"))
    if not infos and msg_type is not MsgType.CANCEL:
        raise CapRefused(
            f"{msg_type} has no <info> block, so it says nothing about what to sound or where"
        )
    note = _text(root, "note")
    exercise = _first(infos, PARAM_EXERCISE)
    if exercise is None and status is CapStatus.EXERCISE:
        exercise = note or "Exercise"
    request = CapRequest(
        identifier=_required(root, "identifier"),
        sender=_required(root, "sender"),
        sent=datetime.fromisoformat(_required(root, "sent")),
        status=status,
        msg_type=msg_type,
        kind=KIND_OF_STATUS[status],
        event="",
        signal=None,
        areas=(),
        references=_references(root),
        activation=_first(infos, PARAM_ACTIVATION),
        exercise=exercise,
        note=note,
    )
    if not infos:  # a bare Cancel: it names what it cancels in references, nothing more
        return request
    chosen = _pick_info(infos, language)
    programme = _programme(chosen)
    return replace(
        request,
        event=_required(chosen, "event"),
        signal=_signal(infos, chosen, programme=bool(programme)),
        areas=tuple(_area(area) for area in chosen.iterfind(_q("area"))),
        programme=programme,
        expires=_time(chosen, "expires"),
        headline=_text(chosen, "headline") or "",
        description=_text(chosen, "description") or "",
        language=_text(chosen, "language") or "en-US",
    )
