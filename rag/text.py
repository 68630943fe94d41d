"""Words, sentences and Markdown: the text helpers every stage shares, each written once.

Words. `words` are the lower-cased words of a text ("don't" -> "don"); `content_words` drops
the `STOPWORDS` and one-letter words (numbers stay: doses and thresholds matter);
`content_stems` is their set after `stem`, Snowball via PyStemmer, so "contraindicated" meets
"contraindications". Overlap between a question, a claim and a passage is always measured on
`content_stems`. `terms` keeps clinical names whole ("cha2ds2-vasc", "2.5", "mg/kg"), for text
that is carried into another query rather than compared. (The BM25 index has its own tokens,
fixed by the stored indexes: rag.index.lexical.)

Sentences. `split_prose_sentences` is the one sentence splitter (one list of
`ABBREVIATIONS`); `split_sentences` applies it to Markdown, where each list item and table row
is a unit of its own.

Markdown. The line patterns (`HEADING`, `LIST_ITEM`, `TABLE_ROW`, `TABLE_RULE`, `FENCE`) and
`plain`, which strips emphasis and numeric citation markers.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

import Stemmer
from wordfreq import zipf_frequency

# ---------------------------------------------------------------------------------------------
# Words


def word_list(text: str) -> frozenset[str]:
    """The whitespace-separated words of a word list written as text."""
    return frozenset(text.split())


STOPWORDS = word_list(
    """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either few for from further had has have having he her here hers him his how however i
    if in into is it its itself just may me might more most much must my no nor not of off
    on once only or other our ours out over own per same she should so some such than that
    the their them then there these they this those through to too under until up upon us
    very via was we were what when where which while who whom whose why will with within
    without would you your yours s t don isn aren wasn weren doesn didn shall whether among
    amongst etc eg ie vs
    """
)

WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)?")  # a word as `words` reads it
_TERM = re.compile(r"[A-Za-z0-9]+(?:[-+*/.'][A-Za-z0-9]+)*")
_STEMMERS = threading.local()  # a PyStemmer stemmer must not be used by two threads at once


_NON_PREFIX = re.compile(r"\bnon-(?=[a-z])")


def without_emphasis(text: str) -> str:
    """`text` without Markdown's emphasis asterisks, which may sit inside a word: a score's
    table bolds the letter its name takes ("**C**onfusion", "**D**iabetes" in CURB-65 and
    ABCD2), and read as written the word would be "onfusion"."""
    return text.replace("*", "")


def words(text: str) -> list[str]:
    """The lower-cased words of `text` (runs of ASCII letters and digits, emphasis aside), in
    order; an apostrophe ending is dropped ("patient's" -> "patient", "don't" -> "don");
    "non-" joins the word it negates ("non-severe" -> "nonsevere", as guidelines also write
    it), so a question about non-severe disease does not match the severe branch on
    "severe"."""
    text = _NON_PREFIX.sub("non", without_emphasis(text).lower())
    return [match.group(0).replace("’", "'").split("'")[0] for match in WORD.finditer(text)]


def content_words(text: str) -> list[str]:
    """The `words` of `text` that say what it is about: no stopwords, no one-letter words
    (numbers are kept), unstemmed, in order, repeats kept."""
    return [
        word
        for word in words(text)
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit())
    ]


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_STEMMERS, "english", None)
    if stemmer is None:
        stemmer = _STEMMERS.english = Stemmer.Stemmer("english")
    return stemmer


# Medical nouns and their adjectives Snowball leaves apart: "fibrinolytic" (fibrinolyt) meets
# "fibrinolysis" (fibrinolysi), "thrombotic" "thrombosis", "ischemic" "ischemia", "septic"
# "sepsis". A guideline heads "Contraindications to Fibrinolytic Therapy" where a clinician
# asks about "fibrinolysis". (stem ending of the adjective, the noun's): the letters before
# the ending keep "robotic", "systemic" and "optic" as they are.
_MEDICAL_ADJECTIVE = re.compile(r"(?:(?<=\w{3})lyt|(?<=\w{4})ot|(?<=\w[xclrhn])em|(?<=\w{2})ptic)$")
_NOUN_ENDING = {"lyt": "lysi", "ot": "osi", "em": "emia", "ptic": "psi"}


def _noun_form(word: str, stemmed: str) -> str:
    """`stemmed` in its noun's form when `word` is an adjective in -ic of a medical noun
    ("thrombotic", "thrombolytics" -> "thrombosi", "thrombolysi"); otherwise unchanged."""
    if not word.endswith(("ic", "ics")):
        return stemmed
    return _MEDICAL_ADJECTIVE.sub(lambda match: _NOUN_ENDING[match.group(0)], stemmed)


def stem(word: str) -> str:
    """The Snowball (English) stem of a lower-cased word: "flares" -> "flare"; an adjective
    of a medical noun takes the noun's stem ("fibrinolytic" -> "fibrinolysi")."""
    return _noun_form(word, _stemmer().stemWord(word))


