"""The scale path measured: Ray engine and Milvus backend against the local ones, on this machine.

    .venv/bin/python evals/scale_bench.py --sections medquad        # both engines over MedQuAD
    .venv/bin/python evals/scale_bench.py --sections latency --sizes 10000,100000,1000000
    .venv/bin/python evals/scale_bench.py --sections ann            # vector index types at 10^6
    .venv/bin/python evals/scale_bench.py --quick                   # a smoke run, small inputs

Sections (each writes evals/results/scale-<section>.json; `--report` renders them all into
evals/results/scale.md):

medquad  The MedQuAD corpus (5,476 pages, ../shared/data/medquad) ingested twice from scratch:
         the local engine into the local backend, and the Ray engine (a local Ray of
         --ray-cpus CPUs) into Milvus Lite. Throughput of each as a ratio to the raw embedder
         (`embed_passages`, same batch size, on a fixed sample of the corpus's passages, timed
         before and after each run in the same process). The other two engine/backend pairs
         are then made from those vectors without embedding again (Ray's vectors into a local
         index, the local engine's into Milvus), and heldout retrieval (nDCG@10 etc., all three
         modes) is run on all four pairs, with each question embedded once for all.
latency  p50 / p95 of a hybrid retrieval (rag.retrieve.retrieve, k=10) on each backend at each
         size, over the synthetic clustered vectors and Zipfian text of evals/bench.py (loaded
         with ingest_vectors: no model), and resident memory per million chunks (a fresh
         process opens the index and runs 20 queries). Milvus is Milvus Lite, in-process.
ann      Recall@10 against exact search, query time and bytes per vector of the vector index
         types a Milvus server offers (IVF_FLAT, IVF_SQ8, IVF_PQ; HNSW from evals/bench.py's
         run) on 10^6 synthetic vectors, built with FAISS, the library Milvus's Knowhere wraps
         for them, with Milvus's parameter names.

The machine is shared: absolute times are inflated by the load (printed beside each figure);
ratios measured within one run much less so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "evals"))

import bench_common  # evals/bench_common.py: timing and memory helpers
import bench_corpus  # evals/bench_corpus.py: the synthetic corpus of evals/bench.py
from bench_common import load_average, log, percentile, rss_bytes, timed

from rag.config import Settings

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
SECTIONS = ("medquad", "latency", "ann")


# ---- medquad: both engines, both backends --------------------------------------------------


def raw_rate(embedder: Any, passages: list[str]) -> float:
    """Passages per second of the bare model over `passages` (one call, after a warm-up)."""
    return len(passages) / timed(lambda: embedder.embed_passages(passages)).wall


def bench_medquad(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from rag.evaluate.gold import read_gold
    from rag.evaluate.retrieval import evaluate_retrieval
    from rag.index.embedder import load_embedder
    from rag.index.milvus import MilvusIndex
    from rag.index.store import Index
    from rag.ingest.chunking import chunk_document, passage_for_embedding
    from rag.ingest.loaders import load_paths
    from rag.ingest.pipeline import ingest, ingest_vectors
    from rag.ingest.ray_engine import ingest_on_ray

    corpus = DATA / "medquad" / "corpus.jsonl"
    documents = [item for item in load_paths([corpus]) if hasattr(item, "id")]
    if args.quick:
        documents = documents[:150]
    elif args.pages:
        # A fixed random sample of pages (seeded), for a machine too busy for all 5,476.
        chosen = np.sort(np.random.default_rng(1).permutation(len(documents))[: args.pages])
        documents = [documents[i] for i in chosen]
    keep = {document.id for document in documents}
    base = Settings().merged({"ingest": {"cpus": args.ray_cpus}})
    embedder = load_embedder(base.embedder)
    passages = [
        passage_for_embedding(document.title, chunk.section, chunk.text)
        for document in documents
        for chunk in chunk_document(document, base.chunking, embedder.count_tokens)
    ]
    sample = [passages[i] for i in np.random.default_rng(3).permutation(len(passages))[: args.raw_sample]]
    embedder.embed_passages(sample[:64])  # warm-up
    log(f"medquad: {len(documents)} pages, {len(passages)} passages; raw sample {len(sample)}")
    result: dict[str, Any] = {"pages": len(documents), "chunks": len(passages), "runs": {}}

    raw_cpu = timed(lambda: embedder.embed_passages(sample)).cpu / len(sample)

    def engine_run(name: str, run: Callable[[], Any]) -> None:
        before = raw_rate(embedder, sample)
        cpu_before = tree_cpu_seconds()
        done = timed(run)
        cpu = tree_cpu_seconds() - cpu_before
        after = raw_rate(embedder, sample)
        raw = (before + after) / 2
        rate = done.result.chunks_embedded / done.wall
        result["runs"][name] = {
            "cpu_s_per_chunk": cpu / max(1, done.result.chunks_embedded),
            "raw_cpu_s_per_chunk": raw_cpu,
            "ratio_cpu": raw_cpu / (cpu / max(1, done.result.chunks_embedded)),
            "chunks": done.result.chunks_embedded,
            "seconds": done.wall,
            "chunks_per_s": rate,
            "raw_chunks_per_s": raw,
            "raw_runs": [before, after],
            "ratio": rate / raw,
            "load": load_average(),
        }
        log(f"{name}: {rate:.1f} chunks/s, raw {raw:.1f}/s, ratio {rate / raw:.3f}")

    local_folder = work / "medquad-local-local"
    milvus_uri = work / "medquad-ray-milvus.db"
    shutil.rmtree(local_folder, ignore_errors=True)
    shutil.rmtree(milvus_uri, ignore_errors=True)
    local_settings = base.merged({"index": str(local_folder)})
    milvus_settings = base.merged(
        {"index": str(work), "index_store": {"backend": "milvus", "uri": str(milvus_uri)}}
    )
    local_index = Index.open(local_folder, local_settings, create=True, embedder=embedder)
    milvus_index = MilvusIndex.open(milvus_settings, create=True, embedder=embedder)
    # A Ray started here (ingest_on_ray reuses it) outlives the run, so the CPU time of its
    # worker processes can be read after it.
    import ray

    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
    engine_run(
        "ray engine -> milvus backend",
        lambda: ingest_on_ray(milvus_index, milvus_settings, [subset_file(documents, work, corpus)], progress=False),
    )
    # Ray first: on a full run its failure shows after one embedding pass, not two.
    engine_run("local engine -> local backend", lambda: ingest(local_index, documents, progress=False))
    partial(result)

    # The other two pairs, from the vectors just made.
    ray_local_folder = work / "medquad-ray-local"
    shutil.rmtree(ray_local_folder, ignore_errors=True)
    ray_local = Index.open(ray_local_folder, base.merged({"index": str(ray_local_folder)}), create=True, embedder=embedder)
    copying = timed(lambda: ingest_vectors(ray_local, rows_from_milvus(milvus_index, documents)))
    log(f"ray vectors -> local backend in {copying.wall:.0f}s")
    local_milvus_uri = work / "medquad-local-milvus.db"
    shutil.rmtree(local_milvus_uri, ignore_errors=True)
    local_milvus = MilvusIndex.open(
        base.merged({"index": str(work), "index_store": {"backend": "milvus", "uri": str(local_milvus_uri)}}),
        create=True,
        embedder=embedder,
    )
    writing = timed(lambda: ingest_vectors(local_milvus, rows_from_local(local_folder, documents)))
    result["milvus_write_chunks_per_s"] = len(passages) / writing.wall
    log(f"local vectors -> milvus backend in {writing.wall:.0f}s")
    result["vectors"] = compare_vectors(local_folder, ray_local_folder)

    questions = [q for q in read_gold(DATA / "medquad" / "heldout.jsonl") if set(q.relevant_doc_ids) <= keep]
    if args.quick:
        questions = questions[:100]
    elif args.questions and len(questions) > args.questions:
        # A fixed random sample (seeded) when Milvus Lite's query time is too much for all of them.
        chosen = np.sort(np.random.default_rng(5).permutation(len(questions))[: args.questions])
        questions = [questions[i] for i in chosen]
    cache: dict[str, np.ndarray] = {}
    pairs = {
        "local engine, local backend": local_index,
        "ray engine, milvus backend": milvus_index,
        "ray engine, local backend": ray_local,
        "local engine, milvus backend": local_milvus,
    }
    result["retrieval"] = {}
    for name, index in pairs.items():
        report = evaluate_retrieval(
            SharedQueryVectors(index, cache), DATA / "medquad" / "heldout.jsonl", questions=questions
        )
        result["retrieval"][name] = {
            summary.mode: {**summary.metrics, "seconds": summary.seconds} for summary in report.summaries
        }
        log(f"{name}: " + ", ".join(f"{s.mode} nDCG@10 {s.metrics['ndcg@10']:.4f}" for s in report.summaries))
    result["questions"] = len(questions)
    return result


def partial(result: dict[str, Any]) -> None:
    """The throughput figures, kept before the long evaluation in case it does not finish."""
    (RESULTS / "scale-medquad-partial.json").write_text(json.dumps(result, indent=1, default=float))


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every live process under it (a local
    Ray's GCS, raylet and workers included)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def subset_file(documents: list, work: Path, corpus: Path) -> Path:
    """The corpus file itself, or (quick runs) a JSONL of just `documents`."""
    if len(documents) == sum(1 for _ in corpus.open(encoding="utf-8")):
        return corpus
    path = work / "medquad-subset.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for d in documents:
            record = {"id": d.id, "title": d.title, "text": d.text, "source": d.source, "year": d.year, "url": d.url, "doi": d.doi}
            out.write(json.dumps(record) + "\n")
    return path


class SharedQueryVectors:
    """An index whose embedder remembers each question's vector across indexes."""

    def __init__(self, index: Any, cache: dict[str, np.ndarray]) -> None:
        self._index, self._cache, self.embedder = index, cache, self

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._cache:
            self._cache[text] = self._index.embedder.embed_query(text)
        return self._cache[text]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def rows_from_milvus(index: Any, documents: list) -> Any:
    """(document, chunks, vectors) of every document, read back from a Milvus index."""
    from rag.types import Chunk

    by_document: dict[str, list[dict]] = defaultdict(list)
    fields = ["chunk_id", "doc_id", "text", "section", "position", "n_tokens", "vector"]
    for row in index._iterate(index._chunks, fields):
        by_document[row["doc_id"]].append(row)
    for document in documents:
        rows = sorted(by_document.get(document.id, []), key=lambda row: row["position"])
        chunks = [
            Chunk(id=r["chunk_id"], doc_id=r["doc_id"], text=r["text"], section=r["section"], position=int(r["position"]), n_tokens=int(r["n_tokens"]))
            for r in rows
        ]
        vectors = np.array([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), -1)
        yield document, chunks, vectors


