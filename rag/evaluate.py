"""Retrieval evaluation: a gold JSONL set + an index -> per-question rows and per-mode metrics.

Every metric is computed at document level: the system's ranking is the document ranking of
`rag.retrieve.retrieve_documents` (a document ranks where its best passage ranks), and a
question's relevant documents are its `relevant_doc_ids`. Relevance is binary.

Metrics, for one question with relevant set G and document ranking r (1-based), cutoff k:

- Recall@k = |{g in G : rank(g) <= k}| / |G|: the share of the question's relevant documents
  found in the top k (not "at least one found"; the two agree when |G| = 1, as in both bundled
  sets).
- MRR@10 = 1 / rank of the first relevant document when that rank is <= 10, else 0.
- nDCG@10 = DCG@10 / IDCG@10 with DCG@10 = sum over relevant documents ranked r <= 10 of
  1 / log2(r + 1), and IDCG@10 the same sum for the ideal ranking (all of G first), i.e.
  sum over i = 1..min(|G|, 10) of 1 / log2(i + 1).

Summary figures are the means over all questions. A relevant document that is not in the index
can never be retrieved: it stays in G (so it counts as a miss) and the report lists it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rag.errors import InputError
from rag.retrieve import MODES, Fusion, check_mode, retrieve_documents

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.retrieve import SearchableIndex

RECALL_CUTOFFS = (1, 5, 10)
METRIC_NAMES = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


@dataclass(frozen=True)
class GoldQuestion:
    """One line of a gold JSONL file (see the data MANIFEST for the shape)."""

    id: str
    question: str
    relevant_doc_ids: tuple[str, ...]
    answer: str | None = None
    label: str | None = None
    relevant_section: str = ""
    qtype: str = ""


def read_gold(path: str | Path) -> list[GoldQuestion]:
    """Read a gold JSONL file; blank lines are skipped.

    Raises InputError naming `file:line` for a line that is not a JSON object, lacks a string
    `id` or `question`, has no non-empty list of string `relevant_doc_ids`, or repeats an id;
    and naming the file when it is missing or holds no questions.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: gold file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the gold file ({error})") from None
    questions: list[GoldQuestion] = []
    seen: set[str] = set()
    # Split on "\n" only: str.splitlines() also breaks at U+2028/U+2029 and other separators
    # that JSON strings may hold raw (PubMedQA does), which would cut a record in two.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        question = _gold_question(record, where)
        if question.id in seen:
            raise InputError(f"{where}: question id '{question.id}' appears twice")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise InputError(f"{path}: the gold file holds no questions")
    return questions


