"""Retrieval evaluation: gold parsing, the metric arithmetic, missing gold, and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rag.errors import InputError
from rag.evaluate import (
    evaluate_retrieval,
    gold_ranks,
    ndcg_at,
    parse_modes,
    question_metrics,
    read_gold,
    recall_at,
    reciprocal_rank_at,
)
from rag.types import Hit


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- metrics on hand-computed examples


def test_two_relevant_documents_at_ranks_2_and_5():
    ranks = [2, 5]
    assert recall_at(ranks, 1) == 0.0
    assert recall_at(ranks, 2) == 0.5
    assert recall_at(ranks, 5) == 1.0
    assert reciprocal_rank_at(ranks, 10) == 0.5
    # DCG = 1/log2(3) + 1/log2(6) = 0.63093 + 0.38685; IDCG = 1/log2(2) + 1/log2(3) = 1.63093.
    assert ndcg_at(ranks, 10) == pytest.approx(1.01778 / 1.63093, abs=1e-5)
    assert ndcg_at(ranks, 10) == pytest.approx(0.62406, abs=1e-5)
    # With a cutoff of 4 the rank-5 document no longer counts, but it still sets the ideal.
    assert ndcg_at(ranks, 4) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_a_document_ranked_beyond_ten_earns_nothing():
    metrics = question_metrics([11])
    assert metrics == {
        "recall@1": 0.0,
        "recall@5": 0.0,
        "recall@10": 0.0,
        "mrr@10": 0.0,
        "ndcg@10": 0.0,
    }
    assert question_metrics([1])["ndcg@10"] == 1.0


def test_gold_ranks_take_each_documents_first_position():
    assert gold_ranks(["x", "g1", "y", "g1", "g2"], ["g2", "g1", "absent"]) == [5, 2, None]


# ---- gold file parsing


def test_bad_gold_lines_name_the_file_and_line(tmp_path: Path):
    good = '{"id": "q1", "question": "What treats gout?", "relevant_doc_ids": ["gout"]}'
    cases = {
        "not valid JSON": [good, "{oops"],
        "'relevant_doc_ids' must be a non-empty list": [
            good,
            '{"id": "q2", "question": "x", "relevant_doc_ids": []}',
        ],
        "'question' must be a non-empty string": [good, '{"id": "q2", "relevant_doc_ids": ["a"]}'],
        "question id 'q1' appears twice": [good, good],
        "expected a JSON object": [good, "[1, 2]"],
    }
    for message, lines in cases.items():
        path = _write(tmp_path / "gold.jsonl", lines)
        with pytest.raises(InputError) as caught:
            read_gold(path)
        assert str(caught.value).startswith(f"{path}:2: ")
        assert message in str(caught.value)
    with pytest.raises(InputError, match="gold file not found"):
        read_gold(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="holds no questions"):
        read_gold(_write(tmp_path / "empty.jsonl", [""]))


def test_gold_reads_the_manifest_shape(tmp_path: Path):
    line = {
        "id": "q1",
        "question": "What are the symptoms of gout?",
        "answer": "Pain.",
        "label": None,
        "relevant_doc_ids": ["gout", "gout"],
        "relevant_section": "Symptoms",
        "qtype": "symptoms",
    }
    (question,) = read_gold(_write(tmp_path / "gold.jsonl", [json.dumps(line), ""]))
    assert question.relevant_doc_ids == ("gout",)
    assert question.relevant_section == "Symptoms"


def test_parse_modes_rejects_an_unknown_mode():
    assert parse_modes("dense, hybrid") == ("dense", "hybrid")
    with pytest.raises(InputError, match="retrieval mode 'bm25' is unknown"):
        parse_modes("dense,bm25")


# ---- evaluation over a fake index


class KeywordIndex:
    """Each document is one chunk; dense and lexical both score by shared words with the query,
    lexical breaking ties the other way round, so the modes differ."""

    def __init__(self, documents: dict[str, str]):
        self.doc_ids_in_order = list(documents)
        self.texts = list(documents.values())
        self.chunk_count = len(documents)
        self.embedder = self
        self.queries: list[str] = []

    def embed_query(self, text: str) -> np.ndarray:
        # The "vector" is the position of the text in self.queries, so search_dense can read
        # the words back whatever order the evaluation embeds questions in.
        self.queries.append(text)
        return np.array([len(self.queries) - 1], dtype=np.float32)

    def _scores(self, query: str, k: int, reverse_ties: bool):
        words = set(query.lower().split())
        scored = [
            (row, float(len(words & set(text.lower().split()))))
            for row, text in enumerate(self.texts)
        ]
        scored = [item for item in scored if item[1] > 0]
        order = sorted(scored, key=lambda item: (-item[1], -item[0] if reverse_ties else item[0]))
        return order[:k]

    def search_dense(self, query_vector, k, rows=None):
        return self._scores(self.queries[int(query_vector[0])], k, reverse_ties=False)

    def search_lexical(self, query, k, rows=None):
        return self._scores(query, k, reverse_ties=True)

    def allowed_rows(self, sources=(), min_year=None):
        return None

    def documents(self):
        return [SimpleNamespace(id=doc_id) for doc_id in self.doc_ids_in_order]

    def hits(self, scored_rows):
        return [
            Hit(
                chunk_id=f"{self.doc_ids_in_order[row]}#0",
                doc_id=self.doc_ids_in_order[row],
                text=self.texts[row],
                score=score,
                rank=rank,
            )
            for rank, (row, score) in enumerate(scored_rows, start=1)
        ]


def test_gold_absent_from_the_index_is_a_reported_miss(tmp_path: Path):
    index = KeywordIndex(
        {"gout": "gout colchicine flare", "af": "atrial fibrillation anticoagulation"}
    )
    gold = _write(
        tmp_path / "gold.jsonl",
        [
            '{"id": "q-gout", "question": "colchicine for gout", "relevant_doc_ids": ["gout"]}',
            '{"id": "q-lost", "question": "gout in the elderly", "relevant_doc_ids": ["retired-page"]}',
        ],
    )
    report = evaluate_retrieval(index, gold, modes=("dense", "lexical"), k=10)
    dense = report.summary("dense")
    assert dense.questions == 2  # the unanswerable question is kept, not dropped
    assert dense.metrics["recall@1"] == pytest.approx(0.5)
    assert dense.metrics["mrr@10"] == pytest.approx(0.5)
    assert report.missing_gold == {"q-lost": ("retired-page",)}
    assert "1 question(s) have relevant documents missing from the index" in report.to_markdown()
    assert "q-lost" in report.to_markdown()
    assert report.to_json()["questions_with_gold_missing_from_index"] == 1

    rows_path = tmp_path / "out" / "rows.jsonl"
    report.write_rows(rows_path)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert len(rows) == 4  # two questions x two modes
    lost = next(row for row in rows if row["id"] == "q-lost" and row["mode"] == "lexical")
    assert lost["gold_ranks"] == [None] and lost["missing_from_index"] == ["retired-page"]
    assert lost["ndcg@10"] == 0.0


def test_report_table_has_one_line_per_mode(tmp_path: Path):
    index = KeywordIndex({"a": "alpha beta", "b": "alpha gamma", "c": "delta"})
    gold = _write(
        tmp_path / "gold.jsonl",
        [
            '{"id": "q1", "question": "alpha gamma", "relevant_doc_ids": ["b"]}',
            '{"id": "q2", "question": "alpha", "relevant_doc_ids": ["a"]}',
        ],
    )
    report = evaluate_retrieval(index, gold, modes=("dense", "lexical", "hybrid"))
    table = report.to_markdown()
    assert len(index.queries) == 2  # each question embedded once for both dense and hybrid
    assert "| mode | recall@1 | recall@5 | recall@10 | mrr@10 | ndcg@10 | seconds |" in table
    # q1: b first in every mode. q2: a and b tie; dense breaks ties a, b and lexical b, a.
    assert "| dense | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |" in table
    lexical = report.summary("lexical").metrics
    assert lexical["recall@1"] == pytest.approx(0.5)
    assert lexical["mrr@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert lexical["ndcg@10"] == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
    assert "Every relevant document is in the index." in table
    with pytest.raises(InputError, match="retrieval mode 'fast' is unknown"):
        evaluate_retrieval(index, gold, modes=("fast",))


def test_gold_lines_may_hold_raw_unicode_line_separators(tmp_path: Path):
    # PubMedQA answers contain a raw U+2029; JSON allows it inside strings, so it is one line.
    record = {
        "id": "q1",
        "question": "Does it remit?\u2028Really?",
        "answer": "Yes.\u2029.",
        "relevant_doc_ids": ["28177278"],
    }
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\r\n", encoding="utf-8")
    (question,) = read_gold(path)
    assert question.answer == "Yes.\u2029."
    assert question.question == "Does it remit?\u2028Really?"
