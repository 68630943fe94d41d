"""The orchestrator takes its stages by keyword: a test hands in its own judge, condenser or
retriever and sees the engine use it. Over the real small index and embedder."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.answer import Engine
from rag.generate.abstention import Abstention, decide_after_generating
from rag.render import NOT_COVERED, abstention_text
from rag.retrieve import Retriever
from tests.conftest import settings_for

GOUT = "What is the first-line treatment for a gout flare?"
OFF_TOPIC = "What is the first-line eradication regimen for Helicobacter pylori infection?"


class RecordingJudge:
    def __init__(self, probability: float) -> None:
        self.probability = probability
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, question, hits):
        self.calls.append((question, [hit.doc_id for hit in hits]))
        return self.probability


def test_a_judge_handed_in_decides_and_its_reason_is_worded(small_index: Path) -> None:
    settings = settings_for(small_index, answer={"min_answerable_probability": 0.5})
    doubtful = RecordingJudge(0.1)
    engine = Engine.load(settings, judge=doubtful)

    answer = engine.ask(GOUT, suggest_related=False)

    assert answer.abstained and answer.citations == ()
    assert answer.answer == abstention_text(Abstention("not_stated"))[0]
    assert answer.answer.startswith(NOT_COVERED) and "do not state an answer" in answer.answer
    assert len(doubtful.calls) == 1 and len(doubtful.calls[0][1]) == 3  # the top passages
    assert "check" in answer.timings_ms

    # Coverage abstains first: the judge is not asked at all, and the answer names the term.
    off_topic = engine.ask(OFF_TOPIC, suggest_related=False)
    assert off_topic.abstained and len(doubtful.calls) == 1
    assert "No indexed passage mentions" in off_topic.answer

    confident = Engine.load(settings, judge=RecordingJudge(0.9))
    assert not confident.ask(GOUT, suggest_related=False).abstained


class FixedCondenser:
    def __init__(self, standalone: str) -> None:
        self.standalone = standalone
        self.calls: list[tuple[str, int]] = []

    def condense(self, question, history):
        self.calls.append((question, len(history)))
        return self.standalone


def test_a_condenser_handed_in_writes_the_standalone_question(small_index: Path) -> None:
    condenser = FixedCondenser(GOUT)
    engine = Engine.load(settings_for(small_index), condenser=condenser)

    answer = engine.ask("And what is first-line?", suggest_related=False)

    assert condenser.calls == [("And what is first-line?", 0)]
    assert answer.standalone_question == GOUT
    assert "gout" in answer.retrieved[0].title.lower()


def test_every_search_of_an_answer_keeps_the_users_filters(small_index: Path) -> None:
    settings = settings_for(small_index)
    searches: list[dict] = []

    class RecordingRetriever(Retriever):
        def search(self, query, **options):
            searches.append({"query": query, **options})
            return super().search(query, **options)

    index = Engine.load(settings).index
    engine = Engine.from_index(
        settings, index, retriever=RecordingRetriever(index, settings.retrieval)
    )
    answer = engine.ask(GOUT, sources=["Test Society of Rheumatology"], min_year=2020)

    assert not answer.abstained and answer.related_questions
    assert len(searches) > 1  # the question, then the check of each related question
    for search in searches:
        assert search["sources"] == ["Test Society of Rheumatology"], search
        assert search["min_year"] == 2020, search


@pytest.mark.parametrize(
    ("refused", "cited", "reason"),
    [(True, True, "refused"), (False, False, "unsupported"), (False, True, "")],
)
def test_after_generating_a_refusal_or_no_citation_abstains(refused, cited, reason) -> None:
    assert decide_after_generating(refused=refused, cited=cited).reason == reason