def stems(tokens: Iterable[str]) -> list[str]:
    """`stem` of each word, in order."""
    words = list(tokens)
    return [
        _noun_form(word, stemmed)
        for word, stemmed in zip(words, _stemmer().stemWords(words), strict=True)
    ]


def content_stems(text: str) -> frozenset[str]:
    """The stems of `text`'s `content_words`: what word overlap compares."""
    return frozenset(stems(content_words(text)))


# Words of guideline titles that say what kind of document it is, not what it is about.
TITLE_WORDS = frozenset(
    stems(
        word_list(
            """
            acute age american assessment association campaign care categorize chronic clinical
            cohorts college committee consensus decision definition definitions derivation detection
            diagnosis early edition emergency evaluation global guidance guideline guidelines
            healthcare increasing international making management method model models official
            opinion patients pharmacological practice prevention probability prognostication report
            risk scientific simple society standards statement strategy surviving therapeutic three
            treatment update utility women adults use score high severe severity third across
            therapy therapies complications screening illness warning national standardising deep
            upper spontaneous undergoing america blood heart acquired community tract attack
            """
        )
    )
)


def title_topics(title: str) -> frozenset[str]:
    """The stems of what a guideline's `title` is about: "Management of Acute Upper
    Gastrointestinal Bleeding in over 16s" -> {"gastrointestin", "bleed"}; no numbers, no
    words of TITLE_WORDS."""
    return frozenset(
        word
        for word in content_stems(title) - TITLE_WORDS
        if len(word) > 2 and not any(character.isdigit() for character in word)
    )


def terms(text: str) -> list[str]:
    """The lower-cased words of `text`, keeping clinical names and numbers whole
    ("CHA2DS2-VASc" -> "cha2ds2-vasc", "2.5", "mg/kg")."""
    return [match.group(0).lower() for match in _TERM.finditer(text)]


# ---------------------------------------------------------------------------------------------
# Sentences

# Words that end with a period without ending a sentence. Besides these, a single letter
# (an initial: "J. Smith") and letters joined by periods ("e.g.", "i.v.", "b.i.d.", "U.S.")
# never end one.
ABBREVIATIONS = word_list(
    """
    al approx ca cf co dept dr ed eds eq etc fig figs inc jr ltd mr mrs ms mt no nos pp prof
    ref refs resp sp spp sr st univ vol vs
    """
)
_CLOSERS = "\"'”’)\\]"  # closing quotes and brackets after the terminal mark
_SENTENCE_END = re.compile(
    rf"(?<=[.!?])[{_CLOSERS}]*"
    r"(?:[ \t]*\[[^\[\]\n]{1,40}\])*"  # citation markers written after the period stay
    r"\s+(?=[\"'“‘(\[*_]*[A-Z0-9])"  # the next sentence opens with a capital or a digit
)
# The word before the period, starting after a space or an opening mark ("B/C." ends no word).
_LAST_WORD = re.compile(rf"(?<![^\s(\[\"“‘*_])([A-Za-z][A-Za-z.]*)\.[{_CLOSERS}]*$")
_DOTTED = re.compile(r"[a-z](?:\.[a-z])+")


