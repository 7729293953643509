"""docs/contract.md stays in step with shelterwatch/contract.py.

Every ``Topic: `...``` line followed by a ```json block is one example. The topic must parse,
and the payload must validate against the model for that topic kind without any key the model
does not know (the models ignore unknown keys, so that check is done here).
"""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from shelterwatch.contract import (
    Alert,
    CommandAck,
    CommandRequest,
    CommandState,
    DeviceData,
    DeviceState,
    GatewayState,
    PointInfo,
    SitePosture,
    TopicKind,
    parse_topic,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "contract.md"

MODELS: dict[TopicKind, type[BaseModel]] = {
    TopicKind.GATEWAY_STATE: GatewayState,
    TopicKind.DEVICE_DATA: DeviceData,
    TopicKind.DEVICE_STATE: DeviceState,
    TopicKind.COMMAND: CommandRequest,
    TopicKind.COMMAND_ACK: CommandAck,
    TopicKind.ALERT: Alert,
    TopicKind.POSTURE: SitePosture,
}

_EXAMPLE = re.compile(r"^Topic: `([^`]+)`\s*\n\s*\n?```json\n(.*?)\n```", re.MULTILINE | re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    return _EXAMPLE.findall(DOC.read_text(encoding="utf-8"))


def _unknown_keys(model: type[BaseModel], data: dict[str, Any], where: str = "") -> list[str]:
    """Keys of ``data`` that ``model`` does not declare, recursing into nested models."""
    unknown = [f"{where}{key}" for key in data if key not in model.model_fields]
    # Nested: DeviceState.points is dict[str, PointInfo].
    for name, field in model.model_fields.items():
        args = typing.get_args(field.annotation)
        if name in data and args and args[-1] is PointInfo and isinstance(data[name], dict):
            for point, info in data[name].items():
                unknown += _unknown_keys(PointInfo, info, f"{where}{name}.{point}.")
    return unknown


def test_doc_has_examples() -> None:
    # Every ``Topic:`` line must be paired with a json block, or the regex silently skips it.
    text = DOC.read_text(encoding="utf-8")
    assert len(_examples()) == len(re.findall(r"^Topic: `", text, re.MULTILINE)) > 0


@pytest.mark.parametrize(("topic", "body"), _examples(), ids=lambda v: v[:60])
def test_example_matches_contract(topic: str, body: str) -> None:
    parsed = parse_topic(topic)
    model = MODELS[parsed.kind]
    data = json.loads(body)
    assert isinstance(data, dict)
    assert _unknown_keys(model, data) == [], f"{topic}: keys unknown to {model.__name__}"
    payload = model.model_validate_json(body)
    # Round trip: what the model writes reads back to the same payload.
    assert model.model_validate_json(payload.to_json()) == payload  # type: ignore[attr-defined]


def test_every_topic_kind_has_an_example() -> None:
    kinds = {parse_topic(topic).kind for topic, _ in _examples()}
    assert kinds == set(TopicKind)


def test_every_message_variant_has_an_example() -> None:
    payloads = [(parse_topic(t).kind, json.loads(b)) for t, b in _examples()]

    def having(kind: TopicKind, **fields: Any) -> list[dict[str, Any]]:
        return [
            p for k, p in payloads if k is kind and all(p.get(f) == v for f, v in fields.items())
        ]

    assert having(TopicKind.GATEWAY_STATE, online=True)
    assert having(TopicKind.GATEWAY_STATE, online=False)
    assert having(TopicKind.DEVICE_STATE, online=True)
    assert having(TopicKind.DEVICE_STATE, online=False)
    assert having(TopicKind.DEVICE_DATA, full=True)
    by_exception = having(TopicKind.DEVICE_DATA, full=False)
    assert any("bad" in p.get("quality", {}).values() for p in by_exception)
    assert having(TopicKind.DEVICE_DATA, historical=True)
    assert {p["state"] for p in having(TopicKind.COMMAND_ACK)} == set(CommandState)
    assert having(TopicKind.ALERT, active=True)
    assert having(TopicKind.ALERT, active=False)
    postures = [(p["posture"], p.get("kind")) for p in having(TopicKind.POSTURE)]
    assert ("converting", "drill") in postures
    assert ("wartime", "real") in postures


def test_bad_points_carry_no_value() -> None:
    for topic, body in _examples():
        if parse_topic(topic).kind is TopicKind.DEVICE_DATA:
            data = DeviceData.model_validate_json(body)
            assert not set(data.quality) & set(data.values), topic


def test_doc_states_the_acl_and_prefix() -> None:
    text = DOC.read_text(encoding="utf-8")
    # The generated ACL's rules for one gateway: never its own command topic for writing.
    assert "topic read shelterwatch/v1/gw/gw-shelter-01/cmd" in text
    assert "topic write shelterwatch/v1/gw/gw-shelter-01/cmd\n" not in text
    assert "pattern readwrite" not in text
    assert "[a-z0-9][a-z0-9_-]{0,63}" in text
    assert "shelterwatch/v2" in text
