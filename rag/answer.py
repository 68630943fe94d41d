"""The orchestrator: question -> standalone question -> hits -> generated text -> cited answer.

`Engine` is loaded once (index, embedder, generator) and then answers many questions; it is
safe to share between threads (the web server and `rag batch --workers` do).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.config import AnswerSettings, Settings
from rag.errors import InputError
from rag.generate.abstention import TOP_PASSAGES, Coverage, measure_coverage
from rag.generate.agreement import Disagreement, compare_sources
from rag.generate.base import Draft, Generator, check_audience
from rag.generate.citations import enforce_citations
from rag.generate.evidence import NONE, PARTIAL, Evidence, grade_evidence, lead_with_missing
from rag.generate.extractive import GENERIC_WORDS
from rag.generate.support import attribute_uncited, check_support
from rag.generate.units import answer_words
from rag.index.backend import open_index
from rag.index.store import Index, IndexedDocument
from rag.related import related_questions
from rag.retrieve import Fusion, expand_sections, retrieve
from rag.types import Answer, Citation, Hit, Turn

# Answer-type words ("dose", "recommended") do not make two passages address the same point.
_POINTLESS_WORDS = frozenset(answer_words(" ".join(GENERIC_WORDS)))

NOT_COVERED = (
    "The indexed sources do not answer this question. The nearest sources found are listed "
    "below; check them directly or ask a more specific question."
)


def load_generator(settings: Settings, index: Index) -> Generator:
    """The OpenAI-compatible backend when an endpoint is configured, else the extractive one."""
    if settings.llm.base_url:
        from rag.generate.openai_backend import OpenAIGenerator

        return OpenAIGenerator(settings.llm)
    from rag.generate.extractive import ExtractiveGenerator

    return ExtractiveGenerator(embedder=index.embedder)


@dataclass
class Engine:
    """Everything needed to answer: settings, the loaded index and a generator."""

    settings: Settings
    index: Index
    generator: Generator
    timings_ms: dict[str, float] = field(default_factory=dict)
    _documents: dict[str, IndexedDocument] | None = field(default=None, repr=False)
    _documents_titled: dict[str, list[IndexedDocument]] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, settings: Settings, *, generator: Generator | None = None) -> Engine:
        """Open the index named by `settings.index`; raises IndexMissingError naming the command
        that builds one, or IndexMismatchError when the embedder differs."""
        started = time.perf_counter()
        index = open_index(settings)
        engine = cls(settings, index, generator or load_generator(settings, index))
        engine.timings_ms["load"] = _ms_since(started)
        return engine

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
        (rag.converse.lift_cited_source): a follow-up usually stays in the guideline being read."""
        from rag.converse import CITED_SOURCE_DEPTH, cited_source_doc_ids, lift_cited_source

        retrieval = self.settings.retrieval
        k = _checked_k(k, retrieval.k)
        # A follow-up condensed with its history may outgrow the limit its question kept to.
        limit = None if history else self.settings.answer.max_question_chars
        query = _require_text(query, "query", limit)
        preferred = cited_source_doc_ids(history, self._same_title_doc_ids)
        hits = retrieve(
            self.index,
            query,
            mode=mode or retrieval.mode,
            k=max(k, CITED_SOURCE_DEPTH) if preferred else k,
            per_document=retrieval.per_document,
            candidates=retrieval.candidates,
            fusion=Fusion(
                method=retrieval.fusion,
                alpha=retrieval.fusion_alpha,
                normalisation="zscore",
                rrf_k=retrieval.rrf_k,
            ),
            sources=sources,
            min_year=min_year,
            prefer_newer=retrieval.prefer_newer,
        )
        return lift_cited_source(hits, preferred)[:k] if preferred else hits

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
        3. Generate a draft that cites the passages by number.
        4. Enforce the citation contract: sentences the model left uncited get the passage
           that clearly supports them (`attribute_uncited`), unknown numbers are removed,
           references renumbered.
        5. Abstain, listing the nearest sources, when the index does not cover the question
           (checked before generating: `coverage`, then, when switched on, the LLM's own
           judgement of the top passages: `answerable`), the draft is a refusal, or it cites nothing
           once citations its passage does not support are removed (`check_support`).
        6. Suggest related questions the index can answer (skipped by `suggest_related=False`).
        """
        question = _require_text(question, "question", self.settings.answer.max_question_chars)
        _checked_k(k, self.settings.retrieval.k)
        audience = check_audience(audience or self.settings.audience)
        mode = mode or self.settings.retrieval.mode
        timings: dict[str, float] = {}

        started = time.perf_counter()
        standalone = self.condense(question, history)
        timings["condense"] = _ms_since(started)

        started = time.perf_counter()
        hits = (
            self.search(
                standalone, mode=mode, k=k, sources=sources, min_year=min_year, history=history
            )
            if use_retrieval
            else []
        )
        timings["retrieve"] = _ms_since(started)

        started = time.perf_counter()
        coverage = (
            self.coverage(standalone, hits, sources=sources, min_year=min_year)
            if use_retrieval and hits
            else None
        )
        # Graded, not yes/no: from min_partial_score up the question is answered, and the
        # evidence grade (below, on the cited passages) says whether directly or partly.
        covered = not use_retrieval or (
            coverage is not None and _worth_answering(coverage, self.settings.answer)
        )
        timings["coverage"] = _ms_since(started)

        checked_out = False
        if use_retrieval and covered:
            started = time.perf_counter()
            probability = self.answerable(standalone, hits)
            checked_out = (
                probability is not None
                and probability < self.settings.answer.min_answerable_probability
            )
            covered = not checked_out
            timings["check"] = _ms_since(started)

        started = time.perf_counter()
        # The passages the answer is written from: the hits, the top ones with the rest of
        # their section (a table's rows, a list's nested rules).
        passages = expand_sections(
            hits,
            self.index.chunks_of,
            top=self.settings.answer.expand_top,
            per_hit=self.settings.answer.expand_chunks,
        )
        draft = (
            self.generator.generate(
                standalone, passages, audience=audience, want_decision=want_decision
            )
            if covered
            else Draft(text="", refused=True)  # nothing in the index answers it: do not guess
        )
        timings["generate"] = _ms_since(started)

        started = time.perf_counter()
        text = draft.text
        found: list[Disagreement] = []
        if passages and not draft.refused and use_retrieval:
            # Another source on the same point: the newer leads, a disagreement is shown.
            text, found = compare_sources(standalone, text, passages, _POINTLESS_WORDS)
        if passages and not draft.refused:
            # The pipeline, not the model, guarantees citations: a sentence the model left
            # uncited gets the passage that clearly backs it.
            text = attribute_uncited(
                text,
                passages,
                self.index.embedder,
                min_support=self.settings.answer.attribute_min_support,
                question=standalone,
            )
        cited = check_support(
            enforce_citations(text, passages),
            passages,
            self.index.embedder,
            remove_below=self.settings.answer.support_remove_below,
        )
        timings["support"] = _ms_since(started)
        abstained = draft.refused or (use_retrieval and not cited.citations)
        answer_text, bottom_line = cited.answer, cited.bottom_line
        evidence = Evidence(NONE)
        if use_retrieval and not abstained:
            cited_ids = {citation.chunk_id for citation in cited.citations}
            evidence = grade_evidence(
                standalone,
                coverage,
                [passage for passage in passages if passage.chunk_id in cited_ids],
                direct_score=self.settings.answer.min_direct_score,
            )
            if evidence.grade == PARTIAL:
                answer_text, bottom_line = lead_with_missing(evidence, answer_text, bottom_line)
        if abstained and use_retrieval:
            answer_text, bottom_line = (
                NOT_COVERED,
                "The indexed sources do not cover this question.",
            )
            if coverage is not None and coverage.unknown_words:
                named = ", ".join(f"'{word}'" for word in coverage.unknown_words)
                answer_text += f" No indexed passage mentions {named}."
            elif coverage is not None and coverage.dose_missing:
                answer_text += " None of the passages found states a dose for what was asked."
            elif checked_out:
                answer_text += (
                    " The passages found are on the topic but do not state an answer to it."
                )
        related: list[str] = []
        if suggest_related and use_retrieval:
            started = time.perf_counter()
            related = related_questions(
                standalone,
                hits,
                () if abstained else cited.citations,
                self.neighbours,
                lambda text: self.search(text, mode=mode, k=3),
            )
            timings["related"] = _ms_since(started)
        timings["total"] = sum(timings.values())
        return Answer(
            question=question,
            answer=answer_text,
            bottom_line=bottom_line,
            abstained=abstained,
            citations=() if abstained and use_retrieval else cited.citations,
            retrieved=tuple(hits),
            related_questions=tuple(related),
            timings_ms=timings,
            standalone_question=standalone,
            session=session,
            audience=audience,
            mode=mode if use_retrieval else "none",
            backend=self.generator.name,
            decision=draft.decision,
            evidence=evidence if use_retrieval else None,
            disagreements=() if abstained else _cited_sides(found, passages, cited.citations),
        )

    def neighbours(self, doc_id: str) -> list[Hit]:
        """One hit per section of the documents that share `doc_id`'s title (the other
        sections of the same guideline), for suggesting related questions."""
        sections: list[Hit] = []
        for sibling in self._same_title_documents(doc_id):
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

    def _documents_by_id(self) -> dict[str, IndexedDocument]:
        if self._documents is None:
            self._documents = {document.id: document for document in self.index.documents()}
        return self._documents

    def _same_title_documents(self, doc_id: str) -> list[IndexedDocument]:
        """The documents sharing `doc_id`'s title (the sections of one guideline, `doc_id`'s
        own included), in index order; [] for an unknown id. The grouping by title is built
        once: the index does not change while the engine is loaded."""
        document = self._documents_by_id().get(doc_id)
        if document is None:
            return []
        if self._documents_titled is None:
            grouped: dict[str, list[IndexedDocument]] = {}
            for each in self._documents_by_id().values():
                grouped.setdefault(each.title, []).append(each)
            self._documents_titled = grouped
        return list(self._documents_titled[document.title])

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
        """The generator's probability (0..1) that the top passages of `hits` state the answer
        to `question`; None when it cannot judge (the extractive backend), the check is off
        (`answer.min_answerable_probability` 0) or its reply could not be read."""
        check = getattr(self.generator, "answerable", None)
        if check is None or self.settings.answer.min_answerable_probability <= 0 or not hits:
            return None
        return check(question, hits[:TOP_PASSAGES])

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """The follow-up and the conversation so far as one standalone question.

        A generator that can chat (`complete(messages) -> str`, the OpenAI-compatible backend)
        rewrites the follow-up, shown the titles of the sources the last answer cited; without
        one, or when the call fails or the reply is unusable, rag.converse's deterministic
        method carries the topic terms instead."""
        if not history:
            return question
        from rag.converse import condense

        complete = getattr(self.generator, "complete", None)
        return condense(
            question,
            history,
            rewrite=complete if callable(complete) else None,
            source_titles=self._cited_titles(history),
        )

    def _cited_titles(self, history: Sequence[Turn]) -> list[str]:
        """Titles of the documents cited by the latest turn that cited any, in citation order."""
        by_id = self._documents_by_id()
        for turn in reversed(history):
            if turn.cited_doc_ids:
                return [by_id[doc_id].title for doc_id in turn.cited_doc_ids if doc_id in by_id]
        return []

    def _same_title_doc_ids(self, doc_id: str) -> list[str]:
        """Ids of the documents sharing `doc_id`'s title (the sections of one guideline)."""
        return [sibling.id for sibling in self._same_title_documents(doc_id)]


def _cited_sides(
    found: Sequence[Disagreement], passages: Sequence[Hit], citations: Sequence[Citation]
) -> tuple[dict, ...]:
    """The disagreements as the JSON gives them: the point and, per side, its citation number,
    source and year; sides whose citation did not survive the support check are dropped, and
    a disagreement left with one side is no disagreement."""
    number_of = {citation.chunk_id: citation.n for citation in citations}
    shown = []
    for disagreement in found:
        sides = [
            {"citation": number_of[passages[side.passage - 1].chunk_id], "source": side.label,
             "year": side.year}
            for side in disagreement.sides
            if passages[side.passage - 1].chunk_id in number_of
        ]  # fmt: skip
        if len(sides) >= 2:
            shown.append({"point": disagreement.point, "sides": sides})
    return tuple(shown)


def _worth_answering(coverage: Coverage, settings: AnswerSettings) -> bool:
    """Whether the index covers the question enough to answer it at all (graded direct or
    partial afterwards): a coverage score of at least `min_partial_score`; a question naming a
    term the index never mentions needs the full `min_coverage_score` besides."""
    if coverage.score < settings.min_partial_score:
        return False
    return not coverage.unknown_words or coverage.score >= settings.min_coverage_score


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
