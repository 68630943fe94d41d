"""Speed and memory of rag on this machine: a benchmark that prints figures, not a timed test.

    .venv/bin/python evals/bench.py                          # everything, 10k / 100k / 1M chunks
    .venv/bin/python evals/bench.py --sizes 10000,100000     # skip the million
    .venv/bin/python evals/bench.py --quick                  # a smoke run: small inputs
    .venv/bin/python evals/bench.py --sections latency,memory

Sections (all by default), each written to evals/results/bench.md (--quick: bench-quick.md).
Each is measured and rendered by one module beside this one (shared helpers: bench_common.py;
the synthetic corpus of latency and memory: bench_corpus.py):

ingest   bench_ingest.py: ingest throughput of a fresh index over the demo corpus against the
         raw throughput of the embedding model on the same passages, fp32 and int8.
query    bench_query.py: query embedding latency of both models (one question at a time, warm).
latency  bench_latency.py: hybrid retrieval p50 / p95 per query, warm, at each size of the
         synthetic corpus; recall@10 of the FAISS index against exact search; efSearch sweep.
memory   bench_latency.py (the same pass): resident memory of a loaded index per million chunks.
cold     bench_cold.py: `rag ask` as a subprocess, invocation to the first byte of the answer.
quality  bench_quality.py: PubMedQA dev retrieval with each model (int8 against fp32).

The machine's load average is printed beside the figures: with other work running, ratios
measured within one run (pipeline / raw, int8 / fp32) stay meaningful, absolute times less so.
CPU seconds are reported beside wall seconds for the same reason.

Work files (indexes) go to --work (default /tmp/rag-bench). Synthetic indexes are kept there
and reused by a later run with the same size and generator version (--rebuild to rebuild).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import bench_cold
import bench_ingest
import bench_latency
import bench_quality
import bench_query
from bench_common import MODELS, RESULTS, load_average, log, machine_description

SECTIONS = ("ingest", "query", "latency", "memory", "cold", "quality")
# Each section's table, in report order: (key in the results, the module that renders it).
RENDERERS = (
    ("ingest", bench_ingest),
    ("query", bench_query),
    ("latency", bench_latency),  # the memory table too, when the sizes were probed
    ("cold", bench_cold),
    ("quality", bench_quality),
)


def render(results: dict[str, Any], arguments: argparse.Namespace) -> str:
    """The Markdown report: how and where it ran, then each measured section's tables."""
    lines = [
        "# rag benchmark: speed and memory",
        "",
        f"Command: `.venv/bin/python evals/bench.py {' '.join(arguments.argv)}`".rstrip(),
        f"Run: {results['started']} to {results['finished']} on {results['machine']}.",
        (
            f"Load average (1/5/15 min) at start {results['load_start']}, at end "
            f"{results['load_end']}; each table gives the load when its figures were taken. "
            "The machine is shared: absolute times are inflated by the load, ratios measured within "
            "one run (pipeline / raw, int8 / fp32) much less so."
        ),
        "",
    ]
    for key, section in RENDERERS:
        if results.get(key):
            lines += section.render(results[key])
            lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=None, help="chunk counts, e.g. 10000,100000,1000000")
    parser.add_argument("--quick", action="store_true", help="small inputs: a smoke run")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)}",
    )
    parser.add_argument("--queries", type=int, default=None, help="synthetic queries per size")
    parser.add_argument(
        "--demo-documents",
        type=int,
        default=None,
        help="ingest section: the first N demo documents (default all 145; --quick 25)",
    )
    parser.add_argument("--work", default="/tmp/rag-bench", help="folder for the work indexes")
    parser.add_argument("--rebuild", action="store_true", help="rebuild synthetic indexes")
    parser.add_argument("--out", default=None, help="Markdown report (default evals/results/)")
    arguments = parser.parse_args(argv)
    arguments.argv = list(sys.argv[1:] if argv is None else argv)
    sections = [part.strip() for part in arguments.sections.split(",") if part.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {SECTIONS}")
    sizes_text = arguments.sizes or ("10000" if arguments.quick else "10000,100000,1000000")
    try:
        sizes = [int(part.replace("_", "")) for part in sizes_text.split(",") if part.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated whole numbers, got {sizes_text!r}")
    if not sizes or min(sizes) < 1000:
        parser.error("--sizes: give chunk counts of 1000 or more")
    n_queries = arguments.queries or (50 if arguments.quick else 200)
    work = Path(arguments.work)
    work.mkdir(parents=True, exist_ok=True)
    out = (
        Path(arguments.out)
        if arguments.out
        else RESULTS / ("bench-quick.md" if arguments.quick else "bench.md")
    )

    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine_description(),
        "load_start": load_average(),
    }
    demo_indexes: dict[str, Path] = {}
    if "ingest" in sections or "cold" in sections:
        from rag.ingest.demo import load_demo_corpus

        documents = load_demo_corpus()
        limit = arguments.demo_documents or (25 if arguments.quick else len(documents))
        documents = documents[: max(1, limit)]
        results["ingest"] = []
        for model in MODELS:
            row = bench_ingest.bench_ingest(model, documents, work)
            demo_indexes[model] = Path(row["index"])
            if "ingest" in sections:
                results["ingest"].append(row)
    if "query" in sections:
        results["query"] = [
            bench_query.bench_query_embedding(model, 1 if arguments.quick else 3)
            for model in MODELS
        ]
    if "latency" in sections or "memory" in sections:
        results["latency"] = [
            bench_latency.bench_size(size, work, n_queries, arguments.rebuild, "memory" in sections)
            for size in sizes
        ]
    if "cold" in sections:
        results["cold"] = [
            bench_cold.bench_cold_start(
                model, demo_indexes[model], 1 if arguments.quick else 3, work
            )
            for model in MODELS
        ]
    if "quality" in sections:
        rows = [bench_quality.bench_quality(model, work, arguments.quick) for model in MODELS]
        results["quality"] = [row for row in rows if row is not None]
    results["finished"] = time.strftime("%Y-%m-%d %H:%M")
    results["load_end"] = load_average()

    report = render(results, arguments)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report + "\n", encoding="utf-8")
    (work / f"{out.stem}.json").write_text(json.dumps(results, indent=2, default=str))
    print(report)
    log(f"written {out} (raw figures in {work / (out.stem + '.json')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
