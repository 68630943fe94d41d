"""The data that travels through rag, in pipeline order.

documents -> chunks -> hits -> citations -> answer. Every stage takes and returns these frozen
dataclasses, so a reader can follow a question without learning a new shape per module.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One source document as ingested: the text plus everything a citation needs.

    `id` is stable across re-ingests (a path relative to the ingested folder, a JSONL `id`,
    or `<guideline>/<section>` for the demo corpus); `text` is Markdown where the loader could
    keep structure ("## " headings mark sections). `origin` is the file it came from.
    """

    id: str
    title: str
    text: str
    source: str = ""  # organisation or journal
    year: int | None = None
    url: str | None = None
    doi: str | None = None
    origin: str = ""

    def content_hash(self) -> str:
        """Hash of everything that changes the stored chunks or their citations."""
        payload = "\x1f".join(
            [self.title, self.text, self.source, str(self.year), self.url or "", self.doi or ""]
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Chunk:
    """A passage of a document small enough for the embedder's input.

    `section` is the heading path inside the document ("Treatment > Acute flares"), empty for
    text before the first heading. `id` is `<doc_id>#<position>`.
    """

    id: str
    doc_id: str
    text: str
    section: str
    position: int
    n_tokens: int


@dataclass(frozen=True)
class Hit:
    """One retrieved passage: chunk id, document id, text, score and 1-based rank.

    Scores are comparable only within one result list (cosine for dense, BM25 for lexical,
    the fused score for hybrid). The document's citation fields ride along so the generator
    and the reference list need no second look-up.
    """

    chunk_id: str
    doc_id: str
    text: str
    score: float
    rank: int
    title: str = ""
    section: str = ""
    source: str = ""
    year: int | None = None
    url: str | None = None
    doi: str | None = None
    # Read beside what retrieval ranked, not ranked itself (rag.retrieve.
    # with_closest_of_document): it may fill an answer, not lead its bottom line.
    beside: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """A numbered reference shown to the user; `n` is 1..m in order of first use."""

    n: int
    doc_id: str
    chunk_id: str
    title: str
    source: str
    year: int | None
    url: str | None
    doi: str | None
    section: str
    quote: str
    support: float | None = None  # how well the citing sentences are backed by the passage

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Turn:
    """One exchange of a conversation, as saved in a session."""

    question: str
    answer: str
    standalone_question: str = ""
    cited_doc_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """What `rag ask` returns: a cited answer whose every [n] resolves to `citations`."""

    question: str
    answer: str  # Markdown with [n] markers
    bottom_line: str
    abstained: bool
    citations: tuple[Citation, ...]
    retrieved: tuple[Hit, ...]
    related_questions: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    standalone_question: str = ""
    session: str | None = None
    audience: str = "clinician"
    mode: str = "hybrid"
    backend: str = ""
    decision: str | None = None  # yes / no / maybe when the caller asked for one
    # How directly the cited passages answer (rag.generate.evidence.Evidence): grade direct,
    # partial or none, and the facets the sources lack. None without retrieval.
    evidence: Any = None
    # Sources that disagree on the point asked: {"point", "sides": [{"citation", "source",
    # "year"}, ...]}, newest first (rag.generate.agreement).
    disagreements: tuple[dict[str, Any], ...] = ()

    def as_turn(self) -> Turn:
        """This exchange as a session keeps it: what the next follow-up is read against."""
        return Turn(
            question=self.question,
            answer=self.answer,
            standalone_question=self.standalone_question or self.question,
            cited_doc_ids=tuple(dict.fromkeys(citation.doc_id for citation in self.citations)),
        )

    def to_json(self) -> dict[str, Any]:
        """The `rag ask --json` object."""
        return {
            "question": self.question,
            "standalone_question": self.standalone_question or self.question,
            "session": self.session,
            "bottom_line": self.bottom_line,
            "answer": self.answer,
            "abstained": self.abstained,
            "decision": self.decision,
            "evidence": self.evidence.to_json() if self.evidence is not None else None,
            "disagreements": [dict(item) for item in self.disagreements],
            "audience": self.audience,
            "mode": self.mode,
            "backend": self.backend,
            "citations": [citation.to_json() for citation in self.citations],
            "retrieved": [
                {"chunk_id": hit.chunk_id, "doc_id": hit.doc_id, "score": hit.score, "rank": hit.rank}
                for hit in self.retrieved
            ],
            "related_questions": list(self.related_questions),
            "timings_ms": dict(self.timings_ms),
        }


DISCLAIMER = (
    "Decision support only: this answer summarises the cited sources and is not a substitute "
    "for clinical judgement."
)
