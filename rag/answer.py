"""The orchestrator: question -> standalone question -> hits -> generated text -> cited answer.

Over 500 lines because the orchestrator keeps its collaborators' contracts (Searcher,
Condensing, Backend) and the Library of documents next to the steps that use them.

`Engine` is loaded once (index, embedder, generator) and then answers many questions; it is
safe to share between threads (the web server and `rag batch --workers` do). Each stage is a
collaborator handed in by keyword, so a test can replace any one of them:

- retriever (rag.retrieve.Retriever): query -> ranked hits, filters and follow-ups included;
- condenser (rag.converse.Condenser): follow-up + history -> one standalone question;
- generator (rag.generate.base.Generator): question + passages -> a draft citing them;
- judge: the LLM's probability that the top passages state the answer (None: no LLM).

`load_backend` is where the configured LLM provides the generator, the condenser's rewrite
and the judge; without one the extractive generator answers and condensing is deterministic.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from rag.config import Settings
from rag.converse import ChatFunction, Condenser
from rag.errors import InputError
from rag.generate.abstention import (
    ANSWER,
    TOP_PASSAGES,
    Abstention,
    Coverage,
    decide_after_generating,
    decide_before_generating,
    is_specific_term,
    known_behind_affix,
    measure_coverage,
)
from rag.generate.agreement import Disagreement, cited_sides, compare_sources
from rag.generate.base import Draft, Generator, check_audience
from rag.generate.citations import CitedText, enforce_citations
from rag.generate.evidence import (
    NONE,
    PARTIAL,
    PHRASE_LOOKUP_DEPTH,
    RARE_TERM_PASSAGES,
    Evidence,
    grade_evidence,
    lead_with_missing,
)
from rag.generate.extractive import GENERIC_WORDS, question_parts
from rag.generate.scores import with_whole_tables
from rag.generate.support import attribute_uncited, check_support
from rag.index.backend import open_index
from rag.index.store import Index, IndexedDocument
from rag.related import related_questions
from rag.render import NOT_COVERED, abstention_text
from rag.retrieve import Retriever, expand_sections, with_closest_of_document
from rag.shorthand import spelled_out
from rag.text import asked_part, asking_clause, asking_sentences, title_topics
from rag.types import Answer, Citation, Hit, Turn

__all__ = ["NOT_COVERED", "Backend", "Engine", "Library", "load_backend", "load_generator"]

# Answer-type words ("dose", "recommended") do not make two passages address the same point.
_POINTLESS_WORDS = GENERIC_WORDS

Judge = Callable[[str, Sequence[Hit]], "float | None"]
"""(question, top hits) -> the probability (0..1) that the hits state the answer, or None."""


class Searcher(Protocol):
    """The retriever's contract (rag.retrieve.Retriever provides it)."""

    def search(
        self,
        query: str,
        *,
        mode: str | None = None,
        k: int | None = None,
        sources: Sequence[str] = (),
        min_year: int | None = None,
        history: Sequence[Turn] = (),
    ) -> list[Hit]: ...


class Condensing(Protocol):
    """The condenser's contract (rag.converse.Condenser provides it)."""

    def condense(self, question: str, history: Sequence[Turn]) -> str: ...


@dataclass(frozen=True)
class Backend:
    """The configured generator and what the same model can do besides: `chat` (rewrite a
    follow-up) and `judge` (the answerability check); None where it cannot."""

    generator: Generator
    chat: ChatFunction | None = None
    judge: Judge | None = None


def load_backend(settings: Settings, index: Index) -> Backend:
    """The OpenAI-compatible backend when an endpoint is configured (it generates, rewrites
    follow-ups and judges answerability), else the extractive generator alone."""
    if settings.llm.base_url:
        from rag.generate.openai_backend import OpenAIGenerator

        llm = OpenAIGenerator(settings.llm)
        return Backend(llm, chat=llm.complete, judge=llm.answerable)
    from rag.generate.extractive import ExtractiveGenerator

    return Backend(ExtractiveGenerator(embedder=index.embedder))


def load_generator(settings: Settings, index: Index) -> Generator:
    """The configured generator alone (see `load_backend`)."""
    return load_backend(settings, index).generator


