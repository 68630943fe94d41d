"""The index folder: documents -> chunks -> vectors, kept in SQLite, searched through FAISS + BM25.

Layout of an index folder (default indexes/default):

    chunks.sqlite       source of truth: documents, chunks with their vectors, meta (WAL mode)
    vectors.faiss       FAISS index of the chunk vectors      } derived from chunks.sqlite,
    vectors.faiss.json  stamp: database instance, generation, } rebuilt when missing, stale
                        SHA-256 of vectors.faiss and lexical/ } or not matching their checksum
    lexical/            BM25 index with its stamp inside      }
    manifest.json       embedder, chunk settings, FAISS type, counts, per-document hashes,
                        the derived files' checksums

Every ingest transaction bumps a generation counter in SQLite. A derived file is trusted only
when its stamp names the current database instance and generation and its checksum matches;
otherwise it is rebuilt from SQLite on open (a checksum mismatch says so on stderr). The
database itself is checked with SQLite's quick_check on every ingest and on opening a small
index; `Index.verify` (`rag check-index`) checks everything. Because SQLite commits are atomic
and derived files are replaced by rename, killing an ingest at any moment leaves an index that
opens (the next open removes the killed process's temporary files), and re-running the ingest
embeds only what is missing, even inside a large document, which is committed in batches.

Chunk row ids (SQLite AUTOINCREMENT) are the FAISS ids and are never reused: a replaced
document's chunks get new rows, so a row id always means the same vector.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import numpy as np

from rag.config import Settings
from rag.errors import IndexMismatchError, IndexMissingError, InputError, RagError
from rag.index.embedder import Embedder, embedder_id, load_embedder
from rag.index.lexical import TOKENIZER_VERSION, LexicalIndex
from rag.index.vectors import EXACT, HNSW, VectorIndex
from rag.ingest.chunking import chunk_document, passage_for_embedding
from rag.types import Chunk, Document, Hit

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, one writer assumed
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
DATABASE_FILE = "chunks.sqlite"
VECTORS_FILE = "vectors.faiss"
VECTORS_STAMP_FILE = "vectors.faiss.json"
LEXICAL_FOLDER = "lexical"
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "ingest.lock"
# Opening an index runs SQLite's quick_check when the database is at most this big (about
# 2 ms per MB here: 15 ms for the demo index); larger ones are checked on ingest and by
# `rag check-index`.
QUICK_CHECK_ON_OPEN_BYTES = 256 * 1024 * 1024
# Temporary files a process writes beside their targets: name.<pid>.tmp and name.<pid>.old.
_LEFTOVER = re.compile(r"^.+\.\d+\.(tmp|old)$")
# A document whose chunks are not all committed yet carries this before its content hash.
PARTIAL = "partial:"

logger = logging.getLogger("rag.index")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE documents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    source TEXT NOT NULL,
    year INTEGER,
    url TEXT,
    doi TEXT,
    origin TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    chunking TEXT NOT NULL          -- the chunk settings (JSON) its chunks were cut with
);
CREATE TABLE chunks (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,   -- the FAISS id, never reused
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id TEXT NOT NULL,
    section TEXT NOT NULL,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    vector BLOB NOT NULL            -- float32, unit length
);
CREATE INDEX chunks_by_document ON chunks (doc_id, position);
"""


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did: documents added, updated (content changed), unchanged, removed
    (pruned), passages embedded, wall time, and document ids seen twice in the input (the
    first occurrence is kept)."""

    added: int
    updated: int
    unchanged: int
    removed: int
    chunks_embedded: int
    seconds: float
    duplicates: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IndexedDocument:
    """A document as the index holds it: citation fields, content hash and chunk count."""

    id: str
    title: str
    source: str
    year: int | None
    url: str | None
    doi: str | None
    origin: str
    content_hash: str
    n_chunks: int


class Index:
    """An open index folder: ingest documents into it, search it, read chunks back.

    Safe to query from several threads at once (each thread gets its own SQLite connection;
    FAISS and BM25 searches only read). One ingest at a time per folder, across processes.
    """

    # Passages embedded per SQLite transaction. The embedder sorts each transaction's passages
    # by length before batching, so a larger one pads less: on the demo corpus 1024 pads 4%
    # fewer tokens than 256, which kept ingest within 10% of the raw model speed
    # (evals/bench.py). Small enough that a crash loses about a minute of embedding at most.
    passages_per_commit = 1024

    def __init__(self, folder: Path, settings: Settings, embedder: Embedder, instance: str) -> None:
        self.folder = folder
        self.settings = settings
        self.embedder = embedder
        self._instance = instance
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._derived_lock = threading.Lock()
        self._vectors: VectorIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._derived_generation = -1

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
        with _database_errors(folder):
            recorded = _read_meta(database) if database.is_file() else None
            if recorded is None and not create:
                raise _missing(path)
            if recorded is not None:
                _check_embedder(path, recorded, wanted_embedder)
            if embedder is None:
                embedder = load_embedder(settings.embedder)
            if recorded is None:
                folder.mkdir(parents=True, exist_ok=True)
                recorded = _create_database(database, embedder, settings)
            if int(recorded["dimension"]) != embedder.dimension:
                raise IndexMismatchError(
                    f"{path} holds {recorded['dimension']}-dimensional vectors but embedder "
                    f"{embedder.id} makes {embedder.dimension}; rebuild the index with "
                    "`rag ingest` into a new --index folder"
                )
            index = cls(folder, settings, embedder, recorded["instance"])
            if database.stat().st_size <= QUICK_CHECK_ON_OPEN_BYTES:
                index._quick_check()
            index._remove_leftovers()
            index._load_derived()
        return index

    def close(self) -> None:
        """Close every SQLite connection this object opened (from any thread)."""
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- ingest ------------------------------------------------------------------------

    def ingest(
        self, documents: Iterable[Document], *, prune: bool = False, progress: bool = True
    ) -> IngestReport:
        """Bring the index up to date with `documents`; returns what changed.

        Unchanged documents (same content hash, same chunk settings) cost nothing; new and
        changed ones are chunked and embedded in large batches across documents, each batch
        committed in one transaction. With `prune`, indexed documents absent from
        `documents` are removed. A progress bar goes to stderr when it is a terminal.
        """
        started = time.perf_counter()
        counts = {
            "added": 0,
            "updated": 0,
            "unchanged": 0,
            "removed": 0,
            "embedded": 0,
            "duplicates": 0,
        }
        chunking = _chunking_key(self.settings)
        total = len(documents) if hasattr(documents, "__len__") else None  # type: ignore[arg-type]
        with self._write_lock, self._ingest_lock(), _database_errors(self.folder):
            self._quick_check()
            connection = self._connection()
            indexed = {
                doc_id: (content_hash, doc_chunking)
                for doc_id, content_hash, doc_chunking in connection.execute(
                    "SELECT id, content_hash, chunking FROM documents"
                )
            }
            seen: set[str] = set()
            pending: list[_PendingDocument] = []
            pending_passages = 0
            try:
                with _IngestProgress(progress, total) as bar:
                    for document in documents:
                        if not isinstance(document, Document):
                            raise TypeError(
                                f"ingest takes Documents, got {type(document).__name__}"
                            )
                        if document.id in seen:
                            counts["duplicates"] += 1
                            bar.advance(1)
                            continue
                        seen.add(document.id)
                        content_hash = document.content_hash()
                        previous = indexed.get(document.id)
                        if previous == (content_hash, chunking):
                            counts["unchanged"] += 1
                            bar.advance(1)
                            continue
                        chunks = chunk_document(
                            document, self.settings.chunking, self.embedder.count_tokens
                        )
                        if len(chunks) > self.passages_per_commit:
                            if pending:
                                self._commit_batch(pending, chunking, counts, bar)
                                pending, pending_passages = [], 0
                            self._ingest_large(
                                document, content_hash, chunks, previous, chunking, counts, bar
                            )
                            continue
                        pending.append(
                            _PendingDocument(
                                document, content_hash, chunks, replaces=previous is not None
                            )
                        )
                        pending_passages += len(chunks)
                        if pending_passages >= self.passages_per_commit:
                            self._commit_batch(pending, chunking, counts, bar)
                            pending, pending_passages = [], 0
                    if pending:
                        self._commit_batch(pending, chunking, counts, bar)
                if prune:
                    counts["removed"] = self._remove_documents(sorted(set(indexed) - seen))
            finally:
                # Whatever was committed is searchable at once, even when the input failed.
                if self._read_generation() != self._derived_generation:
                    self._derived_generation = -1
            return self._publish(counts, started)

    def _publish(self, counts: dict[str, int], started: float) -> IngestReport:
        """After an ingest: bring FAISS, BM25 and the manifest up to date, and report."""
        self._refresh_derived(persist=True, force=True)
        self._write_manifest()
        return IngestReport(
            added=counts["added"],
            updated=counts["updated"],
            unchanged=counts["unchanged"],
            removed=counts.get("removed", 0),
            chunks_embedded=counts["embedded"],
            seconds=round(time.perf_counter() - started, 3),
            duplicates=counts["duplicates"],
        )

    def _commit_batch(
        self,
        pending: list[_PendingDocument],
        chunking: str,
        counts: dict[str, int],
        bar: _IngestProgress,
    ) -> None:
        """Embed every passage of `pending` in one call, then store them in one transaction."""
        passages = [
            passage_for_embedding(item.document.title, chunk.section, chunk.text)
            for item in pending
            for chunk in item.chunks
        ]
        self._store_batch(pending, self.embedder.embed_passages(passages), chunking)
        for item in pending:
            counts["updated" if item.replaces else "added"] += 1
        counts["embedded"] += len(passages)
        bar.advance(len(pending), len(passages))

    def _ingest_large(
        self,
        document: Document,
        content_hash: str,
        chunks: list[Chunk],
        previous: tuple[str, str] | None,
        chunking: str,
        counts: dict[str, int],
        bar: _IngestProgress,
    ) -> None:
        """A document of more passages than one commit holds, committed `passages_per_commit`
        at a time. Until its last batch it is recorded under PARTIAL + its content hash, so a
        re-run after a kill finds the batches already stored and embeds only the rest."""
        resuming = previous == (PARTIAL + content_hash, chunking)
        stored: set[str] = set()
        if resuming:
            stored = {
                chunk_id
                for (chunk_id,) in self._connection().execute(
                    "SELECT chunk_id FROM chunks WHERE doc_id = ?", (document.id,)
                )
            }
        remaining = [chunk for chunk in chunks if chunk.id not in stored]
        size = self.passages_per_commit
        starts = range(0, len(remaining), size) if remaining else range(1)
        for start in starts:
            batch = remaining[start : start + size]
            last = start + size >= len(remaining)
            item = _PendingDocument(
                document,
                content_hash if last else PARTIAL + content_hash,
                batch,
                replaces=previous is not None and not resuming and start == 0,
            )
            passages = [
                passage_for_embedding(document.title, chunk.section, chunk.text)
                for chunk in batch
            ]
            vectors = (
                self.embedder.embed_passages(passages)
                if passages
                else np.zeros((0, self.embedder.dimension), dtype=np.float32)
            )
            self._store_batch([item], vectors, chunking)
            counts["embedded"] += len(passages)
            done = len(stored) + min(start + size, len(remaining))
            bar.advance(1 if last else 0, len(passages), f"{document.id}: {done}/{len(chunks)}")
        counts["updated" if previous is not None and not resuming else "added"] += 1

    def _store_batch(
        self, pending: list[_PendingDocument], vectors: np.ndarray, chunking: str
    ) -> None:
        """Write `pending` documents and their chunks, `vectors` row i for the i-th chunk in
        order, replacing older versions, in one transaction."""
        chunk_rows = []
        vector_position = 0
        for item in pending:
            for chunk in item.chunks:
                chunk_rows.append(
                    (
                        chunk.id,
                        chunk.doc_id,
                        chunk.section,
                        chunk.position,
                        chunk.text,
                        chunk.n_tokens,
                        vectors[vector_position].tobytes(),
                    )
                )
                vector_position += 1
        document_rows = [
            (
                item.document.id,
                item.document.title,
                item.document.source,
                item.document.year,
                item.document.url,
                item.document.doi,
                item.document.origin,
                item.content_hash,
                chunking,
            )
            for item in pending
        ]
        with self._transaction() as connection:
            connection.executemany(
                "DELETE FROM chunks WHERE doc_id = ?",
                [(item.document.id,) for item in pending if item.replaces],
            )
            connection.executemany(
                "INSERT INTO documents (id, title, source, year, url, doi, origin, content_hash,"
                " chunking) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET title = excluded.title,"
                " source = excluded.source, year = excluded.year, url = excluded.url,"
                " doi = excluded.doi, origin = excluded.origin,"
                " content_hash = excluded.content_hash, chunking = excluded.chunking",
                document_rows,
            )
            connection.executemany(
                "INSERT INTO chunks (chunk_id, doc_id, section, position, text, n_tokens, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                chunk_rows,
            )
            connection.execute("UPDATE meta SET value = ? WHERE key = 'chunking'", (chunking,))

    def ingest_vectors(
        self,
        items: Iterable[tuple[Document, Sequence[Chunk], np.ndarray]],
        *,
        rows_per_commit: int = 20_000,
    ) -> IngestReport:
        """Store documents whose chunks are already cut and embedded; embeds nothing.

        Each item is (document, its chunks in order, their vectors as a (len(chunks),
        dimension) array from this index's embedder). Vectors are normalised to unit length
        here. A document already indexed is replaced; one whose content hash and chunk
        settings are unchanged is skipped, as in `ingest`. For bulk loads (a corpus embedded
        elsewhere, benchmarks): rows are committed `rows_per_commit` at a time and FAISS and
        BM25 are rebuilt once at the end. Raises InputError naming the document when its
        chunks belong to another document or its vectors do not fit.
        """
        started = time.perf_counter()
        counts = {"added": 0, "updated": 0, "unchanged": 0, "embedded": 0, "duplicates": 0}
        chunking = _chunking_key(self.settings)
        with self._write_lock, self._ingest_lock(), _database_errors(self.folder):
            indexed = {
                doc_id: (content_hash, doc_chunking)
                for doc_id, content_hash, doc_chunking in self._connection().execute(
                    "SELECT id, content_hash, chunking FROM documents"
                )
            }
            seen: set[str] = set()
            pending: list[_PendingDocument] = []
            pending_vectors: list[np.ndarray] = []
            pending_rows = 0

            def commit() -> None:
                self._store_batch(pending, np.concatenate(pending_vectors), chunking)
                for item in pending:
                    counts["updated" if item.replaces else "added"] += 1
                counts["embedded"] += pending_rows

            try:
                for document, chunks, vectors in items:
                    if document.id in seen:
                        counts["duplicates"] += 1
                        continue
                    seen.add(document.id)
                    content_hash = document.content_hash()
                    previous = indexed.get(document.id)
                    if previous == (content_hash, chunking):
                        counts["unchanged"] += 1
                        continue
                    pending.append(
                        _PendingDocument(
                            document, content_hash, list(chunks), replaces=previous is not None
                        )
                    )
                    pending_vectors.append(self._checked_vectors(document, chunks, vectors))
                    pending_rows += len(chunks)
                    if pending_rows >= rows_per_commit:
                        commit()
                        pending, pending_vectors, pending_rows = [], [], 0
                if pending:
                    commit()
            finally:
                if self._read_generation() != self._derived_generation:
                    self._derived_generation = -1
            return self._publish(counts, started)

    def _checked_vectors(
        self, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray
    ) -> np.ndarray:
        """`vectors` as unit-length float32 rows, after checking they fit `chunks`."""
        for chunk in chunks:
            if chunk.doc_id != document.id:
                raise InputError(
                    f"document {document.id}: chunk {chunk.id} belongs to document {chunk.doc_id}"
                )
        array = np.asarray(vectors, dtype=np.float32)
        expected = (len(chunks), self.embedder.dimension)
        if array.shape != expected:
            raise InputError(
                f"document {document.id}: vectors have shape {array.shape}, expected {expected} "
                f"({len(chunks)} chunks of embedder {self.embedder.id})"
            )
        if not np.isfinite(array).all():
            raise InputError(f"document {document.id}: vectors contain NaN or infinite values")
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return array / norms

    def _remove_documents(self, doc_ids: Sequence[str]) -> int:
        if not doc_ids:
            return 0
        with self._transaction() as connection:
            connection.executemany("DELETE FROM chunks WHERE doc_id = ?", [(i,) for i in doc_ids])
            connection.executemany("DELETE FROM documents WHERE id = ?", [(i,) for i in doc_ids])
        return len(doc_ids)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that also bumps the generation; all or nothing."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
            connection.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    @contextmanager
    def _ingest_lock(self) -> Iterator[None]:
        """Exclusive across processes: two ingests into one folder would race on derived files."""
        with _file_lock(self.folder, blocking=False) as acquired:
            if not acquired:
                raise RagError(
                    f"{self.folder}: another `rag ingest` is updating this index; "
                    "wait for it to finish"
                )
            yield

    # ---- integrity --------------------------------------------------------------------

    def _quick_check(self) -> None:
        """SQLite's quick_check (page structure, not every index); IndexMismatchError naming
        the first problem when it fails."""
        with _database_errors(self.folder):
            results = [row for (row,) in self._connection().execute("PRAGMA quick_check")]
        if results != ["ok"]:
            raise IndexMismatchError(
                f"{self.folder / DATABASE_FILE}: the index database is damaged ({results[0]}); "
                "rebuild it with `rag ingest` into a new --index folder "
                "(`rag check-index` lists every problem)"
            )

    def verify(self) -> list[str]:
        """A full check; one line per problem found, empty when the index is sound.

        SQLite's integrity_check; chunks without their document; vectors of the wrong size,
        not finite or not of unit length; documents left partly ingested; FAISS and BM25
        against the database (the same row ids, FAISS holding the stored vectors); the derived
        files against their recorded checksums. Reads every vector: seconds per million chunks.
        """
        problems: list[str] = []
        database = self.folder / DATABASE_FILE
        connection = self._connection()
        try:
            results = [row for (row,) in connection.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            results = [str(error)]
        if results != ["ok"]:
            advice = "rebuild the index with `rag ingest` into a new --index folder"
            return [f"{database}: {' '.join(result.split())}" for result in results] + [advice]
        with _database_errors(self.folder):
            orphans = connection.execute(
                "SELECT COUNT(*) FROM chunks AS c LEFT JOIN documents AS d ON d.id = c.doc_id"
                " WHERE d.id IS NULL"
            ).fetchone()[0]
            if orphans:
                problems.append(f"{database}: {orphans} chunks belong to no document")
            for (doc_id,) in connection.execute(
                "SELECT id FROM documents WHERE content_hash LIKE ? ORDER BY id", (PARTIAL + "%",)
            ):
                problems.append(f"{doc_id}: only partly ingested; re-run `rag ingest` to finish it")
            problems.extend(self._verify_vectors())
        problems.extend(self._verify_derived())
        return problems

    def _verify_vectors(self) -> list[str]:
        """Problems with the stored vectors, and with FAISS's copies of them."""
        problems: list[str] = []
        dimension = self.embedder.dimension
        vectors = self._searchers()[0]
        bad_size = bad_values = differing = 0
        cursor = self._connection().execute("SELECT row_id, vector FROM chunks ORDER BY row_id")
        while batch := cursor.fetchmany(4096):
            rows = [(row, blob) for row, blob in batch if len(blob) == dimension * 4]
            bad_size += len(batch) - len(rows)
            if not rows:
                continue
            ids = np.array([row for row, _ in rows], dtype=np.int64)
            stored = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
            stored = stored.reshape(len(rows), dimension)
            with np.errstate(all="ignore"):
                norms = np.linalg.norm(stored, axis=1)
            bad_values += int(np.count_nonzero(~np.isfinite(norms) | (np.abs(norms - 1) > 1e-3)))
            present = np.isin(ids, vectors.row_ids())
            faiss_index = getattr(vectors, "_index", None)  # FAISS keeps a copy of each vector
            if present.any() and faiss_index is not None:
                copies = faiss_index.reconstruct_batch(ids[present])
                with np.errstate(all="ignore"):
                    gaps = np.abs(copies - stored[present]).max(axis=1)
                differing += int(np.count_nonzero(~(gaps <= 1e-5)))
        database = self.folder / DATABASE_FILE
        if bad_size:
            problems.append(f"{database}: {bad_size} chunk vectors are not {dimension} floats")
        if bad_values:
            problems.append(f"{database}: {bad_values} chunk vectors are not finite unit vectors")
        if differing:
            problems.append(
                f"{self.folder / VECTORS_FILE}: {differing} vectors differ from the database"
            )
        return problems

    def _verify_derived(self) -> list[str]:
        problems: list[str] = []
        vectors, lexical = self._searchers()
        row_ids = self._all_row_ids()
        if not np.array_equal(vectors.row_ids(), row_ids):
            problems.append(f"{self.folder / VECTORS_FILE}: its rows differ from the database's")
        if not np.array_equal(np.asarray(lexical.row_ids), row_ids):
            problems.append(f"{self.folder / LEXICAL_FOLDER}: its rows differ from the database's")
        stamp = _read_json(self.folder / VECTORS_STAMP_FILE)
        if _stamp_matches(stamp, self._instance, self._read_generation()):
            vectors_ok, lexical_ok = self._checksums_match(stamp, warn=False)
            if not vectors_ok:
                problems.append(f"{self.folder / VECTORS_FILE}: does not match its checksum")
            if not lexical_ok:
                problems.append(f"{self.folder / LEXICAL_FOLDER}: does not match its checksum")
        return problems

    def _checksums_match(self, stamp: dict[str, Any] | None, *, warn: bool) -> tuple[bool, bool]:
        """Whether vectors.faiss and lexical/ match the checksums in `stamp` (the derived
        files' stamp). With `warn`, a mismatch is one line on stderr (logger "rag.index")."""
        if not stamp or "vectors_sha256" not in stamp or "lexical_sha256" not in stamp:
            return False, False  # written before checksums were recorded: rebuilt once
        found = {
            VECTORS_FILE: (stamp["vectors_sha256"], _file_sha256(self.folder / VECTORS_FILE)),
            LEXICAL_FOLDER: (
                stamp["lexical_sha256"], _folder_sha256(self.folder / LEXICAL_FOLDER)
            ),
        }
        matches: list[bool] = []
        for name, (recorded, actual) in found.items():
            matches.append(actual is not None and actual == recorded)
            if warn and actual is not None and actual != recorded:
                logger.warning(
                    "%s does not match the checksum recorded when it was written (damaged, or "
                    "its writer was stopped); rebuilt from %s",
                    self.folder / name,
                    DATABASE_FILE,
                )
        return matches[0], matches[1]

    def _remove_leftovers(self) -> None:
        """Remove the temporary files a killed process left (vectors.faiss.<pid>.tmp,
        lexical.<pid>.tmp/, manifest.json.<pid>.tmp, lexical.<pid>.old/). Only while holding
        the ingest lock, which every writer holds while its temporary files exist."""
        try:
            with _file_lock(self.folder, blocking=False, reentrant=True) as acquired:
                if not acquired:
                    return
                for entry in self.folder.iterdir():
                    if not _LEFTOVER.match(entry.name):
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
        except OSError:
            return  # a read-only folder: nothing can be written there, nothing to clean

    # ---- derived files: FAISS and BM25 -------------------------------------------------

    def _load_derived(self) -> None:
        """Load FAISS and BM25 from disk; bring them up to date with the database if stale."""
        generation = self._read_generation()
        vectors_stamp = _read_json(self.folder / VECTORS_STAMP_FILE)
        lexical_stamp = LexicalIndex.read_stamp(self.folder / LEXICAL_FOLDER)
        # Files of this very database are worth loading even when stale: row ids are never
        # reused, so a row id present in both means the same passage and the same vector, and
        # only the rows added or removed since need work (see _refresh_derived).
        vectors_trusted = lexical_trusted = False
        if vectors_stamp and vectors_stamp.get("instance") == self._instance:
            vectors_trusted, lexical_trusted = self._checksums_match(vectors_stamp, warn=True)
        vectors: VectorIndex | None = None
        if vectors_trusted:
            try:
                vectors = VectorIndex.load(self.folder / VECTORS_FILE)
            except (RuntimeError, OSError):
                vectors = None  # damaged or missing: rebuilt from SQLite
            if vectors is not None and vectors.dimension != self.embedder.dimension:
                vectors = None
        lexical: LexicalIndex | None = None
        if lexical_trusted and lexical_stamp and lexical_stamp.get("instance") == self._instance:
            try:
                lexical = LexicalIndex.load(self.folder / LEXICAL_FOLDER)
            except (OSError, ValueError, KeyError):
                lexical = None
        self._vectors, self._lexical = vectors, lexical
        if (
            vectors is not None
            and lexical is not None
            and _stamp_matches(vectors_stamp, self._instance, generation)
            and _stamp_matches(lexical_stamp, self._instance, generation)
        ):
            self._derived_generation = generation
            return
        self._refresh_derived(persist=True)

    def _refresh_derived(self, *, persist: bool, force: bool = False) -> None:
        """Bring FAISS and BM25 up to the database's current chunks; optionally save them."""
        with self._derived_lock:
            generation = self._read_generation()
            if not force and generation == self._derived_generation:
                return  # another thread refreshed while this one waited for the lock
            row_ids = self._all_row_ids()
            vectors = self._synced_vectors(self._vectors, row_ids)
            lexical = self._lexical
            if lexical is None or not np.array_equal(np.asarray(lexical.row_ids), row_ids):
                lexical = self._build_lexical()
            changed = vectors is not self._vectors or lexical is not self._lexical
            self._vectors, self._lexical = vectors, lexical
            self._derived_generation = generation
            if persist and (changed or not self._derived_files_match(generation)):
                self._persist_derived(generation)

    def _synced_vectors(self, current: VectorIndex | None, row_ids: np.ndarray) -> VectorIndex:
        limit = self.settings.retrieval.exact_search_limit
        wanted_kind = EXACT if len(row_ids) <= limit else HNSW
        if current is not None and current.kind == wanted_kind:
            indexed = current.row_ids()
            removed = np.setdiff1d(indexed, row_ids, assume_unique=True)
            added = np.setdiff1d(row_ids, indexed, assume_unique=True)
            if len(removed) == 0 and len(added) == 0:
                return current
            if wanted_kind == EXACT or len(removed) == 0:
                # A copy, because searches may be running on `current` in other threads.
                updated = current.copy()
                updated.remove(removed)
                added_ids, added_vectors = self._read_vectors(added)
                updated.add(added_ids, added_vectors)
                return updated
        all_ids, all_vectors = self._read_vectors(row_ids)
        return VectorIndex.build(
            all_ids, all_vectors, dimension=self.embedder.dimension, exact_search_limit=limit
        )

    def _read_vectors(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, (n, d) vectors) for `row_ids` (sorted), read in one pass from the first one."""
        if len(row_ids) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.embedder.dimension), np.float32)
        # Filled row by row into one array: a million chunks' vectors are 1.5 GB, and holding
        # the blobs and a joined copy besides would triple that.
        ids = np.empty(len(row_ids), dtype=np.int64)
        vectors = np.empty((len(row_ids), self.embedder.dimension), dtype=np.float32)
        wanted = set(row_ids.tolist()) if len(row_ids) < self.chunk_count else None
        found = 0
        for row_id, blob in self._connection().execute(
            "SELECT row_id, vector FROM chunks WHERE row_id >= ? ORDER BY row_id",
            (int(row_ids[0]),),
        ):
            if (wanted is None or row_id in wanted) and found < len(row_ids):
                ids[found] = row_id
                vectors[found] = np.frombuffer(blob, dtype=np.float32)
                found += 1
        return ids[:found], vectors[:found]

    def _build_lexical(self) -> LexicalIndex:
        row_ids: list[int] = []
        passages: list[str] = []
        for row_id, title, section, text in self._connection().execute(
            "SELECT c.row_id, d.title, c.section, c.text FROM chunks AS c"
            " JOIN documents AS d ON d.id = c.doc_id ORDER BY c.row_id"
        ):
            row_ids.append(row_id)
            passages.append(passage_for_embedding(title, section, text))
        return LexicalIndex.build(np.array(row_ids, dtype=np.int64), passages)

    def _derived_files_match(self, generation: int) -> bool:
        return _stamp_matches(
            _read_json(self.folder / VECTORS_STAMP_FILE), self._instance, generation
        ) and _stamp_matches(
            LexicalIndex.read_stamp(self.folder / LEXICAL_FOLDER), self._instance, generation
        )

    def _persist_derived(self, generation: int) -> None:
        """Save FAISS and BM25 with stamps; skipped when another process holds the lock (it
        will write its own) or the folder is read-only (the next open rebuilds again)."""
        assert self._vectors is not None and self._lexical is not None
        try:
            with _file_lock(self.folder, blocking=False, reentrant=True) as acquired:
                if not acquired:
                    return
                stamp = {"instance": self._instance, "generation": generation}
                # Both files first, the stamp with their checksums after: a crash in between
                # leaves a stamp naming an older generation, which only causes a rebuild.
                self._vectors.save(self.folder / VECTORS_FILE)
                self._lexical.save(self.folder / LEXICAL_FOLDER, stamp)
                _write_json_atomic(
                    self.folder / VECTORS_STAMP_FILE,
                    {
                        **stamp,
                        "kind": self._vectors.kind,
                        "vectors_sha256": _file_sha256(self.folder / VECTORS_FILE),
                        "lexical_sha256": _folder_sha256(self.folder / LEXICAL_FOLDER),
                    },
                )
        except OSError:
            return

    # ---- manifest ----------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """What the index holds: embedder, chunk settings, FAISS type, counts, generation,
        and the content hash of every document (the same data manifest.json holds)."""
        with _database_errors(self.folder):
            connection = self._connection()
            hashes = dict(connection.execute("SELECT id, content_hash FROM documents ORDER BY id"))
            meta = dict(connection.execute("SELECT key, value FROM meta"))
        vectors = self._searchers()[0]
        stamp = _read_json(self.folder / VECTORS_STAMP_FILE) or {}
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
            "checksums": {
                VECTORS_FILE: stamp.get("vectors_sha256"),
                LEXICAL_FOLDER: stamp.get("lexical_sha256"),
            },
            "updated": datetime.now(UTC).isoformat(timespec="seconds"),
            "document_hashes": hashes,
        }

    def _write_manifest(self) -> None:
        _write_json_atomic(self.folder / MANIFEST_FILE, self.manifest, indent=2)

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

    def allowed_rows(
        self, sources: Sequence[str] = (), min_year: int | None = None
    ) -> np.ndarray | None:
        """Row ids of chunks whose document's source contains any of `sources` (ignoring
        case) and whose year is at least `min_year` (documents without a year fail a year
        filter). None when no filter is given; an empty array when nothing qualifies."""
        terms = [term.strip().casefold() for term in sources if term.strip()]
        if not terms and min_year is None:
            return None
        clauses: list[str] = []
        parameters: list[Any] = []
        if terms:
            clauses.append(
                "(" + " OR ".join("instr(casefold(d.source), ?) > 0" for _ in terms) + ")"
            )
            parameters.extend(terms)
        if min_year is not None:
            clauses.append("d.year >= ?")
            parameters.append(int(min_year))
        with _database_errors(self.folder):
            cursor = self._connection().execute(
                "SELECT c.row_id FROM chunks AS c JOIN documents AS d ON d.id = c.doc_id"
                f" WHERE {' AND '.join(clauses)} ORDER BY c.row_id",
                parameters,
            )
            return np.fromiter((row for (row,) in cursor), dtype=np.int64)

    def hits(self, scored_rows: Sequence[tuple[int, float]]) -> list[Hit]:
        """Hits for (row id, score) pairs, in the given order with ranks 1..n, carrying the
        document's citation fields. Rows no longer in the index are left out."""
        rows = [int(row) for row, _ in scored_rows]
        found: dict[int, tuple[Any, ...]] = {}
        with _database_errors(self.folder):
            connection = self._connection()
            for start in range(0, len(rows), 500):
                batch = rows[start : start + 500]
                marks = ", ".join("?" * len(batch))
                for record in connection.execute(
                    "SELECT c.row_id, c.chunk_id, c.doc_id, c.text, c.section, d.title, d.source,"
                    " d.year, d.url, d.doi FROM chunks AS c JOIN documents AS d ON d.id = c.doc_id"
                    f" WHERE c.row_id IN ({marks})",
                    batch,
                ):
                    found[record[0]] = record[1:]
        hits: list[Hit] = []
        for row, score in scored_rows:
            record = found.get(int(row))
            if record is None:
                continue
            chunk_id, doc_id, text, section, title, source, year, url, doi = record
            hits.append(
                Hit(
                    chunk_id=chunk_id,
                    doc_id=doc_id,
                    text=text,
                    score=float(score),
                    rank=len(hits) + 1,
                    title=title,
                    section=section,
                    source=source,
                    year=year,
                    url=url,
                    doi=doi,
                )
            )
        return hits

    @property
    def chunk_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM chunks")

    @property
    def document_count(self) -> int:
        return self._count("SELECT COUNT(*) FROM documents")

    def documents(self) -> list[IndexedDocument]:
        """Every indexed document's metadata, ordered by id."""
        with _database_errors(self.folder):
            records = (
                self._connection()
                .execute(
                    "SELECT d.id, d.title, d.source, d.year, d.url, d.doi, d.origin, d.content_hash,"
                    " COUNT(c.row_id) FROM documents AS d LEFT JOIN chunks AS c ON c.doc_id = d.id"
                    " GROUP BY d.id ORDER BY d.id"
                )
                .fetchall()
            )
        return [IndexedDocument(*record) for record in records]

    def indexed_versions(self) -> dict[str, tuple[str, str]]:
        """Every indexed document as id -> (content hash, chunk settings): what decides that a
        document is unchanged (rag ingest --engine ray checks it before sending documents out)."""
        with _database_errors(self.folder):
            records = self._connection().execute("SELECT id, content_hash, chunking FROM documents")
            return {doc_id: (content_hash, chunking) for doc_id, content_hash, chunking in records}

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of document `doc_id` in reading order (empty when it is not indexed)."""
        with _database_errors(self.folder):
            records = (
                self._connection()
                .execute(
                    "SELECT chunk_id, doc_id, text, section, position, n_tokens FROM chunks"
                    " WHERE doc_id = ? ORDER BY position",
                    (doc_id,),
                )
                .fetchall()
            )
        return [
            Chunk(
                id=chunk_id,
                doc_id=doc,
                text=text,
                section=section,
                position=position,
                n_tokens=n_tokens,
            )
            for chunk_id, doc, text, section, position, n_tokens in records
        ]

    # ---- plumbing ----------------------------------------------------------------------

    def _searchers(self) -> tuple[VectorIndex, LexicalIndex]:
        """FAISS and BM25, first brought up to date if an ingest here stopped half-way or
        another process (a `rag ingest` beside a running `rag serve`) changed the database."""
        if (
            self._derived_generation < 0
            or self._vectors is None
            or self._lexical is None
            or self._read_generation() != self._derived_generation
        ):
            with _database_errors(self.folder):
                self._refresh_derived(persist=False)
        assert self._vectors is not None and self._lexical is not None
        return self._vectors, self._lexical

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections must not be shared between threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = _connect(self.folder / DATABASE_FILE)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def _read_generation(self) -> int:
        return self._count("SELECT value FROM meta WHERE key = 'generation'")

    def _all_row_ids(self) -> np.ndarray:
        cursor = self._connection().execute("SELECT row_id FROM chunks ORDER BY row_id")
        return np.fromiter((row for (row,) in cursor), dtype=np.int64)

    def _count(self, sql: str) -> int:
        with _database_errors(self.folder):
            return int(self._connection().execute(sql).fetchone()[0])


@dataclass
class _PendingDocument:
    document: Document
    content_hash: str
    chunks: list[Chunk]
    replaces: bool  # an older version is indexed and its chunks must go


class _IngestProgress:
    """A rich progress bar on stderr when it is a terminal; otherwise (a log file, a pipe)
    a plain line every `line_interval_s` seconds, so a long ingest shows it is alive."""

    line_interval_s = 30.0

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._total = total
        self._enabled = enabled and sys.stderr.isatty()
        self._lines = enabled and not self._enabled
        self._documents = self._passages = 0
        self._started = self._last_line = time.monotonic()

    def __enter__(self) -> Self:
        if self._enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]ingesting"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("documents, {task.fields[passages]} passages embedded"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("ingest", total=self._total, passages=0)
        return self

    def advance(self, documents: int, passages: int = 0, note: str = "") -> None:
        """Count `documents` more as done and `passages` more as embedded; `note` says where
        a large document stands."""
        self._documents += documents
        self._passages += passages
        now = time.monotonic()
        if self._lines and now - self._last_line >= self.line_interval_s:
            self._last_line = now
            done = f"{self._documents}/{self._total}" if self._total else str(self._documents)
            minutes, seconds = divmod(int(now - self._started), 60)
            print(
                f"ingest: {done} documents, {self._passages} passages embedded, "
                f"{minutes}m{seconds:02d}s" + (f"; {note} passages" if note else ""),
                file=sys.stderr,
                flush=True,
            )
        if self._progress is None:
            return
        task = self._progress.tasks[0]
        self._progress.update(
            self._task, advance=documents, passages=task.fields["passages"] + passages
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()


# ---- module helpers ----------------------------------------------------------------------


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


def _connect(database: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun and committed explicitly (_transaction).
    connection = sqlite3.connect(
        database, timeout=60, isolation_level=None, check_same_thread=False
    )
    # NORMAL in WAL mode survives any process crash; only a power cut can lose the last commit.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.create_function("casefold", 1, _casefold, deterministic=True)
    return connection


def _casefold(value: str | None) -> str:
    # Python's casefold, because SQLite's lower() only knows ASCII ("Société" would not match).
    return value.casefold() if value else ""


def _read_meta(database: Path) -> dict[str, str] | None:
    """The meta table, or None for a database that was never fully created."""
    connection = _connect(database)
    try:
        tables = {
            name
            for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "meta" not in tables:
            if "chunks" in tables:
                raise sqlite3.DatabaseError("the meta table is missing")
            return None
        meta = dict(connection.execute("SELECT key, value FROM meta"))
    finally:
        connection.close()
    required = {"schema_version", "embedder_id", "dimension", "chunking", "generation", "instance"}
    if not required <= set(meta):
        raise sqlite3.DatabaseError(f"meta lacks {', '.join(sorted(required - set(meta)))}")
    if int(meta["schema_version"]) != SCHEMA_VERSION:
        raise IndexMismatchError(
            f"{database.parent} uses index format {meta['schema_version']}, this version of rag "
            f"reads format {SCHEMA_VERSION}; rebuild it with `rag ingest` into a new --index folder"
        )
    return meta


def _create_database(database: Path, embedder: Embedder, settings: Settings) -> dict[str, str]:
    """Create the tables and meta in one transaction, so a crash leaves all or nothing."""
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "embedder_id": embedder.id,
        "dimension": str(embedder.dimension),
        "chunking": _chunking_key(settings),
        "generation": "0",
        "instance": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    connection = _connect(database)
    try:
        connection.execute("PRAGMA journal_mode = WAL")  # persistent: readers never block ingest
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):  # no ";" inside the statements or comments
                if statement.strip():
                    connection.execute(statement)
            connection.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()
    return meta


def _chunking_key(settings: Settings) -> str:
    return json.dumps(asdict(settings.chunking), sort_keys=True)


def _stamp_matches(stamp: dict[str, Any] | None, instance: str, generation: int) -> bool:
    return (
        bool(stamp) and stamp.get("instance") == instance and stamp.get("generation") == generation
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _file_sha256(path: Path) -> str | None:
    """The file's SHA-256 in hex, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _folder_sha256(folder: Path) -> str | None:
    """One SHA-256 over the names and contents of the files in `folder`, or None."""
    digest = hashlib.sha256()
    try:
        names = sorted(entry.name for entry in folder.iterdir() if entry.is_file())
    except OSError:
        return None
    for name in names:
        file_digest = _file_sha256(folder / name)
        if file_digest is None:
            return None
        digest.update(f"{name}\0{file_digest}\n".encode())
    return digest.hexdigest()


def _write_json_atomic(path: Path, data: dict[str, Any], indent: int | None = None) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


_held_locks = threading.local()


@contextmanager
def _file_lock(folder: Path, *, blocking: bool, reentrant: bool = False) -> Iterator[bool]:
    """An exclusive lock on `folder`/ingest.lock across processes; yields whether it was got.

    With `reentrant`, a thread that already holds the lock (an ingest saving its derived
    files) gets it again at once.
    """
    key = str(folder.resolve())
    held: set[str] = getattr(_held_locks, "folders", set())
    _held_locks.folders = held
    if reentrant and key in held:
        yield True
        return
    if fcntl is None:
        yield True
        return
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        held.add(key)
        try:
            yield True
        finally:
            held.discard(key)
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _database_errors(folder: Path) -> Iterator[None]:
    """Turn SQLite's errors about a damaged or unreadable database into one clear line."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        raise IndexMismatchError(
            f"{folder / DATABASE_FILE}: the index database is damaged or unreadable ({error}); "
            "rebuild it with `rag ingest` into a new --index folder"
        ) from None
