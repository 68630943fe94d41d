"""Evaluation, one module per step, in the order the data flows:

    gold.py       a gold JSONL file -> GoldQuestion list
    metrics.py    pure metric functions: retrieval ranks, answer text, citations, clinical checks
    retrieval.py  questions + index -> RetrievalReport (`rag eval`)
    answers.py    questions + engine -> AnswerReport (`rag eval --answers`)
    report.py     the rows and summaries both produce; saving them (JSONL) and presenting them
                  (Markdown, JSON)

The chart of an answer report is drawn by evals/chart.py (matplotlib is an optional extra).
"""

from rag.evaluate.gold import GoldQuestion, read_gold
from rag.evaluate.metrics import (
    METRIC_NAMES,
    RECALL_CUTOFFS,
    gold_ranks,
    ndcg_at,
    question_metrics,
    recall_at,
    reciprocal_rank_at,
)
from rag.evaluate.report import ModeSummary, QuestionResult, RetrievalReport, summary_for
from rag.evaluate.retrieval import (
    evaluate_retrieval,
    indexed_doc_ids,
    mean_metrics,
    parse_modes,
    run_retrieval_eval,
)

__all__ = [
    "METRIC_NAMES",
    "RECALL_CUTOFFS",
    "GoldQuestion",
    "ModeSummary",
    "QuestionResult",
    "RetrievalReport",
    "evaluate_retrieval",
    "gold_ranks",
    "indexed_doc_ids",
    "mean_metrics",
    "ndcg_at",
    "parse_modes",
    "question_metrics",
    "read_gold",
    "recall_at",
    "reciprocal_rank_at",
    "run_retrieval_eval",
    "summary_for",
]
