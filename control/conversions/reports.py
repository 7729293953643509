"""Order reports: JSON, CSV (one row per step) and a print-friendly HTML page.

HTML is the filed format rather than PDF: the report is Chinese and English, and a PDF
library in pure Python would have to embed a CJK font (tens of MB) to print it; a browser's
"Print to PDF" of this page gives the PDF an inspector files, with the system's fonts.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from control.conversions.models import OrderPublic

__all__ = ["ConversionReport", "ReportRow", "report_csv", "report_html", "report_of"]


class ReportRow(BaseModel):
    site: str
    step: str
    kind: str
    title_zh: str
    title_en: str
    state: str
    started_ms: int | None
    done_ms: int | None
    took_s: float | None
    confirmed_by: str | None
    note: str
    attempts: int
    regressions: int


class Regression(BaseModel):
    ts_ms: int
    site: str
    step: str
    event: str
    detail: str


class ConversionReport(BaseModel):
    order: str
    kind: str
    # DRILL 演练 or REAL 实战: printed on every page of the filed report.
    label: str
    exercise: str | None
    direction: str
    level: str
    reason: str
    requested_by: str
    approved_by: str | None
    started_ms: int | None
    deadline_ms: int | None
    finished_ms: int | None
    state: str
    took_s: float | None
    # None while the order runs and its deadline has not passed.
    deadline_met: bool | None
    steps_total: int
    steps_done: int
    regressed_steps: int
    plans: list[str]
    rows: list[ReportRow]
    regressions: list[Regression]


def report_of(order: OrderPublic) -> ConversionReport:
    rows = [
        ReportRow(
            site=t.site,
            step=s.step,
            kind=s.kind,
            title_zh=s.title_zh,
            title_en=s.title_en,
            state=s.state,
            started_ms=s.started_ms,
            done_ms=s.done_ms,
            took_s=None if s.took_ms is None else s.took_ms / 1000,
            confirmed_by=s.confirmed_by,
            note=s.note,
            attempts=s.attempts,
            regressions=s.regressions,
        )
        for t in order.targets
        for s in t.steps
    ]
    if order.finished_ms is not None and order.state == "completed":
        met: bool | None = not order.deadline_missed
    elif order.deadline_missed:
        met = False
    else:
        met = None
    took = (
        (order.finished_ms - order.started_ms) / 1000
        if order.finished_ms and order.started_ms
        else None
    )
    return ConversionReport(
        order=order.id,
        kind=order.kind,
        label="DRILL 演练" if order.kind == "drill" else "REAL 实战",
        exercise=order.exercise,
        direction=order.direction,
        level=order.level_title,
        reason=order.reason,
        requested_by=order.requested_by,
        approved_by=order.approved_by,
        started_ms=order.started_ms,
        deadline_ms=order.deadline_ms,
        finished_ms=order.finished_ms,
        state=order.state,
        took_s=took,
        deadline_met=met,
        steps_total=len(rows),
        steps_done=sum(1 for r in rows if r.state == "done"),
        regressed_steps=sum(1 for r in rows if r.regressions),
        plans=sorted({f"{t.plan} v{t.plan_version} ({t.plan_hash[:12]})" for t in order.targets}),
        rows=rows,
        regressions=[
            Regression(ts_ms=e.ts_ms, site=e.site, step=e.step, event=e.event, detail=e.detail)
            for e in order.events
            if e.event in ("step_regressed", "step_reverified")
        ],
    )


_COLUMNS = list(ReportRow.model_fields)


def report_csv(report: ConversionReport) -> str:
    """A header, then one row per shelter and step (the totals stay in the JSON report)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_COLUMNS)
    for row in report.rows:
        doc = row.model_dump()
        writer.writerow(["" if doc[c] is None else doc[c] for c in _COLUMNS])
    return out.getvalue()


_env = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent),
    autoescape=select_autoescape(default=True),
)


def report_html(report: ConversionReport, timezone: str) -> str:
    zone = ZoneInfo(timezone)

    def when(ms: int | None) -> str:
        if ms is None:
            return "—"
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    return _env.get_template("report.html").render(r=report, when=when)
