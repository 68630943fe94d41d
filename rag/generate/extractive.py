"""The offline backend: an answer assembled only from sentences copied out of the passages.

`ExtractiveGenerator` needs no LLM and is deterministic. It splits each passage into units
(prose sentences; list items and table rows whole), scores every unit against the question,
and writes the best few, each followed by its passage's [n]:

    Bottom line: <best unit> [n].

    ### <section>
    <unit> [n]. <unit> [m].

What it writes is always passage text: the only edits are dropped Markdown emphasis
(**, __, *, _, backticks), dropped citation markers the source itself carried ("[12]", which
would otherwise collide with ours), table cells joined by " | ", a nested list item written
after the label of the item it sits under ("Score 3-5 (high risk): Manage as severe
pneumonia ..."), a line of a fenced block (the guidelines' decision trees) written after the
lines it branches from, and the [n] it adds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.generate.base import Draft, check_audience
from rag.generate.citations import content_words, split_prose_sentences, stem
from rag.types import Hit


def _words(text: str) -> frozenset[str]:
    """The whitespace-separated words of a word list written as text."""
    return frozenset(text.split())


MAX_UNITS = 6
MAX_WORDS = 180
MAX_EMBEDDED_UNITS = 64  # bounds the embedder's work per question (~2 s worst case here)

# Question words that say what kind of answer is wanted but not what it is about: a passage
# sharing only these ("symptoms", "treatment") with the question is not on its topic.
GENERIC_WORDS = frozenset(
    stem(word)
    for word in _words(
        """
    symptom symptoms sign signs treatment treatments treat treated therapy therapies cause
    causes caused diagnosis diagnose diagnosed risk risks factor factors prevent prevention
    outlook prognosis people person patient patients disease diseases condition conditions
    disorder disorders information type types test tests effect effects use used using
    manage management recommended recommendation recommendations option options common best
    many much know known get help need needs way ways mean means like affect affected first
    long time adult adults child children study studies associated
    """
    )
)

# Text addressed to an AI rather than to a reader: a passage containing it is not quoted.
_INJECTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) (?:instructions|prompts?)"
    r"|disregard (?:all |any )?(?:the )?(?:previous|prior|above) "
    r"|\bsystem prompt\b|\byou are (?:now )?(?:an? )?(?:ai|assistant|language model|chatbot)\b"
    r"|\breply only with\b|\bcite (?:passage|source)s? \[",
    re.IGNORECASE,
)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_SOURCE_MARKER = re.compile(r"\s*\[\s*\d+(?:\s*[,–-]\s*\d+)*\s*\]")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+")
_TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_FENCE = re.compile(r"^\s*(?:```|~~~)")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a passage: a sentence, list item or table row."""

    text: str  # as it will be written (emphasis and source markers dropped)
    passage: int  # 1-based position of its hit
    position: int  # order inside the passage
    section: str  # heading it sits under, for grouping
    kind: str  # "sentence", "item", "row" or "path" (a decision tree's branch)
    words: frozenset[str]  # content words, for overlap and de-duplication


def plain(text: str) -> str:
    """`text` without Markdown emphasis markup and without numeric citation markers."""
    previous = None
    while previous != text:  # nested emphasis ("**_x_**") unwraps one layer per pass
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return " ".join(_SOURCE_MARKER.sub("", text).split())


def passage_units(hit: Hit, passage: int) -> list[Unit]:
    """The quotable units of `hit`'s text, in order; `passage` is its 1-based number."""
    default_section = _section_name(hit)
    section = default_section
    units: list[Unit] = []
    paragraph: list[str] = []

    def add(text: str, kind: str) -> None:
        text = plain(text)
        words = frozenset(content_words(text))
        if len(text.split()) >= 3 and words:
            units.append(Unit(text, passage, len(units), section, kind, words))

    def flush() -> None:
        for sentence in split_prose_sentences(" ".join(paragraph)):
            add(sentence, "sentence")
        paragraph.clear()

    # The list items enclosing the current one: (indent, text). A nested item under a label
    # ("Score 3-5 (high risk):") means nothing without it, so it is quoted with the label.
    enclosing: list[tuple[int, str]] = []
    fenced: list[str] | None = None  # the lines of an open fenced block
    for line in hit.text.splitlines():
        heading = _HEADING.match(line)
        if _FENCE.match(line):
            flush()
            enclosing.clear()
            if fenced is None:
                fenced = []
            else:
                for path in tree_paths(fenced):
                    add(path, "path")
                fenced = None
        elif fenced is not None:
            fenced.append(line)
        elif heading:
            flush()
            enclosing.clear()
            section = plain(heading.group(1)) or default_section
        elif not line.strip() or _TABLE_RULE.match(line):
            flush()
        elif _TABLE_ROW.match(line):
            flush()
            enclosing.clear()
            cells = [cell.strip() for cell in _TABLE_ROW.match(line).group(1).split("|")]
            add(" | ".join(cell for cell in cells if cell), "row")
        elif _LIST_ITEM.match(line):
            flush()
            indent = len(line) - len(line.lstrip())
            while enclosing and enclosing[-1][0] >= indent:
                enclosing.pop()
            item = _LIST_ITEM.sub("", line).strip()
            label = plain(enclosing[-1][1]) if enclosing else ""
            add(f"{label} {item}" if label.endswith(":") else item, "item")
            enclosing.append((indent, item))
        else:
            enclosing.clear()
            paragraph.append(line.strip())
    flush()
    for path in tree_paths(fenced or []):  # a block the passage cut before its closing fence
        add(path, "path")
    return units


