"""Smoke test of bench/poll.py: a short run exits 0, cleanly, with its JSON last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_poll_bench_short_run() -> None:
    proc = subprocess.run(
        [sys.executable, "bench/poll.py", "--seconds", "0.3", "--shelters", "1", "--sirens", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["bench"] == "poll"
    assert result["devices"] == 6
    assert result["bare_registers_per_s"] > 0
    assert result["gateway_registers_per_s"] > 0
    assert result["bare_failures"] == result["gateway_failures"] == 0
    assert result["goal"] == 0.8
    assert (
        result["block_merging"]["requests_merged"] < result["block_merging"]["requests_per_point"]
    )