def _gold_question(record: dict[str, Any], where: str) -> GoldQuestion:
    for name in ("id", "question"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: '{name}' must be a non-empty string")
    doc_ids = record.get("relevant_doc_ids")
    if (
        not isinstance(doc_ids, list)
        or not doc_ids
        or not all(isinstance(doc_id, str) and doc_id for doc_id in doc_ids)
    ):
        raise InputError(f"{where}: 'relevant_doc_ids' must be a non-empty list of document ids")
    answer, label = record.get("answer"), record.get("label")
    if answer is not None and not isinstance(answer, str):
        raise InputError(f"{where}: 'answer' must be a string or null")
    if label is not None and label not in ("yes", "no", "maybe"):
        raise InputError(f"{where}: 'label' must be yes, no, maybe or null, got {label!r}")
    return GoldQuestion(
        id=record["id"],
        question=record["question"],
        relevant_doc_ids=tuple(dict.fromkeys(doc_ids)),  # a repeated id is one document
        answer=answer,
        label=label,
        relevant_section=str(record.get("relevant_section") or ""),
        qtype=str(record.get("qtype") or ""),
    )


# ---- metrics on one question: `gold_ranks` holds the 1-based rank of each relevant document,
# ---- None where it was not retrieved (within the ranking's depth) or is not in the index.


def recall_at(gold_ranks: Sequence[int | None], k: int) -> float:
    """Share of the relevant documents ranked within the top `k`."""
    if not gold_ranks:
        return 0.0
    return sum(1 for rank in gold_ranks if rank is not None and rank <= k) / len(gold_ranks)


def reciprocal_rank_at(gold_ranks: Sequence[int | None], k: int = 10) -> float:
    """1 / the best rank of a relevant document if it is within `k`, else 0."""
    found = [rank for rank in gold_ranks if rank is not None and rank <= k]
    return 1.0 / min(found) if found else 0.0


def ndcg_at(gold_ranks: Sequence[int | None], k: int = 10) -> float:
    """Binary-relevance nDCG with a log2(rank + 1) discount, cut at `k`."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank in gold_ranks if rank is not None and rank <= k)
    ideal = sum(1.0 / math.log2(position + 1) for position in range(1, min(len(gold_ranks), k) + 1))
    return dcg / ideal if ideal else 0.0


def question_metrics(gold_ranks: Sequence[int | None]) -> dict[str, float]:
    """All report metrics for one question, keyed by METRIC_NAMES."""
    metrics = {f"recall@{cutoff}": recall_at(gold_ranks, cutoff) for cutoff in RECALL_CUTOFFS}
    metrics["mrr@10"] = reciprocal_rank_at(gold_ranks, 10)
    metrics["ndcg@10"] = ndcg_at(gold_ranks, 10)
    return metrics


def gold_ranks(ranked_doc_ids: Sequence[str], relevant_doc_ids: Sequence[str]) -> list[int | None]:
    """The 1-based rank of each relevant document in `ranked_doc_ids`, None when absent."""
    position = {}
    for rank, doc_id in enumerate(ranked_doc_ids, start=1):
        position.setdefault(doc_id, rank)
    return [position.get(doc_id) for doc_id in relevant_doc_ids]


# ---- the report


@dataclass(frozen=True)
class QuestionResult:
    """One question under one mode: where its relevant documents ranked, and its metrics."""

    question_id: str
    mode: str
    relevant_doc_ids: tuple[str, ...]
    gold_ranks: tuple[int | None, ...]
    retrieved_doc_ids: tuple[str, ...]
    metrics: dict[str, float]
    missing_from_index: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.question_id,
            "mode": self.mode,
            "relevant_doc_ids": list(self.relevant_doc_ids),
            "gold_ranks": list(self.gold_ranks),
            "missing_from_index": list(self.missing_from_index),
            "retrieved_doc_ids": list(self.retrieved_doc_ids),
            **self.metrics,
        }


@dataclass(frozen=True)
class ModeSummary:
    """Mean metrics of one mode over every question of the set."""

    mode: str
    questions: int
    metrics: dict[str, float]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "questions": self.questions,
            "seconds": round(self.seconds, 2),
            **self.metrics,
        }


_Summary = TypeVar("_Summary", bound="_HasMode")


class _HasMode(Protocol):
    mode: str


def summary_for(summaries: Sequence[_Summary], mode: str) -> _Summary:
    """The summary of `mode` among a report's `summaries`; KeyError when it was not run."""
    for summary in summaries:
        if summary.mode == mode:
            return summary
    raise KeyError(mode)


@dataclass(frozen=True)
class RetrievalReport:
    """What `rag eval` prints: per-mode summaries, per-question rows, and the gold documents
    the index does not hold (those questions are scored as misses, not dropped)."""

    gold_path: str
    index_path: str
    k: int
    summaries: tuple[ModeSummary, ...]
    rows: tuple[QuestionResult, ...]
    missing_gold: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    embedding_seconds: float = 0.0

    @property
    def questions(self) -> int:
        return self.summaries[0].questions if self.summaries else 0

    def summary(self, mode: str) -> ModeSummary:
        return summary_for(self.summaries, mode)

    def to_json(self) -> dict[str, Any]:
        """The summary object of `rag eval --json` (per-question rows go to JSONL)."""
        return {
            "gold": self.gold_path,
            "index": self.index_path,
            "k": self.k,
            "questions": self.questions,
            "embedding_seconds": round(self.embedding_seconds, 2),
            "summaries": [summary.to_json() for summary in self.summaries],
            "questions_with_gold_missing_from_index": len(self.missing_gold),
            "missing_gold": {qid: list(doc_ids) for qid, doc_ids in self.missing_gold.items()},
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """A Markdown table, one line per mode, followed by the missing-gold note."""
        lines = [
            (
                f"Retrieval, document level: `{self.gold_path}` ({self.questions} questions) "
                f"on index `{self.index_path}`."
            ),
            "",
            "| mode | " + " | ".join(METRIC_NAMES) + " | seconds |",
            "|---|" + "---:|" * (len(METRIC_NAMES) + 1),
        ]
        for summary in self.summaries:
            values = " | ".join(f"{summary.metrics[name]:.3f}" for name in METRIC_NAMES)
            lines.append(f"| {summary.mode} | {values} | {summary.seconds:.1f} |")
        lines.append("")
        if self.embedding_seconds:
            lines.append(
                f"Seconds exclude embedding the questions ({self.embedding_seconds:.1f} s, "
                "done once and shared by dense and hybrid)."
            )
        if self.missing_gold:
            shown = ", ".join(sorted(self.missing_gold)[:10])
            more = f" and {len(self.missing_gold) - 10} more" if len(self.missing_gold) > 10 else ""
            lines.append(
                f"{len(self.missing_gold)} question(s) have relevant documents missing from the "
                f"index and count as misses: {shown}{more}."
            )
        else:
            lines.append("Every relevant document is in the index.")
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def write_rows(self, path: str | Path) -> None:
        """Write the per-question rows as JSONL (one line per question and mode)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row in self.rows:
                handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")


def indexed_doc_ids(index: Any) -> set[str]:
    """The ids of every document the index holds (rag.index.store.Index.documents())."""
    return {document.id for document in index.documents()}


def evaluate_retrieval(
    index: SearchableIndex,
    gold_path: str | Path,
    modes: Sequence[str] = MODES,
    k: int = 10,
    *,
    candidates: int = 50,
    fusion: Fusion | None = None,
    questions: Sequence[GoldQuestion] | None = None,
    index_path: str = "",
    progress: Callable[[str, int, int], None] | None = None,
) -> RetrievalReport:
    """Rank documents for every gold question under each mode and score them.

    k: depth of the document ranking kept per question (the metrics need 10; a smaller k
    caps them). questions: an already read (e.g. sampled) list instead of reading gold_path.
    progress(mode, done, total) is called as questions finish. Raises InputError for an
    unknown mode or an unreadable gold file.
    """
    modes = tuple(modes)
    if not modes:
        raise InputError("no retrieval modes to evaluate; give one or more of " + ", ".join(MODES))
    for mode in modes:
        check_mode(mode)
    if k < 1:
        raise InputError(f"k must be 1 or more, got {k}")
    if questions is None:
        questions = read_gold(gold_path)
    in_index = indexed_doc_ids(index)
    # Dense and hybrid both embed every question; embedding dominates their time, so it is
    # done once, up front, and timed on its own (the per-mode seconds exclude it).
    index = _QueryVectorCache(index)
    embedding_started = time.perf_counter()
    if any(mode != "lexical" for mode in modes):
        for question in questions:
            index.embed_query(question.question)
    embedding_seconds = time.perf_counter() - embedding_started
    missing_gold = {
        question.id: missing
        for question in questions
        if (missing := tuple(d for d in question.relevant_doc_ids if d not in in_index))
    }

    rows: list[QuestionResult] = []
    summaries: list[ModeSummary] = []
    for mode in modes:
        started = time.perf_counter()
        mode_rows = []
        for done, question in enumerate(questions, start=1):
            hits = retrieve_documents(
                index, question.question, mode=mode, k=k, candidates=candidates, fusion=fusion
            )
            ranked_doc_ids = [hit.doc_id for hit in hits]
            ranks = gold_ranks(ranked_doc_ids, question.relevant_doc_ids)
            mode_rows.append(
                QuestionResult(
                    question_id=question.id,
                    mode=mode,
                    relevant_doc_ids=question.relevant_doc_ids,
                    gold_ranks=tuple(ranks),
                    retrieved_doc_ids=tuple(ranked_doc_ids),
                    metrics=question_metrics(ranks),
                    missing_from_index=missing_gold.get(question.id, ()),
                )
            )
            if progress is not None:
                progress(mode, done, len(questions))
        summaries.append(
            ModeSummary(
                mode, len(mode_rows), mean_metrics(mode_rows), time.perf_counter() - started
            )
        )
        rows.extend(mode_rows)
    return RetrievalReport(
        gold_path=str(gold_path),
        index_path=index_path,
        k=k,
        summaries=tuple(summaries),
        rows=tuple(rows),
        missing_gold=missing_gold,
        embedding_seconds=embedding_seconds,
    )


class _QueryVectorCache:
    """The wrapped index, with `embedder.embed_query` remembered per question text."""

    def __init__(self, index: Any) -> None:
        self._index = index
        self._vectors: dict[str, Any] = {}
        self.embedder = self

    def embed_query(self, text: str) -> Any:
        if text not in self._vectors:
            self._vectors[text] = self._index.embedder.embed_query(text)
        return self._vectors[text]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def mean_metrics(rows: Iterable[QuestionResult]) -> dict[str, float]:
    """The mean of each metric over `rows` (0.0 for every metric when there are none)."""
    rows = list(rows)
    if not rows:
        return {name: 0.0 for name in METRIC_NAMES}
    return {name: sum(row.metrics[name] for row in rows) / len(rows) for name in METRIC_NAMES}


def parse_modes(text: str) -> tuple[str, ...]:
    """'dense,lexical' -> ('dense', 'lexical'); InputError naming an unknown mode."""
    modes = tuple(part.strip() for part in text.split(",") if part.strip())
    if not modes:
        raise InputError("--modes is empty; give one or more of " + ", ".join(MODES))
    for mode in modes:
        check_mode(mode)
    return modes


def run_retrieval_eval(
    gold_path: str | Path,
    *,
    index_path: str | Path | None = None,
    settings: Settings | None = None,
    modes: Sequence[str] | str = MODES,
    k: int = 10,
    rows_path: str | Path | None = None,
) -> RetrievalReport:
    """`rag eval`: open the index (index_path, else settings.index), evaluate, write the rows.

    modes may be a comma-separated string. rows_path: where the per-question JSONL goes
    (nothing is written when None). Returns the report; the caller prints `to_markdown()` or
    `to_json()`. Raises IndexMissingError / IndexMismatchError from opening the index and
    InputError for bad modes or gold lines.
    """
    from rag.config import Settings
    from rag.index.backend import index_location, open_index

    settings = settings or Settings.from_env()
    if isinstance(modes, str):
        modes = parse_modes(modes)
    questions = read_gold(gold_path)  # bad gold fails before the (slow) index load
    if index_path is not None:
        settings = settings.merged({"index": str(index_path)})
    index = open_index(settings)
    report = evaluate_retrieval(
        index,
        gold_path,
        modes,
        k,
        candidates=settings.retrieval.candidates,
        questions=questions,
        index_path=index_location(settings),
    )
    if rows_path is not None:
        report.write_rows(rows_path)
    return report
