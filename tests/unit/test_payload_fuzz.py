"""Every payload parser, fuzzed with JSON-shaped input: it accepts or refuses, never crashes.

tests/unit/test_ingest.py already feeds the collector random bytes (which are almost never
JSON, so they stop at the first byte). These tests reach the validators: arbitrary JSON
documents, and valid payloads with one field replaced by anything, for the data, device
state, gateway state, command, ack and alert parsers; the collector's ingest (which must
count every message it does not store) and the gateway's command intake (which must refuse
with an answer, never raise).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from collector.ingest import Ingest
from gateway.commands import CommandRunner, CommandSettings
from gateway.sirens.settings import SirenSettings
from shelterwatch.contract import (
    Alert,
    CommandAck,
    CommandRequest,
    DeviceData,
    DeviceState,
    GatewayState,
    data_topic,
    device_state_topic,
    gateway_state_topic,
)

T0 = 1_700_000_000_000

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)

VALID: dict[type[BaseModel], dict[str, Any]] = {
    DeviceData: {"ts": T0, "seq": 1, "site": "s-1", "kind": "environment", "values": {"co2": 0.04}},
    DeviceState: {
        "online": True,
        "ts": T0,
        "kind": "environment",
        "points": {"co2": {"unit": "%"}},
    },
    GatewayState: {"online": True, "ts": T0, "site": "s-1", "devices": ["env"]},
    CommandRequest: {
        "id": "c1",
        "device": "siren",
        "action": "silent_test",
        "params": {},
        "ts": T0,
        "expires": T0 + 60_000,
        "actor": "duty",
        "sig": "AAAA",
    },
    CommandAck: {"id": "c1", "state": "accepted", "detail": "", "ts": T0},
    Alert: {"active": True, "ts": T0, "severity": "critical", "value": 3.5, "raised_ts": T0},
}


def _mutations(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    base = VALID[model]
    keys = [*sorted(base), "extra"]
    replace = st.tuples(st.sampled_from(keys), json_values).map(lambda kv: base | {kv[0]: kv[1]})
    drop = st.sampled_from(sorted(base)).map(lambda k: {n: v for n, v in base.items() if n != k})
    return replace | drop


PARSERS = [DeviceData, DeviceState, GatewayState, CommandRequest, CommandAck, Alert]


@pytest.mark.parametrize("model", PARSERS, ids=lambda m: m.__name__)
@given(doc=json_values)
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_is_accepted_or_refused_cleanly(model: type[BaseModel], doc: Any) -> None:
    raw = json.dumps(doc).encode()
    try:
        parsed = model.model_validate_json(raw)
    except ValidationError:
        return
    # What is accepted serialises again and means the same.
    assert model.model_validate_json(parsed.model_dump_json()) == parsed


@pytest.mark.parametrize("model", list(VALID), ids=lambda m: m.__name__)
@given(data=st.data())
@settings(max_examples=150)
def test_valid_payloads_with_one_field_broken(model: type[BaseModel], data: st.DataObject) -> None:
    doc = data.draw(_mutations(model))
    with contextlib.suppress(ValidationError):
        model.model_validate_json(json.dumps(doc))


TOPICS = [
    data_topic("gw-1", "env"),
    device_state_topic("gw-1", "env"),
    gateway_state_topic("gw-1"),
    "shelterwatch/v1/gw/GW/dev/env/data",
    "shelterwatch/v1/gw/gw-1/dev/env/data/extra",
]


@given(
    messages=st.lists(
        st.tuples(
            st.sampled_from(TOPICS),
            st.one_of(
                json_values.map(lambda d: json.dumps(d).encode()),
                _mutations(DeviceData).map(lambda d: json.dumps(d).encode()),
                _mutations(DeviceState).map(lambda d: json.dumps(d).encode()),
                st.binary(max_size=50),
            ),
        ),
        max_size=20,
    )
)
@settings(max_examples=200)
def test_ingest_stores_or_counts_every_message(messages: list[tuple[str, bytes]]) -> None:
    ingest = Ingest("shelterwatch/v1", max_payload_bytes=4096)
    for topic, payload in messages:
        before = ingest.stats.as_dict()
        record = ingest.convert_any(topic, payload, T0 + 1000)
        after = ingest.stats.as_dict()
        counted = any(after[k] > before[k] for k in after if k != "messages")
        # Each message is stored, counted in some bucket, or a state/quality-only message.
        assert record is not None or counted or topic != TOPICS[0] or _quality_only(payload)
    assert ingest.stats.messages == len(messages)


def _quality_only(payload: bytes) -> bool:
    try:
        return not DeviceData.model_validate_json(payload).values
    except ValidationError:
        return False


@given(
    payloads=st.lists(
        st.one_of(
            json_values.map(lambda d: json.dumps(d).encode()),
            _mutations(CommandRequest).map(lambda d: json.dumps(d).encode()),
            st.binary(max_size=60),
        ),
        min_size=1,
        max_size=10,
    )
)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_gateway_command_intake_refuses_and_answers(payloads: list[bytes], tmp_path: Path) -> None:
    acks: list[CommandAck] = []

    async def feed() -> int:
        runner = CommandRunner(
            CommandSettings(), tmp_path / "commands.db", {}, acks.append, SirenSettings()
        )
        async with runner:
            for payload in payloads:
                await runner.submit(payload)  # never raises
            return runner.refused

    refused = asyncio.run(feed())
    # Without a key and targets nothing may run: every command is refused, and every
    # refusal that names a command id is answered.
    assert refused == len(payloads)
    assert all(a.state in ("rejected", "expired") for a in acks)
