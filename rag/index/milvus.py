"""The Milvus index backend: the index of rag.index.store kept in two Milvus collections.

Slightly over 500 lines: the backend implements the whole index contract (writes, reads,
search, filters, manifest) for Milvus in one place; connecting and collections are in
milvus_collections.py.

`index.backend = "milvus"` selects it; `index.uri` names a Milvus Lite file (tests, small
installs) or a Milvus Standalone / Distributed endpoint (connecting, and making and checking
the collections: rag.index.milvus_collections). Needs the `rag[scale]` extra. Ingest runs
through rag.ingest.pipeline, the same loop as for the local backend, which writes here with
`writing()`, `write_batch` and `remove_documents`.

<collection>_chunks, one row per chunk:
    id            int64 primary key: the chunk's row id (see `_row_id`)
    chunk_id, doc_id, section, position, text, n_tokens
    content_hash  of the document version the chunk was cut from
    title, source, year, url, doi     the document's citation fields, so a hit needs no join
    source_folded the source casefolded: the --source filter runs in Milvus as a LIKE on it
    vector        the unit-length embedding; FLAT inner product (exact) unless told otherwise
    lexical       the passage's BM25 tokens (rag.index.lexical.tokenize: stopwords dropped,
                  American spelling, Snowball stems), which Milvus's own BM25 function turns
                  into the `sparse` field; a query is tokenized the same way, so both backends
                  score the same terms
<collection>_documents, one row per document: id, citation fields, origin, content hash,
    chunk settings and chunk count (plus a 2-d placeholder vector: Milvus wants one per
    collection). The collection properties record the embedder id, dimension and chunking.

Milvus has no transactions; crash safety comes from the order of writes. A batch first
deletes every chunk of its documents, then inserts their new chunks, then upserts their
document rows. A chunk counts only while its content hash equals its document row's (`hits`
and `chunks_of` drop the others), so a run killed anywhere leaves every document either at
its previous version or at the new one, and the re-run, seeing a different hash, redoes it.
Search, filters and fusion: dense and BM25 candidates come from Milvus (filters applied there),
and hybrid fusion is rag.retrieve's, exactly as for the local backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import numpy as np

from rag.config import Settings

# gRPC (under pymilvus) logs a note each time another library forks (Ray starting workers).
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
from rag.errors import IndexMissingError
from rag.index.backend import DocumentVersion, chunking_key
from rag.index.database import IndexedDocument
from rag.index.embedder import Embedder, embedder_id, load_embedder
from rag.index.lexical import tokenize
from rag.index.milvus_collections import (
    BM25_PARAMETERS,
    VECTOR_INDEXES,
    check_collection,
    connect,
    create_collections,
    describe_location,
    dimension_mismatch,
    milvus_errors,
    milvus_uri,
    release_lite,
)
from rag.index.passage import passage_for_embedding
from rag.types import Chunk, Hit

# Milvus caps a search's limit (topK).
MAX_LIMIT = 16_384
COUNT_SECONDS = 5.0  # how long a chunk count is reused (a retrieval asks for it per question)
_CHUNK_FIELDS = [
    "id", "chunk_id", "doc_id", "content_hash", "text", "section", "position", "n_tokens",
    "title", "source", "year", "url", "doi",
]  # fmt: skip
_DOCUMENT_FIELDS = [
    "id", "title", "source", "year", "url", "doi", "origin", "content_hash", "chunking",
    "n_chunks",
]  # fmt: skip


@dataclass(frozen=True)
class MilvusFilter:
    """The rows a source/year filter allows, as a Milvus boolean expression.

    Stands where the local backend returns an array of row ids (`allowed_rows`): retrieval
    only takes its length and hands it back to the searches, which pass the expression on.
    """

    expression: str
    count: int

    def __len__(self) -> int:
        return self.count


class MilvusIndex:
    """An open Milvus index: search it, read chunks back, and write to it (the ingest
    pipeline, rag.ingest.pipeline, does, through `writing()`).

    The same methods as rag.index.store.Index, so retrieval, answers, evaluation, the CLI and
    the web server work on either. Safe to query from several threads (pymilvus clients are).
    """

    passages_per_commit = 1024  # as rag.index.store.Index: embedded and written per batch
    # Crash safety here is per document (see above), so a document is always written whole.
    writes_documents_in_parts = False

    def __init__(
        self, client: Any, settings: Settings, embedder: Embedder, location: str
    ) -> None:
        self._client = client
        self.settings = settings
        self.embedder = embedder
        self.location = location
        prefix = settings.index_store.collection
        self._chunks = f"{prefix}_chunks"
        self._documents = f"{prefix}_documents"
        self._search_params = VECTOR_INDEXES[settings.index_store.vector_index][1]
        self._count_lock = threading.Lock()
        self._counted: tuple[float, int] | None = None

    # ---- opening -----------------------------------------------------------------------

    @classmethod
    def open(
        cls, settings: Settings, *, create: bool = False, embedder: Embedder | None = None
    ) -> MilvusIndex:
        """Connect to the Milvus at `settings.index_store.uri` and open (or, with `create`,
        make) its collections. Raises RagError naming the URI when Milvus cannot be reached,
        IndexMissingError when there is no collection and `create` is false, and
        IndexMismatchError when the collection was built with another embedder or dimension.
        """
        location = describe_location(settings)
        client = connect(settings)
        store = settings.index_store
        chunks = f"{store.collection}_chunks"
        wanted = embedder.id if embedder is not None else embedder_id(settings.embedder)
        try:
            with milvus_errors(location):
                exists = client.has_collection(chunks)
                if not exists and not create:
                    raise IndexMissingError(
                        f"no index at {location}: build one with `rag ingest PATH` "
                        "(index.backend = milvus)"
                    )
                if exists:
                    check_collection(client, chunks, location, wanted, embedder)
                if embedder is None:
                    embedder = load_embedder(settings.embedder)
                index = cls(client, settings, embedder, location)
                if exists:
                    recorded = int(index._properties().get("rag.dimension", embedder.dimension))
                    if recorded != embedder.dimension:
                        raise dimension_mismatch(location, recorded, embedder)
                else:
                    create_collections(client, index._chunks, index._documents, embedder, settings)
                client.load_collection(index._chunks)
                client.load_collection(index._documents)
        except BaseException:
            client.close()
            release_lite(milvus_uri(settings))
            raise
        return index

    def close(self) -> None:
        """Disconnect; the last index of this process on a Milvus Lite file also stops the
        embedded Lite server, which frees the file for another process."""
        self._client.close()
        release_lite(milvus_uri(self.settings))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _properties(self) -> dict[str, str]:
        return dict(self._client.describe_collection(self._chunks).get("properties") or {})

    # ---- writing (rag.ingest.pipeline) -------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One ingest's writes; on success both collections are flushed, so what was written
        is searchable. Errors from Milvus become one line naming the location."""
        with milvus_errors(self.location):
            yield
            self._client.flush(self._chunks)
            self._client.flush(self._documents)
            self._counted = None

    def write_batch(self, versions: Sequence[DocumentVersion], vectors: np.ndarray) -> None:
        """Replace the documents of `versions`: delete their chunks, insert the new ones
        (`vectors` row i for the i-th chunk in order), then upsert the document rows (the
        order the module docstring relies on)."""
        chunking = chunking_key(self.settings)
        doc_ids = [version.document.id for version in versions]
        self._client.delete(self._chunks, filter=f"doc_id in {_list_literal(doc_ids)}")
        chunk_rows = []
        for version in versions:
            document = version.document
            for chunk in version.chunks:
                passage = passage_for_embedding(document.title, chunk.section, chunk.text)
                chunk_rows.append(
                    {
                        "id": _row_id(version.content_hash, chunk.id),
                        "chunk_id": chunk.id,
                        "doc_id": document.id,
                        "content_hash": version.content_hash,
                        "text": chunk.text,
                        "section": chunk.section,
                        "position": chunk.position,
                        "n_tokens": chunk.n_tokens,
                        "title": document.title,
                        "source": document.source,
                        "source_folded": document.source.casefold(),
                        "year": document.year,
                        "url": document.url or "",
                        "doi": document.doi or "",
                        "vector": vectors[len(chunk_rows)].tolist(),
                        "lexical": " ".join(tokenize(passage)),
                    }
                )
        if len(chunk_rows) != len(vectors):
            raise ValueError(f"{len(vectors)} vectors for {len(chunk_rows)} chunks")
        for start in range(0, len(chunk_rows), 2_000):
            self._client.insert(self._chunks, chunk_rows[start : start + 2_000])
        self._client.upsert(
            self._documents,
            [
                {
                    "id": version.document.id,
                    "title": version.document.title,
                    "source": version.document.source,
                    "year": version.document.year,
                    "url": version.document.url or "",
                    "doi": version.document.doi or "",
                    "origin": version.document.origin,
                    "content_hash": version.content_hash,
                    "chunking": chunking,
                    "n_chunks": len(version.chunks),
                    "placeholder": [0.0, 0.0],
                }
                for version in versions
            ],
        )

    def stored_chunk_ids(self, doc_id: str) -> set[str]:
        """Chunk ids stored for `doc_id` (this backend writes a document whole, so the
        pipeline never resumes inside one; for the protocol's sake)."""
        return {
            row["chunk_id"]
            for row in self._iterate(self._chunks, ["chunk_id"], f"doc_id == {_string(doc_id)}")
        }

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        """Remove these documents and their chunks; returns how many."""
        for start in range(0, len(doc_ids), 1_000):
            some = _list_literal(doc_ids[start : start + 1_000])
            self._client.delete(self._chunks, filter=f"doc_id in {some}")
            self._client.delete(self._documents, filter=f"id in {some}")
        return len(doc_ids)

    def indexed_versions(self) -> dict[str, tuple[str, str]]:
        """Every indexed document as id -> (content hash, chunk settings)."""
        return {
            row["id"]: (row["content_hash"], row["chunking"])
            for row in self._iterate(self._documents, ["id", "content_hash", "chunking"])
        }

    def _iterate(self, collection: str, fields: list[str], expression: str = "") -> Iterator[dict]:
        iterator = self._client.query_iterator(
            collection, batch_size=4_000, filter=expression, output_fields=fields
        )
        try:
            while rows := iterator.next():
                yield from rows
        finally:
            iterator.close()

    # ---- queries -----------------------------------------------------------------------

    def search_dense(
        self, query_vector: np.ndarray, k: int, rows: MilvusFilter | np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` chunks nearest to `query_vector` as (row id, cosine), best first; only
        among `rows` (from `allowed_rows`) when given."""
        vector = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        if len(vector) != self.embedder.dimension:
            raise ValueError(
                f"query vector has {len(vector)} dimensions, the index {self.embedder.dimension}"
            )
        return self._search(
            [vector.tolist()], "vector", k, rows, {"metric_type": "IP", "params": self._search_params}
        )

    def has_word_family(self, word: str) -> bool:
        """Always False: the vocabulary lives in the Milvus server's BM25 field, which answers
        searches but does not list its terms; the coverage gate then treats a word the index
        lacks as unknown, as it did before word families were looked up."""
        return False

    def search_lexical(
        self, query: str, k: int, rows: MilvusFilter | np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` best BM25 matches for `query` as (row id, score), best first; only among
        `rows` when given. Chunks sharing no term with the query are never returned."""
        tokens = tokenize(query)
        if not tokens:
            return []
        scored = self._search([" ".join(tokens)], "sparse", k, rows, {"metric_type": "BM25"})
        # Milvus Lite reports BM25 scores negated (smaller is better), a server positive.
        # Milvus multiplies each term by (k1 + 1), bm25s's Lucene variant does not: dividing
        # it out gives the local backend's scores, which the hybrid blend normalises alike.
        scale = 1.0 + BM25_PARAMETERS["bm25_k1"]
        return [(row, abs(score) / scale) for row, score in scored]

    def _search(
        self,
        data: list[Any],
        field: str,
        k: int,
        rows: MilvusFilter | np.ndarray | None,
        parameters: dict[str, Any],
    ) -> list[tuple[int, float]]:
        if k <= 0 or (rows is not None and len(rows) == 0):
            return []
        with milvus_errors(self.location):
            (found,) = self._client.search(
                self._chunks,
                data=data,
                anns_field=field,
                limit=min(k, MAX_LIMIT),
                filter=_expression(rows),
                output_fields=[],
                search_params=parameters,
            )
        return [(int(hit["id"]), float(hit["distance"])) for hit in found]

    def allowed_rows(
        self, sources: Sequence[str] = (), min_year: int | None = None
    ) -> MilvusFilter | None:
        """The chunks whose document's source contains any of `sources` (ignoring case; in
        Milvus a LIKE, where '%' and '_' in a term are wildcards) and whose year is at least
        `min_year`, as a filter the searches apply in Milvus. None when no filter is given."""
        terms = [term.strip().casefold() for term in sources if term.strip()]
        if not terms and min_year is None:
            return None
        clauses = []
        if terms:
            clauses.append(
                "(" + " or ".join(f"source_folded like {_string('%' + t + '%')}" for t in terms) + ")"
            )
        if min_year is not None:
            clauses.append(f"year >= {int(min_year)}")
        expression = " and ".join(clauses)
        with milvus_errors(self.location):
            (counted,) = self._client.query(
                self._chunks, filter=expression, output_fields=["count(*)"]
            )
        return MilvusFilter(expression, int(counted["count(*)"]))

    def hits(self, scored_rows: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (row id, score) pairs, in the given order with ranks 1..n, carrying the
        document's citation fields. Rows no longer in the index, and chunks of a document
        version that is not (or no longer) the indexed one, are left out."""
        if not scored_rows:
            return []
        with milvus_errors(self.location):
            found = {
                int(row["id"]): row
                for row in self._client.query(
                    self._chunks,
                    filter=f"id in {_list_literal([int(row) for row, _ in scored_rows])}",
                    output_fields=_CHUNK_FIELDS,
                )
            }
            current = self._current_hashes({row["doc_id"] for row in found.values()})
        hits: list[Hit] = []
        for row_id, score in scored_rows:
            record = found.get(int(row_id))
            if record is None or current.get(record["doc_id"]) != record["content_hash"]:
                continue
            hits.append(
                Hit(
                    chunk_id=record["chunk_id"],
                    doc_id=record["doc_id"],
                    text=record["text"],
                    score=float(score),
                    rank=len(hits) + 1,
                    title=record["title"],
                    section=record["section"],
                    source=record["source"],
                    year=record["year"],
                    url=record["url"] or None,
                    doi=record["doi"] or None,
                )
            )
        return hits

    def _current_hashes(self, doc_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(doc_ids)
        if not ids:
            return {}
        return {
            row["id"]: row["content_hash"]
            for row in self._client.query(
                self._documents,
                filter=f"id in {_list_literal(ids)}",
                output_fields=["id", "content_hash"],
            )
        }

    @property
    def chunk_count(self) -> int:
        """Chunks in the collection (re-counted at most every few seconds)."""
        with self._count_lock:
            now = time.monotonic()
            if self._counted is None or now - self._counted[0] > COUNT_SECONDS:
                with milvus_errors(self.location):
                    (row,) = self._client.query(
                        self._chunks, filter="", output_fields=["count(*)"]
                    )
                self._counted = (now, int(row["count(*)"]))
            return self._counted[1]

    @property
    def document_count(self) -> int:
        with milvus_errors(self.location):
            (row,) = self._client.query(self._documents, filter="", output_fields=["count(*)"])
        return int(row["count(*)"])

    def documents(self) -> list[IndexedDocument]:
        """Every indexed document's metadata, ordered by id."""
        with milvus_errors(self.location):
            rows = list(self._iterate(self._documents, _DOCUMENT_FIELDS))
        return sorted(
            (
                IndexedDocument(
                    id=row["id"],
                    title=row["title"],
                    source=row["source"],
                    year=row["year"],
                    url=row["url"] or None,
                    doi=row["doi"] or None,
                    origin=row["origin"],
                    content_hash=row["content_hash"],
                    n_chunks=int(row["n_chunks"]),
                )
                for row in rows
            ),
            key=lambda document: document.id,
        )

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of document `doc_id` in reading order (empty when it is not indexed)."""
        with milvus_errors(self.location):
            current = self._current_hashes([doc_id]).get(doc_id)
            if current is None:
                return []
            rows = self._client.query(
                self._chunks,
                filter=f"doc_id == {_string(doc_id)} and content_hash == {_string(current)}",
                output_fields=["chunk_id", "doc_id", "text", "section", "position", "n_tokens"],
            )
        return [
            Chunk(
                id=row["chunk_id"],
                doc_id=row["doc_id"],
                text=row["text"],
                section=row["section"],
                position=int(row["position"]),
                n_tokens=int(row["n_tokens"]),
            )
            for row in sorted(rows, key=lambda row: row["position"])
        ]

    @property
    def manifest(self) -> dict[str, Any]:
        """What the index holds: embedder, chunk settings, Milvus index types, counts and the
        content hash of every document (the shape of rag.index.store.Index.manifest)."""
        properties = self._properties()
        documents = self.documents()
        return {
            "format": properties.get("rag.format"),
            "backend": "milvus",
            "location": self.location,
            "embedder": {
                "id": properties.get("rag.embedder_id"),
                "dimension": int(properties.get("rag.dimension", 0)),
            },
            "chunking": json.loads(properties.get("rag.chunking", "{}")),
            "settings_fingerprint": self.settings.fingerprint(),
            "vector_index": f"{self.settings.index_store.vector_index}, inner product",
            "lexical": {"library": "milvus BM25", "tokenizer": properties.get("rag.tokenizer")},
            "documents": len(documents),
            "chunks": self.chunk_count,
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "document_hashes": {document.id: document.content_hash for document in documents},
        }


# ---- module helpers ----------------------------------------------------------------------


def _row_id(content_hash: str, chunk_id: str) -> int:
    """A chunk's int64 primary key: a hash of its document version and chunk id, so a changed
    document's chunks get new ids (as the local backend's never-reused row ids) and a re-run
    after a crash writes the same ids again."""
    digest = hashlib.blake2b(f"{content_hash}\x1f{chunk_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # 63 bits: a positive int64


def _string(value: str) -> str:
    """`value` as a Milvus expression string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list_literal(values: Sequence[str | int]) -> str:
    return "[" + ", ".join(str(v) if isinstance(v, int) else _string(v) for v in values) + "]"


def _expression(rows: MilvusFilter | np.ndarray | None) -> str:
    if rows is None:
        return ""
    if isinstance(rows, MilvusFilter):
        return rows.expression
    return f"id in {_list_literal([int(row) for row in np.asarray(rows)])}"
