"""The index database, chunks.sqlite: the source of truth of a local index folder.

Slightly over 500 lines: the schema, its transactions and every read of the chunk store belong
together; splitting reads from writes would split one schema across two files.

Tables: documents (citation fields, content hash, the chunk settings its chunks were cut
with), chunks (text, position and the unit-length float32 vector; the AUTOINCREMENT row id is
the FAISS id and is never reused, so a replaced document's chunks get new rows and a row id
always means the same vector) and meta (format, embedder, dimension, chunk settings, the
database's instance id and a generation counter every write transaction bumps). WAL mode:
readers never block an ingest, and a commit is all or nothing, so a killed ingest leaves the
last committed state.

Here: creating and opening the database, one connection per thread, write transactions,
the ingest lock (ingest.lock, across processes), writing and removing a batch of documents,
the reads queries need, and the integrity checks.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import IndexMismatchError
from rag.index.backend import PARTIAL, DocumentVersion, chunking_key
from rag.index.passage import passage_for_embedding
from rag.types import Chunk, Hit

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no cross-process lock, one writer assumed
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
DATABASE_FILE = "chunks.sqlite"
LOCK_FILE = "ingest.lock"

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


class ChunkDatabase:
    """chunks.sqlite of one index folder, safe to use from several threads (each thread gets
    its own connection)."""

    def __init__(self, folder: Path, instance: str) -> None:
        self.folder = folder
        self.path = folder / DATABASE_FILE
        self.instance = instance  # a new id per database: derived files name the one they fit
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections must not be shared between threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = connect(self.path)
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        """Close every connection this object opened (from any thread)."""
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # ---- writing -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that also bumps the generation; all or nothing."""
        connection = self.connection()
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

    def write_batch(
        self, versions: Sequence[DocumentVersion], vectors: np.ndarray, chunking: str
    ) -> None:
        """Write `versions` and their chunks, `vectors` row i for the i-th chunk in order,
        replacing older versions, in one transaction."""
        chunk_rows = []
        for item in versions:
            for chunk in item.chunks:
                chunk_rows.append(
                    (
                        chunk.id,
                        chunk.doc_id,
                        chunk.section,
                        chunk.position,
                        chunk.text,
                        chunk.n_tokens,
                        vectors[len(chunk_rows)].tobytes(),
                    )
                )
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
            for item in versions
        ]
        with self.transaction() as connection:
            connection.executemany(
                "DELETE FROM chunks WHERE doc_id = ?",
                [(item.document.id,) for item in versions if item.replaces],
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

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        """Remove these documents and their chunks in one transaction; returns how many."""
        if not doc_ids:
            return 0
        with self.transaction() as connection:
            connection.executemany("DELETE FROM chunks WHERE doc_id = ?", [(i,) for i in doc_ids])
            connection.executemany("DELETE FROM documents WHERE id = ?", [(i,) for i in doc_ids])
        return len(doc_ids)

    # ---- reading -----------------------------------------------------------------------

    def generation(self) -> int:
        return self._number("SELECT value FROM meta WHERE key = 'generation'")

    def meta(self) -> dict[str, str]:
        return dict(self.connection().execute("SELECT key, value FROM meta"))

    def content_hashes(self) -> dict[str, str]:
        """Every document id -> its content hash, ordered by id."""
        return dict(self.connection().execute("SELECT id, content_hash FROM documents ORDER BY id"))

    def indexed_versions(self) -> dict[str, tuple[str, str]]:
        """Every document as id -> (content hash, chunk settings)."""
        records = self.connection().execute("SELECT id, content_hash, chunking FROM documents")
        return {doc_id: (content_hash, chunking) for doc_id, content_hash, chunking in records}

    def stored_chunk_ids(self, doc_id: str) -> set[str]:
        return {
            chunk_id
            for (chunk_id,) in self.connection().execute(
                "SELECT chunk_id FROM chunks WHERE doc_id = ?", (doc_id,)
            )
        }

    @property
    def chunk_count(self) -> int:
        return self._number("SELECT COUNT(*) FROM chunks")

    @property
    def document_count(self) -> int:
        return self._number("SELECT COUNT(*) FROM documents")

    def row_ids(self) -> np.ndarray:
        """Every chunk's row id, ascending."""
        cursor = self.connection().execute("SELECT row_id FROM chunks ORDER BY row_id")
        return np.fromiter((row for (row,) in cursor), dtype=np.int64)

    def vectors(self, row_ids: np.ndarray, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, (n, d) vectors) for `row_ids` (sorted), read in one pass from the first one."""
        if len(row_ids) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dimension), np.float32)
        # Filled row by row into one array: a million chunks' vectors are 1.5 GB, and holding
        # the blobs and a joined copy besides would triple that.
        ids = np.empty(len(row_ids), dtype=np.int64)
        vectors = np.empty((len(row_ids), dimension), dtype=np.float32)
        wanted = set(row_ids.tolist()) if len(row_ids) < self.chunk_count else None
        found = 0
        for row_id, blob in self.connection().execute(
            "SELECT row_id, vector FROM chunks WHERE row_id >= ? ORDER BY row_id",
            (int(row_ids[0]),),
        ):
            if (wanted is None or row_id in wanted) and found < len(row_ids):
                ids[found] = row_id
                vectors[found] = np.frombuffer(blob, dtype=np.float32)
                found += 1
        return ids[:found], vectors[:found]

    def passages(self) -> tuple[np.ndarray, list[str]]:
        """(row ids, the passage of each chunk), ascending by row id: what BM25 indexes."""
        row_ids: list[int] = []
        passages: list[str] = []
        for row_id, title, section, text in self.connection().execute(
            "SELECT c.row_id, d.title, c.section, c.text FROM chunks AS c"
            " JOIN documents AS d ON d.id = c.doc_id ORDER BY c.row_id"
        ):
            row_ids.append(row_id)
            passages.append(passage_for_embedding(title, section, text))
        return np.array(row_ids, dtype=np.int64), passages

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
        cursor = self.connection().execute(
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
        connection = self.connection()
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

    def documents(self) -> list[IndexedDocument]:
        """Every document's metadata, ordered by id."""
        records = self.connection().execute(
            "SELECT d.id, d.title, d.source, d.year, d.url, d.doi, d.origin, d.content_hash,"
            " COUNT(c.row_id) FROM documents AS d LEFT JOIN chunks AS c ON c.doc_id = d.id"
            " GROUP BY d.id ORDER BY d.id"
        )
        return [IndexedDocument(*record) for record in records.fetchall()]

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The chunks of document `doc_id` in reading order (empty when it is not indexed)."""
        records = self.connection().execute(
            "SELECT chunk_id, doc_id, text, section, position, n_tokens FROM chunks"
            " WHERE doc_id = ? ORDER BY position",
            (doc_id,),
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
            for chunk_id, doc, text, section, position, n_tokens in records.fetchall()
        ]

    def _number(self, sql: str) -> int:
        return int(self.connection().execute(sql).fetchone()[0])

    # ---- integrity ---------------------------------------------------------------------

    def quick_check(self) -> None:
        """SQLite's quick_check (page structure, not every index); IndexMismatchError naming
        the first problem when it fails."""
        with database_errors(self.folder):
            results = [row for (row,) in self.connection().execute("PRAGMA quick_check")]
        if results != ["ok"]:
            raise IndexMismatchError(
                f"{self.path}: the index database is damaged ({results[0]}); "
                "rebuild it with `rag ingest` into a new --index folder "
                "(`rag check-index` lists every problem)"
            )

    def problems(self) -> tuple[list[str], bool]:
        """(problems found, whether the database is sound enough to check further): SQLite's
        integrity_check, chunks without their document, documents left partly ingested."""
        connection = self.connection()
        try:
            results = [row for (row,) in connection.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            results = [str(error)]
        if results != ["ok"]:
            advice = "rebuild the index with `rag ingest` into a new --index folder"
            return [f"{self.path}: {' '.join(result.split())}" for result in results] + [
                advice
            ], False
        problems: list[str] = []
        with database_errors(self.folder):
            orphans = connection.execute(
                "SELECT COUNT(*) FROM chunks AS c LEFT JOIN documents AS d ON d.id = c.doc_id"
                " WHERE d.id IS NULL"
            ).fetchone()[0]
            if orphans:
                problems.append(f"{self.path}: {orphans} chunks belong to no document")
            for (doc_id,) in connection.execute(
                "SELECT id FROM documents WHERE content_hash LIKE ? ORDER BY id", (PARTIAL + "%",)
            ):
                problems.append(f"{doc_id}: only partly ingested; re-run `rag ingest` to finish it")
        return problems, True


# ---- module helpers ----------------------------------------------------------------------


def connect(database: Path) -> sqlite3.Connection:
    # isolation_level=None: transactions are begun and committed explicitly (`transaction`).
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


def read_meta(database: Path) -> dict[str, str] | None:
    """The meta table, or None for a database that was never fully created."""
    connection = connect(database)
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


def create_database(
    database: Path, embedder_id: str, dimension: int, settings: Settings
) -> dict[str, str]:
    """Create the tables and meta in one transaction, so a crash leaves all or nothing."""
    meta = {
        "schema_version": str(SCHEMA_VERSION),
        "embedder_id": embedder_id,
        "dimension": str(dimension),
        "chunking": chunking_key(settings),
        "generation": "0",
        "instance": uuid.uuid4().hex,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    connection = connect(database)
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


_held_locks = threading.local()


@contextmanager
def file_lock(folder: Path, *, blocking: bool, reentrant: bool = False) -> Iterator[bool]:
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
def database_errors(folder: Path) -> Iterator[None]:
    """Turn SQLite's errors about a damaged or unreadable database into one clear line."""
    try:
        yield
    except sqlite3.DatabaseError as error:
        raise IndexMismatchError(
            f"{folder / DATABASE_FILE}: the index database is damaged or unreadable ({error}); "
            "rebuild it with `rag ingest` into a new --index folder"
        ) from None
