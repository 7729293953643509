"""The after-action report: each situation's timings, the missed ones, and the areas compared.

JSON through the API, CSV (one row per situation, or per area with ``table=areas``) and a
print-friendly HTML page. Every page and every row names the exercise: a report of an
exercise can never be read as one of a real event.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape

from control.areas import AreaTree
from control.db import Exercise
from control.exercises import records
from control.exercises.models import AfterActionReport, AreaSummary, SituationTiming, Stage

__all__ = ["EXERCISE_BANNER", "build_report", "report_csv", "report_html"]

# What heads every page and labels every export.
EXERCISE_BANNER = "演习 EXERCISE"


def _mean(values: Sequence[int]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _median(values: Sequence[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _afters(
    rows: Sequence[SituationTiming], stage: Callable[[SituationTiming], Stage]
) -> list[int]:
    return [v for v in (stage(r).after_ms for r in rows) if v is not None]


def build_report(
    exercise: Exercise,
    situations: list[SituationTiming],
    tree: AreaTree,
    visible_area: Callable[[str], bool],
) -> AfterActionReport:
    """The report of ``situations`` (already cut to what the reader may see); the area
    comparison lists the participating areas the reader may see, each with its own sites'
    situations."""
    by_area: list[AreaSummary] = []
    areas = records.areas_of(exercise)
    for code in areas:
        if not visible_area(code):
            continue
        rows = [s for s in situations if s.area == code]
        area = tree.areas.get(code)
        detect = _afters(rows, lambda r: r.detected)
        ack = _afters(rows, lambda r: r.acknowledged)
        act = _afters(rows, lambda r: r.acted)
        resolve = _afters(rows, lambda r: r.resolved)
        by_area.append(
            AreaSummary(
                exercise=exercise.id,
                area=code,
                name=area.name if area else code,
                situations=len(rows),
                responded=sum(1 for r in rows if r.status in ("responded", "resolved")),
                resolved=sum(1 for r in rows if r.resolved.at_ms is not None),
                missed=sum(1 for r in rows if r.status == "missed"),
                mean_detect_ms=_mean(detect),
                median_detect_ms=_median(detect),
                mean_ack_ms=_mean(ack),
                median_ack_ms=_median(ack),
                mean_act_ms=_mean(act),
                median_act_ms=_median(act),
                mean_resolve_ms=_mean(resolve),
                median_resolve_ms=_median(resolve),
            )
        )
    return AfterActionReport(
        exercise=exercise.id,
        label=f"{EXERCISE_BANNER} {exercise.id}",
        name=exercise.name,
        scenario=exercise.scenario,
        areas=areas,
        director=exercise.director,
        state=exercise.state,  # type: ignore[arg-type]
        started_ms=exercise.started_ms,
        ended_ms=exercise.ended_ms,
        generated_ms=records.now_ms(),
        by_area=by_area,
        situations=situations,
        missed=[s.situation for s in situations if s.status == "missed"],
    )


_STAGES = ("detected", "acknowledged", "acted", "resolved")
SITUATION_COLUMNS = [
    "exercise",
    "situation",
    "kind",
    "site",
    "area",
    "status",
    "injected_ms",
    "inject_seq",
    *(
        f"{stage}_{part}"
        for stage in _STAGES
        for part in ("at_ms", "after_ms", "by", "area", "what", "audit_seq")
    ),
]
AREA_COLUMNS = list(AreaSummary.model_fields)


def _cell(value: object) -> object:
    return "" if value is None else value


def report_csv(report: AfterActionReport, table: str = "situations") -> str:
    """A header, then one row per situation (or per area): each row names the exercise."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if table == "areas":
        writer.writerow(AREA_COLUMNS)
        for area in report.by_area:
            doc = area.model_dump()
            writer.writerow([_cell(doc[c]) for c in AREA_COLUMNS])
        return out.getvalue()
    writer.writerow(SITUATION_COLUMNS)
    for row in report.situations:
        cells: list[object] = [
            report.exercise,
            row.situation,
            row.kind,
            row.site,
            row.area,
            row.status,
            row.injected_ms,
            row.inject_seq,
        ]
        for stage_name in _STAGES:
            stage: Stage = getattr(row, stage_name)
            cells += [
                _cell(stage.at_ms),
                _cell(stage.after_ms),
                _cell(stage.by),
                _cell(stage.area),
                stage.what,
                _cell(stage.audit_seq),
            ]
        writer.writerow(cells)
    return out.getvalue()


_env = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent),
    autoescape=select_autoescape(default=True),
)


def report_html(report: AfterActionReport, timezone: str) -> str:
    zone = ZoneInfo(timezone)

    def when(ms: int | None) -> str:
        if ms is None:
            return "—"
        moment = datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone)
        return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms % 1000:03d}"

    def took(ms: float | None) -> str:
        return "—" if ms is None else f"{ms / 1000:.1f} s"

    return _env.get_template("report.html").render(r=report, when=when, took=took)
