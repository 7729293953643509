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
from control.sirens.scoping import Redactor
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


def activation_public(
    activation: SirenActivation,
    *,
    with_events: bool = True,
    redactor: Redactor | None = None,
    approval_area: str | None = None,
) -> ActivationPublic:
    """The API's view; with a ``redactor``, as a caller sees it whose area holds only some
    of the targets."""
    sirens, groups = requested_targets(activation)
    shown = redactor.shown if redactor is not None else list(activation.targets)
    targets = [target_public(t, activation.dispatched_ms) for t in shown]
    text = redactor.text if redactor is not None else _same
    events: list[ActivationEventPublic] = []
    for e in activation.events if with_events else []:
        actor = redactor.actor(e.actor) if redactor is not None else e.actor
        if actor is not None:
            events.append(
                ActivationEventPublic(ts=e.ts_ms, actor=actor, event=e.event, detail=text(e.detail))
            )
    if redactor is not None:
        sirens = [s for s in sirens if s in redactor.shown_ids]
    return ActivationPublic(
        id=activation.id,
        kind=SirenKind(activation.kind),
        signal=activation.signal,
        signal_duration_s=_duration(activation),
        state=activation.state,
        final=ActivationState(activation.state) in FINAL_STATES,
        state_detail=text(activation.state_detail),
        reason=text(activation.reason),
        requested_sirens=sirens,
        requested_groups=groups,
        requested_by=activation.requested_by,
        requested=activation.requested_ms,
        approve_by=activation.approve_by_ms,
        approved_by=activation.approved_by,
        approved=activation.approved_ms,
        decision_comment=text(activation.decision_comment),
        dispatched=activation.dispatched_ms,
        expires=activation.expires_ms,
        cancelled_by=activation.cancelled_by,
        cancelled=activation.cancelled_ms,
        finished=activation.finished_ms,
        schedule=activation.schedule,
        exercise=activation.exercise,
        counts=counts(t.state for t in shown),
        targets=targets,
        events=events,
        targets_outside_scope=redactor.hidden if redactor is not None else 0,
        approval_area=approval_area,
    )


def _same(text: str) -> str:
    return text


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
    # The exercise or drill label: a report of an exercise can never pass for a live alert's.
    exercise: str | None = None
    requested: int
    dispatched: int | None
    finished: int | None
    total: int
    counts: dict[str, int]
    targets: list[TargetPublic]
    # Targets outside the reader's area: not in ``targets``, ``total`` or ``counts``.
    targets_outside_scope: int = 0


def report_of(activation: SirenActivation, redactor: Redactor | None = None) -> ActivationReport:
    view = activation_public(activation, with_events=False, redactor=redactor)
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
        exercise=activation.exercise,
        requested=view.requested,
        dispatched=view.dispatched,
        finished=view.finished,
        total=len(view.targets),
        counts=view.counts,
        targets=view.targets,
        targets_outside_scope=view.targets_outside_scope,
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
    # On every row, so that no row copied out of the sheet loses it.
    "exercise",
]


def report_csv(report: ActivationReport) -> str:
    """A header, then one row per siren. The counts stay in the JSON report: summary rows
    under the table would break the spreadsheets and scripts that read it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for target in report.targets:
        doc = json.loads(target.model_dump_json()) | {"exercise": report.exercise}
        writer.writerow(["" if doc[c] is None else doc[c] for c in _COLUMNS])
    return out.getvalue()
