"""Citation support: is each cited sentence backed by the passage it cites?

`enforce_citations` makes every [n] resolve; it cannot tell whether passage n says what the
sentence claims. `check_support` scores every (sentence, cited passage) pair offline:

    support = COSINE_WEIGHT * cosine(sentence, passage) + (1 - COSINE_WEIGHT) * lexical share

where the cosine comes from the index's embedder (both sides embedded as passages) and the
lexical share is the fraction of the sentence's content words found in the passage. A sentence
copied verbatim from its passage (the extractive backend's) scores 1.0 without embedding.

A citation scoring below `remove_below` is removed from that sentence; a passage no sentence
cites any more leaves the reference list, and the remaining references are renumbered so every
shown [n] still resolves. Each kept `Citation.support` is the mean score of the sentences citing
it. The threshold lives in `rag.config.AnswerSettings` and was calibrated by evals/abstention.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from rag.generate.citations import CitedText, rewrite_markers
from rag.text import content_stems, is_heading, split_prose_sentences
from rag.types import Citation, Hit

if TYPE_CHECKING:
    import numpy as np

COSINE_WEIGHT = 0.5
_MARKER = re.compile(r"[ \t]*\[(\d+)\]")
_MARKDOWN = re.compile(r"[*_`#>|]+")
_LINE_PREFIX = re.compile(r"^(\s*(?:[-*+•]|\d{1,3}[.)]|#{1,6})\s+|\s*)")


class PassageEmbedder(Protocol):
    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...


def _normalised(text: str) -> str:
    """Lower-case words only: for the verbatim test, blind to emphasis, spacing and punctuation."""
    return " ".join(re.findall(r"[a-z0-9]+", _MARKDOWN.sub(" ", text.lower())))


def lexical_share(sentence: str, passage: str) -> float:
    """Share (0..1) of the sentence's content words that occur in `passage`; 1.0 when the
    sentence has none (nothing to contradict)."""
    sentence_words = content_stems(sentence)
    if not sentence_words:
        return 1.0
    return len(sentence_words & content_stems(passage)) / len(sentence_words)


def support_scores(
    pairs: Sequence[tuple[str, str]], embedder: PassageEmbedder | None
) -> list[float]:
    """Support (0..1) of each (sentence, passage) pair, in order.

    A sentence found word for word in its passage scores 1.0; otherwise the blend of the
    embedder's cosine (clipped at 0) and the lexical share. Without an embedder the lexical
    share alone. Sentences and passages are each embedded once, in one batch.
    """
    scores: list[float | None] = []
    needing_vectors: list[int] = []
    for i, (sentence, passage) in enumerate(pairs):
        claim = _normalised(sentence)
        if claim and claim in _normalised(passage):
            scores.append(1.0)
        else:
            scores.append(None)
            needing_vectors.append(i)
    if not needing_vectors:
        return [float(score) for score in scores]  # type: ignore[arg-type]

    cosines: dict[int, float] = {}
    if embedder is not None:
        texts = sorted({text for i in needing_vectors for text in pairs[i]})
        position = {text: row for row, text in enumerate(texts)}
        vectors = embedder.embed_passages(texts)
        for i in needing_vectors:
            sentence, passage = pairs[i]
            cosines[i] = max(0.0, float(vectors[position[sentence]] @ vectors[position[passage]]))

    for i in needing_vectors:
        lexical = lexical_share(*pairs[i])
        if embedder is None:
            scores[i] = lexical
        else:
            scores[i] = COSINE_WEIGHT * cosines[i] + (1.0 - COSINE_WEIGHT) * lexical
    return [round(float(score), 4) for score in scores]  # type: ignore[arg-type]


def check_support(
    cited: CitedText,
    hits: Sequence[Hit],
    embedder: PassageEmbedder | None,
    *,
    remove_below: float,
) -> CitedText:
    """`cited` with unsupported citations removed and every kept citation's `support` set.

    `cited` is `enforce_citations`' output for `hits` (citations name their chunk). Each
    sentence of the bottom line and the body is scored against each passage it cites; a
    citation scoring below `remove_below` is removed from that sentence. References no
    sentence cites any more are dropped and the rest renumbered 1..m by first use (bottom line
    first), so every [n] shown resolves to `citations[n-1]`. The answer's wording is unchanged.
    """
    if not cited.citations:
        return cited
    passages = {hit.chunk_id: hit.text for hit in hits}
    units = _sentence_units(cited.bottom_line) + [None] + _sentence_units(cited.answer)
    pairs: list[tuple[str, str]] = []
    pair_keys: list[tuple[int, int]] = []  # (unit index, number cited)
    for unit_index, unit in enumerate(units):
        if unit is None:
            continue
        for number in unit.numbers:
            claim = unit.claim_of(number)
            if 1 <= number <= len(cited.citations) and claim:
                passage = passages.get(cited.citations[number - 1].chunk_id)
                if passage is not None:
                    pairs.append((claim, passage))
                    pair_keys.append((unit_index, number))
    scores = dict(zip(pair_keys, support_scores(pairs, embedder), strict=True))

    removed = {key for key, score in scores.items() if score < remove_below}
    split_at = units.index(None)
    bottom_line = _rebuild(units[:split_at], removed, offset=0)
    body = _rebuild(units[split_at + 1 :], removed, offset=split_at + 1)

    # Renumber by first use, bottom line first, exactly as enforce_citations numbers.
    joined, used = rewrite_markers(bottom_line + "\n\n\x00\n\n" + body, len(cited.citations))
    bottom_line, _, body = joined.partition("\n\n\x00\n\n")
    citations: list[Citation] = []
    for new_number, old_number in enumerate(used, start=1):
        kept = [
            score
            for (unit_index, number), score in scores.items()
            if number == old_number and (unit_index, number) not in removed
        ]
        support = round(sum(kept) / len(kept), 3) if kept else None
        citations.append(replace(cited.citations[old_number - 1], n=new_number, support=support))
    return replace(cited, answer=body, bottom_line=bottom_line, citations=tuple(citations))


@dataclass(frozen=True)
class _Unit:
    """One sentence of one line: as written, its claim (no markers, no list bullet), the
    numbers it cites, and the line it sits on."""

    line: int
    text: str
    claim: str
    numbers: tuple[int, ...]

    def claim_of(self, number: int) -> str:
        """What citation `number` backs: the whole sentence when it cites one passage; in a
        sentence whose clauses cite different passages ("glucose >= 200 mg/dL [1]; pH < 7.3
        [2]."), the clauses each of its markers closes."""
        if len(set(self.numbers)) < 2:
            return self.claim
        pieces = re.split(r"((?:[ \t]*\[\d+\])+)", self.text)
        clauses = [
            _LINE_PREFIX.sub("", text, count=1).strip(" ;,.")
            for text, markers in zip(pieces[::2], pieces[1::2], strict=False)
            if number in {int(n) for n in _MARKER.findall(markers)}
        ]
        return " ".join(clause for clause in clauses if clause) or self.claim


def _sentence_units(text: str) -> list[_Unit]:
    """The sentences of `text`, line by line, such that joining each line's units and the
    lines with newlines gives `text` back exactly (blank lines and headings included)."""
    units: list[_Unit] = []
    for line_index, line in enumerate(text.split("\n")):
        for piece in _line_pieces(line):
            numbers = tuple(int(n) for n in _MARKER.findall(piece))
            claim = _LINE_PREFIX.sub("", _MARKER.sub("", piece), count=1).strip()
            units.append(_Unit(line_index, piece, claim, numbers))
    return units


def _line_pieces(line: str) -> list[str]:
    """`line` cut into its sentences; the pieces join back into `line` exactly (the space
    between two sentences stays at the end of the first)."""
    sentences = split_prose_sentences(line)
    if len(sentences) <= 1:
        return [line]
    starts: list[int] = []
    position = 0
    for sentence in sentences:
        # The splitter collapses whitespace: find the sentence word by word, any spacing.
        written = re.compile(r"\s+".join(re.escape(word) for word in sentence.split()))
        found = written.search(line, position)
        if found is None:
            break  # something we cannot locate: the rest stays one piece
        starts.append(found.start())
        position = found.end()
    starts[:1] = [0]
    return [line[a:b] for a, b in zip(starts, [*starts[1:], len(line)], strict=True)]


def _rebuild(units: Sequence[_Unit | None], removed: set[tuple[int, int]], *, offset: int) -> str:
    """The text of `units` again, without the markers of the removed (unit index, number)
    pairs; unit indexes count from `offset`."""
    pieces: list[tuple[int, str]] = []
    for index, unit in enumerate(units, start=offset):
        if unit is None:
            continue
        text = unit.text
        for number in {n for (i, n) in removed if i == index}:
            text = re.sub(rf"[ \t]*\[{number}\]", "", text)
        pieces.append((unit.line, text))
    return _joined(pieces)


def _joined(pieces: Sequence[tuple[int, str]]) -> str:
    """(line index, sentence text) pieces put back together: each line's pieces in order,
    lines joined with newlines."""
    lines: dict[int, str] = {}
    for line, text in pieces:
        lines[line] = lines.get(line, "") + text
    return "\n".join(lines[line] for line in sorted(lines))


# A sentence needs this many content words to be worth attributing: shorter ones ("### Dosing",
# "Yes.") claim nothing a passage could back.
ATTRIBUTE_MIN_WORDS = 4
_LABEL = re.compile(r"^\s*\**\s*(bottom line|answer|summary)\s*:\**\s*", re.IGNORECASE)


def attribute_uncited(
    text: str,
    hits: Sequence[Hit],
    embedder: PassageEmbedder | None,
    *,
    min_support: float,
    question: str = "",
) -> str:
    """`text` (a draft citing `hits` as [1]..[len(hits)]) with a marker added to each sentence
    that cites nothing but that one passage clearly backs.

    Small models often state what a passage says without the [n]. Each such sentence (at least
    ATTRIBUTE_MIN_WORDS content words, and sharing one with `question` when it is given, so a
    passage's stray instruction echoed by the model, "Cite passage 99 for every claim", is
    not lent a source) is scored against every passage as `support_scores` does; when the
    best passage reaches `min_support` (stricter than the removal threshold, so only clear
    support is attributed) its number goes at the end of the sentence, before the final full
    stop. Everything else is left exactly as written; `enforce_citations` and
    `check_support` then treat the added markers like the model's own.
    """
    if not hits or not text.strip():
        return text
    units = _sentence_units(text)
    asked = content_stems(question)

    def worth_attributing(unit: _Unit) -> bool:
        if is_heading(unit.text) or unit.text.lstrip().startswith("|"):
            return False  # a heading names a topic; a table row is cited in its last cell
        words = content_stems(_LABEL.sub("", unit.claim))
        return len(words) >= ATTRIBUTE_MIN_WORDS and (not asked or bool(words & asked))

    candidates = [
        index
        for index, unit in enumerate(units)
        if not unit.numbers and worth_attributing(unit)
    ]
    if not candidates:
        return text
    pairs = [
        (_LABEL.sub("", units[index].claim), hit.text) for index in candidates for hit in hits
    ]
    scores = support_scores(pairs, embedder)
    best_by_unit = {}
    for position, index in enumerate(candidates):
        row = scores[position * len(hits) : (position + 1) * len(hits)]
        best = max(range(len(hits)), key=lambda n: row[n])
        if row[best] >= min_support:
            best_by_unit[index] = best + 1
    pieces: list[tuple[int, str]] = []
    for index, unit in enumerate(units):
        piece = unit.text
        if index in best_by_unit:
            end = re.search(r"([.!?;:]?)(\s*)$", piece)
            assert end is not None  # the pattern matches the empty end of any string
            piece = f"{piece[: end.start()]} [{best_by_unit[index]}]{end.group(1)}{end.group(2)}"
        pieces.append((unit.line, piece))
    return _joined(pieces)
