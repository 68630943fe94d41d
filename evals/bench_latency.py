"""Sections `latency` and `memory` of evals/bench.py, measured in one pass per size over the
synthetic corpus of evals/bench_corpus.py.

latency  Hybrid retrieval (rag.retrieve.retrieve, k=10, fusion included) p50 / p95 per query,
         warm, at each size. Recall@10 of the FAISS index against exact search on the same
         vectors, and an efSearch sweep where the index is HNSW.
memory   Resident memory of a loaded index (a fresh process, this file run as a script: VmRSS
         after open and a few queries, minus VmRSS before) per million chunks, against the raw
         size of its float32 vectors.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_common import (
    DIMENSION,
    folder_bytes,
    gigabytes,
    load_average,
    log,
    percentile,
    rss_bytes,
    timed,
    verdict,
)
from bench_corpus import (
    PrecomputedQueryEmbedder,
    SyntheticCorpus,
    build_synthetic,
    exact_top,
    synthetic_settings,
)

from rag.retrieve import DEFAULT_FUSION


def bench_size(
    n_chunks: int, work: Path, n_queries: int, rebuild: bool, measure_memory: bool
) -> dict[str, Any]:
    import faiss

    from rag.index.store import Index
    from rag.index.vectors import HNSW
    from rag.retrieve import retrieve

    log(f"synthetic corpus of {n_chunks:,} chunks: generating vectors")
    corpus = SyntheticCorpus(n_chunks)
    folder = work / f"synthetic-{n_chunks}"
    built = build_synthetic(corpus, folder, rebuild)
    queries = corpus.queries(n_queries, seed=11)
    embedder = PrecomputedQueryEmbedder()
    embedder.query_vectors = dict(queries)
    result: dict[str, Any] = {"chunks": n_chunks, "build": built, "queries": len(queries)}
    with Index.open(folder, synthetic_settings(folder), embedder=embedder) as index:
        row_ids = index._all_row_ids()  # insertion order: row i holds corpus.vectors[i]
        if len(row_ids) != n_chunks:
            raise RuntimeError(f"{folder} holds {len(row_ids)} chunks, expected {n_chunks}")
        vectors_index = index._searchers()[0]
        result["faiss_index"] = vectors_index.describe()

        def hybrid(text: str) -> list:
            return retrieve(index, text, mode="hybrid", k=10)

        for text, _ in queries:  # warm: FAISS, BM25 pages, SQLite cache
            hybrid(text)
        hybrid_ms = [timed(lambda t=text: hybrid(t)).wall * 1000 for text, _ in queries]
        dense_ms = [
            timed(lambda v=vector: index.search_dense(v, 50)).wall * 1000 for _, vector in queries
        ]
        lexical_ms = [
            timed(lambda t=text: index.search_lexical(t, 50)).wall * 1000 for text, _ in queries
        ]
        result["load"] = load_average()
        result["hybrid_p50_ms"] = percentile(hybrid_ms, 50)
        result["hybrid_p95_ms"] = percentile(hybrid_ms, 95)
        result["dense_p50_ms"] = percentile(dense_ms, 50)
        result["lexical_p50_ms"] = percentile(lexical_ms, 50)
        hits = [hybrid(text) for text, _ in queries[:20]]
        result["hits_per_query"] = statistics.mean(len(found) for found in hits)

        query_matrix = np.stack([vector for _, vector in queries])
        exact = row_ids[exact_top(corpus.vectors, query_matrix, 10)]

        def recall() -> float:
            found = [{row for row, _ in index.search_dense(vector, 10)} for _, vector in queries]
            return float(
                np.mean([len(hit & set(truth.tolist())) / 10 for hit, truth in zip(found, exact)])
            )

        result["recall_at_10"] = recall()
        if vectors_index.kind == HNSW:
            hnsw = faiss.downcast_index(faiss.downcast_index(vectors_index._index).index).hnsw
            default_ef = hnsw.efSearch
            sweep = []
            for ef in (32, 64, 128, 256):
                hnsw.efSearch = ef
                dense = [
                    timed(lambda v=vector: index.search_dense(v, 10)).wall * 1000
                    for _, vector in queries
                ]
                sweep.append(
                    {
                        "ef_search": ef,
                        "recall_at_10": recall(),
                        "dense_p50_ms": percentile(dense, 50),
                    }
                )
            hnsw.efSearch = default_ef
            result["ef_sweep"] = sweep
    result["disk_bytes"] = folder_bytes(folder)
    if measure_memory:
        result["memory"] = probe_memory(folder, queries[:20])
    log(
        f"{n_chunks:,}: hybrid p50 {result['hybrid_p50_ms']:.1f} ms, p95 "
        f"{result['hybrid_p95_ms']:.1f} ms, recall@10 {result['recall_at_10']:.3f}"
    )
    return result


def probe_memory(folder: Path, queries: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """VmRSS of a fresh process before and after opening `folder` and running `queries`."""
    query_file = folder.parent / f"{folder.name}-probe-queries.npz"
    np.savez(
        query_file,
        texts=np.array([text for text, _ in queries]),
        vectors=np.stack([vector for _, vector in queries]),
    )
    completed = subprocess.run(
        [sys.executable, __file__, str(folder), str(query_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    query_file.unlink(missing_ok=True)
    if completed.returncode != 0:
        raise RuntimeError(f"memory probe failed: {completed.stderr.strip()[-500:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_memory_probe(folder: Path, query_file: Path) -> None:
    """(In the probe subprocess.) Print one JSON line: RSS before and after a loaded index."""
    import bm25s  # noqa: F401  (imports count before the baseline, not as the index's memory)
    import faiss  # noqa: F401

    from rag.index.store import Index
    from rag.retrieve import retrieve

    saved = np.load(query_file)
    embedder = PrecomputedQueryEmbedder()
    embedder.query_vectors = dict(zip(saved["texts"].tolist(), saved["vectors"]))
    before = rss_bytes()
    index = Index.open(folder, synthetic_settings(folder), embedder=embedder)
    opened = rss_bytes()
    for text in embedder.query_vectors:
        retrieve(index, text, mode="hybrid", k=10)
    after = rss_bytes()
    print(
        json.dumps(
            {
                "rss_before": before,
                "rss_opened": opened,
                "rss_after": after,
                "chunks": index.chunk_count,
            }
        )
    )


def render(sizes: list[dict[str, Any]]) -> list[str]:
    """The latency and recall table, each index's shape, efSearch sweeps, then the memory
    table when the sizes were probed."""
    lines = [
        "## Retrieval latency and recall (synthetic chunks)",
        "",
        (
            "Hybrid retrieval through `rag.retrieve.retrieve` (k=10, 50 candidates per "
            f"retriever, fusion {DEFAULT_FUSION.describe()}, per-document limit, SQLite look-up "
            "of the hits), warm, one query "
            "at a time. The query vector is precomputed: add the query embedding time above "
            "for a question typed by a user. Dense and lexical columns time "
            "`Index.search_dense` / `search_lexical` alone (50 candidates). Recall@10: the "
            "index's FAISS top 10 against exact inner-product search over the same vectors. "
            "Targets: p50 < 20 ms at 100k, < 50 ms at 1M; recall@10 >= 0.95."
        ),
        "",
        (
            "| chunks | FAISS | hybrid p50 | hybrid p95 | dense p50 | lexical p50 "
            "| recall@10 | target | build | load avg |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sizes:
        target = {100_000: 20.0, 1_000_000: 50.0}.get(row["chunks"])
        met = row["recall_at_10"] >= 0.95 and (target is None or row["hybrid_p50_ms"] < target)
        build = row["build"]
        build_text = (
            "reused"
            if build.get("reused") and "build_wall_s" not in build
            else f"{build['build_wall_s']:.0f} s wall, {build['build_cpu_s']:.0f} CPU s"
            + (" (earlier run)" if build.get("reused") else "")
        )
        kind = "HNSW" if "HNSW" in row["faiss_index"] else "exact"
        lines.append(
            f"| {row['chunks']:,} | {kind} | {row['hybrid_p50_ms']:.1f} ms "
            f"| {row['hybrid_p95_ms']:.1f} ms | {row['dense_p50_ms']:.1f} ms "
            f"| {row['lexical_p50_ms']:.1f} ms | {row['recall_at_10']:.3f} "
            f"| {verdict(met)}{'' if target else ' (recall only)'} | {build_text} "
            f"| {row['load']} |"
        )
    lines.append("")
    for row in sizes:
        lines.append(
            f"- {row['chunks']:,} chunks: `{row['faiss_index']}`, "
            f"{row['build']['documents']:,} documents, {row['queries']} queries, "
            f"{gigabytes(row['disk_bytes'])} on disk."
        )
    for row in sizes:
        if row.get("ef_sweep"):
            lines += [
                "",
                f"HNSW efSearch sweep at {row['chunks']:,} chunks (dense search alone, k=10):",
                "",
                "| efSearch | recall@10 | dense p50 |",
                "|---|---|---|",
            ]
            lines += [
                f"| {s['ef_search']} | {s['recall_at_10']:.3f} | {s['dense_p50_ms']:.2f} ms |"
                for s in row["ef_sweep"]
            ]
    lines.append("")
    memory_rows = [row for row in sizes if row.get("memory")]
    if memory_rows:
        lines += [
            "## Memory of a loaded index",
            "",
            (
                "A fresh process opens the index and runs 20 hybrid queries; resident memory "
                "(VmRSS) after, minus before opening, scaled to a million chunks. Raw vectors: "
                "chunks x 384 x 4 bytes (1.536 GB per million). BM25 is memory-mapped, so only "
                "the pages the queries touched count."
            ),
            "",
            (
                "| chunks | FAISS | RSS growth | per million chunks | raw vectors per million "
                "| ratio |"
            ),
            "|---|---|---|---|---|---|",
        ]
        for row in memory_rows:
            grown = row["memory"]["rss_after"] - row["memory"]["rss_before"]
            per_million = grown / row["chunks"] * 1_000_000
            raw = DIMENSION * 4 * 1_000_000
            kind = "HNSW" if "HNSW" in row["faiss_index"] else "exact"
            lines.append(
                f"| {row['chunks']:,} | {kind} | {gigabytes(grown)} | {gigabytes(per_million)} "
                f"| {gigabytes(raw)} | {per_million / raw:.2f} |"
            )
        lines.append("")
    return lines


if __name__ == "__main__":  # the memory probe's fresh process: FOLDER QUERY_FILE
    run_memory_probe(Path(sys.argv[1]), Path(sys.argv[2]))