def tree_paths(lines: Sequence[str]) -> list[str]:
    """Each leaf of an indented tree (a fenced decision tree's lines) with the lines it sits
    under, root first: "Variceal bleeding confirmed -> Oesophageal varices? -> YES -> Band
    ligation" from four lines indented ever deeper. A line followed by a deeper one is a
    branch, quoted only as part of its leaves' paths; a blank line ends a tree. A line
    opening in lower case or with a parenthesis continues the line before it ("Continue
    terlipressin (up to 5 days)," / "prophylactic antibiotics (7 days).")."""
    paths: list[str] = []
    rows: list[tuple[int, str]] = []
    for line in lines:
        text = line.strip()
        if rows and rows[-1][1] and (text[:1].islower() or text.startswith("(")):
            rows[-1] = (rows[-1][0], f"{rows[-1][1]} {text}")
        else:
            rows.append((len(line) - len(line.lstrip()), text))
    branch: list[tuple[int, str]] = []
    for number, (indent, text) in enumerate(rows):
        if not text:
            branch.clear()
            continue
        while branch and branch[-1][0] >= indent:
            branch.pop()
        following = rows[number + 1] if number + 1 < len(rows) else (0, "")
        if not (following[1] and following[0] > indent):
            paths.append(" ".join([*(step for _, step in branch), text]))
        branch.append((indent, text))
    return paths


class ExtractiveGenerator:
    """Answers with the passage sentences that best match the question; never invents text.

    `embedder` (optional) is anything with `embed_query(text) -> (d,)` and
    `embed_passages(texts) -> (n, d)` returning unit vectors (rag.index.embedder.Embedder);
    when given, cosine similarity with the question joins the lexical score, which lets a
    paraphrase ("high blood pressure" for "hypertension") be found.
    """

    name = "extractive"

    def __init__(self, embedder: Any | None = None) -> None:
        self.embedder = embedder

    def generate(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        audience: str = "clinician",
        want_decision: bool = False,
    ) -> Draft:
        """A draft citing `hits` as [1]..[len(hits)], or Draft(text="", refused=True) when no
        passage shares meaningful content with `question`. The decision is always None: this
        backend copies sentences and cannot weigh them into a yes or no."""
        check_audience(audience)
        units = [
            unit
            for passage, hit in enumerate(hits, start=1)
            if not _INJECTION.search(hit.text)
            for unit in passage_units(hit, passage)
        ]
        question_words = set(content_words(question))
        if not units or not question_words:
            return Draft(text="", refused=True)

        lexical = _lexical_scores(question_words, units)
        topical_words = (question_words - GENERIC_WORDS) or question_words
        on_topic = [bool(unit.words & topical_words) for unit in units]
        vectors = self._unit_vectors(units, lexical)
        similarity = None
        if vectors:
            question_vector = np.asarray(self.embedder.embed_query(question), dtype=np.float32)
            similarity = [
                float(vectors[i] @ question_vector) if i in vectors else 0.0
                for i in range(len(units))
            ]

        scores: list[float] = []
        for i, unit in enumerate(units):
            score = lexical[i]
            if similarity is not None:
                score = 0.3 * score + 0.7 * max(similarity[i], 0.0)
                on_topic[i] = on_topic[i] or similarity[i] >= _PARAPHRASE_SIMILARITY
            score *= _rank_weight(unit.passage) * _length_weight(unit, audience)
            scores.append(score if on_topic[i] else 0.0)

        if max(scores) <= 0.0:
            return Draft(text="", refused=True)
        chosen = _select(units, scores)
        if vectors:
            chosen = self._cover_parts(question, units, scores, chosen, vectors)
        return Draft(text=_render(chosen, hits), decision=None, refused=False)

    def _cover_parts(
        self,
        question: str,
        units: Sequence[Unit],
        scores: Sequence[float],
        chosen: list[Unit],
        vectors: dict[int, np.ndarray],
    ) -> list[Unit]:
        """`chosen` with, for each part of a question that asks two things ("How is severity
        assessed, and who should be admitted?"), the unit that best answers a part no chosen
        unit touches. The best units for the whole question tend to answer its first part
        only. A part is asked with the topic words of the rest of the question ("who should
        be admitted pneumonia severity CURB-65"), so its answer stays on the topic; a part is
        touched when a chosen unit is close to it alone."""
        parts = question_parts(question)
        if len(parts) < 2:
            return chosen
        candidates = [i for i, score in enumerate(scores) if score > 0.0 and i in vectors]
        index_of = {id(unit): i for i, unit in enumerate(units)}
        chosen = list(chosen)
        for number, part in enumerate(parts):
            others = " ".join(parts[:number] + parts[number + 1 :])
            alone = np.asarray(self.embedder.embed_query(part), dtype=np.float32)
            if any(
                float(vectors[index_of[id(unit)]] @ alone) >= _PARAPHRASE_SIMILARITY
                for unit in chosen
                if index_of[id(unit)] in vectors
            ):
                continue
            focused = np.asarray(
                self.embedder.embed_query(f"{part} {_topic_words(others)}"), dtype=np.float32
            )
            best, best_similarity = None, _PARAPHRASE_SIMILARITY
            for i in candidates:
                if _repeats(units[i], chosen):
                    continue
                similarity = float(vectors[i] @ focused)
                if similarity > best_similarity:
                    best, best_similarity = units[i], similarity
            if best is not None:
                chosen = [*chosen[: MAX_UNITS - 1], best]
        return chosen

    def _unit_vectors(
        self, units: Sequence[Unit], lexical: Sequence[float]
    ) -> dict[int, np.ndarray]:
        """{unit index: unit vector} for the units the embedder sees ({} without one): at most
        MAX_EMBEDDED_UNITS, the lowest-ranked passages' units left out first."""
        if self.embedder is None:
            return {}
        embedded = sorted(range(len(units)), key=lambda i: (units[i].passage, -lexical[i]))
        embedded = embedded[:MAX_EMBEDDED_UNITS]
        unit_vectors = np.asarray(
            self.embedder.embed_passages([units[i].text for i in embedded]), dtype=np.float32
        )
        return dict(zip(embedded, unit_vectors, strict=True))


