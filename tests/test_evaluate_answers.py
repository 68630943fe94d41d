"""Answer evaluation: the metrics on hand-computed examples, the runner with a fake engine
(queued answers, one failure), the written report, and one run through the real engine."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest

from rag.errors import InputError, LLMError
from rag.evaluate.answers import (
    MAX_CONSECUTIVE_ERRORS,
    evaluate_answers,
    report_from_rows,
    run_answer_evaluation,
)
from rag.evaluate.gold import GoldQuestion
from rag.evaluate.metrics import (
    citation_marker_counts,
    cited_sentence_counts,
    decision_accuracy,
    lcs_length,
    normalise_answer,
    rouge_l,
    token_f1,
)
from rag.evaluate.report import WITH_RETRIEVAL, WITHOUT_RETRIEVAL, read_rows
from rag.types import Answer, Citation, Hit

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def citation(n: int, doc_id: str, support: float | None = None) -> Citation:
    return Citation(
        n=n, doc_id=doc_id, chunk_id=f"{doc_id}#0", title=doc_id, source="", year=None,
        url=None, doi=None, section="", quote="", support=support,
    )  # fmt: skip


def hit(doc_id: str, rank: int = 1) -> Hit:
    return Hit(chunk_id=f"{doc_id}#0", doc_id=doc_id, text="passage", score=1.0, rank=rank)


def answer(
    text: str,
    *,
    bottom_line: str = "",
    citations: tuple[Citation, ...] = (),
    retrieved: tuple[Hit, ...] = (),
    decision: str | None = None,
    abstained: bool = False,
) -> Answer:
    return Answer(
        question="q", answer=text, bottom_line=bottom_line, abstained=abstained,
        citations=citations, retrieved=retrieved, decision=decision,
    )  # fmt: skip


# ---- text metrics, by hand


def test_rouge_l_counts_the_longest_common_subsequence():
    # LCS "the cat on the mat" = 5 of 6 tokens each way: P = R = F = 5/6.
    assert rouge_l("The cat sat on the mat.", "the cat lay on the mat") == pytest.approx(5 / 6)
    # LCS "b d" = 2: P = 2/4, R = 2/2, F = 2PR/(P+R) = 2/3.
    assert rouge_l("a b c d", "b d") == pytest.approx(2 / 3)
    # Order matters for a subsequence: "d c b a" vs "a b c d" shares only one in order.
    assert lcs_length(["d", "c", "b", "a"], ["a", "b", "c", "d"]) == 1
    assert rouge_l("nothing shared", "entirely different") == 0.0
    assert rouge_l("", "reference") == 0.0


def test_token_f1_uses_squad_normalisation():
    assert normalise_answer("The  Cat, sat!") == "cat sat"
    # "cat sat" vs "cat sat down": overlap 2, P = 1, R = 2/3, F1 = 0.8.
    assert token_f1("The cat sat.", "a cat sat down") == pytest.approx(0.8)
    # Repeats count once per occurrence: overlap {yes: 1, no: 1} = 2 of 3 each way.
    assert token_f1("yes yes no", "yes no no") == pytest.approx(2 / 3)
    assert token_f1("unrelated words", "something else") == 0.0


def test_decision_accuracy_counts_an_unparsed_decision_as_wrong():
    assert decision_accuracy(["yes", None, "no", "maybe"], ["yes", "yes", "yes", "maybe"]) == 0.5
    with pytest.raises(ValueError):
        decision_accuracy(["yes"], ["yes", "no"])


def test_citation_validity_counts_markers_that_name_a_listed_citation():
    shown = answer(
        "Colchicine works [1][2]. Allopurinol lowers urate [3].",
        bottom_line="Colchicine treats flares [1].",
        citations=(citation(1, "gout.md"), citation(2, "gout.md")),
    )
    # Four markers shown ([1] in the bottom line, [1][2][3] in the body); [3] lists nothing.
    assert citation_marker_counts(shown) == (4, 3)


def test_cited_sentences_include_the_bottom_line_once():
    shown = answer(
        "Start colchicine early [1]. Continue until the flare resolves. Review in a week [2].",
        bottom_line="Start colchicine early [1].",
        citations=(citation(1, "gout.md"), citation(2, "gout.md")),
    )
    # The bottom line repeats the body's first sentence, so three sentences, two cited.
    assert cited_sentence_counts(shown) == (3, 2)
    separate = answer("Continue until resolved.", bottom_line="Use colchicine [1].")
    assert cited_sentence_counts(separate) == (2, 1)


# ---- the runner with a fake engine


class QueuedEngine:
    """Pops one queued reply per ask (an Answer, or an exception to raise); records calls."""

    def __init__(self, replies):
        self.replies = deque(replies)
        self.calls: list[dict] = []

    def ask(self, question, *, want_decision=False, use_retrieval=True, mode=None, k=None):
        self.calls.append(
            {"question": question, "want_decision": want_decision,
             "use_retrieval": use_retrieval, "mode": mode, "k": k}
        )  # fmt: skip
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply


GOLD = [
    GoldQuestion("p1", "Does colchicine treat gout flares?", ("gout.md",),
                 answer="Colchicine treats gout flares.", label="yes"),
    GoldQuestion("p2", "Is aspirin first line for AF?", ("af.md",),
                 answer="Aspirin is not recommended for stroke prevention.", label="no"),
    GoldQuestion("m1", "What is the treatment for gout?", ("gout.md",),
                 answer="Colchicine or an NSAID."),
]  # fmt: skip


def fake_replies():
    """Replies in the order asked: block of three with retrieval, then three without."""
    return [
        # p1 with retrieval: right decision, one valid citation, gold passage retrieved.
        answer("Colchicine treats gout flares [1].", bottom_line="Colchicine treats gout flares [1].",
               citations=(citation(1, "gout.md", support=0.8),), retrieved=(hit("gout.md"),),
               decision="yes"),
        # p2 with retrieval: the endpoint failed.
        LLMError("LLM endpoint http://127.0.0.1:9/v1 failed after 2 attempts: cannot connect"),
        # m1 with retrieval: abstained.
        answer("The indexed sources do not answer this question.",
               bottom_line="The indexed sources do not cover this question.", abstained=True,
               retrieved=(hit("hypertension.md"),)),
        # Without retrieval: p1 no decision parsed, p2 right, m1 answered.
        answer("Colchicine is used for gout.", bottom_line="Colchicine is used for gout."),
        answer("Aspirin is not recommended.", bottom_line="Aspirin is not recommended.",
               decision="no"),
        answer("Colchicine or an NSAID.", bottom_line="Colchicine or an NSAID."),
    ]  # fmt: skip


def test_runner_scores_each_mode_and_keeps_going_after_an_error(tmp_path: Path):
    engine = QueuedEngine(fake_replies())
    seen = []
    report = evaluate_answers(
        engine, GOLD, mode="lexical", k=3, progress=False, on_row=seen.append, backend="fake"
    )

    # Asked in a block with retrieval, then without; a decision only where there is a label.
    assert [call["use_retrieval"] for call in engine.calls] == [True] * 3 + [False] * 3
    assert [call["want_decision"] for call in engine.calls] == [True, True, False] * 2
    assert {(call["mode"], call["k"]) for call in engine.calls} == {("lexical", 3)}
    assert len(seen) == 6

    # Rows come back ordered by question, then mode; the failure is a row, not a crash.
    assert [(row.question_id, row.mode) for row in report.rows] == [
        (qid, mode) for qid in ("p1", "p2", "m1") for mode in (WITH_RETRIEVAL, WITHOUT_RETRIEVAL)
    ]
    failed = [row for row in report.rows if row.error]
    assert [(row.question_id, row.mode) for row in failed] == [("p2", WITH_RETRIEVAL)]
    assert "cannot connect" in failed[0].error

    retrieval = report.summary(WITH_RETRIEVAL).metrics
    assert retrieval["accuracy"] == 0.5  # p1 right; p2 failed counts as wrong
    assert retrieval["decision_parse_rate"] == 0.5
    assert retrieval["citation_validity"] == 1.0
    assert retrieval["cited_sentences"] == 1.0  # the abstention's notice is not counted
    assert retrieval["citation_support"] == pytest.approx(0.8)
    assert retrieval["abstention_rate"] == 0.5  # of the two answered questions
    assert retrieval["gold_retrieved"] == 0.5  # p1 yes, m1 no
    # p1 matches its reference exactly; p2 (error) scores 0; m1's notice shares nothing.
    assert retrieval["token_f1"] == pytest.approx(1 / 3)
    assert report.summary(WITH_RETRIEVAL).errors == 1

    baseline = report.summary(WITHOUT_RETRIEVAL).metrics
    assert baseline["accuracy"] == 0.5  # p1 unparsed (wrong), p2 right
    assert baseline["decision_parse_rate"] == 0.5
    assert baseline["citation_validity"] is None  # no markers at all
    assert baseline["cited_sentences"] is None
    assert baseline["abstention_rate"] == 0.0
    assert baseline["rouge_l"] > retrieval["rouge_l"]

    rows_path, report_path = report.write(tmp_path / "out" / "answers-test", "answers-test.png")
    lines = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert len(lines) == 6
    assert lines[2]["error"] and lines[2]["correct"] is False
    assert lines[0]["decision"] == "yes" and lines[0]["correct"] is True
    markdown = report_path.read_text()
    assert "| yes/no/maybe accuracy | 50.0% | 50.0% |" in markdown
    assert "| citation validity | 100.0% | n/a |" in markdown
    assert "| questions (errors) | 3 (1) | 3 (0) |" in markdown
    assert "![answer metrics by mode](answers-test.png)" in markdown
    assert report.to_json()["summaries"][0]["accuracy"] == 0.5

    # Saved rows (or an interrupted run's partial rows) rebuild the same summaries.
    rebuilt = report_from_rows(read_rows(rows_path), backend="fake")
    for again, first in zip(rebuilt.summaries, report.summaries, strict=True):
        assert (again.mode, again.questions, again.errors) == (
            first.mode,
            first.questions,
            first.errors,
        )
        assert again.metrics == pytest.approx(first.metrics, abs=1e-4)  # rows keep 4 decimals
    assert [row.question_id for row in rebuilt.rows] == [row.question_id for row in report.rows]


def test_the_chart_of_evals_draws_every_mode(tmp_path: Path):
    pytest.importorskip("matplotlib")
    from evals.chart import write_answer_chart

    report = evaluate_answers(QueuedEngine(fake_replies()), GOLD, progress=False)
    chart = write_answer_chart(report, tmp_path / "chart.png")
    assert chart.read_bytes()[:8] == PNG_MAGIC
    assert chart.stat().st_size > 5000


def test_read_rows_keeps_a_row_whose_text_holds_a_line_separator(tmp_path: Path):
    # JSON allows U+2028 raw inside a string (PubMedQA abstracts carry it); a row must not
    # be cut there as str.splitlines() would.
    row = evaluate_answers(
        QueuedEngine(fake_replies()), GOLD[:1], progress=False, without_retrieval=False
    ).rows[0]
    saved = tmp_path / "rows.jsonl"
    line = json.dumps({**row.to_json(), "answer": "First part\u2028second part"}, ensure_ascii=False)
    assert "\u2028" in line
    saved.write_text(line + "\n", encoding="utf-8")
    (again,) = read_rows(saved)
    assert again.answer == "First part\u2028second part"
    assert again.question_id == row.question_id


def test_read_rows_names_a_bad_line(tmp_path: Path):
    saved = tmp_path / "rows.jsonl"
    saved.write_text('{"id": "p1"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="rows.jsonl:1"):
        read_rows(saved)


def test_runner_stops_when_the_endpoint_keeps_failing():
    failures = [LLMError("endpoint down")] * (MAX_CONSECUTIVE_ERRORS + 5)
    many = [GoldQuestion(f"q{n}", f"Question {n}?", ("d",), label="yes") for n in range(20)]
    report = evaluate_answers(QueuedEngine(failures), many, progress=False, without_retrieval=False)
    assert len(report.rows) == MAX_CONSECUTIVE_ERRORS
    assert report.stopped_early and "endpoint down" in report.stopped_early
    assert "Stopped early" in report.to_markdown()
    assert report.summary(WITH_RETRIEVAL).metrics["accuracy"] == 0.0


def test_a_resumed_run_asks_only_what_the_saved_rows_lack():
    first = QueuedEngine(fake_replies())
    saved: list = []
    evaluate_answers(first, GOLD, progress=False, on_row=saved.append)
    # Interrupted after the retrieval block: p1 and m1 answered, p2 failed (not kept).
    done = [row for row in saved[:3] if row.error is None]
    again = QueuedEngine(fake_replies()[1:2] + fake_replies()[3:])
    report = evaluate_answers(again, GOLD, progress=False, done=done)
    asked = [(call["question"], call["use_retrieval"]) for call in again.calls]
    assert asked == [(GOLD[1].question, True)] + [(gold.question, False) for gold in GOLD]
    assert [(row.question_id, row.mode) for row in report.rows] == [
        (qid, mode) for qid in ("p1", "p2", "m1") for mode in (WITH_RETRIEVAL, WITHOUT_RETRIEVAL)
    ]
    assert report.rows[0] == done[0]  # the saved row itself, not a new answer


def test_runner_limit_and_bad_arguments():
    engine = QueuedEngine(fake_replies())
    report = evaluate_answers(engine, GOLD, limit=1, progress=False, block_size=1)
    assert [row.question_id for row in report.rows] == ["p1", "p1"]
    with pytest.raises(InputError, match="both with and without retrieval"):
        evaluate_answers(engine, GOLD, with_retrieval=False, without_retrieval=False)
    with pytest.raises(InputError, match="retrieval mode 'fuzzy'"):
        evaluate_answers(engine, GOLD, mode="fuzzy")
    with pytest.raises(InputError, match="limit"):
        evaluate_answers(engine, GOLD, limit=0)


# ---- the real engine (extractive backend) on the test documents


def test_run_answer_evaluation_with_the_real_engine(small_index: Path, tmp_path: Path):
    from tests.conftest import settings_for

    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"id": "g1", "question": "What is the first-line treatment for a gout flare?",
                    "relevant_doc_ids": ["gout.md"],
                    "answer": "Colchicine, an NSAID or a glucocorticoid is first-line therapy."})
        + "\n",
        encoding="utf-8",
    )  # fmt: skip
    report = run_answer_evaluation(
        settings_for(small_index), gold, output_prefix=tmp_path / "real", k=3, progress=False
    )
    retrieval = report.summary(WITH_RETRIEVAL)
    assert retrieval.errors == 0
    assert retrieval.metrics["citation_validity"] == 1.0
    row = report.rows[0]
    assert row.mode == WITH_RETRIEVAL and row.cited_doc_ids[0].endswith("gout.md")
    assert retrieval.metrics["rouge_l"] > 0.1
    assert (tmp_path / "real.md").exists() and (tmp_path / "real.jsonl").exists()


def test_run_answer_evaluation_names_a_bad_gold_file(tmp_path: Path):
    from rag.config import Settings

    bad = tmp_path / "gold.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="gold.jsonl:1"):
        run_answer_evaluation(Settings(), bad)