def rows_from_local(folder: Path, documents: list) -> Any:
    """(document, chunks, vectors) of every document, read back from a local index."""
    import sqlite3

    from rag.types import Chunk

    by_document: dict[str, list[tuple]] = defaultdict(list)
    with sqlite3.connect(folder / "chunks.sqlite") as connection:
        for record in connection.execute(
            "SELECT chunk_id, doc_id, text, section, position, n_tokens, vector FROM chunks"
        ):
            by_document[record[1]].append(record)
    for document in documents:
        records = sorted(by_document.get(document.id, []), key=lambda r: r[4])
        chunks = [Chunk(id=r[0], doc_id=r[1], text=r[2], section=r[3], position=r[4], n_tokens=r[5]) for r in records]
        vectors = np.array([np.frombuffer(r[6], dtype=np.float32) for r in records]).reshape(len(records), -1)
        yield document, chunks, vectors


def compare_vectors(first: Path, second: Path) -> dict[str, Any]:
    import sqlite3

    def read(folder: Path) -> dict[str, np.ndarray]:
        with sqlite3.connect(folder / "chunks.sqlite") as connection:
            return {c: np.frombuffer(v, dtype=np.float32) for c, v in connection.execute("SELECT chunk_id, vector FROM chunks")}

    a, b = read(first), read(second)
    common = sorted(set(a) & set(b))
    differences = [float(np.abs(a[c] - b[c]).max()) for c in common]
    return {
        "same_chunk_ids": set(a) == set(b),
        "chunks": len(common),
        "max_abs_difference": max(differences, default=0.0),
        "min_cosine": min((float(a[c] @ b[c]) for c in common), default=1.0),
    }


