"""Which commands and orders may carry an exercise's label.

A label that names an exercise (its id) is the promise that what carries it is part of that
exercise, so it is accepted only while the exercise runs, only on what is not real (drills
and tests of sirens, drill conversion orders), and only on targets inside the exercise's
areas. Other labels ("drill", a schedule's title) name no exercise and pass as before.
The siren and conversion services call ``check_label`` before they record anything; the
label is then a column of the row they write, and no route changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from control.areas import AreaStore
from control.db import Database
from control.exercises import records

__all__ = ["check_label"]


async def check_label(
    db: Database,
    label: str | None,
    *,
    drill: bool,
    sites: Iterable[str],
    refuse: Callable[[str], Exception],
) -> None:
    """Raise ``refuse(reason)`` if ``label`` names an exercise it may not carry here.

    ``drill``: whether what carries it is a drill or a test (False for a live alert or a
    real order); ``sites``: the sites it acts on.
    """
    if label is None:
        return
    exercise = await records.get(db, label)
    if exercise is None:
        return
    if not drill:
        raise refuse(
            f"exercise {label} labels drills and tests only: a real order or a live alert "
            "cannot carry it"
        )
    if exercise.state != "running":
        raise refuse(
            f"exercise {label} is {exercise.state}: its label is accepted only while it runs"
        )
    tree = await AreaStore(db).current()
    areas = records.areas_of(exercise)
    outside = sorted(
        {
            site
            for site in sites
            if site not in tree.areas or not any(tree.covers(area, site) for area in areas)
        }
    )
    if outside:
        raise refuse(
            f"{', '.join(outside)} lie outside the areas of exercise {label} "
            f"({', '.join(areas)}): its label covers only their sites"
        )
