"""Abstention: does the index hold evidence for this question at all?

A generator asked about something the index does not cover still finds *some* passages (the
nearest ones) and, being obliging, answers from them. Before generating, `measure_coverage`
looks at two signals that are cheap and need no LLM:

- `nearest_cosine`: the embedder's cosine between the question and the nearest passage in the
  (filtered) index. Off-topic questions have no close passage.
- `word_coverage`: the share of the question's topical words (content words minus generic
  ones like "treatment") found in the top retrieved passages (Snowball stems, so "admitted"
  meets "admission" and "transfused" "transfusion"), each word weighted by
  its rarity in the index (an idf from the lexical index). A question about "Helicobacter
  pylori" over an index that never names it misses its two rarest words, whatever else it
  shares with the passages.

A third signal is a veto: `unknown_words`, topical words that no passage of the (filtered)
index contains and that the embedder's own vocabulary does not hold as one token either
("resmetirom", "zuranolone", "Helicobacter"): a named drug, organism or condition that the
index never mentions. On the dev split of evals/abstention.jsonl 107 of the 122 questions
with such a word are ones the corpus cannot answer (the rest use an abbreviation or a term
the sections word otherwise: "MTX", "RVR", "obs"); the ordinary words an answerable
question may use without the passages using them ("drip", "straight") are single tokens.

Words are compared as the lexical index tokenizes them, in American spelling ("bacteraemia"
as "bacteremia", "noradrenaline" as "norepinephrine"), so a British clinician's spelling
neither vetoes the answer nor counts as missing.

Words of everyday English that the index never uses ("today", "going", "something", "worth":
a Zipf frequency of 5 or more in `wordfreq`) are left out of the coverage: they say how a
clinician talks ("NSTEMI, stented, going home today with a GRACE of 100. What 6-month
mortality should I quote him?"), not what the question is about, and as words no passage holds
they weighed the most. A rarer word the index never uses ("cellulitis", "coffee", "Wilson")
still counts in full.

A fourth is a check of the answer's type for dose questions: a question asking for a dose
("What dose of roflumilast ...?") needs a retrieved passage that names its key term (the
rarest topical word the top passages contain) together with an amount in a dose unit ("500
mg", "0.25 mg/kg", "30 mL/kg"). A guideline that names a drug without ever dosing it is the
near miss the overlap signals cannot see: every topic word is there, only the fact is not.

`Coverage.covered(min_score)` says whether to answer from their sum; the threshold lives in
`rag.config.AnswerSettings`, calibrated on the dev split of evals/abstention.jsonl by
evals/abstention.py.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from rag.generate.extractive import GENERIC_WORDS
from rag.index.lexical import tokenize
from rag.shorthand import alternatives, drug_class, phrase_alternatives, spelled_out
from rag.text import WORD, asking_sentences, content_stems, is_everyday_english, stems
from rag.types import Hit

if TYPE_CHECKING:
    import numpy as np

# Words that say what kind of answer is wanted, not what it is about. Beyond the extractive
# scorer's list: "first-line" / "second-line" split into "first" + "line", and a passage that
# names the first-line drug rarely says "line" (the answer scorer keeps "line", where it helps
# pick the sentence that does say "first-line"). "context" labels the topic terms a condensed
# follow-up carries ("And how long? (context: gout flare)"): rag's own word, not the user's.
COVERAGE_GENERIC_WORDS = GENERIC_WORDS | set(
    stems(["line", "second", "third", "context"])
    # What kind of answer is wanted, or how the question is put: no passage need write them,
    # and an answer is never said not to mention them ("do not mention 'caveat'").
    + stems(["caveat", "caveats", "harms"])
    + stems(["qualify", "qualifies", "revisit", "revisiting", "rigidly", "actually", "difference"])
    + stems(["worthwhile"])
)

# A question asking for a dose, and an amount in a dose unit: "666 mg", "0.25 mg/kg",
# "30 mL/kg", "10 units", "1,998 mg/day"; not a concentration ("200 mg/dL", "5 mmol/L").
# "the first dose" is when a course starts, not an amount asked for.
NOT_A_DOSE_EVENT = (
    r"(?<!first )(?<!last )(?<!next )(?<!each )(?<!every )(?<!missed )(?<!previous )"
)
_WANTS_DOSE = re.compile(
    NOT_A_DOSE_EVENT + r"\b(?:dose|doses|dosed|dosing|dosage)\b", re.IGNORECASE
)
DOSE_AMOUNT = re.compile(
    r"\d(?:[\d.,]*\d)?\s*(?:mg|g|mcg|µg|μg|IU|units?|mmol|mEq|mL|ml)"
    r"(?:/(?:kg|day|d|h|hr|hour|min|dose|m2))*(?![/\w])",
    re.IGNORECASE,
)

# A word found in this many passages or more counts as common; bounds the lexical look-ups.
DOCUMENT_FREQUENCY_CAP = 200
TOP_PASSAGES = 3
# A drug the top passages name only by its class ("NOAC" for apixaban) counts this much of
# the drug itself.
CLASS_WEIGHT = 0.5


class CoverageIndex(Protocol):
    """What coverage needs from an index (rag.index.store.Index provides it)."""

    @property
    def embedder(self) -> _QueryEmbedder: ...

    @property
    def chunk_count(self) -> int: ...

    def search_dense(
        self, query_vector: np.ndarray, k: int, rows: np.ndarray | None = None
    ) -> list[tuple[int, float]]: ...

    def search_lexical(
        self, query: str, k: int, rows: np.ndarray | None = None
    ) -> list[tuple[int, float]]: ...

    def has_word_family(self, word: str) -> bool: ...


class _QueryEmbedder(Protocol):
    def embed_query(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Coverage:
    """How well the index covers a question.

    nearest_cosine: cosine (-1..1) between the question and the nearest passage.
    word_coverage: 0..1, idf-weighted share of the question's topical words present in the top
    retrieved passages (1.0 when the question has no topical word to check).
    missing_words: the topical words (lower-cased) absent from those passages, rarest first.
    unknown_words: the topical words as written that no passage of the index contains and the
    embedder cannot spell as one token: terms the index never mentions.
    dose_missing: the question asks for a dose and no retrieved passage gives one for its key
    term.
    """

    nearest_cosine: float
    word_coverage: float
    missing_words: tuple[str, ...] = ()
    unknown_words: tuple[str, ...] = ()
    dose_missing: bool = False
    # word_coverage without the unknown words' weight: how well the rest of the question is
    # covered ("Hospitalised CAP ... Pharmacy suggests IV tigecycline - does ATS/IDSA list
    # it?" is about CAP, which the index covers, and asks about a drug it never mentions).
    known_word_coverage: float = 0.0

    @property
    def known_score(self) -> float:
        """The score without the terms the index never mentions."""
        return self.known_word_coverage + self.nearest_cosine

    @property
    def score(self) -> float:
        """The one number compared with the threshold: word coverage plus nearest cosine.

        Summed, so a question whose only missing words are ordinary ones ("given", "define")
        is still answered when a passage is semantically close, and a close-sounding passage
        does not rescue a question whose rare, defining words appear nowhere."""
        return self.word_coverage + self.nearest_cosine

    def covered(self, min_score: float) -> bool:
        """True when `score` reaches `min_score` and the question names no term the index
        never mentions: the evidence is worth answering from."""
        return not self.unknown_words and not self.dose_missing and self.score >= min_score

    def to_json(self) -> dict[str, object]:
        return {
            "nearest_cosine": round(self.nearest_cosine, 4),
            "word_coverage": round(self.word_coverage, 4),
            "score": round(self.score, 4),
            "missing_words": list(self.missing_words),
            "unknown_words": list(self.unknown_words),
            "dose_missing": self.dose_missing,
        }


# A patient's value as a vignette writes it: a number, or an age with its sex ("82F", "62m",
# "46yo"). No passage states it; as a topical word it only dilutes the coverage of the rest.
_PATIENT_VALUE = re.compile(r"\d+(?:[mf]|yo|y)?", re.IGNORECASE)


def topical_words(question: str) -> dict[str, str]:
    """The question's topical words: {stem: the word as written}, in question order.

    Content words (no stopwords, no patient values) minus the generic ones that say what kind
    of answer is wanted ("treatment", "dose", "recommended"); when nothing else is left, all
    content words."""
    by_stem: dict[str, str] = {}
    every: dict[str, str] = {}
    for surface in WORD.findall(question):
        if _PATIENT_VALUE.fullmatch(surface):
            continue
        for stem in content_stems(surface):
            every.setdefault(stem, surface)
            if stem not in COVERAGE_GENERIC_WORDS:
                by_stem.setdefault(stem, surface)
    return by_stem or every


def measure_coverage(
    index: CoverageIndex,
    question: str,
    hits: Sequence[Hit],
    *,
    rows: np.ndarray | None = None,
    query_vector: np.ndarray | None = None,
    top_passages: int = TOP_PASSAGES,
) -> Coverage:
    """The coverage of `question` by the index and by its top `top_passages` `hits`.

    `rows` restricts the nearest-passage search as retrieval was restricted (source and year
    filters; `Index.allowed_rows`); `query_vector` saves embedding the question again. An index
    or filter with no passage gives Coverage(-1.0, 0.0): nothing covers anything.
    """
    if rows is not None and len(rows) == 0:
        return Coverage(-1.0, 0.0, tuple(w.lower() for w in topical_words(question).values()))
    if query_vector is None:
        query_vector = index.embedder.embed_query(spelled_out(question))
    nearest = index.search_dense(query_vector, 1, rows)
    nearest_cosine = float(nearest[0][1]) if nearest else -1.0

    words = topical_words(question)
    if not words:
        return Coverage(nearest_cosine, 1.0)
    # A condensed follow-up's context ("(context: acute pyelo ...)") comes from turns already
    # answered: a term of it the index never mentions vetoed nothing then and does not now.
    asking = asking_sentences(question)
    asked = set(topical_words(asking))
    passage_stems: set[str] = set()
    for hit in hits[:top_passages]:
        passage_stems.update(_stems(f"{hit.title} {hit.section} {hit.text}"))
    passage_count = max(int(index.chunk_count), 1)
    limit = min(DOCUMENT_FREQUENCY_CAP, passage_count)
    weights: dict[str, float] = {}
    found: set[str] = set()
    classed: set[str] = set()
    unknown: list[str] = []
    tokens_of: dict[str, list[str]] = {}
    in_phrases = phrase_alternatives(question)  # "hep B": hepatitis B
    for stem, surface in words.items():
        tokens = _stems(surface)
        if not tokens:
            continue  # a stopword to the lexical index: its frequency cannot be looked up
        full = alternatives(surface) or in_phrases.get(surface.lower(), "")
        tokens_of[stem] = tokens + _stems(full)  # "Entresto": sacubitril
        frequency = len(index.search_lexical(surface, limit, rows))
        classes = drug_class(surface)
        if frequency == 0 and not classes and _is_everyday(index, surface):
            continue
        weights[stem] = math.log(1.0 + passage_count / (1.0 + frequency))
        if _stated(surface, passage_stems, full):
            found.add(stem)
        elif any(_stated(form, passage_stems) for form in classes):
            # The passages speak of the drug's class ("NOAC" for apixaban): half covered.
            classed.add(stem)
        elif (
            frequency == 0
            and not full
            and not classes
            and stem in asked
            and not index.has_word_family(surface)
            and not known_behind_affix(index, surface)
            and is_specific_term(index.embedder, surface)
        ):
            unknown.append(surface)
    dose_missing = False
    asks_dose = _WANTS_DOSE.search(asking) is not None
    if found and asks_dose:
        # The rarest word found; of equally rare ones the first asked (a set's order varies
        # from run to run, and "Entresto" and "Jardiance" are equally rare).
        key = max((stem for stem in weights if stem in found), key=weights.__getitem__)
        dose_missing = not any(_gives_dose(hit, tokens_of[key]) for hit in hits)
    total = sum(weights.values())
    if total <= 0.0:
        return Coverage(nearest_cosine, 1.0, unknown_words=tuple(unknown))
    missing = sorted((stem for stem in weights if stem not in found), key=lambda s: -weights[s])
    covered = sum(weights[stem] for stem in found) + CLASS_WEIGHT * sum(
        weights[stem] for stem in classed
    )
    # A dose of a drug the index never mentions is the one thing no passage can give: the rest
    # of the question being covered ("starting dose ... for MASH") does not help.
    known_total = total - (
        0.0
        if asks_dose
        else sum(weights[stem] for stem, surface in words.items() if surface in unknown and stem in weights)
    )
    return Coverage(
        nearest_cosine,
        covered / total,
        tuple(words[stem].lower() for stem in missing),
        tuple(unknown),
        dose_missing,
        covered / known_total if known_total > 0.0 else 1.0,
    )


def absent_words(question: str, passages: Sequence[Hit]) -> list[str]:
    """The question's topical words (lower-cased, as written) that none of `passages` states
    in any form of the word: what an answer citing them does not address. A passage states
    what its guideline's title names ("gout" for a passage of "Management of Gout Flares"),
    and a drug when it names the drug's class."""
    stems = {stem for hit in passages for stem in _stems(f"{hit.title} {hit.section} {hit.text}")}
    in_phrases = phrase_alternatives(question)
    return [
        surface.lower()
        for surface in topical_words(question).values()
        if _stems(surface)
        and not _stated(surface, stems, alternatives(surface) or in_phrases.get(surface.lower()))
        # A drug is addressed by its class: "oral bisphosphonate therapy" for alendronate.
        and not any(_stated(form, stems) for form in drug_class(surface))
    ]


