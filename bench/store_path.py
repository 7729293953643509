"""The collector's store writer fed prepared batches, against a bare bulk writer, in one run.

    prepared batches ──▶ (1) bare writer: POST pre-formatted line protocol to /write
                     └─▶ (2) the collector's writer: Sample batches through its durable write
                             (encode to line protocol, InfluxStore's HTTP client, retries)

Both write the same samples in batches of the same size, each phase into a fresh database,
alternating over ``--rounds`` rounds; each side's median counts. (1) formats its bodies
before the clock starts, so the ratio prices exactly what the collector adds to the write:
formatting line protocol and its client. Goal (issue 9): >= 0.8.

Usage: .venv/bin/python bench/store_path.py [--messages N] [--points-per-message P] [--batch B]
The last line printed is JSON with every figure and "ratio".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ingest import make_messages
from servers import InfluxServer

from collector import Collector, CollectorSettings
from shelterwatch.contract import DeviceData
from shelterwatch.store import Sample
from shelterwatch.store.influx import InfluxStore
from shelterwatch.store.lineprotocol import format_samples

GOAL = 0.8


def prepared(count: int, points: int, batch: int) -> list[list[Sample]]:
    samples = []
    for i, (topic, payload) in enumerate(make_messages(count, points)):
        data = DeviceData.model_validate_json(payload)
        samples.append(
            Sample("bench", "bench", "gw-bench", topic.split("/")[-2], data.ts + i, data.values)
        )
    return [samples[i : i + batch] for i in range(0, len(samples), batch)]


def bare_writer(url: str, batches: list[list[Sample]]) -> float:
    """Seconds to POST the batches, formatted beforehand."""
    db = f"bare_{uuid.uuid4().hex[:8]}"
    bodies = [format_samples(b) for b in batches]
    with httpx.Client(base_url=url, timeout=60) as http:
        http.post("/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
        start = time.perf_counter()
        for body in bodies:
            http.post(
                "/write", params={"db": db, "precision": "ms"}, content=body
            ).raise_for_status()
        elapsed = time.perf_counter() - start
        http.post("/query", params={"q": f'DROP DATABASE "{db}"'})
    return elapsed


async def collector_writer(url: str, batches: list[list[Sample]]) -> float:
    """Seconds for the collector's durable write path to store the batches."""
    db = f"col_{uuid.uuid4().hex[:8]}"
    async with InfluxStore(url, db) as store:
        collector = Collector(CollectorSettings(store_url=f"influxdb://x/{db}"), store)
        start = time.perf_counter()
        for batch in batches:
            await collector._write(batch, [])
        elapsed = time.perf_counter() - start
        stored = await store.count("bench")
        await store.drop_database()
    expected = sum(len(b) for b in batches)
    if stored != expected:
        raise SystemExit(f"the collector stored {stored} of {expected} samples")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--points-per-message", type=int, default=20)
    parser.add_argument("--batch", type=int, default=2000, help="the collector's batch_messages")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n, p = args.messages, args.points_per_message
    batches = prepared(n, p, args.batch)
    bare_s: list[float] = []
    col_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, InfluxServer(Path(tmp) / "influxdb") as influx:
        for r in range(args.rounds):
            bare_s.append(bare_writer(influx.url, batches))
            col_s.append(asyncio.run(collector_writer(influx.url, batches)))
            print(
                f"round {r + 1}: bare {n * p / bare_s[-1]:,.0f} points/s, "
                f"collector {n * p / col_s[-1]:,.0f} points/s",
                file=sys.stderr,
            )
    bare = n * p / statistics.median(bare_s)
    col = n * p / statistics.median(col_s)
    ratio = col / bare
    print(
        json.dumps(
            {
                "bench": "store_path",
                "messages": n,
                "points_per_message": p,
                "batch": args.batch,
                "rounds": args.rounds,
                "figure": "collector_writer_points_per_s",
                "collector_writer_points_per_s": round(col),
                "limit": "bare_writer_points_per_s",
                "bare_writer_points_per_s": round(bare),
                "ratio": round(ratio, 3),
                "goal": GOAL,
                "meets_goal": ratio >= GOAL,
            }
        )
    )


if __name__ == "__main__":
    main()
