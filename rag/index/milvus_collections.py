"""Reaching Milvus and making its two collections, for the Milvus backend (rag.index.milvus).

`index.uri` names a Milvus Lite file (tests, small installs; one process at a time, so the
embedded Lite server is released when the last index of this process on it closes) or a Milvus
Standalone / Distributed endpoint, reached through the same pymilvus client. Here: the
connection and its errors (one line naming the location), the collections' schema and vector
index, and the check that an existing collection was made by rag with the same embedder.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.errors import IndexMismatchError, InputError, RagError
from rag.index.backend import chunking_key
from rag.index.embedder import Embedder
from rag.index.lexical import TOKENIZER_VERSION

FORMAT = "1"
INSTALL_HINT = "pip install 'rag[scale]'"
LITE_FILE = "milvus.db"  # inside the index folder when index.uri is empty
MAX_VARCHAR = 65_535  # Milvus caps the length of a VARCHAR
# Vector index of the chunks collection: FLAT is exact, like the local backend up to
# retrieval.exact_search_limit; docs/scale.md measures HNSW and IVF_SQ8 for large collections.
VECTOR_INDEXES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (build params, search params)
    "FLAT": ({}, {}),
    "HNSW": ({"M": 32, "efConstruction": 100}, {"ef": 256}),
    "IVF_SQ8": ({"nlist": 1024}, {"nprobe": 32}),
    "IVF_FLAT": ({"nlist": 1024}, {"nprobe": 32}),
}
# bm25s's defaults (the local backend), so both score alike.
BM25_PARAMETERS = {"bm25_k1": 1.5, "bm25_b": 0.75}


def create_collections(
    client: Any, chunks: str, documents: str, embedder: Embedder, settings: Settings
) -> None:
    """Create the documents collection (if missing), then the chunks collection with the
    properties that mark the index as complete."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    if not client.has_collection(documents):
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=MAX_VARCHAR)
        for name in ("title", "source", "url", "doi", "origin", "content_hash", "chunking"):
            schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR)
        schema.add_field("year", DataType.INT32, nullable=True)
        schema.add_field("n_chunks", DataType.INT64)
        schema.add_field("placeholder", DataType.FLOAT_VECTOR, dim=2)
        indexes = client.prepare_index_params()
        indexes.add_index(field_name="placeholder", index_type="FLAT", metric_type="L2")
        client.create_collection(
            documents, schema=schema, index_params=indexes, consistency_level="Strong"
        )
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    for name in ("chunk_id", "doc_id", "content_hash", "text", "section", "title"):
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR)
    for name in ("source", "source_folded", "url", "doi"):
        schema.add_field(name, DataType.VARCHAR, max_length=MAX_VARCHAR)
    schema.add_field("year", DataType.INT32, nullable=True)
    schema.add_field("position", DataType.INT64)
    schema.add_field("n_tokens", DataType.INT64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=embedder.dimension)
    schema.add_field("lexical", DataType.VARCHAR, max_length=MAX_VARCHAR, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(
        Function(
            name="bm25",
            function_type=FunctionType.BM25,
            input_field_names=["lexical"],
            output_field_names=["sparse"],
        )
    )
    vector_index = settings.index_store.vector_index
    build_params, _ = VECTOR_INDEXES[vector_index]
    indexes = client.prepare_index_params()
    indexes.add_index(
        field_name="vector", index_type=vector_index, metric_type="IP", params=build_params
    )
    indexes.add_index(
        field_name="sparse",
        index_type="SPARSE_INVERTED_INDEX",
        metric_type="BM25",
        params=BM25_PARAMETERS,
    )
    # Created last, with the properties that mark the index as complete and say what
    # made it: a crash before this leaves no chunks collection, so the next run starts over.
    client.create_collection(
        chunks,
        schema=schema,
        index_params=indexes,
        consistency_level="Strong",
        properties={
            "rag.format": FORMAT,
            "rag.embedder_id": embedder.id,
            "rag.dimension": str(embedder.dimension),
            "rag.chunking": chunking_key(settings),
            "rag.tokenizer": TOKENIZER_VERSION,
            "rag.created": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )


def describe_location(settings: Settings) -> str:
    """Where the Milvus index of `settings` lives, for messages: 'URI (collection NAME)'."""
    return f"{milvus_uri(settings)} (collection {settings.index_store.collection})"


def milvus_uri(settings: Settings) -> str:
    """index.uri, or milvus.db inside the index folder when it is empty."""
    return settings.index_store.uri or str(Path(settings.index) / LITE_FILE)


def is_lite(uri: str) -> bool:
    """A Milvus Lite file rather than a server endpoint."""
    return "://" not in uri


def connect(settings: Settings) -> Any:
    """A MilvusClient for the configured URI; RagError naming it when it cannot be had."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise InputError(
            f"index.backend = milvus needs pymilvus and milvus-lite ({INSTALL_HINT})"
        ) from None
    # Milvus Lite logs a traceback of its own when a file is locked; the error below says it.
    logging.getLogger("milvus_lite").setLevel(logging.CRITICAL)
    logging.getLogger("pymilvus").setLevel(logging.ERROR)
    uri = milvus_uri(settings)
    location = describe_location(settings)
    if is_lite(uri):
        if not uri.endswith(".db"):
            raise InputError(f"index.uri {uri}: a Milvus Lite file must end in .db")
        folder = Path(uri).expanduser().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(f"{uri}: cannot create {folder} ({error.strerror or error})") from None
    try:
        client = MilvusClient(uri=uri, token=settings.index_store.token, timeout=10)
        if is_lite(uri):
            with _lite_lock:
                _lite_users[str(Path(uri).resolve())] += 1
        return client
    except Exception as error:  # noqa: BLE001 - pymilvus raises many kinds for one cause
        reason = _reason(error)
        if is_lite(uri) and _locked(uri):
            reason = (
                "another process has this Milvus Lite file open (Lite allows one process at "
                "a time; run a Milvus server to ingest while serving)"
            )
        raise RagError(f"cannot reach Milvus at {location}: {reason}") from None


# Milvus Lite runs one embedded server per file per process; indexes opened on it, counted.
_lite_lock = threading.Lock()
_lite_users: Counter[str] = Counter()


def release_lite(uri: str) -> None:
    if not is_lite(uri):
        return
    key = str(Path(uri).resolve())
    with _lite_lock:
        _lite_users[key] -= 1
        if _lite_users[key] > 0:
            return
        del _lite_users[key]
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(key)


def _locked(uri: str) -> bool:
    try:
        from milvus_lite.db import MilvusLite
        from milvus_lite.exceptions import DataDirLockedError
    except ImportError:
        return False
    try:
        MilvusLite(uri).close()
    except DataDirLockedError:
        return True
    except Exception:  # noqa: BLE001 - anything else is not a lock
        return False
    return False


def check_collection(
    client: Any, chunks: str, location: str, wanted: str, embedder: Embedder | None
) -> None:
    """IndexMismatchError unless the chunks collection was made by rag with embedder `wanted`."""
    description = client.describe_collection(chunks)
    properties = dict(description.get("properties") or {})
    if "rag.embedder_id" not in properties:
        raise IndexMismatchError(
            f"{location}: collection {chunks} was not made by rag; choose another "
            "index.collection or drop it"
        )
    if properties.get("rag.format") != FORMAT:
        raise IndexMismatchError(
            f"{location} uses index format {properties.get('rag.format')}, this version of rag "
            f"reads format {FORMAT}; rebuild it into another index.collection"
        )
    recorded = properties["rag.embedder_id"]
    if recorded != wanted:
        raise IndexMismatchError(
            f"{location} was built with embedder {recorded}, but the settings ask for {wanted}; "
            "rebuild it with that embedder into another index.collection, "
            f"or set embedder.model back to {recorded}"
        )
    dimension = next(
        (
            int(field["params"]["dim"])
            for field in description["fields"]
            if field["name"] == "vector"
        ),
        None,
    )
    if embedder is not None and dimension is not None and dimension != embedder.dimension:
        raise dimension_mismatch(location, dimension, embedder)


def dimension_mismatch(location: str, recorded: int, embedder: Embedder) -> IndexMismatchError:
    return IndexMismatchError(
        f"{location} holds {recorded}-dimensional vectors but embedder {embedder.id} makes "
        f"{embedder.dimension}; rebuild the index into another index.collection"
    )


@contextmanager
def milvus_errors(location: str) -> Iterator[None]:
    """Turn pymilvus errors (server gone, bad request) into one line naming the location."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as error:
        raise RagError(f"Milvus at {location}: {_reason(error)}") from None


def _reason(error: BaseException) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return " ".join(str(message).split())
