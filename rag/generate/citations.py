"""The citation contract, enforced on every draft whatever backend wrote it.

`enforce_citations(draft_text, hits)` turns a backend's raw text into a `CitedText` whose every
[n] resolves to exactly one `Citation` and whose every citation is used:

- Markers recognised: [3], [1,2], [1, 2], [1-3], [1–3], [1][2], [1], [2], [Passage 2],
  [Source 2], [Passages 1 and 3]. A run of adjacent markers is one group.
- A number that matches no passage (0, 9 of 5, negative, huge) is removed; duplicates
  collapse; a group left empty leaves no trace (no "[]", no space before punctuation).
- Passages are renumbered 1..m in order of first use (the bottom line counts first, as it is
  read first); each group is written as adjacent single markers in ascending order, "[1][2]",
  with one space before it ("flares [1][2]."). A marker glued inside a word ("flare[2]s") is
  moved to the end of that word ("flares [1]").
- The "Bottom line:" line becomes `bottom_line` (else the first sentence of the answer), a
  trailing "Decision: yes|no|maybe" line becomes `decision`, and a reference list the model
  appended itself is dropped: references are rendered from `citations`.

Words, sentences and Markdown patterns come from rag.text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.generate.prompts import BOTTOM_LINE_LABEL, REFUSAL_SENTENCE
from rag.text import HEADING, LIST_ITEM, content_stems, split_sentences
from rag.types import Citation, Hit

# Names that lived here before rag.text, for code that still imports them from here
# (content_words was a set of lightly stemmed words; content_stems, Snowball, replaced it).
content_words = content_stems
from rag.text import is_heading, split_prose_sentences  # noqa: F401

QUOTE_CHARS = 300


# ---------------------------------------------------------------------------------------------
# Markers

_LABEL = r"(?:passages?|sources?|references?|refs?\.?|documents?|docs?|citations?|cite)"
_NUMBER = rf"(?:{_LABEL}\s*)?(?:no\.\s*|#\s*)?[-−]?\s*\d+"
_SEPARATOR = r"\s*(?:[-–—−]|,|;|&|\band\b|\bto\b)\s*"
_MARKER = rf"\[\s*(?:{_NUMBER}(?:{_SEPARATOR}{_NUMBER})*)?\s*\]"  # "[]" too: an empty group
_MARKER_RUN = re.compile(rf"{_MARKER}(?:[ \t]*[,;]?[ \t]*{_MARKER})*", re.IGNORECASE)
_MARKER_ONE = re.compile(_MARKER, re.IGNORECASE)
_LABEL_WORD = re.compile(rf"{_LABEL}|no\.|#", re.IGNORECASE)
_RANGE_OR_NUMBER = re.compile(r"(-?\d+)\s*[-–—]\s*(\d+)|(-?\d+)")
_CLOSING = set(".,;:!?)]}”’\"'")


def _marker_numbers(marker_run: str, passage_count: int) -> list[int]:
    """Passage numbers named by a run of markers, in order, without repeats, only 1..count."""
    numbers: list[int] = []
    for marker in _MARKER_ONE.findall(marker_run):
        inner = _LABEL_WORD.sub(" ", marker[1:-1]).replace("−", "-")
        inner = re.sub(r"\bto\b", "-", inner, flags=re.IGNORECASE)
        for match in _RANGE_OR_NUMBER.finditer(inner):
            if match.group(3) is not None:
                candidates: Sequence[int] = [int(match.group(3))]
            else:
                low, high = int(match.group(1)), int(match.group(2))
                # A reversed or negative range is malformed: it names nothing.
                candidates = range(max(low, 1), min(high, passage_count) + 1) if low >= 0 else []
            for number in candidates:
                if 1 <= number <= passage_count and number not in numbers:
                    numbers.append(number)
    return numbers


def rewrite_markers(
    text: str, passage_count: int, *, renumber: bool = True
) -> tuple[str, list[int]]:
    """`text` with every citation marker group rewritten; returns (text, passages by new number).

    Numbers outside 1..`passage_count` are dropped. With `renumber`, passages are renumbered
    1..m in order of first use and the returned list holds the original passage number of
    each new number (index 0 = new [1]); without it numbers are kept and the list holds the
    numbers used, in order of first use. Groups are written as "[1][2]" after one space.
    """
    first_use: list[int] = []
    out = ""  # the rewritten text so far; answers are short, so plain concatenation will do
    position = 0
    for match in _MARKER_RUN.finditer(text):
        if match.start() < position:
            continue  # inside a word we already moved a marker past
        out += text[position : match.start()]
        position = match.end()
        numbers = _marker_numbers(match.group(0), passage_count)
        for number in numbers:
            if number not in first_use:
                first_use.append(number)
        shown = sorted(first_use.index(n) + 1 for n in numbers) if renumber else sorted(numbers)
        rendered = "".join(f"[{n}]" for n in shown)
        following = text[position : position + 1]

        if not rendered:
            # Leave no trace: no doubled space, no space before punctuation, no "()".
            if out.endswith("(") and following == ")":
                out = out[:-1]
                position += 1
                following = text[position : position + 1]
            if not out.strip(" \t") or out.rstrip(" \t").endswith("\n"):
                while text[position : position + 1] in (" ", "\t"):
                    position += 1
            elif following == "" or following.isspace() or following in _CLOSING:
                out = out.rstrip(" \t")
            continue

        if out[-1:].isalnum() and following.isalnum():
            # "flare[2]s": the marker sits inside a word; finish the word, then cite it.
            rest_of_word = re.match(r"[\w'’-]*\w", text[position:])
            if rest_of_word:
                out += rest_of_word.group(0)
                position += rest_of_word.end()
                following = text[position : position + 1]
        if out and not out[-1].isspace() and out[-1] not in "([":
            out += " "
        elif (
            out.endswith((" ", "\t")) and out.rstrip(" \t") and not out.rstrip(" \t").endswith("\n")
        ):
            out = out.rstrip(" \t") + " "  # "claim   [1]" -> "claim [1]"
        out += rendered
        if following.isalnum():
            out += " "
    out += text[position:]
    return out, first_use


def remove_unknown_markers(text: str, passage_count: int) -> str:
    """`text` with numbers outside 1..`passage_count` removed, other numbers unchanged.

    For a backend that showed the model only the first `passage_count` passages."""
    return rewrite_markers(text, passage_count, renumber=False)[0]


# ---------------------------------------------------------------------------------------------
# Decision, refusal, reference lists, bottom line

_DECISION_VALUES = {
    "yes": "yes",
    "no": "no",
    "maybe": "maybe",
    "unclear": "maybe",
    "uncertain": "maybe",
    "inconclusive": "maybe",
}
_DECISION_LINE = re.compile(
    r"^[\s>#*_-]*(?:the\s+)?(?:final\s+|short\s+)?"
    r"(decision|verdict|answer|conclusion)\s*[*_]*\s*[:=\-–—]\s*[*_\s\"'“]*"
    r"(yes|no|maybe|unclear|uncertain|inconclusive)\b(.*)$",
    re.IGNORECASE,
)


def parse_decision(text: str) -> tuple[str, str | None]:
    """Split a "Decision: yes|no|maybe" line off `text`; returns (text without it, decision).

    Accepts any case, Markdown emphasis, and "Answer: Yes." / "Final answer: **No**" styles.
    The last non-empty line is taken when it is such a line; otherwise the last line labelled
    "Decision:" or "Verdict:" anywhere. "Answer:" and "Conclusion:" lines count only when
    they hold nothing but the decision, since they may open an ordinary answer. "unclear",
    "uncertain" and "inconclusive" read as "maybe". Returns (text, None) when there is none.
    """
    lines = text.splitlines()
    non_empty = [i for i, line in enumerate(lines) if line.strip()]
    candidates = non_empty[-1:] + [i for i in reversed(non_empty[:-1])]
    for i in candidates:
        match = _DECISION_LINE.match(lines[i])
        if not match:
            continue
        label, value, rest = match.group(1).lower(), match.group(2).lower(), match.group(3)
        only_decision = not re.search(r"[A-Za-z]", _MARKER_RUN.sub("", rest))
        is_last = i == non_empty[-1]
        if label in ("answer", "conclusion") and not (is_last and only_decision):
            continue
        remaining = lines[:i] + lines[i + 1 :]
        return "\n".join(remaining).strip(), _DECISION_VALUES[value]
    return text, None


_REFUSAL_PHRASES = (
    "do not answer this question",
    "does not answer this question",
    "do not answer the question",
    "does not answer the question",
    "cannot be answered from the",
    "cannot answer this question from",
    "cannot answer the question from",
    "do not contain enough information",
    "does not contain enough information",
    "do not contain information",
    "does not contain information",
    "do not provide enough information",
    "do not provide information",
    "insufficient information to answer",
    "no information about",
)


def _normalised(text: str) -> str:
    text = _MARKER_RUN.sub(" ", text)
    text = re.sub(
        rf"^\W*{re.escape(BOTTOM_LINE_LABEL[:-1])}\W*", "", text.strip(), flags=re.IGNORECASE
    )
    text = re.sub(r"[*_`#>\"“”]", " ", text.lower())
    return " ".join(text.split()).strip(" .!")


def is_refusal(text: str) -> bool:
    """True when `text` says the passages do not answer: empty, the prompt's refusal sentence
    (however decorated: "Bottom line:", emphasis, a decision line), or a short reply built
    around a standard refusal phrase. A long answer that mentions a gap is not a refusal."""
    body, _ = parse_decision(text)
    normalised = _normalised(body)
    if not normalised:
        return True
    refusal = _normalised(REFUSAL_SENTENCE)
    if normalised == refusal or (normalised.startswith(refusal) and len(normalised) < 250):
        return True
    return len(normalised) < 200 and any(phrase in normalised for phrase in _REFUSAL_PHRASES)


_REFERENCE_HEADING = re.compile(
    r"^\s*(?:#{1,6}\s*)?[*_]*\s*(references?|sources?(?:\s+cited|\s+used)?|cited\s+sources|"
    r"citations|bibliography|works\s+cited|passages\s+cited)\s*[*_]*\s*:?\s*[*_]*\s*(.*)$",
    re.IGNORECASE,
)
_REFERENCE_ENTRY = re.compile(
    r"^\s*(?:[-*+•]\s*)?(?:\[\s*\d+\s*\]|\d{1,3}[.)]|(?:passage|source)\s+\d+\b)"
)


def strip_reference_list(text: str) -> str:
    """`text` without a reference list the model appended at its end.

    A list is a "References"/"Sources"/"Bibliography" heading (a line of its own, or followed
    only by markers as in "Sources: [1], [2]") with nothing but list entries after it, or a
    final block of lines that each start with a marker such as "[1] Title, 2020".
    """
    lines = text.rstrip().splitlines()
    for i in range(len(lines) - 1, 0, -1):
        heading = _REFERENCE_HEADING.match(lines[i])
        if not heading:
            continue
        rest = heading.group(2)
        if rest and re.search(r"[A-Za-z]", _MARKER_RUN.sub("", rest)):
            continue  # "Sources of infection include ..." is prose, not a list
        after = [line for line in lines[i + 1 :] if line.strip()]
        if all(_REFERENCE_ENTRY.match(line) or len(line) < 200 for line in after) and not any(
            HEADING.match(line) for line in after
        ):
            return "\n".join(lines[:i]).rstrip()
        break
    # A trailing block of "[n] ..." entries after a blank line, without a heading.
    end = len(lines)
    start = end
    while start > 0 and re.match(r"^\s*(?:[-*]\s*)?\[\s*\d+\s*\]\s*\S", lines[start - 1]):
        start -= 1
    if start < end and start > 0 and not lines[start - 1].strip():
        return "\n".join(lines[:start]).rstrip()
    return "\n".join(lines)


_BOTTOM_LINE = re.compile(
    r"^\s*(?:#{1,6}\s*)?[*_]*\s*bottom[\s-]+line\s*[*_]*\s*(?:[:\-–—]\s*[*_]*\s*(.*?))?\s*[*_]*\s*$",
    re.IGNORECASE,
)


def _split_bottom_line(text: str) -> tuple[str, str]:
    """(bottom line, body): the "Bottom line:" line's content and the text without it;
    a "Bottom line" heading takes the next non-empty line. ("", text) when there is none."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = _BOTTOM_LINE.match(line)
        if not match:
            continue
        content = (match.group(1) or "").strip()
        taken = [i]
        if not content:
            following = [j for j in range(i + 1, len(lines)) if lines[j].strip()]
            if not following or HEADING.match(lines[following[0]]):
                continue
            content = lines[following[0]].strip()
            taken.append(following[0])
        body = "\n".join(line for j, line in enumerate(lines) if j not in taken)
        return content, body
    return "", text


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


