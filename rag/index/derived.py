"""The derived files of an index folder: FAISS and BM25, kept in step with chunks.sqlite.

    vectors.faiss       FAISS index of the chunk vectors
    lexical/            BM25 index (bm25s), with its own stamp inside
    vectors.faiss.json  stamp: database instance, generation, index kind, and the SHA-256 of
                        vectors.faiss and of lexical/ (what `rag check-index` compares)

A derived file is trusted only when its stamp names the current database instance and
generation and its checksum matches; otherwise it is brought up to date from the database
(a checksum mismatch says so on stderr). Files of the same database are worth loading even
when stale: row ids are never reused, so only rows added or removed since need work. Files
are written to name.<pid>.tmp and replaced by rename, both files before the stamp, so a
process killed at any moment leaves files that are either trusted or rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from rag.index.database import DATABASE_FILE, ChunkDatabase, file_lock
from rag.index.lexical import LexicalIndex
from rag.index.vectors import EXACT, HNSW, VectorIndex

VECTORS_FILE = "vectors.faiss"
VECTORS_STAMP_FILE = "vectors.faiss.json"
LEXICAL_FOLDER = "lexical"
# Temporary files a process writes beside their targets: name.<pid>.tmp and name.<pid>.old.
_LEFTOVER = re.compile(r"^.+\.\d+\.(tmp|old)$")

logger = logging.getLogger("rag.index")


class DerivedFiles:
    """FAISS and BM25 of one index folder, in memory and on disk, and their stamp.

    `searchers()` hands out both, first brought up to date when the database changed (an
    ingest here stopped half-way, or another process ingested beside a running server).
    """

    def __init__(self, database: ChunkDatabase, dimension: int, exact_search_limit: int) -> None:
        self.database = database
        self.folder = database.folder
        self.dimension = dimension
        self.exact_search_limit = exact_search_limit
        self._lock = threading.Lock()
        self._vectors: VectorIndex | None = None
        self._lexical: LexicalIndex | None = None
        self._generation = -1  # the database generation the in-memory files match

    def load(self) -> None:
        """Load FAISS and BM25 from disk; bring them up to date with the database if stale."""
        instance = self.database.instance
        generation = self.database.generation()
        vectors_stamp = read_json(self.folder / VECTORS_STAMP_FILE)
        lexical_stamp = LexicalIndex.read_stamp(self.folder / LEXICAL_FOLDER)
        vectors_trusted = lexical_trusted = False
        if vectors_stamp and vectors_stamp.get("instance") == instance:
            vectors_trusted, lexical_trusted = self.checksums_match(vectors_stamp, warn=True)
        vectors: VectorIndex | None = None
        if vectors_trusted:
            try:
                vectors = VectorIndex.load(self.folder / VECTORS_FILE)
            except (RuntimeError, OSError):
                vectors = None  # damaged or missing: rebuilt from SQLite
            if vectors is not None and vectors.dimension != self.dimension:
                vectors = None
        lexical: LexicalIndex | None = None
        if lexical_trusted and lexical_stamp and lexical_stamp.get("instance") == instance:
            try:
                lexical = LexicalIndex.load(self.folder / LEXICAL_FOLDER)
            except (OSError, ValueError, KeyError):
                lexical = None
        self._vectors, self._lexical = vectors, lexical
        if (
            vectors is not None
            and lexical is not None
            and _stamp_matches(vectors_stamp, instance, generation)
            and _stamp_matches(lexical_stamp, instance, generation)
        ):
            self._generation = generation
            return
        self.refresh(persist=True)

    def searchers(self) -> tuple[VectorIndex, LexicalIndex]:
        """FAISS and BM25 as of the database's current generation."""
        if (
            self._generation < 0
            or self._vectors is None
            or self._lexical is None
            or self.database.generation() != self._generation
        ):
            self.refresh(persist=False)
        assert self._vectors is not None and self._lexical is not None
        return self._vectors, self._lexical

    def forget_if_stale(self) -> None:
        """After a write that may have stopped half-way: whatever was committed is searched
        at once (the next `searchers()` refreshes)."""
        if self.database.generation() != self._generation:
            self._generation = -1

    def refresh(self, *, persist: bool, force: bool = False) -> None:
        """Bring FAISS and BM25 up to the database's current chunks; optionally save them."""
        with self._lock:
            generation = self.database.generation()
            if not force and generation == self._generation:
                return  # another thread refreshed while this one waited for the lock
            row_ids = self.database.row_ids()
            vectors = self._synced_vectors(self._vectors, row_ids)
            lexical = self._lexical
            if lexical is None or not np.array_equal(np.asarray(lexical.row_ids), row_ids):
                lexical = LexicalIndex.build(*self.database.passages())
            changed = vectors is not self._vectors or lexical is not self._lexical
            self._vectors, self._lexical = vectors, lexical
            self._generation = generation
            if persist and (changed or not self._files_match(generation)):
                self._persist(generation)

    def _synced_vectors(self, current: VectorIndex | None, row_ids: np.ndarray) -> VectorIndex:
        limit = self.exact_search_limit
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
                updated.add(*self.database.vectors(added, self.dimension))
                return updated
        all_ids, all_vectors = self.database.vectors(row_ids, self.dimension)
        return VectorIndex.build(
            all_ids, all_vectors, dimension=self.dimension, exact_search_limit=limit
        )

    def _files_match(self, generation: int) -> bool:
        instance = self.database.instance
        return _stamp_matches(
            read_json(self.folder / VECTORS_STAMP_FILE), instance, generation
        ) and _stamp_matches(
            LexicalIndex.read_stamp(self.folder / LEXICAL_FOLDER), instance, generation
        )

    def _persist(self, generation: int) -> None:
        """Save FAISS and BM25 with stamps; skipped when another process holds the lock (it
        will write its own) or the folder is read-only (the next open rebuilds again)."""
        assert self._vectors is not None and self._lexical is not None
        try:
            with file_lock(self.folder, blocking=False, reentrant=True) as acquired:
                if not acquired:
                    return
                stamp = {"instance": self.database.instance, "generation": generation}
                # Both files first, the stamp with their checksums after: a crash in between
                # leaves a stamp naming an older generation, which only causes a rebuild.
                self._vectors.save(self.folder / VECTORS_FILE)
                self._lexical.save(self.folder / LEXICAL_FOLDER, stamp)
                write_json_atomic(
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

    # ---- checks ------------------------------------------------------------------------

    def recorded_checksums(self) -> dict[str, str | None]:
        """The checksums the stamp records, by file name (for the manifest)."""
        stamp = read_json(self.folder / VECTORS_STAMP_FILE) or {}
        return {
            VECTORS_FILE: stamp.get("vectors_sha256"),
            LEXICAL_FOLDER: stamp.get("lexical_sha256"),
        }

    def checksums_match(self, stamp: dict[str, Any] | None, *, warn: bool) -> tuple[bool, bool]:
        """Whether vectors.faiss and lexical/ match the checksums in `stamp` (the derived
        files' stamp). With `warn`, a mismatch is one line on stderr (logger "rag.index")."""
        if not stamp or "vectors_sha256" not in stamp or "lexical_sha256" not in stamp:
            return False, False  # written before checksums were recorded: rebuilt once
        found = {
            VECTORS_FILE: (stamp["vectors_sha256"], _file_sha256(self.folder / VECTORS_FILE)),
            LEXICAL_FOLDER: (stamp["lexical_sha256"], _folder_sha256(self.folder / LEXICAL_FOLDER)),
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

    def problems(self) -> list[str]:
        """Stored vectors against FAISS's copies and unit length, FAISS and BM25 rows
        against the database's, and the files against their recorded checksums."""
        problems = self._vector_problems()
        vectors, lexical = self.searchers()
        row_ids = self.database.row_ids()
        if not np.array_equal(vectors.row_ids(), row_ids):
            problems.append(f"{self.folder / VECTORS_FILE}: its rows differ from the database's")
        if not np.array_equal(np.asarray(lexical.row_ids), row_ids):
            problems.append(f"{self.folder / LEXICAL_FOLDER}: its rows differ from the database's")
        stamp = read_json(self.folder / VECTORS_STAMP_FILE)
        if _stamp_matches(stamp, self.database.instance, self.database.generation()):
            vectors_ok, lexical_ok = self.checksums_match(stamp, warn=False)
            if not vectors_ok:
                problems.append(f"{self.folder / VECTORS_FILE}: does not match its checksum")
            if not lexical_ok:
                problems.append(f"{self.folder / LEXICAL_FOLDER}: does not match its checksum")
        return problems

    def _vector_problems(self) -> list[str]:
        """Problems with the stored vectors, and with FAISS's copies of them."""
        dimension = self.dimension
        vectors = self.searchers()[0]
        bad_size = bad_values = differing = 0
        cursor = self.database.connection().execute(
            "SELECT row_id, vector FROM chunks ORDER BY row_id"
        )
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
        database = self.database.path
        problems: list[str] = []
        if bad_size:
            problems.append(f"{database}: {bad_size} chunk vectors are not {dimension} floats")
        if bad_values:
            problems.append(f"{database}: {bad_values} chunk vectors are not finite unit vectors")
        if differing:
            problems.append(
                f"{self.folder / VECTORS_FILE}: {differing} vectors differ from the database"
            )
        return problems


# ---- module helpers ----------------------------------------------------------------------


def remove_leftovers(folder: Path) -> None:
    """Remove the temporary files a killed process left (vectors.faiss.<pid>.tmp,
    lexical.<pid>.tmp/, manifest.json.<pid>.tmp, lexical.<pid>.old/). Only while holding
    the ingest lock, which every writer holds while its temporary files exist."""
    try:
        with file_lock(folder, blocking=False, reentrant=True) as acquired:
            if not acquired:
                return
            for entry in folder.iterdir():
                if not _LEFTOVER.match(entry.name):
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
    except OSError:
        return  # a read-only folder: nothing can be written there, nothing to clean


def _stamp_matches(stamp: dict[str, Any] | None, instance: str, generation: int) -> bool:
    return (
        bool(stamp) and stamp.get("instance") == instance and stamp.get("generation") == generation
    )


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json_atomic(path: Path, data: dict[str, Any], indent: int | None = None) -> None:
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=indent, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(partial, path)


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