# Words many full forms share: "acute", "disease", "rate" tell no abbreviation from another.
_FULL_FORM_GENERIC = frozenset(
    stems(
        ["acute", "chronic", "disease", "disorder", "syndrome", "injury", "failure", "infection"]
        + ["pressure", "rate", "test", "level", "therapy", "treatment", "history", "patient"]
    )
)


def _stated(surface: str, passage_stems: set[str], full_form: str | None = None) -> bool:
    """Whether passages with `passage_stems` state the word `surface` in any of its forms, or
    its full form when it is shorthand (`full_form`, by default `alternatives`; "MTX":
    "methotrexate"; "AIS": at least half of "acute ischemic stroke")."""
    def states(token: str) -> bool:
        return any(_same_family(token, other) for other in passage_stems)

    if any(states(token) for token in _stems(surface)):
        return True
    # A full form may be written more than one way ("BD": "twice daily; BID").
    for form in (alternatives(surface) if full_form is None else full_form).split(";"):
        full = _stems(form)
        # The words that tell the full form from others ("obstructive pulmonary" of "chronic
        # obstructive pulmonary disease"): both of two, at least half of more.
        telling = [token for token in full if token not in _FULL_FORM_GENERIC] or full
        stated = sum(map(states, telling))
        if telling and (
            stated == len(telling) if len(telling) <= 2 else stated * 2 >= len(telling)
        ):
            return True
    return False


