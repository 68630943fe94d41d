"""Which index an installation uses: the local folder (rag.index.store) or Milvus.

`index.backend` chooses: "local" (the default: SQLite + FAISS + BM25 in the index folder) or
"milvus" (rag.index.milvus: collections at `index.uri`). Both provide `IndexBackend`, the
surface every command uses, so ingest, search, ask, chat, batch, eval and serve run unchanged
on either. Ingest itself is the ingest stage's (rag.ingest.pipeline): it decides what changed,
chunks and embeds, and writes through the backend's write methods below.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rag.config import Settings
from rag.types import Chunk, Document

if TYPE_CHECKING:
    import numpy as np

    from rag.index.database import IndexedDocument
    from rag.index.embedder import Embedder
    from rag.types import Hit


# A document written in parts (see IndexBackend.writes_documents_in_parts) is recorded under
# this prefix before its content hash until its last part: never "unchanged", so a re-run
# resumes it, and `rag check-index` names it.
PARTIAL = "partial:"


@dataclass
class DocumentVersion:
    """A version of a document to write: the document, its content hash as recorded (the
    local backend writes a large document in parts under PARTIAL + hash), the chunks this
    write adds, and whether an older version is indexed and its chunks must go first."""

    document: Document
    content_hash: str
    chunks: list[Chunk]
    replaces: bool


class IndexBackend(Protocol):
    """What the commands need from an open index (see rag.index.store.Index for each)."""

    embedder: Embedder
    settings: Settings
    chunk_count: int
    document_count: int
    manifest: dict[str, Any]
    # Passages embedded and written per batch by an ingest (rag.ingest.pipeline).
    passages_per_commit: int
    # Whether a document of more passages than one batch may be written in several batches
    # (under PARTIAL + its hash until the last), so a re-run resumes inside it.
    writes_documents_in_parts: bool

    def search_dense(self, query_vector: np.ndarray, k: int, rows: Any = None) -> list: ...

    def search_lexical(self, query: str, k: int, rows: Any = None) -> list: ...

    def has_word_family(self, word: str) -> bool: ...

    def allowed_rows(self, sources: Sequence[str] = (), min_year: int | None = None) -> Any: ...

    def hits(self, scored_rows: Sequence[tuple[int, float]]) -> list[Hit]: ...

    def documents(self) -> list[IndexedDocument]: ...

    def indexed_versions(self) -> dict[str, tuple[str, str]]: ...

    def chunks_of(self, doc_id: str) -> list[Chunk]: ...

    # ---- writing: only inside `writing()` -----------------------------------------------

    def writing(self) -> AbstractContextManager[None]:
        """One ingest's writes: exclusive, and on success the index brought up to date for
        searches (derived files, manifest, flushes)."""
        ...

    def write_batch(self, versions: Sequence[DocumentVersion], vectors: np.ndarray) -> None:
        """Store `versions` with their chunks, `vectors` row i for the i-th chunk in order."""
        ...

    def stored_chunk_ids(self, doc_id: str) -> set[str]:
        """Chunk ids stored for `doc_id` (to resume a document written in parts)."""
        ...

    def remove_documents(self, doc_ids: Sequence[str]) -> int:
        """Remove these documents and their chunks; returns how many."""
        ...

    def close(self) -> None: ...


def chunking_key(settings: Settings) -> str:
    """The chunk settings as the index records them beside each document (JSON): a document
    is unchanged only when its content hash and this key both match. The chunker's version is
    part of it: a chunker that cuts differently re-chunks every document on the next ingest."""
    from rag.ingest.chunking import CHUNKER_VERSION  # the ingest package imports this module

    return json.dumps({**asdict(settings.chunking), "chunker": CHUNKER_VERSION}, sort_keys=True)


def open_index(
    settings: Settings, *, create: bool = False, embedder: Embedder | None = None
) -> IndexBackend:
    """The index `settings` name (`index.backend`), opened; created first when `create`.

    Raises IndexMissingError when there is none and `create` is false, IndexMismatchError
    when it was built with another embedder, and RagError when Milvus cannot be reached.
    """
    if settings.index_store.backend == "milvus":
        from rag.index.milvus import MilvusIndex

        return MilvusIndex.open(settings, create=create, embedder=embedder)
    from rag.index.store import Index

    return Index.open(settings.index, settings, create=create, embedder=embedder)


def index_location(settings: Settings) -> str:
    """Where the index of `settings` lives, as messages name it."""
    if settings.index_store.backend == "milvus":
        from rag.index.milvus import describe_location

        return describe_location(settings)
    return settings.index