# A step number after a colon or an arrow ("Stepwise approach: → 1. Head of bed ..."): the
# period numbers a step, it ends no sentence.
_STEP_NUMBER = re.compile(r"(?::|→|->|;)\s*\d{1,2}\.$")


def _ends_in_abbreviation(head: str) -> bool:
    """Whether `head` ends with a period that closes an abbreviation or numbers a step, not a
    sentence."""
    if _STEP_NUMBER.search(head.rstrip()):
        return True
    match = _LAST_WORD.search(head.rstrip())
    if not match:
        return False
    word = match.group(1).lower().rstrip(".")
    return word in ABBREVIATIONS or len(word) == 1 or _DOTTED.fullmatch(word) is not None


def split_prose_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph of prose, in order, whitespace-trimmed (line breaks read as
    spaces).

    Splits after ., ! or ? (and any closing quote, bracket or emphasis) followed by space and
    a capital or a digit, except after an `ABBREVIATIONS` word, an initial or a dotted
    abbreviation ("e.g.", "i.v."); a decimal ("2.5 mg") has no space to split at. Markers
    written after the period ("... flares. [2] Next") stay with the sentence they follow.
    """
    text = " ".join(paragraph.split())
    if not text:
        return []
    sentences: list[str] = []
    start = 0
    for boundary in _SENTENCE_END.finditer(text):
        if _ends_in_abbreviation(text[start : boundary.start()]):
            continue
        sentence = text[start : boundary.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = boundary.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def split_sentences(text: str) -> list[str]:
    """Sentences of Markdown `text`, in order: prose split into sentences, each list item and
    table row one unit, headings and table rules skipped."""
    sentences: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            sentences.extend(split_prose_sentences(" ".join(paragraph)))
            paragraph.clear()

    for line in text.splitlines():
        if not line.strip() or HEADING.match(line) or TABLE_RULE.match(line):
            flush()
        elif LIST_ITEM.match(line) or TABLE_ROW.match(line):
            flush()
            sentences.append(line.strip())
        else:
            paragraph.append(line.strip())
    flush()
    return sentences


# ---------------------------------------------------------------------------------------------
# Markdown

HEADING = re.compile(r"^\s*#{1,6}\s+(.+?)\s*#*\s*$")  # group 1: the heading's text
LIST_ITEM = re.compile(r"^(\s*)(?:[-*+•]|(\d{1,3})[.)])\s+")  # groups: indent, number
TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")  # group 1: the cells
TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
FENCE = re.compile(r"^\s*(?:```|~~~)")

_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1(?![\w*])")
_SOURCE_MARKER = re.compile(r"\s*\[\s*\d+(?:\s*[,–-]\s*\d+)*\s*\]")


def is_heading(line: str) -> bool:
    """Whether `line` is a Markdown heading ("### Dosing")."""
    return HEADING.match(line) is not None


def plain(text: str) -> str:
    """`text` on one line without Markdown emphasis and without numeric citation markers."""
    text = re.sub(r"\*\*(\S(?:.*?\S)?)\*\*", r"\1", text)  # bold, inside a word too ("**A**ge")
    previous = None
    while previous != text:  # nested emphasis ("**_x_**") unwraps one layer per pass
        previous, text = text, _EMPHASIS.sub(r"\2", text)
    return " ".join(_SOURCE_MARKER.sub("", text).split())


def drug_stem(drug: str) -> str:
    """What a passage naming `drug` writes whatever its ending: "ceftriax" for ceftriaxone,
    "mepolizum" for mepolizumab."""
    return drug[: max(5, len(drug) - 2)]


# Drug names by their international stems: enough to notice that a question names a drug the
# cited passages never mention. Not a formulary: a drug outside these shapes is still caught
# by the gate's unknown-word check when the index never names it.
DRUG_NAME = re.compile(
    r"\b(?:[a-z]{3,}(?:xaban|gatran|parin|farin|grel|grelor|mab|nib|pril|sartan|olol|ilol|alol|dipine|"
    r"statin|cillin|mycin|micin|floxacin|oxacin|azole|cycline|gliflozin|glutide|gliptin|"
    r"formin|semide|thiazide|prazole|idine|triptan|vir|setron|lukast|terol|tropium|sonide|"
    r"olone|asone|afil|azepam|zolam|oxetine|pramine|triptyline|faxine|apine|idone|barbital|"
    r"penem|nidazole|dronate|coxib|profen|fenac|caine|curium|uronium|orphine|adone|"
    r"dopamine|butamine|ephrine|pressin|actone|arone|teplase|oxin|osin|oquine|phylline|racetam|"
    r"patide|aratide|erenone|oxifene|purinol|uxostat|ecid|pentin|trexone|trexate|prosate|"
    r"parinux|azodone)|cef[a-z]{4,}|cephalosporins?|[a-z]{2}sartan"
    # Common drugs of no such shape.
    r"|heparin|colchicine|disulfiram|ezetimibe|mannitol|rifampin|rifampicin"
    r"|hydroxocobalamin|diltiazem|verapamil|bumetanide|glipizide|gliclazide|glimepiride"
    r"|glargine|detemir|degludec|etanercept|abatacept|zoledronic|salbutamol|prednisone"
    r"|sertraline|escitalopram|citalopram|bupropion|naproxen|indomethacin|phenytoin"
    r"|valproate|diazepam|morphine|oxycodone|hydromorphone|fentanyl|haloperidol"
    r"|acetaminophen|paracetamol|cephalexin|flecainide|propafenone|dofetilide|leflunomide"
    r"|sulfasalazine|pioglitazone|naloxone|nitrofurantoin|nitroglycerin|pegloticase"
    r"|inclisiran|adenosine|atropine|lithium)\b"
)


# What a question says the patient does not have or is not: "no diabetes", "without
# cirrhosis", "non-diabetic", "not on dialysis", "not pregnant", "don't have diabetes or
# obesity", "rather than enoxaparin". Group 1: the word or words ruled out. "Not yet
# secured" is a state ("unsecured"), not an absence.
NEGATION = re.compile(
    r"(?:\b(?:no|not(?! yet)|never|without|rather than|instead of|is not|isn['’]t|"
    r"(?:do|does|did)(?: not|n['’]t) have)[\s-]+|\bnon-?)"
    r"(?:(?:on|currently|been|being|any|known|longer|receiving|requiring|planning)\s+)*"
    r"([A-Za-z][A-Za-z-]{2,}(?:,?\s+(?:or|nor)\s+[A-Za-z][A-Za-z-]{2,})*)",
    re.IGNORECASE,
)


def negated_stems(text: str) -> frozenset[str]:
    """The stems of what `text` says the patient does not have ("no diabetes")."""
    return frozenset(stem for match in NEGATION.finditer(text) for stem in content_stems(match.group(1)))


_TREE_GLYPHS = re.compile(r"^[\s│├└─|+>→\-–]*")  # "+-->": an ASCII branch


def tree_step(line: str) -> tuple[int, str]:
    """A decision-tree line's depth (the columns its indent and the connector glyphs the source
    drew take: "      --> VKA (warfarin)?" is 10 deep) and its text; (0, "") for a blank line."""
    stripped = line.rstrip()
    text = _TREE_GLYPHS.sub("", stripped).strip()
    return (len(stripped) - len(text) if text else 0), text


# A condensed follow-up is the follow-up and then its conversation's topic: "And how long for?
# (context: first-line treatment gout flare)" (rag.converse writes it).
CONTEXT_OPENER = "(context:"


def asked_part(question: str) -> str:
    """A condensed follow-up's own words, without the "(context: ...)" the condenser added."""
    return question.partition(CONTEXT_OPENER)[0]