# A unit this similar to the question (MiniLM cosine) is on topic even with no shared word.
_PARAPHRASE_SIMILARITY = 0.4

# Where a question asking two things divides: after a question mark, or at ", and" / "and"
# before a question word ("..., and who should be admitted?").
_PART_BOUNDARY = re.compile(
    r"\?\s+|,?\s+and\s+(?=(?:who|whom|what|when|where|which|why|how|whether|should|is|are"
    r"|does|do|can)\b)",
    re.IGNORECASE,
)


def question_parts(question: str) -> list[str]:
    """The questions a question asks, in order ("How is X assessed, and who should be
    admitted?" -> ["How is X assessed", "who should be admitted"]); [question] for one."""
    parts = [part.strip(" ?,;") for part in _PART_BOUNDARY.split(question)]
    parts = [part for part in parts if content_words(part)]
    return parts if len(parts) > 1 else [question]


def _topic_words(text: str) -> str:
    """The words of `text` that say what it is about: no stopwords, no generic question
    words ("how", "assessed" stays: only the extractive scorer's generic list is left out)."""
    return " ".join(
        word
        for word in re.findall(r"[\w-]+", text)
        if content_words(word) and not set(content_words(word)) <= GENERIC_WORDS
    )


def _lexical_scores(question_words: set[str], units: Sequence[Unit]) -> list[float]:
    """How much of the question each unit covers (0..1): its own share of the question's weight
    blended with its passage's share. Weights are idf-like, computed over the units themselves:
    a word in every unit says little, a rare one a lot; question words no unit contains weigh
    the most, so they lower every unit's share alike."""
    unit_count = len(units)
    document_frequency = {
        word: sum(1 for unit in units if word in unit.words) for word in question_words
    }
    weights = {
        word: math.log(1.0 + unit_count / (1.0 + frequency))
        * (0.35 if word in GENERIC_WORDS else 1.0)
        for word, frequency in document_frequency.items()
    }
    total = sum(weights.values()) or 1.0
    passage_words: dict[int, set[str]] = {}
    for unit in units:
        passage_words.setdefault(unit.passage, set()).update(unit.words)
    passage_share = {
        passage: sum(weights[w] for w in question_words & words) / total
        for passage, words in passage_words.items()
    }
    # A sentence from a passage that covers the whole question beats an equally matching
    # sentence from a passage that only brushes it: the answer stays on one topic.
    return [
        0.65 * sum(weights[w] for w in question_words & unit.words) / total
        + 0.35 * passage_share[unit.passage]
        for unit in units
    ]