class Library:
    """The index's documents by id and by title (the sections of one guideline share a title),
    read once on first use: the index does not change while the engine is loaded."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self._by_id: dict[str, IndexedDocument] | None = None
        self._by_title: dict[str, list[IndexedDocument]] | None = None
        self._topics: frozenset[str] | None = None

    def by_id(self) -> dict[str, IndexedDocument]:
        if self._by_id is None:
            self._by_id = {document.id: document for document in self.index.documents()}
        return self._by_id

    def same_title(self, doc_id: str) -> list[IndexedDocument]:
        """The documents sharing `doc_id`'s title, its own included, in index order; [] for
        an unknown id."""
        document = self.by_id().get(doc_id)
        if document is None:
            return []
        if self._by_title is None:
            grouped: dict[str, list[IndexedDocument]] = {}
            for each in self.by_id().values():
                grouped.setdefault(each.title, []).append(each)
            self._by_title = grouped
        return list(self._by_title[document.title])

    def guidelines(self) -> list[tuple[str, str, int | None]]:
        """Every guideline (documents sharing a title) as (title, source, year)."""
        return list(
            dict.fromkeys((each.title, each.source, each.year) for each in self.by_id().values())
        )

    def same_title_ids(self, doc_id: str) -> list[str]:
        return [sibling.id for sibling in self.same_title(doc_id)]

    def cited_titles(self, history: Sequence[Turn]) -> list[str]:
        """Titles of the documents cited by the latest turn that cited any, in citation order."""
        by_id = self.by_id()
        for turn in reversed(history):
            if turn.cited_doc_ids:
                return [by_id[doc_id].title for doc_id in turn.cited_doc_ids if doc_id in by_id]
        return []

    def topics(self) -> frozenset[str]:
        """What the guidelines' titles are about (rag.text.title_topics): what a follow-up
        names when it changes the subject."""
        if self._topics is None:
            titles = {document.title for document in self.by_id().values()}
            self._topics = frozenset().union(*map(title_topics, titles))
        return self._topics

    def sections(self, doc_id: str) -> list[Hit]:
        """One hit per section of the documents that share `doc_id`'s title (the other
        sections of the same guideline), for suggesting related questions."""
        sections: list[Hit] = []
        for sibling in self.same_title(doc_id):
            seen: set[str] = set()
            for chunk in self.index.chunks_of(sibling.id):
                if chunk.section in seen:
                    continue
                seen.add(chunk.section)
                sections.append(
                    Hit(
                        chunk_id=chunk.id,
                        doc_id=sibling.id,
                        text=chunk.text,
                        score=0.0,
                        rank=len(sections) + 1,
                        title=sibling.title,
                        section=chunk.section,
                        source=sibling.source,
                        year=sibling.year,
                        url=sibling.url,
                        doi=sibling.doi,
                    )
                )
        return sections


class Timings(dict[str, float]):
    """Milliseconds per stage, in the order the stages ran."""

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self[name] = _ms_since(started)


@dataclass
class Engine:
    """Everything needed to answer: settings, the loaded index and the stages' collaborators.
    Collaborators not given are the index's own retriever, the deterministic condenser and
    no judge; `Engine.load` and `Engine.from_index` give the configured LLM's instead."""

    settings: Settings
    index: Index
    generator: Generator
    retriever: Searcher | None = field(default=None, kw_only=True)
    condenser: Condensing | None = field(default=None, kw_only=True)
    judge: Judge | None = field(default=None, kw_only=True)
    library: Library | None = field(default=None, kw_only=True, repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.library = self.library or Library(self.index)
        if self.retriever is None:
            self.retriever = Retriever(
                self.index,
                self.settings.retrieval,
                siblings=self.library.same_title_ids,
                guidelines=self.library.guidelines,
            )
        if self.condenser is None:
            self.condenser = Condenser(
                source_titles=self.library.cited_titles, topics=self.library.topics
            )

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        generator: Generator | None = None,
        retriever: Searcher | None = None,
        condenser: Condensing | None = None,
        judge: Judge | None = None,
    ) -> Engine:
        """Open the index named by `settings.index`; raises IndexMissingError naming the command
        that builds one, or IndexMismatchError when the embedder differs."""
        started = time.perf_counter()
        engine = cls.from_index(
            settings,
            open_index(settings),
            generator=generator,
            retriever=retriever,
            condenser=condenser,
            judge=judge,
        )
        engine.timings_ms["load"] = _ms_since(started)
        return engine

    @classmethod
    def from_index(
        cls,
        settings: Settings,
        index: Index,
        *,
        generator: Generator | None = None,
        retriever: Searcher | None = None,
        condenser: Condensing | None = None,
        judge: Judge | None = None,
    ) -> Engine:
        """An engine over an index already open: the collaborators given, the rest from the
        configured backend (`load_backend`) when no generator is given."""
        library = Library(index)
        backend = Backend(generator) if generator is not None else load_backend(settings, index)
        if condenser is None:
            condenser = Condenser(
                rewrite=backend.chat, source_titles=library.cited_titles, topics=library.topics
            )
        return cls(
            settings,
            index,
            backend.generator,
            retriever=retriever,
            condenser=condenser,
            judge=judge or backend.judge,
            library=library,
        )

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        audience: str | None = None,
        mode: str | None = None,
        k: int | None = None,
        want_decision: bool = False,
        session: str | None = None,
        sources: Sequence[str] = (),
        min_year: int | None = None,
        use_retrieval: bool = True,
        suggest_related: bool = True,
    ) -> Answer:
        """Answer `question` (read in the light of `history`) with enforced citations.

        1. Condense the follow-up and the history into one standalone question.
        2. Retrieve passages for it (none when `use_retrieval` is False: the no-context baseline).
        3. Decide whether the index covers the question (rag.generate.abstention: coverage,
           then, when switched on, the LLM's judgement of the top passages).
        4. Generate a draft that cites the passages by number (only when covered); another
           source on the same point joins it, newer first, a disagreement said out loud
           (rag.generate.agreement).
        5. Enforce the citation contract: sentences the model left uncited get the passage
           that clearly supports them (`attribute_uncited`), unknown numbers are removed,
           references renumbered, citations their passage does not support removed.
        6. Abstain, listing the nearest sources and saying why (rag.render.abstention_text),
           when step 3 said so, the draft is a refusal, or it cites nothing once checked.
        7. Suggest related questions the index can answer, under the same filters (skipped
           by `suggest_related=False`).
        8. Grade the evidence the answer cites (rag.generate.evidence): direct, partial (led
           by what the sources lack) or none.
        """
        question = _require_text(question, "question", self.settings.answer.max_question_chars)
        _checked_k(k, self.settings.retrieval.k)
        audience = check_audience(audience or self.settings.audience)
        mode = mode or self.settings.retrieval.mode
        filters = {"sources": sources, "min_year": min_year}
        timings = Timings()

        with timings.stage("condense"):
            standalone = self.condense(question, history)

        with timings.stage("retrieve"):
            hits = (
                self.search(standalone, mode=mode, k=k, history=history, **filters)
                if use_retrieval
                else []
            )

        with timings.stage("coverage"):
            coverage = self.coverage(standalone, hits, **filters) if hits else None
        # The no-context baseline answers from the model's own knowledge: nothing to cover.
        before = (
            self._decide_before_generating(
                coverage, standalone, hits, timings, stays_on=_cited_before(history)
            )
            if use_retrieval
            else ANSWER
        )

        with timings.stage("generate"):
            # The passages the answer is written from: the hits, the top ones with the rest of
            # their section (a table's rows, a list's nested rules).
            passages = expand_sections(
                hits,
                self.index.chunks_of,
                top=self.settings.answer.expand_top,
                per_hit=self.settings.answer.expand_chunks,
            )
            # A score table the question's values are to be added up on is read whole.
            passages = with_whole_tables(standalone, passages, self.index.chunks_of)
            # The best document's chunks closest to what is asked, where no hit opened them:
            # the document holds the topic, so the sentence that asks picks the chunk ("What do
            # I need before she goes home?": the discharge criteria of a DKA story). Not for a
            # question that is declined: nothing would read them, and embedding them costs.
            if not before.abstains:
                passages = with_closest_of_document(
                    passages,
                    self.index.chunks_of,
                    self._similarity_to(asking_clause(asking_sentences(standalone))),
                    at_most=self.settings.answer.document_closest,
                )
            draft = (
                Draft(text="", refused=True)  # nothing in the index answers it: do not guess
                if before.abstains
                else self.generator.generate(
                    # Shorthand the passages do not write themselves, spelled out.
                    spelled_out(standalone, "\n".join(passage.text for passage in passages)),
                    passages,
                    audience=audience,
                    want_decision=want_decision,
                    cited_before=self.library.cited_titles(history),
                )
            )

        found: list[Disagreement] = []
        if passages and not draft.refused and use_retrieval:
            with timings.stage("agreement"):
                text, found = compare_sources(
                    standalone,
                    draft.text,
                    passages,
                    _POINTLESS_WORDS,
                    similarity=self._similarity_to(standalone),
                )
            draft = replace(draft, text=text)

        with timings.stage("support"):
            cited = self._cite(draft, passages, standalone)

        after = decide_after_generating(
            refused=draft.refused, cited=bool(cited.citations) or not use_retrieval
        )
        abstention = before if before.abstains else after
        answer_text, bottom_line, citations = cited.answer, cited.bottom_line, cited.citations
        if abstention.abstains and use_retrieval:
            (answer_text, bottom_line), citations = abstention_text(abstention), ()
        evidence = Evidence(NONE)
        if use_retrieval and not abstention.abstains:
            cited_ids = {citation.chunk_id for citation in citations}
            evidence = grade_evidence(
                standalone,
                coverage,
                [passage for passage in passages if passage.chunk_id in cited_ids],
                direct_score=self.settings.answer.min_direct_score,
                is_term=lambda word: is_specific_term(self.index.embedder, word),
                is_rare=self._is_rare,
                is_unindexed=self._is_unindexed,
                is_unindexed_phrase=self._is_unindexed_phrase,
            )
            if evidence.grade == PARTIAL:
                answer_text, bottom_line = lead_with_missing(evidence, answer_text, bottom_line)

        related: list[str] = []
        if suggest_related and use_retrieval:
            with timings.stage("related"):
                related = self.related(standalone, hits, citations, mode=mode, **filters)
        timings["total"] = sum(timings.values())
        return Answer(
            question=question,
            answer=answer_text,
            bottom_line=bottom_line,
            abstained=abstention.abstains,
            citations=citations,
            retrieved=tuple(hits),
            related_questions=tuple(related),
            timings_ms=dict(timings),
            standalone_question=standalone,
            session=session,
            audience=audience,
            mode=mode if use_retrieval else "none",
            backend=self.generator.name,
            decision=draft.decision,
            evidence=evidence if use_retrieval else None,
            disagreements=() if abstention.abstains else cited_sides(found, passages, citations),
        )

    def _decide_before_generating(
        self,
        coverage: Coverage | None,
        question: str,
        hits: Sequence[Hit],
        timings: Timings,
        *,
        stays_on: frozenset[str] = frozenset(),
    ) -> Abstention:
        """Step 3: abstain when `coverage` falls short; else ask the judge, when there is one.

        A follow-up whose best passage comes from a document the previous answer cited
        (`stays_on`) goes on in a conversation the index already covers: "D-dimer just came
        back negative" after a Wells question shares few words with any passage, yet the
        guideline being read answers it. No coverage score is asked of it (it is graded,
        partial at best, by rag.generate.evidence) unless it names a term the index never
        mentions or asks for a dose no passage gives; the judge, when there is one, is still
        asked."""
        follows_on = (
            coverage is not None
            and bool(hits)
            and hits[0].doc_id in stays_on
            and not coverage.unknown_words
            and not coverage.dose_missing
        )

        def judged() -> float | None:
            with timings.stage("check"):
                return self.answerable(question, hits)

        return decide_before_generating(
            coverage,
            min_score=-math.inf if follows_on else self.settings.answer.min_partial_score,
            unknown_term_min_score=self.settings.answer.min_coverage_score,
            answerable=judged,
            min_probability=self.settings.answer.min_answerable_probability,
        )

    def _is_rare(self, word: str) -> bool:
        """Whether at most RARE_TERM_PASSAGES passages of the index hold `word`."""
        found = self.index.search_lexical(word, RARE_TERM_PASSAGES + 1)
        return len(found) <= RARE_TERM_PASSAGES

    def _is_unindexed(self, word: str) -> bool:
        """Whether no passage of the index holds `word` in any form."""
        return (
            not self.index.search_lexical(word, 1)
            and not self.index.has_word_family(word)
            and not known_behind_affix(self.index, word)
        )

    def _is_unindexed_phrase(self, phrase: str) -> bool:
        """Whether none of the passages that best match `phrase`'s words writes them together
        (the lexical ranking puts any passage that does among the first)."""
        found = self.index.hits(self.index.search_lexical(phrase, PHRASE_LOOKUP_DEPTH))
        together = re.compile(rf"\b{re.escape(phrase)}", re.IGNORECASE)
        return not any(together.search(" ".join(hit.text.split())) for hit in found)

    def _similarity_to(self, question: str) -> Callable[[Sequence[str]], Sequence[float]]:
        """Cosines of texts with `question`, by the index's embedder (the question embedded once)."""
        embedder = self.index.embedder

        def similarity(texts: Sequence[str]) -> Sequence[float]:
            query = np.asarray(embedder.embed_query(question), dtype=np.float32)
            return [float(v) for v in np.asarray(embedder.embed_passages(list(texts))) @ query]

        return similarity

    def _cite(self, draft: Draft, passages: Sequence[Hit], question: str) -> CitedText:
        """Step 5: the draft with its citations attributed, enforced and checked."""
        text = draft.text
        if passages and not draft.refused:
            # The pipeline, not the model, guarantees citations: a sentence the model left
            # uncited gets the passage that clearly backs it.
            text = attribute_uncited(
                text,
                passages,
                self.index.embedder,
                min_support=self.settings.answer.attribute_min_support,
                question=question,
            )
        return check_support(
            enforce_citations(text, passages),
            passages,
            self.index.embedder,
            remove_below=self.settings.answer.support_remove_below,
        )

    def search(
        self,
        query: str,
        *,
        mode: str | None = None,
        k: int | None = None,
        sources: Sequence[str] = (),
        min_year: int | None = None,
        history: Sequence[Turn] = (),
    ) -> list[Hit]:
        """Ranked passages for `query`, best first, ranks from 1. With `history`, passages of the
        source the previous answer cited (documents sharing its title) move up a few places
        (rag.retrieve.lift_cited_source): a follow-up usually stays in the guideline being read."""
        k = _checked_k(k, self.settings.retrieval.k)
        # A follow-up condensed with its history may outgrow the limit its question kept to.
        limit = None if history else self.settings.answer.max_question_chars
        query = _require_text(query, "query", limit)
        spelled = spelled_out(query)
        return self.retriever.search(
            spelled, mode=mode, k=k, sources=sources, min_year=min_year, history=history,
            parts=question_parts(asked_part(spelled)),
        )

    def related(
        self,
        question: str,
        hits: Sequence[Hit],
        citations: Sequence[Citation],
        *,
        mode: str,
        sources: Sequence[str] = (),
        min_year: int | None = None,
    ) -> list[str]:
        """Related questions (rag.related), each checked by retrieving it under the same mode
        and source and year filters as the question it follows."""
        return related_questions(
            question,
            hits,
            citations,
            self.neighbours,
            lambda text: self.search(text, mode=mode, k=3, sources=sources, min_year=min_year),
        )

    def neighbours(self, doc_id: str) -> list[Hit]:
        """One hit per section of the guideline `doc_id` belongs to (Library.sections)."""
        return self.library.sections(doc_id)

    def coverage(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        sources: Sequence[str] = (),
        min_year: int | None = None,
    ) -> Coverage:
        """How well the index (filtered like retrieval) and the top `hits` cover `question`."""
        rows = self.index.allowed_rows(sources=tuple(sources), min_year=min_year)
        return measure_coverage(self.index, question, hits, rows=rows)

    def answerable(self, question: str, hits: Sequence[Hit]) -> float | None:
        """The judge's probability (0..1) that the top passages of `hits` state the answer to
        `question`; None when there is no judge (no LLM), the check is off
        (`answer.min_answerable_probability` 0) or its reply could not be read."""
        if self.judge is None or self.settings.answer.min_answerable_probability <= 0 or not hits:
            return None
        return self.judge(question, hits[:TOP_PASSAGES])

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """The follow-up and the conversation so far as one standalone question (the
        condenser: the LLM's rewrite when one is configured, checked, else rag.converse's
        deterministic method)."""
        return self.condenser.condense(question, history)


def _cited_before(history: Sequence[Turn]) -> frozenset[str]:
    """The documents the previous answer of the conversation cited (none when it abstained)."""
    return frozenset(history[-1].cited_doc_ids) if history else frozenset()


def _require_text(text: str, what: str, limit: int | None = None) -> str:
    """`text` stripped; InputError when it is empty or longer than `limit` characters."""
    text = (text or "").strip()
    if not text:
        raise InputError(f"the {what} is empty")
    if limit is not None and len(text) > limit:
        raise InputError(
            f"the {what} is too long ({len(text)} characters; the limit is {limit}, "
            "setting answer.max_question_chars)"
        )
    return text


def _checked_k(k: int | None, default: int) -> int:
    """`k`, or `default` when not given; InputError when it is below 1."""
    if k is None:
        return default
    if k < 1:
        raise InputError(f"k must be 1 or more (got {k}): it is how many passages to use")
    return k


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
