"""Run the benchmarks and write their figures to docs/performance.md as one table.

Each benchmark prints one JSON line last, with its figure, the limit measured in the same
run and "ratio". This runs each (or reads earlier output with --from-dir), keeps every final
line in bench/results/<name>.json, and rewrites the table between the markers in
docs/performance.md; the prose around it stays as written.

Usage: .venv/bin/python bench/report.py [--only ingest,poll] [--from-dir bench/results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass(frozen=True, slots=True)
class Bench:
    name: str
    args: tuple[str, ...]
    what: str
    figure: str  # key of the figure in the JSON line
    limit: str  # key of the limit (or a description when no key holds it)
    unit: str
    goal: str  # as written in issue 9


BENCHES = (
    Bench("ingest", (), "MQTT → collector → InfluxDB, end to end",
          "end_to_end_points_per_s", "min(bare subscriber, bare writer)", "points/s",
          "ratio ≥ 0.6"),
    Bench("broker_path", (), "collector consumption (counting store)",
          "collector_points_per_s", "bare_subscriber_points_per_s", "points/s", "ratio ≥ 0.7"),
    Bench("store_path", (), "collector writer, prepared batches",
          "collector_writer_points_per_s", "bare_writer_points_per_s", "points/s",
          "ratio ≥ 0.8"),
    Bench("poll", ("--seconds", "4"), "gateway polling", "gateway_registers_per_s",
          "bare_registers_per_s", "registers/s", "ratio ≥ 0.8"),
    Bench("latency", (), "sensor change → alert p99 (siren API → write in notes)",
          "sensor_to_alert_p99_ms", "floor_ms", "ms", "reported"),
    Bench("cost", (), "collector CPU per 1,000 points at the largest fleet",
          "cpu_ms_per_1000_points", "limit_cpu_ms_per_1000_points", "CPU ms", "reported"),
    Bench("alerts", ("--seconds", "60"), "alert engine evaluation", "engine_points_per_s",
          "bare_points_per_s", "points/s", "≥ 50,000 points/s"),
    Bench("fanout", ("--runs", "2"), "siren fan-out, API → last start", "last_start_ms",
          "floor_ms", "ms", "last start ≤ 2 s"),
)  # fmt: skip


def run(bench: Bench, out_dir: Path) -> dict[str, Any]:
    script = ROOT / "bench" / f"{bench.name}.py"
    print(f"== {bench.name}", file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(script), *bench.args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or not lines:
        result: dict[str, Any] = {"bench": bench.name, "error": f"exit {proc.returncode}"}
    else:
        try:
            result = json.loads(lines[-1])
        except ValueError:
            result = {"bench": bench.name, "error": f"no JSON line: {lines[-1][:200]}"}
    result["wall_s"] = round(time.monotonic() - start, 1)
    (out_dir / f"{bench.name}.json").write_text(json.dumps(result) + "\n", encoding="utf-8")
    print(json.dumps(result), flush=True)
    return result


def _num(value: Any) -> str:
    if isinstance(value, float) and value < 100:
        return f"{value:,.2f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}"
    return "—" if value is None else str(value)


def verdict(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"**failed** ({result['error']})"
    met = result.get("meets_goal")
    if "meets_goal" not in result and isinstance(result.get("goal"), int | float):
        met = result.get("ratio", 0) >= result["goal"]  # a ratio goal (poll.py)
    if met is None:
        return "reported"
    return "met" if met else "**missed**"


def row(bench: Bench, result: dict[str, Any]) -> str:
    figure = result.get(bench.figure)
    limit = result.get(bench.limit, bench.limit)
    if bench.name == "alerts":  # its limit is a bare loop; its goal is an absolute rate
        limit = result.get("bare_points_per_s")
    if bench.name == "ingest" and "bare_subscriber_points_per_s" in result:
        limit = min(result["bare_subscriber_points_per_s"], result["bare_writer_points_per_s"])
    cells = [
        f"`{bench.name}`",
        bench.what,
        f"{_num(figure)} {bench.unit}",
        f"{_num(limit)}" + (f" {bench.unit}" if isinstance(limit, int | float) else ""),
        _num(result.get("ratio")),
        bench.goal,
        verdict(result),
        _num(result.get("wall_s")),
    ]
    return "| " + " | ".join(cells) + " |"


def table(results: dict[str, dict[str, Any]]) -> str:
    head = (
        "| bench | what | figure | limit (same run) | ratio | goal | result | wall s |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [row(b, results[b.name]) for b in BENCHES if b.name in results]
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    return f"{head}\n" + "\n".join(rows) + f"\n\nWritten by `make bench` on {stamp}.\n"


def write_doc(text: str) -> None:
    doc = DOC.read_text(encoding="utf-8") if DOC.exists() else f"# Performance\n\n{BEGIN}\n{END}\n"
    if BEGIN not in doc or END not in doc:
        doc += f"\n{BEGIN}\n{END}\n"
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{text}{END}{tail}", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", help="comma-separated bench names")
    parser.add_argument("--from-dir", type=Path, help="read <name>.json files instead of running")
    args = parser.parse_args()
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    chosen = [b for b in BENCHES if not args.only or b.name in args.only.split(",")]
    results: dict[str, dict[str, Any]] = {}
    for bench in BENCHES:
        path = (args.from_dir or out_dir) / f"{bench.name}.json"
        if bench in chosen and args.from_dir is None:
            results[bench.name] = run(bench, out_dir)
        elif path.exists():
            results[bench.name] = json.loads(path.read_text(encoding="utf-8"))
    write_doc(table(results))
    print(f"wrote {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
