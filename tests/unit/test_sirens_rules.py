"""Pure rules of the siren service: target outcomes, activation ends, fan-out, command ids
and lifetimes, test days, the two-person rule, imports and health."""

from __future__ import annotations

import pytest

from control.auth import two_person_rule
from control.db import SirenPost
from control.sirens.activations import (
    ActivationState,
    activate_command_id,
    cancel_command_id,
    is_test_day,
    new_activation_id,
    parse_cancel_command_id,
)
from control.sirens.errors import ImportRejected, UnknownTarget
from control.sirens.fanout import command_ttl_s, plan
from control.sirens.health import health_of
from control.sirens.outcomes import TargetState as T
from control.sirens.outcomes import activation_end, describe_end, outcome_of, target_after
from control.sirens.transfer import export_csv, parse
from shelterwatch.contract import CommandAck, SirenKind
from shelterwatch.signals import builtin_signals


def test_targets_only_move_forward_and_duplicates_change_nothing() -> None:
    assert target_after(T.PENDING, T.SENT) is T.SENT
    assert target_after(T.SENT, T.STARTED) is T.STARTED
    assert target_after(T.STARTED, T.SOUNDED) is T.SOUNDED
    assert target_after(T.SOUNDED, T.SOUNDED) is None  # the same answer again
    assert target_after(T.SOUNDED, T.STARTED) is None  # older news
    assert target_after(T.SOUNDED, T.CANCELLED) is None  # a final outcome stays
    assert target_after(T.STARTED, T.SENT) is None
    # no_answer is a guess: a real outcome replaces it, another guess does not.
    assert target_after(T.NO_ANSWER, T.SOUNDED) is T.SOUNDED
    assert target_after(T.NO_ANSWER, T.STARTED) is None


def test_answers_without_an_outcome_are_read_from_their_state() -> None:
    def ack(state: str, outcome: str | None = None) -> CommandAck:
        return CommandAck.model_validate(
            {"id": "c", "state": state, "ts": 1, "device": "d", "outcome": outcome}
        )

    assert outcome_of(ack("failed", "unreachable"), SirenKind.LIVE) is T.UNREACHABLE
    assert outcome_of(ack("succeeded"), SirenKind.SILENT_TEST) is T.TEST_PASSED
    assert outcome_of(ack("succeeded"), SirenKind.DRILL) is T.SOUNDED
    assert outcome_of(ack("running"), SirenKind.DRILL) is T.STARTED
    assert outcome_of(ack("accepted"), SirenKind.DRILL) is None


def test_an_activation_ends_when_every_target_is_final() -> None:
    assert activation_end([T.SOUNDED, T.STARTED], cancelled=False) is None
    assert activation_end([T.SOUNDED, T.SOUNDED], cancelled=False) is ActivationState.COMPLETED
    assert (
        activation_end([T.TEST_PASSED, T.NO_ANSWER], cancelled=False)
        is ActivationState.COMPLETED_WITH_FAILURES
    )
    assert activation_end([T.CANCELLED, T.SOUNDED], cancelled=True) is ActivationState.CANCELLED
    assert describe_end([T.SOUNDED, T.NO_ANSWER, T.FAILED]) == (
        "1 of 3 sirens good; not good: failed 1, no_answer 1"
    )


def test_fan_out_makes_one_order_per_gateway_with_its_own_sirens() -> None:
    signal = builtin_signals()["air_raid"].spec()
    orders = plan(
        "act-0123456789ab",
        SirenKind.LIVE,
        signal,
        None,
        [("gw-b", "s3"), ("gw-a", "s2"), ("gw-a", "s1"), ("gw-a", "s1")],
    )
    assert [(o.gateway, o.command_id, o.order.sirens) for o in orders] == [
        ("gw-a", "act-0123456789ab-gw-a", ["s1", "s2"]),
        ("gw-b", "act-0123456789ab-gw-b", ["s3"]),
    ]
    assert all(o.order.activation == "act-0123456789ab" for o in orders)
    assert command_ttl_s(SirenKind.LIVE, signal, margin_s=60, silent_test_s=120) == 174 + 60
    assert command_ttl_s(SirenKind.SILENT_TEST, None, margin_s=60, silent_test_s=120) == 120


