"""The synthetic corpus of the latency and memory sections (evals/bench_latency.py, and
evals/scale_bench.py): clustered unit vectors and Zipfian medical-ish text at any size, the
stand-in embedder that knows its queries' vectors, building an index of it with
rag.ingest.pipeline.ingest_vectors (no model), and exact search to score approximate search against."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import DIMENSION, load_average, log, timed

from rag.config import Settings

GENERATOR_VERSION = "clustered-zipf-v1"  # bump when the synthetic corpus changes


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
        """(Document, its Chunks, their vectors) in order, for rag.ingest.pipeline.ingest_vectors."""
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


def synthetic_settings(folder: Path) -> Settings:
    return Settings().merged({"index": str(folder)})


def build_synthetic(corpus: SyntheticCorpus, folder: Path, rebuild: bool) -> dict[str, Any]:
    """The synthetic index at `folder`, built with rag.ingest.pipeline.ingest_vectors unless a complete one
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
