"""Documents (or chunks already embedded) -> the index: the one ingest loop of every backend.

    ingest(index, documents)          the local engine: chunk and embed here
    ingest_vectors(index, items)      (document, chunks, vectors) made elsewhere: Ray workers
                                      (rag.ingest.ray_engine), benchmarks, another index

Both run the same loop over the open index (rag.index.store.Index or
rag.index.milvus.MilvusIndex, through the write methods of rag.index.backend.IndexBackend):

1. Skip a document seen before in this run (the first is kept) or indexed with the same
   content hash and chunk settings: it is neither chunked nor embedded.
2. Chunk a new or changed document (documents path) or check the vectors given for it
   (vectors path: one unit-length float32 row per chunk).
3. Collect documents until a batch holds `passages_per_commit` passages (documents path) or
   `rows_per_commit` rows (vectors path); embed the batch's passages in one call, so the
   embedder can sort them by length across documents; write it in one commit.
4. A document of more passages than one batch is written in parts where the backend allows
   (the local one): it is recorded under PARTIAL + its content hash until its last part, so
   a run killed inside it resumes there.
5. With `prune`, remove indexed documents this run did not see.

Crash safety is the backend's: every batch is committed whole, so a killed ingest leaves the
previous index plus whole batches, and a re-run embeds only what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rag.errors import InputError
from rag.index.backend import PARTIAL, DocumentVersion, IndexBackend, chunking_key
from rag.index.embedder import Embedder
from rag.index.passage import passage_for_embedding
from rag.ingest.chunking import chunk_document
from rag.ingest.progress import IngestProgress
from rag.types import Chunk, Document


@dataclass(frozen=True)
class IngestReport:
    """What one ingest did: documents added, updated (content changed), unchanged, removed
    (pruned), passages embedded (rows written, on the vectors path), wall time, and document
    ids seen twice in the input (the first occurrence is kept)."""

    added: int
    updated: int
    unchanged: int
    removed: int
    chunks_embedded: int
    seconds: float
    duplicates: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def ingest(
    index: IndexBackend,
    documents: Iterable[Document],
    *,
    prune: bool = False,
    progress: bool = True,
) -> IngestReport:
    """Bring `index` up to date with `documents`; returns what changed.

    Unchanged documents (same content hash, same chunk settings) cost nothing; new and
    changed ones are chunked and embedded in batches of `index.passages_per_commit` passages
    across documents, each batch committed at once. With `prune`, indexed documents absent
    from `documents` are removed. A progress bar goes to stderr when it is a terminal (a
    line every 30 s otherwise). Raises TypeError for an item that is not a Document.
    """
    total = len(documents) if hasattr(documents, "__len__") else None  # type: ignore[arg-type]

    def unembedded() -> Iterator[tuple[Document, None, None]]:
        for document in documents:
            if not isinstance(document, Document):
                raise TypeError(f"ingest takes Documents, got {type(document).__name__}")
            yield document, None, None

    with IngestProgress(progress, total) as bar:
        return _run(index, unembedded(), index.passages_per_commit, prune=prune, bar=bar)


def ingest_vectors(
    index: IndexBackend,
    items: Iterable[tuple[Document, Sequence[Chunk], np.ndarray]],
    *,
    rows_per_commit: int = 20_000,
    prune: bool = False,
) -> IngestReport:
    """Store documents whose chunks are already cut and embedded; embeds nothing.

    Each item is (document, its chunks in order, their vectors as a (len(chunks), dimension)
    array from the index's embedder); vectors are normalised to unit length here. Documents
    are skipped, replaced and pruned as by `ingest`; rows are committed `rows_per_commit` at
    a time. Raises InputError naming the document when its chunks belong to another document
    or its vectors do not fit.
    """
    with IngestProgress(False, None) as bar:
        return _run(index, iter(items), rows_per_commit, prune=prune, bar=bar)


def _run(
    index: IndexBackend,
    items: Iterator[tuple[Document, Sequence[Chunk] | None, np.ndarray | None]],
    rows_per_commit: int,
    *,
    prune: bool,
    bar: IngestProgress,
) -> IngestReport:
    """The loop of the module docstring. `items` are (document, None, None) to chunk and
    embed, or (document, chunks, vectors) to store."""
    started = time.perf_counter()
    counts = dict.fromkeys(
        ("added", "updated", "unchanged", "removed", "chunks_embedded", "duplicates"), 0
    )
    chunking = chunking_key(index.settings)
    batch = _Batch(index, counts, bar)
    with index.writing():
        indexed = index.indexed_versions()
        seen: set[str] = set()
        for document, given_chunks, given_vectors in items:
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
            vectors = None
            if given_chunks is None:
                chunks = chunk_document(
                    document, index.settings.chunking, index.embedder.count_tokens
                )
                if len(chunks) > rows_per_commit and index.writes_documents_in_parts:
                    batch.commit()
                    _write_in_parts(index, document, content_hash, chunks, previous, batch)
                    continue
            else:
                chunks = list(given_chunks)
                vectors = checked_vectors(index.embedder, document, chunks, given_vectors)
            version = DocumentVersion(document, content_hash, chunks, previous is not None)
            batch.add(version, vectors)
            if batch.rows >= rows_per_commit:
                batch.commit()
        batch.commit()
        if prune:
            counts["removed"] = index.remove_documents(sorted(set(indexed) - seen))
    return IngestReport(**counts, seconds=round(time.perf_counter() - started, 3))


class _Batch:
    """Documents waiting for one commit, with their vectors where they came with them."""

    def __init__(self, index: IndexBackend, counts: dict[str, int], bar: IngestProgress) -> None:
        self.index = index
        self.counts = counts
        self.bar = bar
        self._versions: list[DocumentVersion] = []
        self._vectors: list[np.ndarray | None] = []
        self.rows = 0

    def add(self, version: DocumentVersion, vectors: np.ndarray | None) -> None:
        self._versions.append(version)
        self._vectors.append(vectors)
        self.rows += len(version.chunks)

    def commit(self) -> None:
        """Write the waiting documents in one commit and count them."""
        if not self._versions:
            return
        embedded = _embed_and_write(self.index, self._versions, self._vectors)
        for version in self._versions:
            self.counts["updated" if version.replaces else "added"] += 1
        self.counts["chunks_embedded"] += self.rows
        self.bar.advance(len(self._versions), embedded)
        self._versions, self._vectors, self.rows = [], [], 0


def _write_in_parts(
    index: IndexBackend,
    document: Document,
    content_hash: str,
    chunks: list[Chunk],
    previous: tuple[str, str] | None,
    batch: _Batch,
) -> None:
    """A document of more passages than one commit holds, committed `passages_per_commit`
    at a time. Until its last part it is recorded under PARTIAL + its content hash, so a
    re-run after a kill finds the parts already stored and embeds only the rest."""
    resuming = previous == (PARTIAL + content_hash, chunking_key(index.settings))
    stored = index.stored_chunk_ids(document.id) if resuming else set()
    remaining = [chunk for chunk in chunks if chunk.id not in stored]
    size = index.passages_per_commit
    replaces = previous is not None and not resuming
    for start in range(0, len(remaining), size) if remaining else range(1):
        last = start + size >= len(remaining)
        part = DocumentVersion(
            document,
            content_hash if last else PARTIAL + content_hash,
            remaining[start : start + size],
            replaces=replaces and start == 0,
        )
        embedded = _embed_and_write(index, [part], [None])
        batch.counts["chunks_embedded"] += embedded
        done = len(stored) + min(start + size, len(remaining))
        batch.bar.advance(1 if last else 0, embedded, f"{document.id}: {done}/{len(chunks)}")
    batch.counts["updated" if replaces else "added"] += 1


def _embed_and_write(
    index: IndexBackend,
    versions: list[DocumentVersion],
    given: list[np.ndarray | None],
) -> int:
    """Embed, in one call, the passages of the versions that came without vectors (None in
    `given`), then write all of them in one commit. Returns the passages embedded."""
    embedder = index.embedder
    passages = [
        passage_for_embedding(version.document.title, chunk.section, chunk.text)
        for version, vectors in zip(versions, given, strict=True)
        if vectors is None
        for chunk in version.chunks
    ]
    embedded = (
        embedder.embed_passages(passages)
        if passages
        else np.zeros((0, embedder.dimension), dtype=np.float32)
    )
    rows: list[np.ndarray] = []
    start = 0
    for version, vectors in zip(versions, given, strict=True):
        if vectors is None:
            vectors = embedded[start : start + len(version.chunks)]
            start += len(version.chunks)
        rows.append(vectors)
    index.write_batch(versions, np.concatenate(rows))
    return len(passages)


def checked_vectors(
    embedder: Embedder, document: Document, chunks: Sequence[Chunk], vectors: np.ndarray
) -> np.ndarray:
    """`vectors` as unit-length float32 rows, after checking they fit `chunks` (one row of
    the embedder's dimension per chunk, finite values, chunks of this document); InputError
    naming the document otherwise."""
    for chunk in chunks:
        if chunk.doc_id != document.id:
            raise InputError(
                f"document {document.id}: chunk {chunk.id} belongs to document {chunk.doc_id}"
            )
    array = np.asarray(vectors, dtype=np.float32)
    expected = (len(chunks), embedder.dimension)
    if array.shape != expected:
        raise InputError(
            f"document {document.id}: vectors have shape {array.shape}, expected {expected} "
            f"({len(chunks)} chunks of embedder {embedder.id})"
        )
    if not np.isfinite(array).all():
        raise InputError(f"document {document.id}: vectors contain NaN or infinite values")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return array / norms
