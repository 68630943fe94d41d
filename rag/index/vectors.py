"""Vectors: FAISS over unit-length embeddings, searched by inner product (= cosine).

Ids in FAISS are the chunk row ids of the SQLite store, so a hit maps straight back to its
chunk. Up to `exact_search_limit` chunks the index is exact (IndexFlatIP); above it, HNSW
(IndexHNSWFlat, inner product), which trades a little recall for sub-linear search. Both sit
inside IndexIDMap2, which keeps our ids and can hand a vector back by id.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

EXACT = "flat"
HNSW = "hnsw"

# HNSW graph: 32 links per node is the usual sweet spot for 384-dim text embeddings.
# efConstruction 100 reached the recall of 200 on clustered 384-dim vectors at half the build
# time (the graph is rebuilt on every change that removes rows, so build time matters).
# efSearch 256: on a million clustered chunks recall@10 against exact search was 0.957 at 128
# and 0.984 at 256, for 0.3 ms more per query, a small share of a hybrid query's time
# (evals/bench.py; evals/results/bench.md).
HNSW_LINKS = 32
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 256
# Below this many allowed rows a filtered HNSW query scores the allowed vectors exactly:
# a graph walk under a very selective filter rarely steps on an allowed node and can come
# back with fewer than k hits, while scoring a few thousand vectors directly takes
# well under a millisecond.
HNSW_EXACT_FILTER_ROWS = 20_000


class VectorIndex:
    """A FAISS index of chunk vectors keyed by chunk row id; searches are thread-safe."""

    def __init__(self, index: faiss.Index, kind: str, dimension: int) -> None:
        self._index = index
        self.kind = kind
        self.dimension = dimension
        self._sorted_row_ids: np.ndarray | None = None

    @classmethod
    def build(
        cls, row_ids: np.ndarray, vectors: np.ndarray, *, dimension: int, exact_search_limit: int
    ) -> VectorIndex:
        """Index `vectors` ((n, dimension) float32, unit rows) under `row_ids` ((n,) int64);
        exact search when n <= exact_search_limit, HNSW above."""
        kind = EXACT if len(row_ids) <= exact_search_limit else HNSW
        if kind == EXACT:
            inner: faiss.Index = faiss.IndexFlatIP(dimension)
        else:
            inner = faiss.IndexHNSWFlat(dimension, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        vector_index = cls(faiss.IndexIDMap2(inner), kind, dimension)
        vector_index.add(row_ids, vectors)
        return vector_index

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read an index written by `save`; raises RuntimeError (from FAISS) when damaged."""
        index = faiss.read_index(str(path))
        inner = faiss.downcast_index(faiss.downcast_index(index).index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            return cls(index, HNSW, index.d)  # read_index returns the owning IndexIDMap2
        return cls(index, EXACT, index.d)  # a downcast proxy would not own it: freed on return

    def save(self, path: Path) -> None:
        """Write to `path` atomically: a reader sees the old file or the new one, never half."""
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        faiss.write_index(self._index, str(partial))
        os.replace(partial, path)

    def copy(self) -> VectorIndex:
        """An independent copy, to change while searches continue on this one (FAISS allows
        concurrent searches but not a search during an add or a removal)."""
        return VectorIndex(faiss.clone_index(self._index), self.kind, self.dimension)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    def describe(self) -> str:
        """The FAISS index type in use, for the manifest."""
        if self.kind == HNSW:
            return (
                f"IndexIDMap2(IndexHNSWFlat, inner product, M={HNSW_LINKS}, "
                f"efConstruction={HNSW_EF_CONSTRUCTION}, efSearch={HNSW_EF_SEARCH})"
            )
        return "IndexIDMap2(IndexFlatIP)"

    def add(self, row_ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(row_ids) == 0:
            return
        self._sorted_row_ids = None
        self._index.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.ascontiguousarray(row_ids, dtype=np.int64),
        )

    def remove(self, row_ids: np.ndarray) -> bool:
        """Drop `row_ids`; False when this index type cannot delete (HNSW: rebuild instead)."""
        if len(row_ids) == 0:
            return True
        if self.kind == HNSW:
            return False
        self._sorted_row_ids = None
        self._index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(row_ids, dtype=np.int64)))
        return True

    def search(
        self, query_vector: np.ndarray, k: int, rows: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` nearest (row id, cosine) pairs to `query_vector`, best first, restricted to
        `rows` when given."""
        query = np.ascontiguousarray(query_vector, dtype=np.float32).reshape(1, -1)
        if query.shape[1] != self.dimension:
            raise ValueError(
                f"query vector has {query.shape[1]} dimensions, the index {self.dimension}"
            )
        if k <= 0 or self.size == 0:
            return []
        with _one_thread():
            return self._search(query, k, rows)

    def _search(
        self, query: np.ndarray, k: int, rows: np.ndarray | None
    ) -> list[tuple[int, float]]:
        if rows is None:
            scores, labels = self._index.search(query, min(k, self.size))
            return _pairs(labels[0], scores[0])
        allowed = np.unique(np.asarray(rows, dtype=np.int64))
        if len(allowed) == 0:
            return []
        if self.kind == HNSW and len(allowed) <= HNSW_EXACT_FILTER_ROWS:
            return self._search_exactly_within(query[0], k, allowed)
        # The selector must outlive the search call, hence the local name.
        selector = faiss.IDSelectorBatch(allowed)
        if self.kind == HNSW:
            parameters = faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, k))
        else:
            parameters = faiss.SearchParameters(sel=selector)
        scores, labels = self._index.search(query, min(k, len(allowed)), params=parameters)
        return _pairs(labels[0], scores[0])

    def _search_exactly_within(
        self, query: np.ndarray, k: int, allowed: np.ndarray
    ) -> list[tuple[int, float]]:
        present = np.intersect1d(allowed, self.row_ids(), assume_unique=True)
        if len(present) == 0:
            return []
        scores = self._index.reconstruct_batch(present) @ query
        best = np.argsort(-scores, kind="stable")[:k]
        return [(int(present[i]), float(scores[i])) for i in best]

    def row_ids(self) -> np.ndarray:
        """Every row id in the index, sorted (computed once per change of the index)."""
        if self._sorted_row_ids is None:
            self._sorted_row_ids = np.sort(faiss.vector_to_array(self._index.id_map))
        return self._sorted_row_ids


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run FAISS single-threaded in this thread for the duration (builds keep every core).

    Splitting one query's scan over OpenMP threads gains little and, on a busy machine, costs
    a great deal: each query waits at a barrier for a second thread to be scheduled (measured
    on 2 loaded cores: 80 ms per query over 10k vectors with two threads, under 1 ms with one).
    Concurrent queries (the web server) still spread over the cores, one per thread. FAISS's
    OpenMP thread count is per calling thread, so this never slows another thread's build.
    """
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def _pairs(labels: np.ndarray, scores: np.ndarray) -> list[tuple[int, float]]:
    # FAISS pads with label -1 when fewer than k vectors qualify.
    return [(int(label), float(score)) for label, score in zip(labels, scores) if label >= 0]