def _gives_dose(hit: Hit, key_tokens: Sequence[str]) -> bool:
    """Whether `hit` names the key term (any of its stems) and states an amount in a dose
    unit somewhere in the same passage."""
    text = f"{hit.title} {hit.section} {hit.text}"
    stems = set(_stems(text))
    names_it = any(_same_family(key, stem) for key in key_tokens for stem in stems)
    return names_it and DOSE_AMOUNT.search(text) is not None


def _is_everyday(index: CoverageIndex, word: str) -> bool:
    """Whether `word` is everyday English the index never uses in any form and that is no
    clinical shorthand: how the question is said, not what it is about."""
    return is_everyday_english(word) and not alternatives(word) and not index.has_word_family(word)


# A prefix or suffix that makes a new word of one the index may hold ("antiproteinuric":
# proteinuria; "afebrile": febrile; "unsteady": steady; "coilable": coil).
_PREFIX = re.compile(r"(?:anti|non|pre|post|un|a)-?(?=[a-z]{5,}$)", re.IGNORECASE)
_SUFFIX = re.compile(r"^(.{4,}?)(?:able|ible)$", re.IGNORECASE)  # "coilable": coil


def known_behind_affix(index: CoverageIndex, word: str) -> bool:
    """Whether `word` is a prefix or an "-able" on a word whose family the index holds: a
    form of a word the index knows ("afebrile" is febrile's, "coilable" coil's), no term the
    index has never heard of."""
    prefix = _PREFIX.match(word)
    if prefix and index.has_word_family(word[prefix.end() :]):
        return True
    suffix = _SUFFIX.match(word)
    return bool(suffix) and index.has_word_family(suffix.group(1))