def asking_sentences(question: str) -> str:
    """The sentences of the `question`'s own words (`asked_part`) that ask (end with "?"), when
    others describe: a vignette's "30 min of slurred speech, no weakness, age 58. Admit or
    clinic?" asks "Admit or clinic?"; a term only its description uses ("slurred") is the
    patient's, not what is asked. With no "?", a sentence asking indirectly ("... asks whether
    ...") asks. All of its own words when no sentence asks or every one does."""
    text = asked_part(question)
    sentences = split_sentences(text)
    asking = [sentence for sentence in sentences if sentence.rstrip().endswith("?")] or [
        # A vignette may ask without a question mark: "Neurosurg asks whether IV abx alone can
        # salvage the hardware."
        sentence for sentence in sentences if _INDIRECT_QUESTION.search(sentence)
    ]
    return " ".join(asking) if asking and len(asking) < len(sentences) else text


# A story told before a dash, then what is asked: "Switching a DVT patient from enoxaparin to
# warfarin — how long must they overlap?"
_ASKING_CLAUSE = re.compile(
    r"\s[—–-]\s+(?=(?:how|what|which|when|who|why|where|is|are|can|could|should|does|do|did|"
    r"will|would|any|ok)\b)",
    re.IGNORECASE,
)


STORY_CLAUSE_WORDS = 7  # "Alcohol biomarkers — which one ...?" names its topic, tells no story