# ---- latency and memory per backend ---------------------------------------------------------


def milvus_settings(uri: Path) -> Settings:
    return Settings().merged({"index": str(uri.parent), "index_store": {"backend": "milvus", "uri": str(uri)}})


def build_milvus(corpus: Any, uri: Path, rebuild: bool) -> dict[str, Any]:
    from rag.index.milvus import MilvusIndex
    from rag.ingest.pipeline import ingest_vectors

    marker = uri.with_suffix(".json")
    if not rebuild and marker.is_file():
        built = json.loads(marker.read_text())
        if built.get("chunks") == corpus.n_chunks and built.get("generator") == bench_corpus.GENERATOR_VERSION:
            return {**built, "reused": True}
    shutil.rmtree(uri, ignore_errors=True)
    log(f"milvus: writing {corpus.n_chunks:,} synthetic chunks into {uri}")
    with MilvusIndex.open(milvus_settings(uri), create=True, embedder=bench_corpus.PrecomputedQueryEmbedder()) as index:
        building = timed(lambda: ingest_vectors(index, corpus.documents(), rows_per_commit=20_000))
    built = {"generator": bench_corpus.GENERATOR_VERSION, "chunks": corpus.n_chunks, "build_wall_s": building.wall, "build_cpu_s": building.cpu, "load": load_average()}
    marker.write_text(json.dumps(built))
    return {**built, "reused": False}


