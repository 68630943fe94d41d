"""Which index an installation uses: the local folder (rag.index.store) or Milvus.

`index.backend` chooses: "local" (the default: SQLite + FAISS + BM25 in the index folder) or
"milvus" (rag.index.milvus: collections at `index.uri`). Both provide `IndexBackend`, the
surface every command uses, so ingest, search, ask, chat, batch, eval and serve run unchanged
on either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rag.config import Settings

if TYPE_CHECKING:
    import numpy as np

    from rag.index.embedder import Embedder
    from rag.index.store import IndexedDocument, IngestReport
    from rag.types import Chunk, Document, Hit


class IndexBackend(Protocol):
    """What the commands need from an open index (see rag.index.store.Index for each)."""

    embedder: Embedder
    chunk_count: int
    document_count: int
    manifest: dict[str, Any]

    def ingest(
        self, documents: Iterable[Document], *, prune: bool = False, progress: bool = True
    ) -> IngestReport: ...

    def ingest_vectors(
        self, items: Iterable[tuple[Document, Sequence[Chunk], np.ndarray]]
    ) -> IngestReport: ...

    def search_dense(self, query_vector: np.ndarray, k: int, rows: Any = None) -> list: ...

    def search_lexical(self, query: str, k: int, rows: Any = None) -> list: ...

    def allowed_rows(self, sources: Sequence[str] = (), min_year: int | None = None) -> Any: ...

    def hits(self, scored_rows: Sequence[tuple[int, float]]) -> list[Hit]: ...

    def documents(self) -> list[IndexedDocument]: ...

    def indexed_versions(self) -> dict[str, tuple[str, str]]: ...

    def chunks_of(self, doc_id: str) -> list[Chunk]: ...

    def close(self) -> None: ...


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