def is_specific_term(embedder: object, word: str) -> bool:
    """Whether `word` is a term the embedder's vocabulary does not hold whole: more than one
    token. Words with digits (doses, scores, ages) never count: "1500" may split into pieces
    and still be ordinary. False when the embedder cannot count tokens."""
    count_tokens = getattr(embedder, "count_tokens", None)
    if count_tokens is None or any(character.isdigit() for character in word):
        return False
    return int(count_tokens(word.lower())) > 1


def _stems(text: str) -> list[str]:
    """The lexical index's stems of `text` (American spelling), t/ss families folded: the
    one form in which question words and passage words are compared."""
    return [_family(token) for token in tokenize(text)]


def _family(stem: str) -> str:
    """A Snowball stem with the Latin t/ss alternation folded, so "admitted" (admit) and
    "admission" (admiss) meet; both sides go through it, so only consistency matters."""
    return stem[:-2] + "t" if len(stem) > 5 and stem.endswith("ss") else stem


def _same_family(a: str, b: str) -> bool:
    """Equal stems, or stems sharing a long prefix: at least 5 letters and 80% of the shorter
    ("defin"/"definit", "percent"/"percentag"), but not "hypertens"/"hyperthyroid"."""
    if a == b:
        return True
    shared = len(os.path.commonprefix([a, b]))
    return shared >= 5 and shared >= 0.8 * min(len(a), len(b))


