"""Section `cold` of evals/bench.py: `rag ask` as a subprocess (extractive backend, the demo
index the ingest section built): invocation to the first byte of the answer on stdout, for
both models."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_common import MODELS, load_average, log

COLD_START_QUESTION = "What is the first-line treatment for an acute gout flare?"


def bench_cold_start(model: str, index_folder: Path, runs: int, work: Path) -> dict[str, Any]:
    """`rag ask` from process start to the first byte on stdout, and to exit."""
    rag_command = Path(sys.executable).with_name("rag")
    command = [str(rag_command)] if rag_command.exists() else [sys.executable, "-m", "rag.cli"]
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "RAG_"))
    }
    environment.update(
        RAG_INDEX=str(index_folder), RAG_EMBEDDER=MODELS[model], RAG_DATA_DIR=str(work / "data")
    )
    first_byte, total = [], []
    for _ in range(runs):
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "ask", COLD_START_QUESTION],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            cwd=work,
        )
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.read(1)
        first_byte.append(time.perf_counter() - started)
        rest = process.stdout.read()
        errors = process.stderr.read()
        process.wait()
        total.append(time.perf_counter() - started)
        if process.returncode != 0 or not first:
            raise RuntimeError(
                f"rag ask exited {process.returncode}: {errors.decode(errors='replace')[-400:]}"
            )
    log(f"cold start {model}: first byte {statistics.median(first_byte):.2f}s")
    return {
        "model": model,
        "runs": runs,
        "first_byte_median_s": statistics.median(first_byte),
        "first_byte_min_s": min(first_byte),
        "total_median_s": statistics.median(total),
        "answer_bytes": len(first) + len(rest),
        "load": load_average(),
    }


def render(cold: list[dict[str, Any]]) -> list[str]:
    """The section's Markdown table, one row per model."""
    lines = [
        "## Cold start of `rag ask`",
        "",
        (
            "A new process per run (`rag ask QUESTION`, extractive backend, the demo index "
            "built above): from invocation to the first byte of the answer on stdout. The OS "
            "file cache is warm (the model files were read by earlier runs)."
        ),
        "",
        (
            "| model | first byte (median) | first byte (best) | whole answer (median) | runs "
            "| load avg |"
        ),
        "|---|---|---|---|---|---|",
    ]
    for row in cold:
        lines.append(
            f"| {row['model']} | {row['first_byte_median_s']:.2f} s "
            f"| {row['first_byte_min_s']:.2f} s | {row['total_median_s']:.2f} s "
            f"| {row['runs']} | {row['load']} |"
        )
    lines.append("")
    return lines