def _rank_weight(passage: int) -> float:
    """Prefer what retrieval ranked higher, gently: rank 1 -> 1.0, rank 8 -> ~0.74."""
    return 1.0 / (1.0 + 0.05 * (passage - 1))


def _length_weight(unit: Unit, audience: str) -> float:
    """Penalise very long units for everyone, and for patients long sentences and long,
    technical words (four or more vowel groups, or thirteen letters and up)."""
    words = unit.text.split()
    if audience != "patient":
        return 1.0 / (1.0 + max(0, len(words) - 40) / 40)
    technical = sum(
        1
        for word in re.findall(r"[A-Za-z]+", unit.text)
        if len(word) >= 13 or len(_VOWEL_GROUPS.findall(word.lower())) >= 4
    )
    technical_share = technical / max(len(words), 1)
    return 1.0 / (1.0 + 0.04 * max(0, len(words) - 14) + 2.5 * technical_share)


def _select(units: Sequence[Unit], scores: Sequence[float]) -> list[Unit]:
    """The best units, best first: at most MAX_UNITS and about MAX_WORDS words, none scoring
    under 60% of the best, none a near-duplicate of one already chosen."""
    order = sorted(
        range(len(units)), key=lambda i: (-scores[i], units[i].passage, units[i].position)
    )
    best = scores[order[0]]
    chosen: list[Unit] = []
    word_count = 0
    for i in order:
        unit = units[i]
        if scores[i] <= 0.0 or scores[i] < 0.6 * best or len(chosen) >= MAX_UNITS:
            break
        if _repeats(unit, chosen):
            continue
        length = len(unit.text.split())
        if chosen and word_count + length > MAX_WORDS:
            continue
        chosen.append(unit)
        word_count += length
    return chosen


def _repeats(unit: Unit, chosen: Sequence[Unit]) -> bool:
    """Whether `unit` is one of `chosen` or a near-duplicate of one (word Jaccard 0.6 or
    more; every unit has words, so a unit always repeats itself)."""
    return any(_jaccard(unit.words, other.words) >= 0.6 for other in chosen)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def _cited(unit: Unit) -> str:
    """The unit with its [n] placed before the closing punctuation ("... flare [2].")."""
    match = re.match(r"^(.*?)([.!?…:;]+[\"'”’)]*)$", unit.text)
    if match and match.group(1):
        return f"{match.group(1)} [{unit.passage}]{match.group(2)}"
    return f"{unit.text} [{unit.passage}]"


def _render(chosen: Sequence[Unit], hits: Sequence[Hit]) -> str:
    """Bottom line from the best unit that is not a decision tree's branch (a chain of steps
    is not a one-sentence summary; it leads only when nothing else was chosen), then the
    others, under "### section" headings when they come from more than one section; inside
    a section in passage order. When only one unit qualifies the bottom line is the whole
    answer: repeating it as the body would say the same sentence twice."""
    bottom = next((unit for unit in chosen if unit.kind != "path"), chosen[0])
    rest = [unit for unit in chosen if unit is not bottom]
    lines = [f"Bottom line: {_cited(bottom)}", ""]
    if not rest:
        return lines[0]
    sections: dict[str, list[Unit]] = {}
    for unit in rest:  # best first, so sections appear in order of their best unit
        sections.setdefault(unit.section, []).append(unit)
    for section, members in sections.items():
        members.sort(key=lambda unit: (unit.passage, unit.position))
        if len(sections) > 1:
            lines += [f"### {section}", ""]
        lines += [_block(members), ""]
    return "\n".join(lines).strip()


def _block(units: Sequence[Unit]) -> str:
    """Sentences run together as a paragraph; list items and table rows as a Markdown list."""
    parts: list[str] = []
    for unit in units:
        text = _cited(unit)
        if unit.kind == "sentence" and parts and not parts[-1].startswith("- "):
            parts[-1] += " " + text
        elif unit.kind == "sentence":
            parts.append(text)
        else:
            parts.append("- " + text)
    # List items sit on consecutive lines; anything else is separated by a blank line.
    block = parts[0]
    for previous, part in itertools.pairwise(parts):
        block += ("\n" if previous.startswith("- ") and part.startswith("- ") else "\n\n") + part
    return block


def _section_name(hit: Hit) -> str:
    """The deepest heading of the hit's section path, else its title, else "Other"."""
    if hit.section:
        return hit.section.split(" > ")[-1].strip() or hit.section
    return hit.title or "Other"