def test_command_ids_are_derived_and_parse_back() -> None:
    act = new_activation_id()
    assert activate_command_id(act, "gw-siren-07") == f"{act}-gw-siren-07"
    assert parse_cancel_command_id(cancel_command_id(act, "gw-siren-07")) == act
    assert parse_cancel_command_id("cmd-123") is None
    assert len(cancel_command_id(act, "g" * 64)) <= 128


def test_test_days_are_local_dates() -> None:
    # 2026-09-17 16:30 UTC is 18 September 00:30 in Shanghai.
    ms = 1_789_662_600_000
    assert is_test_day(ms, ["09-18"], "Asia/Shanghai")
    assert not is_test_day(ms, ["09-18"], "UTC")


def test_the_two_person_rule() -> None:
    assert two_person_rule("wang", "zhao")
    assert not two_person_rule("wang", "Wang")


CSV = (
    "id,name,site,gateway,device,district,lat,lon,radius_m,profile,enabled\n"
    "s1,North gate,p1,gw-a,d1,north,36.0,120.0,800,siren,true\n"
    "s2,South gate,p2,gw-a,d2,south,36.1,120.1,900,siren_relay,false\n"
)


def test_csv_import_parses_and_round_trips() -> None:
    sirens, groups = parse(CSV, "csv")
    assert [s.id for s in sirens] == ["s1", "s2"] and groups == {}
    posts = [SirenPost(**s.model_dump()) for s in sirens]
    assert export_csv(posts) == CSV.replace("800,", "800.0,").replace("900,", "900.0,")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (CSV.replace("36.1", "north"), "row 3, column lat"),
        (CSV.replace("gw-a,d2", "gw-a,d1"), "row 3, column device"),
        (CSV.replace("s2,", "s1,"), "row 3, column id"),
        (CSV.replace(",false", ",maybe"), "row 3, column enabled"),
        (CSV.replace("siren_relay", "horn"), "row 3, column profile"),
        ("id,name\ns1,x\n", "row 1, column (header)"),
    ],
)
def test_a_bad_csv_row_is_named_by_row_and_column(text: str, where: str) -> None:
    with pytest.raises(ImportRejected) as exc:
        parse(text, "csv")
    assert str(exc.value).startswith(where), str(exc.value)


def test_a_bad_yaml_entry_is_named() -> None:
    with pytest.raises(ImportRejected, match="row 2, column radius_m"):
        parse(
            "sirens:\n"
            "  - {id: a, name: A, site: p, gateway: g, device: d1, lat: 1, lon: 1, radius_m: 5}\n"
            "  - {id: b, name: B, site: p, gateway: g, device: d2, lat: 1, lon: 1, radius_m: -5}\n",
            "yaml",
        )
    with pytest.raises(ImportRejected, match=r"row 1, column groups\.members"):
        parse("groups:\n  - {name: g1, members: [NOT A SLUG]}\n", "yaml")


def test_unknown_targets_name_every_unknown_id() -> None:
    err = UnknownTarget(sirens=["s9"], groups=["east"])
    assert isinstance(err, ValueError)
    assert err.unknown == ["s9", "east"] and "s9" in str(err) and "east" in str(err)


def _post(**kw: object) -> SirenPost:
    base: dict[str, object] = {
        "id": "s1",
        "enabled": True,
        "last_test_outcome": None,
        "last_test_ms": None,
        "last_test_detail": "",
    }
    return SirenPost(**(base | kw))


def test_health_takes_the_newest_test_and_flags_failures_and_disabled_sirens() -> None:
    passed = _post(last_test_outcome="test_passed", last_test_ms=1000)
    assert not health_of(passed, None).flagged
    # The controller's own self-test, newer, failed.
    telemetry = {"last_self_test_result": ("fail", 2000)}
    health = health_of(passed, telemetry)
    assert health.flagged and health.last_test is not None
    assert health.last_test.outcome == "self_test_fail" and health.last_test.source == "telemetry"
    # An older telemetry pass does not hide a newer failed silent test.
    failed = _post(last_test_outcome="test_failed", last_test_ms=5000, last_test_detail="amp")
    health = health_of(failed, {"last_self_test_result": ("pass", 100)})
    assert health.flagged and health.reason == "last test test_failed: amp"
    assert health_of(_post(enabled=False), None).reason == "disabled"