def asking_clause(asking: str) -> str:
    """The clause of `asking` (asking_sentences) after a dash that opens a question, when one
    does: "how long must they overlap?"; all of `asking` otherwise."""
    pieces = _ASKING_CLAUSE.split(asking, maxsplit=1)
    # Words the shorthand's full forms added in brackets ("UVC (umbilical venous catheter)")
    # make no story longer.
    told = re.sub(r"\([^()]*\)", " ", pieces[0]) if len(pieces) == 2 else ""
    if len(WORD.findall(told)) < STORY_CLAUSE_WORDS or not content_stems(pieces[1]):
        return asking
    return pieces[1]


def told_sentences(text: str, asking: str) -> str:
    """`text` without `asking`, its sentences that ask (asking_sentences): the story a vignette
    tells ("30 min of slurred speech, no weakness, age 58."); all of `text` when every sentence
    asks."""
    return text.replace(asking, " ") if asking.strip() != text.strip() else text


_INDIRECT_QUESTION = re.compile(
    r"\b(?:whether|wonder(?:s|ing)?|wants? to know|asks?|asking)\b", re.IGNORECASE
)


# ---------------------------------------------------------------------------------------------
# Section paths

SECTION_SEPARATOR = " > "  # between the headings of a chunk's section path


def section_headings(section: str) -> list[str]:
    """The headings of a section path, outermost first. A heading may itself hold the
    separator ("PE Likely (Score > 4.0)"): a piece whose brackets do not close is joined back
    to the one before it, so the deepest heading stays "PE Likely (Score > 4.0)", not "4.0)"."""
    headings: list[str] = []
    for piece in section.split(SECTION_SEPARATOR) if section else []:
        if headings and headings[-1].count("(") > headings[-1].count(")"):
            headings[-1] += SECTION_SEPARATOR + piece
        else:
            headings.append(piece)
    return headings


# Zipf frequency (log10 of occurrences per billion words of English, `wordfreq`) from which a
# word is everyday English: "today" 5.6, "something" 5.8, "worth" 5.2; "coffee" 4.9,
# "pregnant" 4.6, "cellulitis" 2.1 stay below.
EVERYDAY_ZIPF = 5.0
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)


def english_frequency(word: str) -> float:
    """How common `word` is in English: its Zipf frequency, 0.0 for a word never seen."""
    return zipf_frequency(_POSSESSIVE.sub("", word), "en")


def is_everyday_english(word: str) -> bool:
    """Whether `word` ("today's", "going", "worth") is common in everyday English: how a
    question is said, rarely what it is about. So is an everyday verb done again ("rechecked",
    "redo", "restarting"), though English writes it rarely; not "resection" or "refeeding"."""
    if english_frequency(word) >= EVERYDAY_ZIPF:
        return True
    again = _AGAIN.fullmatch(word.lower())
    return bool(again) and english_frequency(again.group(1)) >= EVERYDAY_ZIPF


# An everyday verb done again: "re" + the verb, as done ("-ed"), doing ("-ing") or bare and short.
_AGAIN = re.compile(r"re-?([a-z]{2,4}|[a-z]{3,}(?=ing$|ed$))(?:ing|ed|s)?")
