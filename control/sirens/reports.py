"""Activations as people read them: the API's view, and the report (JSON and CSV)."""

from __future__ import annotations

import csv
import io
import json

from pydantic import BaseModel

from control.db import SirenActivation, SirenTarget
from control.sirens.activations import FINAL_STATES, ActivationState
from control.sirens.models import ActivationEventPublic, ActivationPublic, TargetPublic
from control.sirens.outcomes import FINAL_TARGET, TargetState, counts
from control.sirens.records import requested_targets
from shelterwatch.contract import SignalSpec, SirenKind

__all__ = ["ActivationReport", "activation_public", "report_csv", "report_of", "target_public"]


def target_public(target: SirenTarget, dispatched_ms: int | None = None) -> TargetPublic:
    start = target.sent_ms if target.sent_ms is not None else dispatched_ms
    took = target.finished_ms - start if target.finished_ms is not None and start else None
    return TargetPublic(
        siren=target.siren,
        name=target.name,
        site=target.site,
        gateway=target.gateway,
        device=target.device,
        district=target.district,
        flags=target.flags,
        state=target.state,
        final=TargetState(target.state) in FINAL_TARGET,
        detail=target.detail,
        command=target.command_id,
        sent=target.sent_ms,
        started=target.started_ms,
        finished=target.finished_ms,
        took_ms=took,
    )


def _duration(activation: SirenActivation) -> float | None:
    if activation.signal_spec is None:
        return None
    return SignalSpec.model_validate_json(activation.signal_spec).duration_s


def activation_public(activation: SirenActivation, *, with_events: bool = True) -> ActivationPublic:
    sirens, groups = requested_targets(activation)
    targets = [target_public(t, activation.dispatched_ms) for t in activation.targets]
    events = (
        [
            ActivationEventPublic(ts=e.ts_ms, actor=e.actor, event=e.event, detail=e.detail)
            for e in activation.events
        ]
        if with_events
        else []
    )
    return ActivationPublic(
        id=activation.id,
        kind=SirenKind(activation.kind),
        signal=activation.signal,
        signal_duration_s=_duration(activation),
        state=activation.state,
        final=ActivationState(activation.state) in FINAL_STATES,
        state_detail=activation.state_detail,
        reason=activation.reason,
        requested_sirens=sirens,
        requested_groups=groups,
        requested_by=activation.requested_by,
        requested=activation.requested_ms,
        approve_by=activation.approve_by_ms,
        approved_by=activation.approved_by,
        approved=activation.approved_ms,
        decision_comment=activation.decision_comment,
        dispatched=activation.dispatched_ms,
        expires=activation.expires_ms,
        cancelled_by=activation.cancelled_by,
        cancelled=activation.cancelled_ms,
        finished=activation.finished_ms,
        schedule=activation.schedule,
        exercise=activation.exercise,
        counts=counts(t.state for t in activation.targets),
        targets=targets,
        events=events,
    )


class ActivationReport(BaseModel):
    """Every target with its outcome, detail and time taken, and the counts."""

    activation: str
    kind: SirenKind
    signal: str | None
    state: str
    state_detail: str
    reason: str
    requested_by: str
    approved_by: str | None
    cancelled_by: str | None
    schedule: str | None
    requested: int
    dispatched: int | None
    finished: int | None
    total: int
    counts: dict[str, int]
    targets: list[TargetPublic]


def report_of(activation: SirenActivation) -> ActivationReport:
    view = activation_public(activation, with_events=False)
    return ActivationReport(
        activation=view.id,
        kind=view.kind,
        signal=view.signal,
        state=view.state,
        state_detail=view.state_detail,
        reason=view.reason,
        requested_by=view.requested_by,
        approved_by=view.approved_by,
        cancelled_by=view.cancelled_by,
        schedule=view.schedule,
        requested=view.requested,
        dispatched=view.dispatched,
        finished=view.finished,
        total=len(view.targets),
        counts=view.counts,
        targets=view.targets,
    )


_COLUMNS = [
    "siren",
    "name",
    "district",
    "site",
    "gateway",
    "device",
    "state",
    "detail",
    "flags",
    "sent",
    "started",
    "finished",
    "took_ms",
]


def report_csv(report: ActivationReport) -> str:
    """A header, then one row per siren. The counts stay in the JSON report: summary rows
    under the table would break the spreadsheets and scripts that read it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for target in report.targets:
        doc = json.loads(target.model_dump_json())
        writer.writerow(["" if doc[c] is None else doc[c] for c in _COLUMNS])
    return out.getvalue()
