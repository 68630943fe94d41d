"""Ingest on Ray Data: the same loaders, chunker and embedder, run as stages of a Ray pipeline.

Over 500 lines because it carries the Ray-specific plumbing (resources, retries, actor pool,
error wording) for the three stages; the stages' logic itself is the local loaders, chunker and
embedder.

    rag ingest PATH... --engine ray        (setting ingest.engine; extra rag[scale])

    files      -> documents   CPU tasks, one per file (rag.ingest.baseline.read_input_file:
                              the loaders, PubMed baseline files streamed). A document whose
                              content hash and chunk settings the index already holds goes on
                              as its id alone: it is neither chunked nor embedded.
    documents  -> passages    CPU tasks: rag.ingest.chunking.chunk_document, then each passage
                              tokenized for the model. Tokenizing runs here, ahead of the
                              model, because it is what limits a GPU (docs/scale.md).
    passages   -> vectors     an actor pool holding the embedding model: one GPU per actor
                              when the cluster has GPUs, `ingest.batch_size` passages a call.
    vectors    -> the index   this process: chunks regrouped by document and written through
                              rag.ingest.pipeline.ingest_vectors, `passages_per_commit` at a time.

RAY_ADDRESS (setting ingest.ray_address) names a running cluster (rag[scale] must be installed
on its nodes); without it a local Ray is started for the job (`ingest.cpus` CPUs) and stopped
after. Chunk ids, vectors (to float rounding) and search results equal the local engine's on
the same documents. Crash safety is the index's: every batch written is committed, so a job
killed anywhere leaves the previous index (plus whole batches) loadable, and a re-run skips
what was written. A worker process that dies mid-job is replaced and its work run again
(WORKER_RETRIES); a job that fails all the same ends with one line naming Ray's error.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import chdir, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import EmbedderSettings, Settings
from rag.errors import InputError, RagError
from rag.index.backend import chunking_key
from rag.ingest.baseline import input_files, read_input_file
from rag.ingest.loaders import IngestProblem
from rag.ingest.pipeline import IngestReport, ingest, ingest_vectors
from rag.types import Chunk, Document

INSTALL_HINT = "pip install 'rag[scale]'"
DEMO_SOURCE = "demo:open-medicine"  # the read stage's name for `rag ingest --demo`
DOCUMENTS_PER_BLOCK = 1_000  # documents per block the read stage hands on
BLOCK_BYTES = 4 * 1024 * 1024  # the largest block a stage emits (Ray Data's target_max_block_size)
DEFAULT_GCS_PORT = 6379
RAY_CLIENT_PORT = 10001
# Memory Ray reserves per chunking task and per embedding actor (MiniLM measured here: about
# 0.5 GB resident with its tokenizer, 1 GB with batches of 256 passages in flight).
CHUNK_TASK_MEMORY = 512 * 1024**2
EMBED_ACTOR_MEMORY = 1024 * 1024**2
# A worker process that dies (killed, out of memory, its node lost) is replaced and its work
# run again: an embedding actor is restarted without limit, and each call (a block of
# passages) or CPU task is tried up to this many times more before the job fails with one
# line, so a batch that kills every worker it reaches ends the job instead of looping.
WORKER_RETRIES = 3

# Every row of every stage has these columns, so blocks always share one schema. `kind` is
# "chunk" (a passage of a new or changed document), "empty" (such a document without chunks),
# "unchanged" (an indexed document: only its id travels) or "problem" (an input that cannot
# be used; `message` says why).
_DOCUMENT_COLUMNS = (
    "kind", "doc_id", "title", "source", "url", "doi", "origin", "content_hash", "message",
)  # fmt: skip


@dataclass(frozen=True)
class _Version(Document):
    """A document rebuilt from pipeline rows: citation fields and the content hash computed
    where it was read (its text stayed there; the index stores chunks, not document text)."""

    version: str = ""

    def content_hash(self) -> str:
        return self.version


def ingest_on_ray(
    index: Any,
    settings: Settings,
    paths: Sequence[Path],
    *,
    demo: bool = False,
    exclude: Sequence[Path] = (),
    prune: bool = False,
    progress: bool = True,
    on_problem: Callable[[IngestProblem], None] = lambda problem: None,
) -> IngestReport:
    """Ingest the files under `paths` (and the demo corpus with `demo`) into the open `index`
    (either backend) on Ray; returns what changed, like rag.ingest.pipeline.ingest.

    Inputs that cannot be used go to `on_problem` and the rest is ingested. Raises RagError
    with one line when Ray cannot be reached or the job fails; what was committed stays.
    """
    started = time.perf_counter()
    sources = [DEMO_SOURCE] if demo else []
    for item in input_files(paths, exclude=exclude):
        if isinstance(item, IngestProblem):
            on_problem(item)
        else:
            sources.append(str(item))
    chunking = chunking_key(settings)
    indexed = {
        doc_id: content_hash
        for doc_id, (content_hash, doc_chunking) in index.indexed_versions().items()
        if doc_chunking == chunking
    }
    collector = _Collector(index.embedder.dimension, on_problem)
    with _ray_session(settings) as (ray, where):
        dataset = _pipeline(ray, sources, indexed, settings, progress=progress)
        try:
            written = ingest_vectors(
                index,
                collector.documents(dataset.iter_batches(batch_size=None, batch_format="pyarrow")),
                rows_per_commit=index.passages_per_commit,
            )
        except ray.exceptions.RayError as error:
            raise RagError(
                f"the Ray job on {where} failed ({_first_line(error)}); every batch committed "
                "before is kept: run the same ingest again to finish"
            ) from None
    removed = 0
    if prune:
        # Ingesting every document seen (as rebuilt versions, now all indexed and unchanged)
        # with prune=True removes exactly the indexed documents this run did not see.
        removed = ingest(index, collector.seen_versions(), prune=True, progress=False).removed
    return IngestReport(
        added=written.added,
        updated=written.updated,
        unchanged=written.unchanged + collector.unchanged,
        removed=removed,
        chunks_embedded=written.chunks_embedded,
        seconds=round(time.perf_counter() - started, 3),
        duplicates=written.duplicates + collector.duplicates,
    )


# ---- the pipeline ----------------------------------------------------------------------------


def _pipeline(
    ray: Any, sources: list[str], indexed: dict[str, str], settings: Settings, *, progress: bool
) -> Any:
    """The Ray Data dataset of embedded chunk rows (lazy: it runs as the caller iterates)."""
    import ray.data

    _quiet_ray_logs()  # again: importing ray.data set its own levels
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress and _stderr_is_terminal()
    context.print_on_execution_start = False
    # Small blocks stream: with Ray's default (128 MB) a collection of a few thousand documents
    # is one block, embedded by one task whose output appears only at the end, so a long
    # single-node run shows no progress (and Ray Data stops it after 30 minutes) and the
    # index receives nothing to commit until the very end.
    context.target_max_block_size = BLOCK_BYTES
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    actors = settings.ingest.embed_actors or max(gpus, 1)
    # A CPU per chunking task on a real cluster; on a machine of two or three cores, half a
    # CPU, so that the tasks, the reader and a CPU-only model actor always fit together.
    task_cpus = 1.0 if resources.get("CPU", 0) >= 4 else 0.5
    files = ray.data.from_items(
        [{"source": source} for source in sources] or [{"source": ""}],
        override_num_blocks=max(1, len(sources)),
    )
    # Distinct resources keep Ray Data from fusing the stages into one: reading is light;
    # a chunking task loads the model's tokenizer (and, through `load_embedder`, the model),
    # so it reserves memory; the model has its own actors.
    documents = files.map_batches(
        _read_sources,
        batch_size=1,
        batch_format="pyarrow",
        fn_kwargs={"indexed": indexed, "cwd": os.getcwd()},
        num_cpus=task_cpus / 2,
        max_retries=WORKER_RETRIES,
    )
    passages = documents.map_batches(
        _cut_passages,
        batch_size=64,
        batch_format="pyarrow",
        fn_kwargs={"settings": settings},
        num_cpus=task_cpus,
        memory=CHUNK_TASK_MEMORY,
        max_retries=WORKER_RETRIES,
    )
    return passages.map_batches(
        _embedding_actor(settings.embedder, actors),
        batch_size=max(1, settings.ingest.batch_size),
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=1.0 if gpus else task_cpus,
        memory=EMBED_ACTOR_MEMORY,
        max_restarts=-1,
        max_task_retries=WORKER_RETRIES,
    )


def _read_sources(batch: Any, indexed: dict[str, str], cwd: str) -> Iterator[Any]:
    """Stage 1 (CPU task): the documents of the source files in `batch`, as rows. `indexed`:
    doc id -> content hash of the documents indexed with the current chunk settings. Files
    are read from `cwd`, the ingesting process's working directory, because document ids are
    paths relative to it (rag.ingest.loaders.display_path)."""
    rows: list[dict[str, Any]] = []
    # The directory is held across yields: a Ray worker runs one task at a time. A node
    # without it (no shared file system) reports each file it cannot read as a problem.
    with chdir(cwd) if os.path.isdir(cwd) else nullcontext():
        for source in batch.column("source").to_pylist():
            for item in _documents_of(source) if source else ():
                if isinstance(item, IngestProblem):
                    rows.append(
                        _row("problem", message=item.message, origin=item.path, line=item.line)
                    )
                    continue
                content_hash = item.content_hash()
                if indexed.get(item.id) == content_hash:
                    rows.append(_row("unchanged", doc_id=item.id, content_hash=content_hash))
                else:
                    rows.append(_document_row(item, content_hash))
                if len(rows) >= DOCUMENTS_PER_BLOCK:
                    yield _table(rows, _DOCUMENT_SCHEMA())
                    rows = []
    yield _table(rows, _DOCUMENT_SCHEMA())


def _documents_of(source: str) -> Iterator[Document | IngestProblem]:
    if source == DEMO_SOURCE:
        from rag.ingest.demo import load_demo_corpus

        yield from load_demo_corpus()
    else:
        yield from read_input_file(Path(source))


def _cut_passages(batch: Any, settings: Settings) -> Any:
    """Stage 2 (CPU task): each new or changed document's chunks, one row per chunk, with the
    passage the model embeds and, when the model allows, its token ids."""
    from rag.index.embedder import load_embedder
    from rag.ingest.chunking import chunk_document, passage_for_embedding

    embedder = load_embedder(settings.embedder)  # once per worker process (cached)
    rows: list[dict[str, Any]] = []
    for record in batch.to_pylist():
        if record["kind"] != "document":
            rows.append({**record, **_NO_CHUNK})
            continue
        document = Document(
            **{name: record[name] for name in ("title", "text", "source", "year", "url", "doi")},
            id=record["doc_id"],
            origin=record["origin"],
        )
        chunks = chunk_document(document, settings.chunking, embedder.count_tokens)
        record.pop("text")
        if not chunks:
            rows.append({**record, **_NO_CHUNK, "kind": "empty"})
        for chunk in chunks:
            rows.append(
                {
                    **record,
                    "kind": "chunk",
                    "chunk_id": chunk.id,
                    "section": chunk.section,
                    "position": chunk.position,
                    "chunk_text": chunk.text,
                    "n_tokens": chunk.n_tokens,
                    "n_chunks": len(chunks),
                    "passage": passage_for_embedding(document.title, chunk.section, chunk.text),
                    "token_ids": [],
                }
            )
    if getattr(embedder, "tokenizes_apart", False):
        chunk_rows = [row for row in rows if row["kind"] == "chunk"]
        for row, ids in zip(
            chunk_rows, embedder.passage_token_ids([row["passage"] for row in chunk_rows])
        ):
            row["token_ids"] = ids
    return _table(rows, _PASSAGE_SCHEMA())


def _embedding_actor(embedder_settings: EmbedderSettings, actors: int) -> type:
    """Stage 3: the actor class holding the embedding model (one load per actor). Made here
    so the settings travel inside the class rather than as constructor arguments, which Ray
    could not recover for an actor it restarts after its worker died."""

    class PassageEmbedder:
        def __init__(self) -> None:
            import ray

            from rag.index.embedder import load_embedder

            self.embedder = load_embedder(embedder_settings)
            model = getattr(self.embedder, "_model", None)
            if ray.get_gpu_ids() and model is not None:
                model.to("cuda").half()  # fp16 on a GPU: vectors agree with fp32 to ~1e-3
            else:
                # Ray gives an actor one CPU thread; the model is the heavy stage, so it takes
                # the node's cores (shared with the light CPU tasks).
                import torch

                torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, actors)))

        def __call__(self, batch: Any) -> Any:
            return _add_vectors(self.embedder, batch)

    return PassageEmbedder


def _add_vectors(embedder: Any, batch: Any) -> Any:
    """`batch` with a `vector` column: each chunk row's embedding (zeros for other rows), from
    its token ids when the chunk stage made them, else from its passage."""
    import pyarrow as pa

    kinds = batch.column("kind").to_pylist()
    chunk_positions = [i for i, kind in enumerate(kinds) if kind == "chunk"]
    vectors = np.zeros((len(kinds), embedder.dimension), dtype=np.float32)
    if chunk_positions:
        token_ids = batch.column("token_ids").to_pylist()
        if all(token_ids[i] for i in chunk_positions):
            found = embedder.embed_token_ids([token_ids[i] for i in chunk_positions])
        else:
            passages = batch.column("passage").to_pylist()
            found = embedder.embed_passages([passages[i] for i in chunk_positions])
        vectors[chunk_positions] = found
    batch = batch.drop_columns(["token_ids", "passage"])
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return batch.append_column("vector", pa.FixedSizeListArray.from_arrays(flat, embedder.dimension))


# ---- back in this process: rows -> documents for the index -----------------------------------


class _Collector:
    """Regroups embedded chunk rows by document (a document's chunks may arrive in several
    blocks, in any order) and hands each complete document to the index.

    The first version of a document id met wins, as in the local engine; another file giving
    the same id is reported as a duplicate and skipped.
    """

    def __init__(self, dimension: int, on_problem: Callable[[IngestProblem], None]) -> None:
        self.dimension = dimension
        self.on_problem = on_problem
        self.unchanged = 0
        self.duplicates = 0
        self._versions: dict[str, _Version] = {}  # doc id -> the version kept
        self._reported: set[tuple[str, str, str]] = set()

    def documents(
        self, batches: Iterable[Any]
    ) -> Iterator[tuple[Document, list[Chunk], np.ndarray]]:
        waiting: dict[str, dict[int, tuple[Chunk, np.ndarray]]] = {}
        for batch in batches:
            vectors = _vectors_of(batch, self.dimension)
            for position, row in enumerate(batch.drop_columns(["vector"]).to_pylist()):
                if row["kind"] == "problem":
                    self.on_problem(IngestProblem(row["origin"], row["message"], row["line"]))
                    continue
                document = self._kept(row)
                if document is None:
                    continue
                if row["kind"] == "unchanged":
                    self.unchanged += 1
                elif row["kind"] == "empty":
                    yield document, [], np.zeros((0, self.dimension), dtype=np.float32)
                else:
                    parts = waiting.setdefault(document.id, {})
                    parts[row["position"]] = (_chunk(row), vectors[position])
                    if len(parts) == row["n_chunks"]:
                        del waiting[document.id]
                        ordered = [parts[i] for i in sorted(parts)]
                        chunks = [chunk for chunk, _ in ordered]
                        yield document, chunks, np.stack([vector for _, vector in ordered])
        if waiting:
            raise RagError(f"the Ray job lost chunks of {len(waiting)} document(s); run it again")

    def _kept(self, row: dict[str, Any]) -> _Version | None:
        """The document `row` belongs to, or None when it is a repeat of an id already met."""
        version = _version(row)
        kept = self._versions.setdefault(version.id, version)
        if (kept.origin, kept.version) == (version.origin, version.version):
            return kept
        key = (version.id, version.origin, version.version)
        if key not in self._reported:
            self._reported.add(key)
            self.duplicates += 1
            self.on_problem(
                IngestProblem(
                    version.origin,
                    f"duplicate document id '{version.id}' (first seen in {kept.origin}); skipped",
                )
            )
        return None

    def seen_versions(self) -> list[Document]:
        """Every document kept, as the version now indexed (for pruning)."""
        return list(self._versions.values())


# ---- Ray -------------------------------------------------------------------------------------


LOCAL_START_ATTEMPTS = 2  # a local Ray that timed out starting is started once more


@contextmanager
def _ray_session(settings: Settings) -> Iterator[tuple[Any, str]]:
    """(the ray module, a description of the cluster) for the job: the Ray already running in
    this process, the cluster at ingest.ray_address, or a local Ray started here and stopped
    after. RagError naming the address when it cannot be reached."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray ({INSTALL_HINT})") from None
    if ray.is_initialized():
        yield ray, "the running Ray"
        return
    address = settings.ingest.ray_address.strip()
    where = f"the Ray cluster at {address}" if address else "a local Ray"
    if address and address not in ("auto", "local"):
        _check_reachable(address)
    _quiet_ray_logs()
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(
                address=address or "local",
                num_cpus=(settings.ingest.cpus or None) if not address else None,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
            break
        except Exception as error:  # noqa: BLE001 - ray.init raises many kinds for one cause
            # A local Ray waits a fixed 30 s for its raylet to register; on a busy machine it
            # may miss that once, and a second start usually succeeds. A cluster is not retried.
            if address or attempt == LOCAL_START_ATTEMPTS or "timed out" not in str(error):
                message = f"cannot start or reach {where} (RAY_ADDRESS): {_first_line(error)}"
                raise RagError(message) from None
            ray.shutdown()
    try:
        yield ray, where
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """RagError at once when nothing listens at `address` (ray.init would retry for long)."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host:
        default = RAY_CLIENT_PORT if address.startswith("ray://") else DEFAULT_GCS_PORT
        host, port = target, str(default)
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise RagError(
            f"RAY_ADDRESS {address}: no Ray cluster answers at {host}:{port} ({reason}); "
            "start one (`ray start --head`) or unset RAY_ADDRESS to run on a local Ray"
        ) from None


def _quiet_ray_logs() -> None:
    """Ray's notes (token authentication, progress bars, deprecations) are not for rag's
    users; its errors still show."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


# ---- rows ------------------------------------------------------------------------------------

_NO_CHUNK = {
    "chunk_id": "", "section": "", "position": -1, "chunk_text": "", "n_tokens": 0,
    "n_chunks": 0, "passage": "", "token_ids": [],
}  # fmt: skip


def _row(kind: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(_DOCUMENT_COLUMNS, "")
    row.update(kind=kind, year=None, line=None, text="", url=None, doi=None)
    row.update(values)
    return row


def _document_row(document: Document, content_hash: str) -> dict[str, Any]:
    return _row(
        "document",
        doc_id=document.id,
        title=document.title,
        text=document.text,
        source=document.source,
        year=document.year,
        url=document.url,
        doi=document.doi,
        origin=document.origin,
        content_hash=content_hash,
    )


def _version(row: dict[str, Any]) -> _Version:
    return _Version(
        id=row["doc_id"],
        title=row["title"],
        text="",
        source=row["source"],
        year=row["year"],
        url=row["url"],
        doi=row["doi"],
        origin=row["origin"],
        version=row["content_hash"],
    )


def _chunk(row: dict[str, Any]) -> Chunk:
    return Chunk(
        id=row["chunk_id"],
        doc_id=row["doc_id"],
        text=row["chunk_text"],
        section=row["section"],
        position=row["position"],
        n_tokens=row["n_tokens"],
    )


def _vectors_of(batch: Any, dimension: int) -> np.ndarray:
    column = batch.column("vector").combine_chunks()
    return np.asarray(column.flatten(), dtype=np.float32).reshape(-1, dimension)


def _DOCUMENT_SCHEMA() -> Any:
    import pyarrow as pa

    return pa.schema(
        [(name, pa.string()) for name in _DOCUMENT_COLUMNS]
        + [("year", pa.int64()), ("line", pa.int64()), ("text", pa.string())]
    )


def _PASSAGE_SCHEMA() -> Any:
    import pyarrow as pa

    document = [field for field in _DOCUMENT_SCHEMA() if field.name != "text"]
    return pa.schema(
        document
        + [
            ("chunk_id", pa.string()),
            ("section", pa.string()),
            ("position", pa.int64()),
            ("chunk_text", pa.string()),
            ("n_tokens", pa.int64()),
            ("n_chunks", pa.int64()),
            ("passage", pa.string()),
            ("token_ids", pa.list_(pa.int32())),
        ]
    )


def _table(rows: list[dict[str, Any]], schema: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_pylist(
        [{field.name: row.get(field.name) for field in schema} for row in rows], schema=schema
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.splitlines()[0].split())


def _stderr_is_terminal() -> bool:
    import sys

    return sys.stderr.isatty()
