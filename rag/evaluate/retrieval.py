"""Retrieval evaluation: gold questions + an index -> a RetrievalReport of per-question rows
and per-mode means of the document-level metrics of `rag.evaluate.metrics`.

Summary figures are the means over all questions. A relevant document that is not in the index
can never be retrieved: it stays in the question's relevant set (so it counts as a miss) and
the report lists it. Hybrid mode fuses as the settings' `retrieval.fusion`, `fusion_alpha` and
`rrf_k` say, as answering does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import InputError
from rag.evaluate.gold import GoldQuestion, read_gold
from rag.evaluate.metrics import METRIC_NAMES, gold_ranks, question_metrics
from rag.evaluate.report import ModeSummary, QuestionResult, RetrievalReport
from rag.retrieve import MODES, Fusion, check_mode, retrieve_documents

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.retrieve import SearchableIndex


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
        fusion=Fusion.from_settings(settings.retrieval),
        questions=questions,
        index_path=index_location(settings),
    )
    if rows_path is not None:
        report.write_rows(rows_path)
    return report