# ---------------------------------------------------------------------------------------------
# Quotes


@dataclass(frozen=True)
class CitedText:
    """A draft after the citation contract: every [n] in `answer` and `bottom_line` is
    `citations[n-1]`, and every citation is cited at least once.

    `decision` is the parsed "Decision:" line (yes/no/maybe) if the draft had one; `refused`
    is True when the draft was a refusal (see `is_refusal`).
    """

    answer: str
    bottom_line: str
    citations: tuple[Citation, ...]
    decision: str | None = None
    refused: bool = False


def _citing_sentences(text: str) -> list[tuple[str, set[int]]]:
    """(sentence without markers, numbers it cites) for each sentence of `text`."""
    result = []
    for sentence in split_sentences(text):
        numbers = {int(n) for n in re.findall(r"\[(\d+)\]", sentence)}
        if numbers:
            result.append((_MARKER_RUN.sub("", sentence), numbers))
    return result


def _overlap(claim_words: set[str], passage_sentence: str) -> float:
    words = content_stems(passage_sentence)
    if not words or not claim_words:
        return 0.0
    return len(claim_words & words) / math.sqrt(len(words))


def _trim(text: str, limit: int = QUOTE_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def best_quote(passage: str, claims: Sequence[str], limit: int = QUOTE_CHARS) -> str:
    """The sentence(s) of `passage` that best match `claims` by shared content words, in
    passage order, trimmed to about `limit` characters; the first sentence when nothing
    overlaps."""
    sentences = split_sentences(passage) or [passage.strip()]
    chosen: list[int] = []
    for claim in claims:
        claim_words = set(content_stems(claim))
        scores = [_overlap(claim_words, sentence) for sentence in sentences]
        best = max(range(len(sentences)), key=lambda i: scores[i])
        if scores[best] > 0 and best not in chosen:
            chosen.append(best)
    if not chosen:
        return _trim(sentences[0], limit)
    quote = sentences[chosen[0]]
    for index in sorted(chosen[1:]):
        joined = " ".join(sentences[i] for i in sorted({*chosen[: chosen.index(index)], index}))
        if len(joined) > limit:
            break
        quote = joined
    return _trim(quote, limit)


def lexical_support(passage: str, claims: Sequence[str]) -> float | None:
    """Mean share of each claim's content words that occur in `passage` (0..1); None when no
    claim has content words. A cheap signal: paraphrase scores low, copying scores high."""
    passage_words = content_stems(passage)
    shares = []
    for claim in claims:
        words = content_stems(claim)
        if words:
            shares.append(len(words & passage_words) / len(words))
    return round(sum(shares) / len(shares), 3) if shares else None


# ---------------------------------------------------------------------------------------------
# The contract


def enforce_citations(text: str, hits: Sequence[Hit]) -> CitedText:
    """Apply the citation contract to a draft citing `hits` as [1]..[len(hits)].

    Returns the answer body (Markdown, markers renumbered by first use, no bottom-line line,
    no decision line, no model-written reference list), the bottom line (the "Bottom line:"
    line or else the answer's first sentence, markers numbered consistently with the body),
    one `Citation` per cited passage in the new order with a supporting quote, the parsed
    decision and whether the draft was a refusal.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    refused = is_refusal(text)
    text, decision = parse_decision(text)
    text = strip_reference_list(text)
    text, used = rewrite_markers(text, len(hits), renumber=True)
    bottom_line, body = _split_bottom_line(text)
    body = _tidy(body)
    if not bottom_line:
        first = split_sentences(body)
        bottom_line = LIST_ITEM.sub("", first[0]) if first else ""
    bottom_line = " ".join(bottom_line.split())

    claims_by_number: dict[int, list[str]] = {}
    for sentence, numbers in _citing_sentences(bottom_line + "\n\n" + body):
        for number in numbers:
            claims_by_number.setdefault(number, []).append(sentence)

    citations = []
    for new_number, passage_number in enumerate(used, start=1):
        hit = hits[passage_number - 1]
        claims = claims_by_number.get(new_number, [])
        citations.append(
            Citation(
                n=new_number,
                doc_id=hit.doc_id,
                chunk_id=hit.chunk_id,
                title=hit.title,
                source=hit.source,
                year=hit.year,
                url=hit.url,
                doi=hit.doi,
                section=hit.section,
                quote=best_quote(hit.text, claims),
                support=lexical_support(hit.text, claims),
            )
        )
    return CitedText(
        answer=body,
        bottom_line=bottom_line,
        citations=tuple(citations),
        decision=decision,
        refused=refused,
    )