def time_queries(index: Any, queries: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    from rag.retrieve import retrieve

    def hybrid(text: str) -> list:
        return retrieve(index, text, mode="hybrid", k=10)

    for text, _ in queries[:10]:
        hybrid(text)
    hybrid_ms = [timed(lambda t=text: hybrid(t)).wall * 1000 for text, _ in queries]
    dense_ms = [timed(lambda v=vector: index.search_dense(v, 50)).wall * 1000 for _, vector in queries]
    lexical_ms = [timed(lambda t=text: index.search_lexical(t, 50)).wall * 1000 for text, _ in queries]
    return {
        "hybrid_p50_ms": percentile(hybrid_ms, 50),
        "hybrid_p95_ms": percentile(hybrid_ms, 95),
        "dense_p50_ms": percentile(dense_ms, 50),
        "lexical_p50_ms": percentile(lexical_ms, 50),
        "load": load_average(),
    }


def bench_latency(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from rag.index.milvus import MilvusIndex
    from rag.index.store import Index

    sizes = [int(size) for size in args.sizes.split(",")]
    local_sizes = {int(size) for size in args.local_sizes.split(",")} if args.local_sizes else set(sizes)
    results = []
    for n_chunks in sizes:
        corpus = bench_corpus.SyntheticCorpus(n_chunks)
        queries = corpus.queries(args.queries, seed=11)
        embedder = bench_corpus.PrecomputedQueryEmbedder()
        embedder.query_vectors = dict(queries)
        row: dict[str, Any] = {"chunks": n_chunks, "queries": len(queries)}
        if n_chunks in local_sizes:
            folder = work / f"synthetic-{n_chunks}"
            row["local_build"] = bench_corpus.build_synthetic(corpus, folder, args.rebuild)
            with Index.open(folder, bench_corpus.synthetic_settings(folder), embedder=embedder) as index:
                row["local"] = time_queries(index, queries)
            row["local_memory"] = probe(["local", str(folder)], queries[:20], work)
            log(f"local {n_chunks:,}: {row['local']}")
        uri = work / f"synthetic-{n_chunks}.milvus.db"
        row["milvus_build"] = build_milvus(corpus, uri, args.rebuild)
        with MilvusIndex.open(milvus_settings(uri), embedder=embedder) as index:
            row["milvus"] = time_queries(index, queries)
            exact = bench_corpus.exact_top(corpus.vectors, np.stack([v for _, v in queries]), 10)
            found = [[row_id for row_id, _ in index.search_dense(vector, 10)] for _, vector in queries[:50]]
            row["milvus_recall_at_10"] = recall_by_chunk(index, found, exact[:50], corpus)
        row["milvus_memory"] = probe(["milvus", str(uri)], queries[:20], work)
        log(f"milvus {n_chunks:,}: {row['milvus']}, memory {row['milvus_memory']}")
        row["milvus_disk_bytes"] = bench_common.folder_bytes(uri)
        results.append(row)
    return {"sizes": results}


def recall_by_chunk(index: Any, found: list[list[int]], exact: np.ndarray, corpus: Any) -> float:
    """Recall@10 of Milvus's top 10 against exact search, compared by chunk id (position i of
    the synthetic corpus is chunk i in document order)."""
    chunk_ids: list[str] = []
    for document, chunks, _ in corpus.documents():
        chunk_ids.extend(chunk.id for chunk in chunks)
    scores = []
    for rows, truth in zip(found, exact):
        hits = {hit.chunk_id for hit in index.hits([(row, 0.0) for row in rows])}
        scores.append(len(hits & {chunk_ids[i] for i in truth}) / 10)
    return float(np.mean(scores))


def probe(target: list[str], queries: list[tuple[str, np.ndarray]], work: Path) -> dict[str, Any]:
    """VmRSS growth of a fresh process that opens the index and runs `queries`."""
    query_file = work / "probe-queries.npz"
    np.savez(query_file, texts=np.array([t for t, _ in queries]), vectors=np.stack([v for _, v in queries]))
    completed = subprocess.run(
        [sys.executable, __file__, "--probe", *target, str(query_file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        raise RuntimeError(f"memory probe failed: {completed.stderr.strip()[-800:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_probe(kind: str, location: str, query_file: str) -> None:
    from rag.index.milvus import MilvusIndex
    from rag.index.store import Index
    from rag.retrieve import retrieve

    data = np.load(query_file)
    embedder = bench_corpus.PrecomputedQueryEmbedder()
    embedder.query_vectors = {str(t): v for t, v in zip(data["texts"], data["vectors"])}
    before = rss_bytes()
    if kind == "local":
        index = Index.open(Path(location), bench_corpus.synthetic_settings(Path(location)), embedder=embedder)
    else:
        index = MilvusIndex.open(milvus_settings(Path(location)), embedder=embedder)
    for text in embedder.query_vectors:
        retrieve(index, text, mode="hybrid", k=10)
    grown = rss_bytes() - before
    chunks = index.chunk_count
    print(json.dumps({"rss_growth_bytes": grown, "chunks": chunks, "per_million_gb": grown / chunks * 1e6 / 1e9}))


# ---- ann: Milvus vector index types at a million vectors ----------------------------------


def bench_ann(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    n = 20_000 if args.quick else 1_000_000
    corpus = bench_corpus.SyntheticCorpus(n)
    vectors = corpus.vectors
    queries = np.stack([v for _, v in corpus.queries(args.queries, seed=11)])
    exact = bench_corpus.exact_top(vectors, queries, 10)
    nlist = 1024 if not args.quick else 64
    train = vectors[np.random.default_rng(5).permutation(n)[: min(n, 100_000)]]
    dimension = vectors.shape[1]
    specs = {
        "IVF_FLAT": lambda q: faiss.IndexIVFFlat(q, dimension, nlist, faiss.METRIC_INNER_PRODUCT),
        "IVF_SQ8": lambda q: faiss.IndexIVFScalarQuantizer(q, dimension, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT),
        "IVF_PQ m=48": lambda q: faiss.IndexIVFPQ(q, dimension, nlist, 48, 8, faiss.METRIC_INNER_PRODUCT),
        "IVF_PQ m=96": lambda q: faiss.IndexIVFPQ(q, dimension, nlist, 96, 8, faiss.METRIC_INNER_PRODUCT),
    }
    results = []
    for name, make in specs.items():
        quantizer = faiss.IndexFlatIP(dimension)
        index = make(quantizer)
        building = timed(lambda built=index: (built.train(train), built.add(vectors)))
        size = len(faiss.serialize_index(index))
        sweep = []
        for nprobe in (8, 16, 32, 64, 128):
            index.nprobe = nprobe
            faiss.omp_set_num_threads(1)
            times = []
            found = []
            for query in queries:
                took = timed(lambda q=query, searched=index: searched.search(q.reshape(1, -1), 10))
                times.append(took.wall * 1000)
                found.append(took.result[1][0])
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, exact)]))
            sweep.append({"nprobe": nprobe, "recall_at_10": recall, "p50_ms": percentile(times, 50)})
        results.append({
            "index": name, "nlist": nlist, "vectors": n, "bytes": size, "bytes_per_vector": size / n,
            "build_s": building.wall, "sweep": sweep, "load": load_average(),
        })  # fmt: skip
        log(f"ann {name}: {size / n:.0f} B/vector, " + ", ".join(f"nprobe {s['nprobe']}: {s['recall_at_10']:.3f}" for s in sweep))
    return {"vectors": n, "queries": len(queries), "indexes": results}


# ---- report -------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    lines = ["# Scale path: figures measured on this machine", ""]
    lines.append("Made by `evals/scale_bench.py` (see its docstring for the method); docs/scale.md plans with them.")
    for medquad in results.get("medquad", []):
        lines += ["", f"## MedQuAD through both engines ({medquad['pages']:,} pages, {medquad['chunks']:,} chunks)", ""]
        lines += [f"Command: `{medquad['command']}`, started {medquad['started']}.", ""]
        lines += ["Wall: chunks/s against the raw model's chunks/s (timed before and after the run). CPU: the raw model's CPU seconds per chunk against the run's, counting every process of the run (a local Ray's workers, GCS and raylet included).", ""]
        lines += ["| run | chunks/s | raw model chunks/s (before, after) | ratio to raw (wall) | CPU ms per chunk (raw) | ratio to raw (CPU) | wall | load avg |", "|---|---:|---:|---:|---:|---:|---:|---|"]
        for name, run in medquad["runs"].items():
            before, after = run["raw_runs"]
            cpu = f"{run['cpu_s_per_chunk'] * 1000:.0f} ({run['raw_cpu_s_per_chunk'] * 1000:.0f})" if "cpu_s_per_chunk" in run else "-"
            ratio_cpu = f"{run['ratio_cpu']:.3f}" if "ratio_cpu" in run else "-"
            if run.get("ratio_cpu", 0.0) > 1.5:
                # Less CPU than the bare model needs: the workers' time was not counted (a
                # worker that exited before the reading), so there is no figure.
                cpu, ratio_cpu = "not captured", "-"
            lines.append(f"| {name} | {run['chunks_per_s']:.1f} | {run['raw_chunks_per_s']:.1f} ({before:.1f}, {after:.1f}) | {run['ratio']:.3f} | {cpu} | {ratio_cpu} | {run['seconds']:.0f} s | {run['load']} |")
        vectors = medquad["vectors"]
        lines += ["", f"Vectors, Ray engine against local engine: same chunk ids {vectors['same_chunk_ids']}, {vectors['chunks']:,} chunks, largest difference in any component {vectors['max_abs_difference']:.2e}, lowest cosine {vectors['min_cosine']:.6f}.", f"Writing {medquad['chunks']:,} embedded chunks into Milvus Lite: {medquad['milvus_write_chunks_per_s']:.0f} chunks/s."]
        lines += ["", f"Heldout retrieval, {medquad['questions']:,} questions (../shared/data/medquad/heldout.jsonl), document level:", ""]
        lines += ["| engine, backend | mode | Recall@1 | Recall@10 | MRR@10 | nDCG@10 |", "|---|---|---:|---:|---:|---:|"]
        for pair, modes in medquad["retrieval"].items():
            for mode, m in modes.items():
                lines.append(f"| {pair} | {mode} | {m['recall@1']:.4f} | {m['recall@10']:.4f} | {m['mrr@10']:.4f} | {m['ndcg@10']:.4f} |")
    latency = results.get("latency")
    if latency:
        lines += ["", "## Query latency and memory per backend (synthetic chunks)", ""]
        lines += ["Milvus is Milvus Lite (the pure-Python engine, in-process, FLAT vectors); memory is the resident growth of a fresh process opening the index and running 20 hybrid queries, and per 10^6 chunks that growth scaled (fixed costs included).", ""]
        lines += ["| chunks | backend | hybrid p50 | hybrid p95 | dense p50 | lexical p50 | memory | per 10^6 chunks | build | load avg |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for row in latency["sizes"]:
            for backend in ("local", "milvus"):
                if backend not in row:
                    continue
                q, mem, build = row[backend], row[f"{backend}_memory"], row[f"{backend}_build"]
                lines.append(f"| {row['chunks']:,} | {backend} | {q['hybrid_p50_ms']:.1f} ms | {q['hybrid_p95_ms']:.1f} ms | {q['dense_p50_ms']:.1f} ms | {q['lexical_p50_ms']:.1f} ms | {mem['rss_growth_bytes'] / 1e9:.2f} GB | {mem['per_million_gb']:.2f} GB | {build['build_wall_s']:.0f} s | {q['load']} |")
        recalls = ", ".join(f"{row['chunks']:,}: {row['milvus_recall_at_10']:.3f}" for row in latency["sizes"] if "milvus_recall_at_10" in row)
        lines += ["", f"Milvus FLAT recall@10 against exact search (50 queries, compared by chunk id): {recalls}."]
    ann = results.get("ann")
    if ann:
        lines += ["", f"## Vector index types at {ann['vectors']:,} vectors (FAISS, Milvus's parameter names)", ""]
        lines += ["| index | bytes per vector | per 10^7 chunks | build | nprobe: recall@10 (p50 ms, one query, one thread) |", "|---|---:|---:|---:|---|"]
        for row in ann["indexes"]:
            sweep = "; ".join(f"{s['nprobe']}: {s['recall_at_10']:.3f} ({s['p50_ms']:.1f})" for s in row["sweep"])
            lines.append(f"| {row['index']} nlist={row['nlist']} | {row['bytes_per_vector']:.0f} | {row['bytes_per_vector'] * 1e7 / 1e9:.1f} GB | {row['build_s']:.0f} s | {sweep} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--local-sizes", default="10000,100000", help="sizes also built locally (evals/bench.py has 10^6)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--raw-sample", type=int, default=2000)
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--pages", type=int, default=0, help="medquad: a seeded sample of pages")
    parser.add_argument("--questions", type=int, default=0, help="medquad: a seeded sample of heldout questions")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--work", default="/tmp/rag-scale-bench")
    parser.add_argument("--report", action="store_true", help="only render scale.md from the JSON files")
    parser.add_argument("--probe", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        run_probe(*args.probe)
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    if args.quick:
        args.sizes, args.local_sizes, args.queries, args.raw_sample = "2000", "2000", 30, 200
    if not args.report:
        for section in args.sections.split(","):
            started = time.time()
            result = {"medquad": bench_medquad, "latency": bench_latency, "ann": bench_ann}[section](work, args)
            result.update(command=" ".join(sys.argv), started=time.strftime("%Y-%m-%d %H:%M", time.localtime(started)), machine=bench_common.machine_description())
            path = RESULTS / f"scale-{section}{suffix}.json"
            if section == "latency" and path.is_file():
                # Sizes measured by an earlier run (another --sizes) are kept beside the new ones.
                measured = {row["chunks"] for row in result["sizes"]}
                earlier = [row for row in json.loads(path.read_text())["sizes"] if row["chunks"] not in measured]
                result["sizes"] = sorted(earlier + result["sizes"], key=lambda row: row["chunks"])
            path.write_text(json.dumps(result, indent=1, default=float))
            (RESULTS / "scale-medquad-partial.json").unlink(missing_ok=True)  # superseded
    results: dict[str, Any] = {}
    for section in SECTIONS:
        path = RESULTS / f"scale-{section}{suffix}.json"
        if path.is_file():
            results[section] = json.loads(path.read_text())
    # MedQuAD runs kept from earlier (scale-medquad-<name>.json) are shown too, largest first.
    runs = [results["medquad"]] if "medquad" in results else []
    if not suffix:
        runs += [
            json.loads(path.read_text())
            for path in sorted(RESULTS.glob("scale-medquad-*.json"))
            if not path.stem.endswith("-partial")
        ]
    results["medquad"] = sorted(runs, key=lambda run: -run["pages"])
    (RESULTS / f"scale{suffix}.md").write_text(render(results))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
