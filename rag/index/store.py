"""The local index folder: open it, search it, read chunks back, write through it.

Layout of an index folder (default indexes/default):

    chunks.sqlite       source of truth: documents, chunks with their vectors, meta (WAL mode)
                        -> rag.index.database
    vectors.faiss       FAISS index of the chunk vectors      } derived from chunks.sqlite,
    vectors.faiss.json  stamp: database instance, generation, } rebuilt when missing, stale
                        SHA-256 of vectors.faiss and lexical/ } or not matching their checksum
    lexical/            BM25 index with its stamp inside      } -> rag.index.derived
    manifest.json       embedder, chunk settings, FAISS type, counts, per-document hashes,
                        the derived files' checksums (written after every ingest)
    ingest.lock         held by the one process writing (rag.index.database.file_lock)

Ingest is the ingest stage's (rag.ingest.pipeline): it finds what changed, chunks and embeds,
and writes batches through `writing()`, `write_batch` and `remove_documents`. Every write
transaction bumps a generation counter in SQLite; the derived files follow it. The database is
checked with SQLite's quick_check on every ingest and on opening a small index; `verify`
(`rag check-index`) checks everything. Because SQLite commits are atomic and derived files are
replaced by rename, killing an ingest at any moment leaves an index that opens (the next open
removes the killed process's temporary files), and re-running the ingest embeds only what is
missing, even inside a large document, which is committed in batches.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.config import Settings
from rag.errors import IndexMismatchError, IndexMissingError, InputError, RagError
from rag.index.backend import PARTIAL, DocumentVersion, chunking_key
from rag.index.database import (
    DATABASE_FILE,
    LOCK_FILE,
    SCHEMA_VERSION,
    ChunkDatabase,
    IndexedDocument,
    create_database,
    database_errors,
    file_lock,
    read_meta,
)
from rag.index.derived import (
    LEXICAL_FOLDER,
    VECTORS_FILE,
    VECTORS_STAMP_FILE,
    DerivedFiles,
    remove_leftovers,
    write_json_atomic,
)
from rag.index.embedder import Embedder, embedder_id, load_embedder
from rag.index.lexical import TOKENIZER_VERSION, LexicalIndex
from rag.index.vectors import VectorIndex
from rag.types import Chunk, Hit

__all__ = [
    "DATABASE_FILE",
    "LEXICAL_FOLDER",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "PARTIAL",
    "VECTORS_FILE",
    "VECTORS_STAMP_FILE",
    "Index",
    "IndexedDocument",
]

MANIFEST_FILE = "manifest.json"
# Opening an index runs SQLite's quick_check when the database is at most this big (about
# 2 ms per MB here: 15 ms for the demo index); larger ones are checked on ingest and by
# `rag check-index`.
QUICK_CHECK_ON_OPEN_BYTES = 256 * 1024 * 1024


class Index:
    """An open index folder: search it, read chunks back, and write to it (the ingest
    pipeline does, through `writing()`).

    Safe to query from several threads at once (each thread gets its own SQLite connection;
    FAISS and BM25 searches only read). One ingest at a time per folder, across processes.
    """

    # Passages embedded per SQLite transaction. The embedder sorts each transaction's passages
    # by length before batching, so a larger one pads less: on the demo corpus 1024 pads 4%
    # fewer tokens than 256, which kept ingest within 10% of the raw model speed
    # (evals/bench.py). Small enough that a crash loses about a minute of embedding at most.
    passages_per_commit = 1024
    # A document of more passages than one commit is written in parts (rag.ingest.pipeline),
    # recorded under PARTIAL + its hash until the last, so a re-run resumes inside it.
    writes_documents_in_parts = True

    def __init__(self, folder: Path, settings: Settings, embedder: Embedder, instance: str) -> None:
        self.folder = folder
        self.settings = settings
        self.embedder = embedder
        self._database = ChunkDatabase(folder, instance)
        self._derived = DerivedFiles(
            self._database, embedder.dimension, settings.retrieval.exact_search_limit
        )
        self._write_lock = threading.Lock()

    # ---- opening -----------------------------------------------------------------------

    @staticmethod
    def exists(path: str | Path) -> bool:
        """Whether `path` holds an index database (an ingest may have created it)."""
        return (Path(path) / DATABASE_FILE).is_file()

    @classmethod
    def open(
        cls,
        path: str | Path,
        settings: Settings,
        *,
        create: bool = False,
        embedder: Embedder | None = None,
    ) -> Index:
        """Open the index folder `path`, creating it when `create` is true.

        `embedder`, when given, is used instead of loading `settings.embedder.model` (a model
        loaded elsewhere, or a stand-in for precomputed vectors); its `id` is what the index
        records and checks. Raises IndexMissingError when there is no index and `create` is
        false, and IndexMismatchError when the index was built with another embedder, or its
        database is damaged. Rebuilds derived files (FAISS, BM25) that are missing or older
        than the database.
        """
        folder = Path(path)
        database = folder / DATABASE_FILE
        if folder.exists() and not folder.is_dir():
            raise InputError(f"{path}: is a file; an index is a folder (give another --index)")
        if not database.is_file() and not create:
            raise _missing(path)
        wanted_embedder = embedder.id if embedder is not None else embedder_id(settings.embedder)
        with database_errors(folder):
            recorded = read_meta(database) if database.is_file() else None
            if recorded is None and not create:
                raise _missing(path)
            if recorded is not None:
                _check_embedder(path, recorded, wanted_embedder)
            if embedder is None:
                embedder = load_embedder(settings.embedder)
            if recorded is None:
                folder.mkdir(parents=True, exist_ok=True)
                recorded = create_database(database, embedder.id, embedder.dimension, settings)
            if int(recorded["dimension"]) != embedder.dimension:
                raise IndexMismatchError(
                    f"{path} holds {recorded['dimension']}-dimensional vectors but embedder "
                    f"{embedder.id} makes {embedder.dimension}; rebuild the index with "
                    "`rag ingest` into a new --index folder"
                )
            index = cls(folder, settings, embedder, recorded["instance"])
            if database.stat().st_size <= QUICK_CHECK_ON_OPEN_BYTES:
                index._database.quick_check()
            remove_leftovers(folder)
            index._derived.load()
        return index

    def close(self) -> None:
        """Close every SQLite connection this object opened (from any thread)."""
        self._database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- writing (rag.ingest.pipeline) -------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One ingest's writes: holds the ingest lock (RagError when another process holds
        it), checks the database first, and on success brings FAISS, BM25 and the manifest
        up to date. Whatever was committed is searchable at once even when the body fails."""
        with self._write_lock, self._ingest_lock(), database_errors(self.folder):
            self._database.quick_check()
            try:
                yield
            finally:
                self._derived.forget_if_stale()
            self._derived.refresh(persist=True, force=True)
            write_json_atomic(self.folder / MANIFEST_FILE, self.manifest, indent=2)

    def write_batch(self, versions: Sequence[DocumentVersion], vectors: np.ndarray) -> None:
        """Write `versions` and their chunks in one transaction (inside `writing()`);
        `vectors` row i is the i-th chunk's, unit length."""
        self._database.write_batch(versions, vectors, chunking_key(self.settings))

    def stored_chunk_ids(self, doc_id: str) -> set[str]:
        """Chunk ids stored for `doc_id` (a document written in parts: what to skip)."""
        return self._database.stored_chunk_ids(doc_id)

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        """Remove these documents and their chunks in one transaction; returns how many."""
        return self._database.remove_documents(doc_ids)

    @contextmanager
    def _ingest_lock(self) -> Iterator[None]:
        """Exclusive across processes: two ingests into one folder would race on derived files."""
        with file_lock(self.folder, blocking=False) as acquired:
            if not acquired:
                raise RagError(
                    f"{self.folder}: another `rag ingest` is updating this index; "
                    "wait for it to finish"
                )
            yield

    # ---- integrity --------------------------------------------------------------------

    def verify(self) -> list[str]:
        """A full check; one line per problem found, empty when the index is sound.

        SQLite's integrity_check; chunks without their document; vectors of the wrong size,
        not finite or not of unit length; documents left partly ingested; FAISS and BM25
        against the database (the same row ids, FAISS holding the stored vectors); the derived
        files against their recorded checksums. Reads every vector: seconds per million chunks.
        """
        problems, sound = self._database.problems()
        if not sound:
            return problems
        with database_errors(self.folder):
            return problems + self._derived.problems()

    # ---- manifest ----------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """What the index holds: embedder, chunk settings, FAISS type, counts, generation,
        and the content hash of every document (the same data manifest.json holds)."""
        with database_errors(self.folder):
            hashes = self._database.content_hashes()
            meta = self._database.meta()
        vectors = self._searchers()[0]
        return {
            "format": SCHEMA_VERSION,
            "embedder": {"id": meta["embedder_id"], "dimension": int(meta["dimension"])},
            "chunking": json.loads(meta["chunking"]),
            "settings_fingerprint": self.settings.fingerprint(),
            "faiss_index": vectors.describe(),
            "faiss_kind": vectors.kind,
            "lexical": {"library": "bm25s", "tokenizer": TOKENIZER_VERSION},
            "documents": len(hashes),
            "chunks": vectors.size,
            "generation": int(meta["generation"]),
            "checksums": self._derived.recorded_checksums(),
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "document_hashes": hashes,
        }

    # ---- queries -----------------------------------------------------------------------

    def search_dense(
        self, query_vector: np.ndarray, k: int, rows: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` chunks nearest to `query_vector` as (row id, cosine), best first; only
        among `rows` (from `allowed_rows`) when given."""
        return self._searchers()[0].search(query_vector, k, rows)

    def search_lexical(
        self, query: str, k: int, rows: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` best BM25 matches for `query` as (row id, score), best first; only among
        `rows` when given. Chunks sharing no term with the query are never returned."""
        return self._searchers()[1].search(query, k, rows)

    def has_word_family(self, word: str) -> bool:
        """Whether the lexical vocabulary holds `word` or a word of its family ("dyspnea" for
        "dyspneic"): the coverage gate does not call such a word unknown to the index."""
        return self._searchers()[1].has_family(word)

    def allowed_rows(
        self, sources: Sequence[str] = (), min_year: int | None = None
    ) -> np.ndarray | None:
        """Row ids of chunks whose document's source contains any of `sources` (ignoring
        case) and whose year is at least `min_year` (documents without a year fail a year
        filter). None when no filter is given; an empty array when nothing qualifies."""
        with database_errors(self.folder):
            return self._database.allowed_rows(sources, min_year)

    def hits(self, scored_rows: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (row id, score) pairs, in the given order with ranks 1..n, carrying the
        document's citation fields. Rows no longer in the index are left out."""
        with database_errors(self.folder):
            return self._database.hits(scored_rows)

    @property
    def chunk_count(self) -> int:
        with database_errors(self.folder):
            return self._database.chunk_count

    @property
    def document_count(self) -> int:
        with database_errors(self.folder):
            return self._database.document_count

    def documents(self) -> list[IndexedDocument]:
        """Every indexed document's metadata, ordered by id."""
        with database_errors(self.folder):
            return self._database.documents()

    def indexed_versions(self) -> dict[str, tuple[str, str]]:
        """Every indexed document as id -> (content hash, chunk settings): what decides that a
        document is unchanged (rag ingest --engine ray checks it before sending documents out)."""
        with database_errors(self.folder):
            return self._database.indexed_versions()

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of document `doc_id` in reading order (empty when it is not indexed)."""
        with database_errors(self.folder):
            return self._database.chunks_of(doc_id)

    def _all_row_ids(self) -> np.ndarray:
        """Every chunk's row id, ascending (evals/bench.py reads FAISS by them)."""
        with database_errors(self.folder):
            return self._database.row_ids()

    def _searchers(self) -> tuple[VectorIndex, LexicalIndex]:
        """FAISS and BM25, first brought up to date if the database changed since."""
        with database_errors(self.folder):
            return self._derived.searchers()


def _missing(path: str | Path) -> IndexMissingError:
    return IndexMissingError(
        f"no index at {path}: build one with `rag ingest PATH` or `rag ingest --demo`"
    )


def _check_embedder(path: str | Path, meta: dict[str, str], wanted: str) -> None:
    recorded = meta["embedder_id"]
    if recorded != wanted:
        raise IndexMismatchError(
            f"{path} was built with embedder {recorded}, but the settings ask for {wanted}; "
            f"rebuild it with that embedder (e.g. `rag ingest PATH --index NEW_FOLDER`) "
            f"or set embedder.model back to {recorded}"
        )
