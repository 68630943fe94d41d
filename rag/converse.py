"""Follow-ups: a question asked in the light of earlier turns -> one standalone question.

`condense(question, history)` turns an elliptical follow-up ("And how long for?") into one
question that retrieval can use on its own. With a chat function it asks the LLM to rewrite the
follow-up (the prompt is rag.generate.prompts.build_condense_messages) and checks the reply;
without one (or when the reply is unusable) it carries the conversation's topic terms into the
query deterministically. `Condenser` is that stage as the engine holds it.

The ranking keeps the topic too (rag.retrieve.lift_cited_source) and conversations are saved
by rag.sessions; both are re-exported here for callers written against this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.generate.prompts import build_condense_messages
from rag.generate.values import question_values

# Moved to the stages they belong to; re-exported for callers written against this module.
from rag.retrieve import (
    CITED_SOURCE_BOOST,
    CITED_SOURCE_DEPTH,
    cited_source_doc_ids,
    lift_cited_source,
)
from rag.sessions import (
    SessionInfo,
    SessionStore,
    check_session_name,
    default_data_dir,
    turn_to_json,
)
from rag.shorthand import stems_with_full_forms
from rag.text import (
    CONTEXT_OPENER,
    DRUG_NAME,
    EVERYDAY_ZIPF,
    NEGATION,
    STOPWORDS,
    english_frequency,
    stem,
    terms,
    word_list,
)
from rag.types import Turn

ChatFunction = Callable[[list[dict[str, str]]], str]
"""Messages in the OpenAI chat shape ([{"role", "content"}, ...]) -> the reply text."""

# A rewritten question longer than this is an answer or a ramble, not a question.
MAX_REWRITE_CHARS = 400

# The deterministic method. A follow-up with at least this many content words and no elliptical
# cue is taken as self-contained and left alone. Otherwise the topic terms appended are those of
# the anchor question (up to FIRST_TURN_MAX_TERMS) and of the most recent earlier question (up
# to RECENT_TURN_MAX_TERMS). Tuned on the dev half of evals/conversations.jsonl (grid in
# evals/README.md): words of an elliptical second turn ("Which IV drugs are preferred?") pulled
# third turns towards the second turn's document more often than they helped, hence 0.
SELF_CONTAINED_MIN_TERMS = 5
REPORT_MAX_WORDS = 20  # a finding reported in a conversation is short
FIRST_TURN_MAX_TERMS = 12
RECENT_TURN_MAX_TERMS = 0

# Beyond rag.text.STOPWORDS: question words, contractions and conversational filler. None of
# them says what a conversation is about, so none is carried into the standalone question.
CONVERSATION_WORDS = word_list(
    """
    already anymore anyone anything aren't can't cannot case cases couldn't didn't doesn't
    don't else even ever every get gets getting give given giving go goes going got hasn't
    herself himself instead isn't it's kind let like myself need needed needs neither now ok
    okay one ones others otherwise ourselves particular patient patients people person please
    rather really regarding say shouldn't someone someone's something still tell thanks that's
    theirs themselves thing things though use used uses using wasn't what's whatever wouldn't
    yes yet
    """
)
# "ie" stays a topic word: in a conversation it is infective endocarditis (IE), not "i.e.".
_NOT_TOPIC = (STOPWORDS | CONVERSATION_WORDS) - {"ie"}

# Words that make a question lean on the earlier turns: a leading connective ("And in
# pregnancy?") or a pronoun standing for something said before ("How long should it continue?").
LEADING_CUES = (
    "and",
    "or",
    "but",
    "so",
    "also",
    "then",
    "what about",
    "how about",
    "what if",
    "and if",
    "same",
)
ANAPHORA = word_list(
    "it its it's they them their theirs this that these those she her he him his one ones "
    "such same former latter above she's he's they're they've"
)
# A definite noun that points back ("Go ahead with the dose?": the pegloticase dose of the
# turn before), unless the question says which one ("the dose of apixaban"); and a question
# for the next step ("What now?", "Then what?").
_BACK_REFERENCE = re.compile(
    r"\bthe (?:dose|drug|score|device|regimen|course|infusion|result|level|plan|medication|"
    r"procedure)\b(?!\s+(?:of|for)\b)|\b(?:what now|now what|what next|then what)\b",
    re.IGNORECASE,
)

_REFUSAL = re.compile(
    r"\b(i can(?:no|')t|i cannot|i'm sorry|i am sorry|sorry,|as an ai|i'm unable|i am unable|"
    r"unable to (?:help|rewrite|answer)|not able to)\b",
    re.IGNORECASE,
)
_QUESTION_START = re.compile(
    r"^(what|which|when|where|who|whom|whose|why|how|is|are|was|were|do|does|did|should|"
    r"would|could|can|may|might|must|shall|will|has|have|had|in|for|at|after|before|during)\b",
    re.IGNORECASE,
)
_LABEL = re.compile(r"^(standalone|rewritten|reformulated)?\s*question\s*:\s*", re.IGNORECASE)


def content_terms(text: str) -> list[str]:
    """Terms of `text` that say what it is about, in order, without repeats: no stopwords, no
    conversational filler, clinical names kept whole ("cha2ds2-vasc")."""
    found: list[str] = []
    for word in terms(text):
        if word in _NOT_TOPIC or (len(word) < 2 and not word.isdigit()):
            continue
        if word not in found:
            found.append(word)
    return found


# A statement of a finding ("D-dimer just came back negative.", "FibroScan came back at 13.5
# kPa.", "His CrCl is 35."): in a conversation it reports a result about the case being
# discussed, and asks what it means for it.
_REPORT = re.compile(
    r"\b(?:is|are|was|were|came back|comes back|returned|shows?|showed|shown|reads?|measured|"
    r"weighs|answered|scored|has|had|got|developed|became|remains?|now)\b",
    re.IGNORECASE,
)


def is_report(question: str) -> bool:
    """Whether `question` is a short statement of a finding rather than a question: no
    question mark, no opening question word, a verb of being or finding."""
    text = question.strip()
    return (
        "?" not in text
        and not _QUESTION_START.match(text)
        and len(text.split()) <= REPORT_MAX_WORDS
        and bool(_REPORT.search(text))
    )


def is_elliptical(question: str) -> bool:
    """Whether `question` leans on earlier turns: a leading connective, a pronoun, a noun that
    points back, a question for the next step, or a statement of a finding."""
    lowered = " ".join(terms(question))
    if any(lowered == cue or lowered.startswith(cue + " ") for cue in LEADING_CUES):
        return True
    return (
        any(word in ANAPHORA for word in terms(question))
        or _BACK_REFERENCE.search(question) is not None
        or is_report(question)
    )


def is_self_contained(question: str, topics: frozenset[str] = frozenset()) -> bool:
    """Whether `question` names its own topic: no elliptical cue, enough content words and,
    when the index's `topics` are given (rag.text.title_topics of its guidelines' titles),
    one of them in its words or their full forms. "Vomiting settled by day 3 and the
    isolate is cefazolin-susceptible. If I use cephalexin, what dose?" has words enough but
    names no condition: it is about the pyelonephritis asked about before."""
    if is_elliptical(question) or len(content_terms(question)) < SELF_CONTAINED_MIN_TERMS:
        return False
    return not topics or bool(stems_with_full_forms(question) & topics)


def topic_terms(history: Sequence[Turn], *, exclude: Sequence[str] = ()) -> list[str]:
    """The conversation's topic, as content words in order, minus `exclude` (the follow-up's
    own words): first the anchor question (the latest earlier question that was
    self-contained, else the first one: it names the condition), then a few words of the most
    recent earlier question when that is a different one. Earlier standalone questions are not
    used: they already carry older topic terms, and chaining them would let a topic drift on."""
    if not history:
        return []
    anchor = 0
    for position in range(len(history) - 1, 0, -1):
        if is_self_contained(history[position].question):
            anchor = position
            break
    seen = {stem(term) for term in exclude}
    chosen: list[str] = []

    def take(question: str, limit: int) -> None:
        # The drugs the turn names are kept whatever the limit: a story says last what it has
        # settled on ("... so we're resorting to daily maintenance prednisolone").
        found: list[str] = []
        found_stems: set[str] = set()
        # What the turn says the patient does not have or take ("no psychosis, not on
        # metronidazole") is no topic: carried as a bare word it reads as present.
        denied = {
            stem(word)
            for match in NEGATION.finditer(question)
            for word in re.findall(r"[A-Za-z][A-Za-z-]+", match.group(1))
            if word.lower() not in ("or", "nor")
        }
        for term in content_terms(question):
            term_stem = stem(term)
            if term_stem in denied:
                continue
            if term_stem not in seen and term_stem not in found_stems:
                found.append(term)
                found_stems.add(term_stem)
        drugs = [term for term in found if DRUG_NAME.fullmatch(term.lower())]
        room = max(0, limit - len(drugs))
        # Past the limit, the terms rarest in English say most what the turn is about: "Nearest
        # cath lab is a good 150 min away by road, so our 76-year-old lady with an anterior
        # STEMI is getting TNK here in the ED" keeps "STEMI" and "TNK", not "good" and "road".
        others = sorted((term for term in found if term not in drugs), key=_commonness)
        kept = set(drugs) | set(others[:room])
        for term in found:
            if term in kept:
                seen.add(stem(term))
                chosen.append(term)

    take(history[anchor].question, FIRST_TURN_MAX_TERMS)
    if anchor != len(history) - 1:
        take(history[-1].question, RECENT_TURN_MAX_TERMS)
    return chosen


def _commonness(term: str) -> float:
    """How common `term` is in English (Zipf); a bare number as common as everyday words."""
    return english_frequency(term) if any(c.isalpha() for c in term) else EVERYDAY_ZIPF


def condense_deterministic(
    question: str, history: Sequence[Turn], topics: frozenset[str] = frozenset()
) -> str:
    """The follow-up with the conversation's topic terms appended in brackets.

    "And how long for?" after "What is the first-line treatment for a gout flare?" becomes
    "And how long for? (context: first-line treatment gout flare)". A self-contained question
    comes back unchanged, so a change of subject is not dragged back to the old topic
    (`topics`: see `is_self_contained`).
    """
    question = " ".join(question.split())
    if not history or is_self_contained(question, topics):
        return question
    topic = topic_terms(history, exclude=content_terms(question))
    carried = carried_facts(question, history, known=" ".join(topic))
    topic += [term for term in carried if term not in topic]
    topic = [term for term in topic if not replaced(term, question)]
    if not topic:
        return question
    return f"{question} {CONTEXT_OPENER} {' '.join(topic)})"


# "score is 2", "CURB-65 of 2", "eGFR 25", "CrCl 40": a value the conversation gave.
_GIVEN_VALUE = re.compile(
    r"\b((?:[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\d[A-Za-z0-9-]*)|score|egfr|gfr|crcl|age|weight|"
    r"inr|hba1c|a1c)\s*(?:is|of|=|was|at|:)?\s*(\d+(?:\.\d+)?)\b",
    re.IGNORECASE,
)
# Names with digits in them (CURB-65, CHA2DS2-VASc, NEWS2, ABCD2): the score or scale a
# conversation is about.
_NAMED_SCALE = re.compile(r"\b[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*\d[A-Za-z0-9]*(?:-[A-Za-z]+)?\b")


# An answer names a score or scale by giving it a value or calling it one ("The CURB-65 score
# is the tool", "NEWS2 >= 7", "RCRI 3"); its other names with digits ("Anti-IL4 Receptor
# Alpha: Dupilumab") are no score a follow-up refers to.
_SCORED_NAME = re.compile(
    rf"({_NAMED_SCALE.pattern})(?=\s*(?:score|scale|class|index|total|[:=≥≤<>]|(?:of |is )?\d))",
    re.IGNORECASE,
)


def carried_facts(question: str, history: Sequence[Turn], *, known: str = "") -> list[str]:
    """What a follow-up's "the score", "that dose" or "then" refers to, carried from the
    conversation: the named score or scale the last two turns are about (their most frequent
    name with digits, "CURB-65": any the questions name, those the answers give as a score)
    when the follow-up names none, and the values the last two questions gave ("score 2")
    when the follow-up gives none of its own; then, outside a conversation about a score, the
    latest question's measurements as it wrote them ("BHB 1.1 mmol/L,") that the topic's
    words (`known`) and those values do not already give."""
    carried: list[str] = []
    scored = False  # whether the conversation is about a named score
    if not _NAMED_SCALE.search(question):
        asked = " ".join(f"{turn.question} {turn.standalone_question}" for turn in history[-2:])
        answered = " ".join(turn.answer for turn in history[-2:])
        # Two characters name a heart sound or a nerve root ("S3", "C5"), not a scale.
        names = [
            name
            for name in [*_NAMED_SCALE.findall(asked), *_SCORED_NAME.findall(answered)]
            if len(name) > 2
        ]
        if names:
            counts: dict[str, int] = {}
            for name in names:
                counts[name] = counts.get(name, 0) + 1
            carried.append(max(counts, key=lambda name: (counts[name], -names.index(name))))
            scored = True
    if not _GIVEN_VALUE.search(question):
        for turn in reversed(history[-2:]):
            for name, value in _GIVEN_VALUE.findall(turn.question):
                carried.append(f"{name} {value}")
            if carried and len(carried) > 1:
                break
    if not question_values(question) and not scored:
        # The measurements the story gave, as it wrote them ("BHB 1.1 mmol/L", "pH 7.35"):
        # "once the insulin goes on, what rate?" is read against them, not against the bare
        # numbers of the topic's words. Not in a conversation about a score ("What's his
        # CURB-65?" then "Which IV antibiotics then?"): its own values would pick the score's
        # criteria rows over the row for the score they add up to.
        given = set(question_values(" ".join([known, *carried])))
        said = set(content_terms(known))
        for turn in reversed(history[-2:]):
            measurements = [
                piece.strip().rstrip(".")
                for piece in _CLAUSE_BREAK.split(turn.question)
                if len(piece.split()) <= MEASUREMENT_MAX_WORDS
                and re.search(r"[A-Za-z]", piece)
                and question_values(piece)
            ]
            # What the topic's words already say ("day 3 iv ceftriaxone") is not said twice.
            new = [
                piece
                for piece in measurements
                if not (set(question_values(piece)) <= given and set(content_terms(piece)) <= said)
            ]
            if measurements:
                carried += [f"{piece}," for piece in new]
                break
    return carried


MEASUREMENT_MAX_WORDS = 5  # "glucose 920 mg/dL", "effective osm 348": a measurement is short
_CLAUSE_BREAK = re.compile(r"[,;:]\s+|(?<=[A-Za-z0-9%)])\.\s+|\s+(?:and|with|but)\s+", re.IGNORECASE)


# "And if he was on dabigatran instead?", "What if the score is 5 instead?": the follow-up
# replaces something the conversation named with something of the same kind.
_REPLACING = re.compile(r"\b(?:instead|rather than|switched to|changed to)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def replaced(term: str, question: str) -> bool:
    """Whether a topic `term` of the conversation is one the follow-up `question` replaces:
    a drug when it names another drug, a number ("score 2") when it gives another number."""
    if not _REPLACING.search(question):
        return False
    asked = question.lower()
    if DRUG_NAME.search(term.lower()):
        return any(drug not in term.lower() for drug in DRUG_NAME.findall(asked))
    numbers = _NUMBER.findall(term)
    return bool(numbers) and any(number not in numbers for number in _NUMBER.findall(asked))


def usable_rewrite(reply: str, question: str) -> str | None:
    """The rewritten question from an LLM `reply`, or None when it cannot be trusted: empty,
    too long, a refusal, an answer rather than a question, or sharing no content word with the
    follow-up it rewrites."""
    text = (reply or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    text = _LABEL.sub("", lines[0]).strip().strip("\"'`“”‘’").strip()
    if not text or len(text) > MAX_REWRITE_CHARS or _REFUSAL.search(text):
        return None
    if not text.endswith("?") and not _QUESTION_START.match(text):
        return None
    followup_terms = {stem(term) for term in content_terms(question)}
    if followup_terms and not followup_terms & {stem(term) for term in content_terms(text)}:
        return None
    return text


def condense(
    question: str,
    history: Sequence[Turn],
    *,
    rewrite: ChatFunction | None = None,
    source_titles: Sequence[str] = (),
    topics: frozenset[str] = frozenset(),
) -> str:
    """One standalone question for retrieval from a follow-up and the turns before it.

    With `rewrite` (a chat function from the LLM backend) the model rewrites the follow-up; a
    reply that is unusable, or a call that fails, falls back to `condense_deterministic`. The
    result is shown to the user as the standalone question, so it stays readable.
    `source_titles` (titles of the documents the previous answer cited) go into the prompt only:
    appending them to the deterministic query was measured and lost on dev (README).
    `topics` tell the deterministic method whether a follow-up names its own topic.
    """
    question = " ".join((question or "").split())
    if not history or not question:
        return question
    if rewrite is not None:
        try:
            reply = rewrite(
                build_condense_messages(question, history, source_titles=source_titles)
            )
        except Exception:  # noqa: BLE001 - any backend failure means: use the fallback
            reply = ""
        rewritten = usable_rewrite(reply if isinstance(reply, str) else "", question)
        if rewritten:
            return rewritten
    return condense_deterministic(question, history, topics)


@dataclass(frozen=True)
class Condenser:
    """The condensing stage as the engine holds it: `rewrite` is the LLM's chat function (None
    for the deterministic method alone), `source_titles(history)` the titles of the
    documents the latest answer cited, shown to the LLM, and `topics()` the stems of the
    index's guideline titles (see `is_self_contained`)."""

    rewrite: ChatFunction | None = None
    source_titles: Callable[[Sequence[Turn]], Sequence[str]] = lambda history: ()
    topics: Callable[[], frozenset[str]] = frozenset

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        """One standalone question; `question` unchanged when there is no history."""
        if not history:
            return question
        return condense(
            question,
            history,
            rewrite=self.rewrite,
            source_titles=self.source_titles(history),
            topics=self.topics(),
        )


# Moved out of this module; the old name keeps working.
rewrite_messages = build_condense_messages

__all__ = [
    "CITED_SOURCE_BOOST",
    "CITED_SOURCE_DEPTH",
    "ChatFunction",
    "Condenser",
    "SessionInfo",
    "SessionStore",
    "check_session_name",
    "cited_source_doc_ids",
    "condense",
    "condense_deterministic",
    "default_data_dir",
    "lift_cited_source",
    "rewrite_messages",
    "turn_to_json",
]