# ---------------------------------------------------------------------------------------------
# The decision: answer, or abstain and say why.

# Why an answer abstains, in the order the engine finds out. Coverage (before generating):
# no passage at all, a term the index never mentions, a dose asked for that no passage gives,
# too little overlap; then the LLM's own judgement that the passages do not state the answer;
# after generating: the model refused, or nothing it wrote kept a supported citation.
REASONS = (
    "no_passages",
    "unknown_words",
    "dose_missing",
    "low_coverage",
    "not_stated",
    "refused",
    "unsupported",
)


@dataclass(frozen=True)
class Abstention:
    """Whether to abstain, and why: `reason` is one of REASONS, "" to answer.
    `unknown_words` are the terms the index never mentions (reason "unknown_words")."""

    reason: str = ""
    unknown_words: tuple[str, ...] = ()

    @property
    def abstains(self) -> bool:
        return bool(self.reason)


ANSWER = Abstention()


def decide_before_generating(
    coverage: Coverage | None,
    *,
    min_score: float,
    unknown_term_min_score: float | None = None,
    answerable: Callable[[], float | None] | None = None,
    min_probability: float = 0.0,
) -> Abstention:
    """Abstain before generating when `coverage` (None: nothing was retrieved) falls short of
    `min_score`, or names a term the index never mentions and falls short of
    `unknown_term_min_score` (default: `min_score`) both with and without that term's weight
    (`Coverage.known_score`), or else when `answerable()` (the LLM's
    probability that the top passages state the answer; asked only once coverage passes, and
    None when it cannot judge) is below `min_probability`. A question answered here is graded
    afterwards (rag.generate.evidence): a missing dose or term makes it partial, not silent."""
    if coverage is None:
        return Abstention("no_passages")
    needed = max(min_score, unknown_term_min_score or 0.0) if coverage.unknown_words else min_score
    # A question the index covers but for a term it never mentions ("Pharmacy suggests IV
    # tigecycline - does ATS/IDSA list it?" about CAP) is answered, graded partial and naming
    # the term, when the rest of it is covered as well as an answered question must be.
    if coverage.score < needed and not (coverage.unknown_words and coverage.known_score >= needed):
        if coverage.unknown_words:
            return Abstention("unknown_words", coverage.unknown_words)
        return Abstention("dose_missing" if coverage.dose_missing else "low_coverage")
    probability = answerable() if answerable is not None else None
    if probability is not None and probability < min_probability:
        return Abstention("not_stated")
    return ANSWER


def decide_after_generating(*, refused: bool, cited: bool) -> Abstention:
    """Abstain when the draft was a refusal, or when no citation survived the support check
    (`cited` False) and the answer was meant to cite."""
    if refused:
        return Abstention("refused")
    if not cited:
        return Abstention("unsupported")
    return ANSWER
