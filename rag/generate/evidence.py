"""Evidence grade: does what the answer cites state the answer for what was asked?

The abstention gate (rag.generate.abstention) asks whether the index covers a question at all.
A clinician also needs the middle case said out loud: the guideline covers the topic but not
the facet asked about ("the sources give the adult dose, not a paediatric one"). After the
answer is written, its cited passages are checked against the facets the question names:

- populations: children, adolescents, fathers, newborns, pregnancy, breastfeeding, older
  adults, kidney or liver impairment ("8-year-old" counts as a child, "17-year-old" as an
  adolescent; not "the dad of a 6-week-old");
- drugs (words shaped like drug names: "-xaban", "-mab", "-cillin", ...), each one named;
- a dose, when the question asks for one: an amount in a dose unit;
- a duration, when it asks how long: an amount of time;
- the components of a named score ("What are the components of CHA2DS2-VASc?"): a list or
  table of its items, not its thresholds ("CHA2DS2-VASc >= 2: OAC is recommended");
- terms the index never mentions (the gate's `unknown_words`; and, for a partial answer that
  lacks nothing else, any specific term of the question or its story no passage holds:
  "plans to fast for Ramadan").

`grade_evidence` gives `direct` (every facet is in the cited passages and the gate passed),
`partial` (the answer is given, led by what is missing) or `none` (abstain, as before).
Facets are checked in the passages the answer cites, not anywhere in the top k: a paediatric
dose table three hits down does not make an adult-only answer direct.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.generate.abstention import (
    DOSE_AMOUNT,
    NOT_A_DOSE_EVENT,
    Coverage,
    absent_words,
    topical_words,
)
from rag.shorthand import alternatives, drug_forms
from rag.text import (
    DRUG_NAME,
    NEGATION,
    STOPWORDS,
    asked_part,
    asking_sentences,
    english_frequency,
    is_everyday_english,
    split_prose_sentences,
)
from rag.types import Hit

DIRECT, PARTIAL, NONE = "direct", "partial", "none"

# A term held by at most this many passages of the index is rare: a drug, procedure or test
# the guidelines name in passing. On the studied evidence rounds, the asked terms the cited
# passages lack hold 0-7 passages for near misses ("terlipressin" 5, "debridement" 7) and
# mostly 13 or more for answerable questions ("regimen" 48, "infusion" 64).
RARE_TERM_PASSAGES = 7
# Passages read for two words written together: BM25 ranks any that writes both first.
PHRASE_LOOKUP_DEPTH = 20

# "Child-Pugh" (the liver score) names no child.
_CHILD = r"child(?!-pugh)"
_CHILDREN = (
    rf"\b(?:{_CHILD}|children|childhood|paediatric|pediatric|infants?|adolescents?|"
    r"younger than 18|under 18|< ?18 years)\b"
)
# Population facets: what the question may say, and what a passage must say to cover it.
# Patterns are matched on lower-cased text; a passage matches any pattern of the group.
_POPULATIONS: dict[str, tuple[str, str]] = {
    # facet name: (pattern in the question, pattern in a passage)
    "children": (
        (
            rf"\b(?:{_CHILD}|children|childhood|paediatric|pediatric|kids?|toddlers?|infants?|"
            r"boy|girl)\b"
        ),
        _CHILDREN,
    ),
    "adolescents under 18": (r"\b(?:adolescents?|teen(?:ager)?s?)\b", _CHILDREN),
    "fathers": (
        r"\b(?:fathers?|dads?|paternal)\b",
        r"\b(?:fathers?|paternal|partners?|men)\b",
    ),
    "newborns": (
        r"\b(?:newborns?|neonates?|neonatal|preterm|premature)\b",
        r"\b(?:newborns?|neonates?|neonatal|preterm|premature|birth)\b",
    ),
    "pregnancy": (
        r"\b(?:pregnant|pregnancy|antenatal|gestation(?:al)?|trimester)\b",
        r"\b(?:pregnant|pregnancy|antenatal|gestation(?:al)?|trimester|perinatal)\b",
    ),
    "breastfeeding": (
        r"\b(?:breast-?feeding|lactating|lactation|breast milk|nursing mother)\b",
        r"\b(?:breast-?feeding|lactating|lactation|breast milk)\b",
    ),
    "older adults": (
        r"\b(?:elderly|frail|older adults?|geriatric)\b",
        (
            r"\b(?:elderly|frail|older adults?|older patients|geriatric|age[ds]? (?:>|≥|>=|over) ?\d\d|"
            r"aged? \d\d|\d\d years)\b"
        ),
    ),
    # Dialysis changes a dose more than an eGFR band does: a passage on CKD does not cover it.
    "patients on dialysis": (
        r"\b(?:h(?:a)?emodialysis|dialysis)\b",
        r"\b(?:h(?:a)?emodialysis|dialysis|kidney replacement|renal replacement|crrt)\b",
    ),
    "kidney impairment": (
        r"\b(?:renal (?:impairment|failure|insufficiency)|ckd|crcl|creatinine clearance)\b",
        r"\b(?:h(?:a)?emodialysis|dialysis|renal|kidney|ckd|crcl|creatinine clearance|egfr)\b",
    ),
    # Type 1 diabetes is a population of its own: what was shown in type 2 does not cover it
    # (a passage on ketoacidosis is written for it).
    "type 1 diabetes": (
        r"\b(?:type 1 diabet\w*|t1dm?)\b",
        r"\b(?:type 1|t1dm?|dka|diabetic ketoacidosis)\b",
    ),
    "nursing home residents": (
        r"\b(?:nursing[- ]homes?|care[- ]homes?|long-term care facilit(?:y|ies))\b",
        r"\b(?:nursing[- ]homes?|care[- ]homes?|long-term care|residential care)\b",
    ),
    "liver impairment": (
        (
            r"\b(?:hepatic impairment|liver (?:disease|impairment|failure)|cirrho(?:sis|tic)|"
            r"child-pugh)\b"
        ),
        r"\b(?:hepatic|liver|cirrho(?:sis|tic)|child-pugh)\b",
    ),
    "patients with dementia": (r"\bdement(?:ia|ed)\b", r"\b(?:dementia|cognitive impairment)\b"),
}
# Populations named only when a sentence that asks names them: a vignette's "72-year-old man"
# describes the patient; "Do the drug-holiday rules apply to a man?" asks about men.
_ASKED_POPULATIONS: dict[str, tuple[str, str]] = {
    "men": (r"\b(?:men|a man|males?)\b", r"\b(?:men|man|males?)\b"),
    # A comorbidity the question asks the answer to allow for: "does the heart failure push me
    # towards colchicine?", "BP target for a transplant patient?"
    "heart failure": (
        r"\b(?:heart failure|hfref|hfpef|chf)\b",
        r"\b(?:heart failure|hfref|hfpef|hfmref|cardiac failure)\b",
    ),
    "transplant recipients": (r"\btransplant(?:ed|s)?\b", r"\btransplant"),
}
_PAST_AGE = re.compile(r"\b(?:as an? (?:child|kid|teen(?:ager)?|infant|baby|toddler)|in childhood)\b")
_AGE_GROUPS = ("children", "adolescents under 18", "newborns")
# A population the question names by an adjective is named as the patients it describes
# ("pregnant patients", not "pregnancy").
_ADJECTIVES = {"pregnant": "pregnancy", "elderly": "older adults", "frail": "older adults"}
_SOMEONE_ELSES = re.compile(r"\bof (?:a|an|her|his|their)\s+$")
_AGE = re.compile(r"\b(\d{1,3})[- ](?:year|yr|month|week|day)s?[- ]old\b|\baged? (\d{1,3})\b")

# Common words the drug shapes would catch.
_NOT_DRUGS = frozenset(
    {
        "examine",
        "determine",
        "undermine",
        "heparin",
        "statin",
        "statins",
        "toxin",
        "dioxin",
        "antiplatelet",
        "nucleotide",
    }
)

_COMBINATION = re.compile(r"\b[a-z]{4,}(?:-[a-z]{4,})+\b")  # "piperacillin-tazobactam"
RARE_IN_ENGLISH = 3.0  # Zipf frequency: "avibactam" 0, "tazobactam" 1.3; "resistant" 4.1

_WANTS_DOSE = re.compile(
    NOT_A_DOSE_EVENT + r"\b(?:dose|doses|dosed|dosing|dosage|loading"
    # "what mg/kg once daily?", "how many mg?": a dose asked for by its unit.
    r"|(?:what|how many) (?:mg|mcg|units?)(?:/kg)?"
    r"|how much(?! (?:\w+ )?(?:monitoring|time|testing|imaging|follow-up|exercise|weight|"
    r"deviation|depression|elevation|change|reduction|rise|drop|increase|decrease))"
    # ... nor "how much does systolic BP fall per kg lost?": an effect, not a dose.
    r"(?![^?.;]*\b(?:falls?|drops?|lowers?|reduces?|rises?|improves?|changes?|"
    r"goes (?:down|up)|comes down)\b))\b"
)
_WANTS_WEIGHT_DOSE = re.compile(r"(?:\bmg|\bmcg|\bunits?)?/kg\b|\bper kg\b|\bweight-based\b")
# A dose asked for by its kind ("what loading and maintenance dose?"): the kind named first.
_DOSE_KIND = re.compile(
    r"\b(loading|maintenance|weekly|monthly)\b(?=[\w\s,/-]{0,30}\bdos(?:e|es|ing)\b)"
)
_WEIGHT_DOSE = re.compile(r"\d\s*(?:mg|mcg|µg|g|units?|iu|ml)/kg\b")
_WANTS_DURATION = re.compile(
    r"\b(?:how long|duration|how many (?:days|weeks|months|years|hours)|for how many|"
    r"lifelong|for life|indefinitely|number of (?:days|weeks|months|years))\b"
)
# "in mL/year", "in mmol/L per hour": a unit of measure the question asks its value in.
_ASKED_UNIT = re.compile(
    r"\bin ((?:m?l|mg|mcg|mmol|g|kg|units?|cells)/[a-z0-9.²]+)", re.IGNORECASE
)
# "how many weeks", "within how many days": a duration asked for in one unit.
_HOW_MANY = re.compile(r"\b(?:how many|number of) (minute|hour|day|week|month|year)s?\b")
# An amount in a unit of mass or of insulin: a dose, not a rate or a measurement.
_MASS_DOSE = re.compile(r"\b\d+(?:\.\d+)?\s*(?:mg|mcg|g|units?)\b(?!\s*/\s*(?:d?l|min|h))", re.IGNORECASE)
# Two amounts offered as alternatives: "2 g/day or 3 g/day", "600 mg or 1200 mg".
_OFFERED_CHOICE = re.compile(
    rf"(?:{DOSE_AMOUNT.pattern})\s*(?:or|vs\.?|versus)\s*(?:{DOSE_AMOUNT.pattern})", re.IGNORECASE
)
# "300 or 600 mg": the first number takes the second's unit.
_BARE_CHOICE = re.compile(
    r"\b(\d+(?:\.\d+)?)\s*(?:or|vs\.?|versus)\s*\d+(?:\.\d+)?\s*(mg|mcg|g|units?)\b", re.IGNORECASE
)
# A clause asking yes or no of an amount it offers: "Is it 100 mg SC daily, and for how many
# days?", "is 7 days of twice daily readings the right protocol?"
_OFFERING_CLAUSE = re.compile(
    r"^(?:so |and |but )?(?:is it|is that|should it be|would it be|is|should|can|could|do|does)\b",
    re.IGNORECASE,
)
_WANTS_TIME = re.compile(r"\b(?:when|how soon|how often|how frequently|timing)\b")
# Numbers a question may write as words ("at twelve weeks", "for five years").
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "eighteen": 18, "twenty": 20,
    "twenty-four": 24, "thirty": 30, "forty-eight": 48, "sixty": 60, "ninety": 90,
}  # fmt: skip
_NUMBER_WORD = "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True))
# A time, or a range of times ("every 4-6 years", "24 to 72 hours", "six to twelve months":
# the range, not its end).
_TIME_AMOUNT = re.compile(
    rf"\b(?:(?:\d+(?:\.\d+)?|{_NUMBER_WORD})\s*(?:[-–]|to)\s*)?(?:\d+(?:\.\d+)?|{_NUMBER_WORD})\s*"
    r"(?:hours?|days?|weeks?|months?|years?)\b"
)
_DURATION = re.compile(
    r"\b\d+(?:\s*(?:-|–|to|or)\s*\d+)?\s*(?:days?|weeks?|wk|months?|years?|hours?|h|hrs?)\b|"
    r"\b(?:indefinite(?:ly)?|lifelong|long-term|until)\b"
)

# "What are the components of CHA2DS2-VASc?", "What goes into the ABCD2 score?": the question
# asks for the items a score adds up, named by a word with digits or a capitalised acronym.
_ASKS_COMPONENTS = re.compile(
    r"\b(?:components?|elements|items|variables|made up of|consists? of|goes into|go into|"
    r"what is in|what's in)\b",
    re.IGNORECASE,
)
_SCORE_NAME = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:[0-9-][A-Za-z0-9-]*|[A-Z]{2,})\b")
# A list item or table row: "- Age >= 60 years: 1 point", "| **A**ge | >= 60 years | 1 |".
_LISTED = re.compile(r"^\s*(?:[-*+]|\d+[.)]|\|)\s*(.*)$", re.MULTILINE)
MIN_COMPONENTS = 3
# What a heading, intro or table header over a score's items says they are.
_COMPONENT_WORDS = re.compile(
    r"\b(?:components?|criteria|criterion|points?|items?|factors?|variables?|elements?|"
    r"features?|one point each)\b"
)


# An acronym as a question writes it: two to six capitals, digits allowed after the first
# ("ESA", "TAVR", "NSTEMI"); not a word written in capitals for emphasis ("NOT").
_ACRONYM = re.compile(r"\b(?![IVX]+\b|OK\b)[A-Z][A-Z0-9]{1,5}\b")  # not a Roman numeral ("II")
# Where the patient is ("ICU pt", "ED pt") or which team is asking ("GI asking scope now?",
# "drained by IR") is not what a question asks about.
_SETTINGS_AND_ROLES = frozenset(
    {"ICU", "ED", "ER", "HDU", "CCU", "OR", "PACU", "GI", "IR", "ITU", "ENT", "MDT", "OBS"}
    # who asks or acts: "Cardiology SHO wants prasugrel. OK?"
    | {"SHO", "FY1", "FY2", "SPR", "REG", "ANP", "ACP", "RMO", "HO"}
)
# Tests a story reports ("left lobar ICH on CT", "ECG shows ST depression"): what was found,
# not what is asked, unless a sentence that asks names the test.
_TESTS_DONE = frozenset({"CT", "MRI", "CXR", "ECG", "EKG", "EEG", "ABG", "VBG", "CTA", "TTE", "US"})
# A vignette's measurements: the label right before a value ("RR 32", "BUN 28", "INR: 4.5")
# and the unit right after one ("9 mmol/L"). They describe the patient, not what is asked.
_VALUE_LABEL = re.compile(r"(?<![\w-])([A-Za-z][A-Za-z/]*)(?:\s*[:=])?\s+(?=\d)")
_VALUE_UNIT = re.compile(r"(?<![\w-])\d+(?:[.,]\d+)*\s?%?\s?([A-Za-z][A-Za-z/]*)\b")  # "95% RA"


def described_patient(question: str, cited: Sequence[Hit]) -> set[str]:
    """The words (lower-cased) that only describe the patient in a vignette whose cited
    passages fit that patient: "Non-ischemic DCM, EF 32%, NYHA II, QRS 160 ms LBBB. Device?"
    cited from a passage on EF, NYHA class, QRS and LBBB does not answer something else because
    it never writes "DCM". The description is the sentences before the question that do not
    ask; the passages fit when they state at least half its topical words, or every topical
    word (two or more) of the sentences that ask (a hypertension passage cited for "Day 7
    post-SAH, new aphasia, TCD velocity 210 cm/s. First-line treatment?" does neither, and its
    missing terms are still named). Words of the sentences that ask are never in the set."""
    sentences = split_prose_sentences(asked_part(question))
    asking = [sentence for sentence in sentences if sentence.rstrip().endswith("?")]
    told = " ".join(sentence for sentence in sentences if sentence not in asking)
    if not told or not asking:
        return set()
    described = {word.lower() for word in topical_words(told).values()}
    # Values and their labels ("HR 112") are the patient's, not words a passage should write.
    measured = measurement_words(told)
    weighed = {word for word in described if not any(c.isdigit() for c in word)} - measured
    absent = set(absent_words(told, cited)) & weighed
    asked = {word.lower() for word in topical_words(" ".join(asking)).values()}
    # The passages also fit a long story they state little of when they state everything its
    # question asks about ("MCA syndrome, LKW 90 min, NIHSS 11, bleeding ulcer 2 weeks ago.
    # Absolute contraindication to alteplase?" cited from the alteplase contraindications).
    # One word asked ("ICU?") tells too little of what the passages are about.
    answers_asked = len(asked) >= 2 and not absent_words(" ".join(asking), cited)
    if not weighed or (len(absent) > len(weighed) / 2 and not answers_asked):
        return set()
    return described - asked


def measurement_words(question: str) -> set[str]:
    """The words of `question` (lower-cased) that label or measure one of its values."""
    return {
        word.lower()
        for pattern in (_VALUE_LABEL, _VALUE_UNIT)
        for match in pattern.finditer(question)
        for word in match.group(1).split("/")
        if word
    }


@dataclass(frozen=True)
class Evidence:
    """How directly the cited passages answer the question.

    grade: direct, partial or none.
    missing: the facets the question asks about that the cited passages do not state, in
    plain words ("children", "a dose", "ticagrelor"), in question order. They are checked in
    the passages the answer cites, so they are said of those ("The cited sources do not
    address a dose for children"): another guideline of the index may name the drug.
    unindexed: the question's terms no passage of the index contains at all ("pyloric").
    unmentioned: for a partial answer with no such facet, the question's specific terms the
    cited passages do not use ("plasmapheresis"): said as what it is, not as a gap in the index.
    told: whether the terms named (`unmentioned`, else `unindexed`) are all the story's ("TIA
    yesterday and AF found on the monitor. What antithrombotic?", "35 minutes of slurred
    speech ... ABCD2?"), none of them in the sentences that ask, and no facet is missing: the
    caution then heads the answer, and the bottom line stays the answer (`lead_with_missing`).
    """

    grade: str
    missing: tuple[str, ...] = ()
    unmentioned: tuple[str, ...] = ()
    unindexed: tuple[str, ...] = ()
    told: bool = False

    def gap(self) -> str:
        """What the sources lack, as the clause a partial bottom line opens with ("The cited
        sources do not address a dose"); "" when nothing is named."""
        clauses = []
        if self.missing:
            clauses.append(f"the cited sources do not address {_join(self.missing)}")
        if self.unindexed:
            named = _join([f"'{word}'" for word in self.unindexed])
            clauses.append(f"no indexed source mentions {named}")
        if not clauses and self.unmentioned:
            named = _join([f"'{word}'" for word in self.unmentioned])
            clauses.append(f"the cited passages do not mention {named}")
        gap = "; ".join(clauses)
        return gap[:1].upper() + gap[1:]

    def statement(self) -> str:
        """The sentence a partial answer leads with; "" for a direct answer or none."""
        if self.missing or self.unindexed:
            return f"{self.gap()}."
        if self.unmentioned:
            return f"{self.gap()}; check that they answer what was asked."
        if self.grade == PARTIAL:
            return "The cited passages may not answer every part of this question; check them."
        return ""

    def to_json(self) -> dict[str, object]:
        return {
            "grade": self.grade,
            "missing": list(self.missing),
            "unmentioned": list(self.unmentioned),
            "unindexed": list(self.unindexed),
            "statement": self.statement(),
        }


def question_facets(question: str) -> dict[str, re.Pattern[str] | None]:
    """The facets `question` asks about: {plain name: a pattern a passage must match}.

    A drug's pattern is its own name; "a dose" and "a duration" need an amount."""
    lowered = question.lower()
    facets: dict[str, re.Pattern[str] | None] = {}
    # "anaphylaxis to amoxicillin as a child" is the patient's history, not their age.
    # "not pregnant", "not on dialysis": the patient is outside the population, so the
    # answer need not address it.
    present = NEGATION.sub(" ", _PAST_AGE.sub(" ", lowered))
    for name, (asked, stated) in _POPULATIONS.items():
        if re.search(asked, present):
            facets[name] = re.compile(stated)
    for match in _AGE.finditer(lowered):
        if _SOMEONE_ELSES.search(lowered[: match.start()]):
            continue  # "new dad of a 6-week-old": the baby's age, not the patient's
        age = int(match.group(1) or match.group(2))
        unit = match.group(0)
        infant = "month" in unit or "week" in unit or "day" in unit
        if age < 18 or infant:
            # The age the question gives is the population, named as asked ("a 15-year-old"),
            # in place of what "girl" or "teenager" would have made it.
            facets = {name: facet for name, facet in facets.items() if name not in _AGE_GROUPS}
            stated = _CHILDREN + (f"|{_POPULATIONS['newborns'][1]}" if infant else "")
            aged = unit if match.group(1) else f"{age}-year-old"
            group = "adolescents under 18" if age >= 13 and not infant else "children"
            facets[f"{group}, such as {_article(aged)} {aged}"] = re.compile(stated)
    # A drug is asked about when a sentence that asks names it: the patient's medicines in
    # the story ("on max metoprolol plus digoxin. What's left for rate control?") and in a
    # follow-up's context are what they take, not what the answer must address.
    asking = asking_sentences(question).lower()
    for name, (asked, stated) in _ASKED_POPULATIONS.items():
        if re.search(asked, NEGATION.sub(" ", asking)):
            facets[name] = re.compile(stated)
    for drug in _drugs_in(asking):
        facets[drug] = _drug_pattern(drug)
    # A combination ("ceftazidime-avibactam") is one drug: a passage naming ceftazidime alone
    # does not cover it, and the gap is named whole.
    for combination in dict.fromkeys(_COMBINATION.findall(asking)):
        parts = combination.split("-")
        if _is_drug(combination) and any(part in facets for part in parts):
            facets = {name: facet for name, facet in facets.items() if name not in parts}
            every_part = "".join(rf"(?=[\s\S]*{_drug_pattern(part).pattern})" for part in parts)
            facets[combination] = re.compile(rf"\A{every_part}")
    # A dose or a duration is wanted when the question asks for one, not when the patient's
    # story mentions one ("on medium-dose ICS-LABA ... Step down?").
    if _WANTS_DOSE.search(asking):
        # "What's the max daily dose in mg/kg?": a flat dose does not answer it; nor does a
        # dose the passage does not call a loading dose when a loading dose is asked for.
        kind = _DOSE_KIND.search(asking)
        if kind:
            facets["a dose"] = re.compile(
                rf"\b{kind.group(1)}[^.\n]*?{DOSE_AMOUNT.pattern}", re.IGNORECASE
            )
        else:
            facets["a dose"] = _WEIGHT_DOSE if _WANTS_WEIGHT_DOSE.search(asking) else DOSE_AMOUNT
    if _WANTS_DURATION.search(asking):
        facets["a duration"] = _DURATION
    # "Within how many weeks should IR pull the filter?": a duration in another unit ("3
    # months of anticoagulation") answers something else.
    for unit in dict.fromkeys(_HOW_MANY.findall(asking)):
        facets.pop("a duration", None)
        facets[f"a duration in {unit}s"] = re.compile(
            rf"\b\d+(?:\.\d+)?(?:\s*(?:-|–|to|or)\s*\d+)?\s*{unit}", re.IGNORECASE
        )
    # A value asked for in a unit ("What yearly FEV1 decline in mL/year ...?") is answered
    # only by a passage giving one in that unit.
    # A dose's unit is the dose facet's ("a dose in mg/kg").
    units = _ASKED_UNIT.findall(asking_sentences(question)) if "a dose" not in facets else []
    for unit in dict.fromkeys(units):
        facets[f"a value in {unit}"] = re.compile(rf"\d\s*{re.escape(unit)}", re.IGNORECASE)
    # A dose or time the question offers for confirmation ("Is 500 mg BID the right dose?",
    # "When is the angiogram due - at 6 months?") must be one the passages state.
    # The value is in the clause that asks, last in its sentence: "norepinephrine at 0.3
    # mcg/kg/min and MAP still 58 - vasopressin dose?" offers no vasopressin dose.
    clauses = [
        re.split(r"[,;:]\s+|\s[-–—]\s", sentence)
        for sentence in split_prose_sentences(asking)
        if sentence.rstrip().endswith("?")
    ]
    last_clauses = " ".join(split[-1] for split in clauses)
    offered = []
    # A dose offered in a question is asked about even without the word: "If I add oral NAC,
    # is it 600 mg or 1200 mg BD?"; doses offered as alternatives are, in any clause that
    # asks: "What target dose, 2 g/day or 3 g/day, and how quickly do I titrate?"
    choices = " ".join(match.group(0) for match in _OFFERED_CHOICE.finditer(asking))
    choices += " " + " ".join(f"{number} {unit}" for number, unit in _BARE_CHOICE.findall(asking))
    offering = " ".join(
        clause for split in clauses for clause in split if _OFFERING_CLAUSE.match(clause.strip())
    )
    if _WANTS_DOSE.search(asking) or _MASS_DOSE.search(f"{last_clauses} {offering}"):
        offered += [
            (value, " dose")
            for value in dict.fromkeys(
                DOSE_AMOUNT.findall(last_clauses)
                + DOSE_AMOUNT.findall(choices)
                + DOSE_AMOUNT.findall(offering)
            )
            if not re.search(r"m[lL]/min", value)  # a clearance, not a dose
        ]
    times = _TIME_AMOUNT.findall(offering)
    if _WANTS_DURATION.search(asking) or _WANTS_TIME.search(asking):
        # Any clause of a sentence asking how long may offer one ("Continue it for twelve
        # months and then review, or for life?").
        asked_clauses = " ".join(clause for split in clauses for clause in split)
        times = _TIME_AMOUNT.findall(asked_clauses) + times
    offered += [(value, "") for value in dict.fromkeys(times)]
    for value, noun in offered:
        number, unit = re.fullmatch(
            rf"((?:(?:[\d.,]+|{_NUMBER_WORD})\s*(?:[-–]|to)\s*)?(?:[\d.,]+|{_NUMBER_WORD}))\s*(.*)",
            value,
        ).groups()
        # "twelve weeks" is stated as "12 weeks" as well; a range ("4-6 years", "24 to 72
        # hours") is named whole and stated by its last number, as a single time is.
        last = re.split(r"\s*(?:[-–]|to)\s*", number)[-1]
        written = rf"(?:{last}|{_NUMBER_WORDS[last]})" if last in _NUMBER_WORDS else re.escape(last)
        pattern = rf"(?<![\d.]){written}\s*{re.escape(unit[:3].lower())}"
        # The drug the amount is offered for names it ("labetalol 100 mg or labetalol 200
        # mg?"): "the labetalol 200 mg dose asked about", not a bare "200 mg" of no drug.
        drug = re.search(rf"({DRUG_NAME.pattern})\s+{re.escape(value.lower())}", asking)
        amount = f"{drug.group(1)} {number} {unit}" if drug else f"{number} {unit}"
        facets[f"the {amount}{noun} asked about"] = re.compile(pattern)
    return facets


def asked_components(question: str) -> str:
    """The score whose components `question` asks for ("CHA2DS2-VASc"), or ""."""
    if not _ASKS_COMPONENTS.search(question):
        return ""
    names = [name for name in _SCORE_NAME.findall(question) if not name.isdigit()]
    return names[0] if names else ""


def lists_components(score: str, hit: Hit) -> bool:
    """Whether `hit` lists at least MIN_COMPONENTS items of `score`: list items or table rows,
    under a heading or an intro line naming the score, that open with a word other than the
    score's own name (a threshold line "CHA2DS2-VASc >= 2: OAC is recommended" is not a
    component; "Age >= 60 years" is)."""
    name, section = score.lower(), hit.section.lower()
    intro, head, items = "", "", 0
    for line in hit.text.lower().splitlines():
        listed = _LISTED.match(line)
        if not listed:
            if line.strip():
                intro, head = line, ""
            continue
        head = head or line  # a table's header row says what its rows are
        context = f"{section}\n{intro}\n{head}"
        opening = listed.group(1).replace("*", "").strip()
        if (
            (name in section or name in intro)
            and _COMPONENT_WORDS.search(context)
            and opening[:1].isalpha()
            and not opening.startswith(name)
        ):
            items += 1
    return items >= MIN_COMPONENTS


_NAMED_AMOUNT = re.compile(rf"^(?:{DRUG_NAME.pattern})\s+")


def missing_facets(question: str, cited: Sequence[Hit]) -> tuple[str, ...]:
    """The facets of `question` that no cited passage states."""
    text = "\n".join(f"{hit.title}\n{hit.section}\n{hit.text}" for hit in cited).lower()
    facets = question_facets(question)
    missing = [name for name, pattern in facets.items() if pattern and not pattern.search(text)]
    score = asked_components(question)
    if score and not any(lists_components(score, hit) for hit in cited):
        missing.insert(0, f"the components of {score}")
    dosed = _dosed_drug(question, facets)
    if "a dose" in facets and "a dose" not in missing and dosed:
        # The dose of the drug asked about: "consider IV aminophylline. What loading dose?"
        # is not answered by a passage giving a dupilumab loading dose beside one naming
        # aminophylline with no amount.
        drug, dose = facets.get(dosed) or _drug_pattern(dosed), facets["a dose"]
        if not any(
            drug.search(text) and dose is not None and dose.search(text)
            for text in (f"{hit.section}\n{hit.text}".lower() for hit in cited)
        ):
            missing.append("a dose")
    missing = [_as_asked(name, question) for name in missing]
    populations = [name for name in missing if _is_population(name)]
    if "a dose" in facets and populations:
        # An adult dose does not answer a paediatric dose question: "a dose for children",
        # "a tirzepatide dose for liver impairment" (of the drug asked about, when one is).
        if "a dose" in missing:
            missing.remove("a dose")
        dose = _dose_named(question, facets)
        missing[missing.index(populations[0])] = f"{dose} for {populations[0]}"
    elif "a dose" in missing:
        dose = _dose_named(question, facets)
        offered = [name for name in missing if name.endswith(" dose asked about")]
        if offered:  # "a levetiracetam dose of 500 mg"
            amount = offered[0].removeprefix("the ").removesuffix(" dose asked about")
            amount = _NAMED_AMOUNT.sub("", amount)  # the drug is named once, in `dose`
            dose = f"{dose} of {amount}"
        missing[missing.index("a dose")] = dose
        missing = [name for name in missing if name not in dose.split() and name not in offered]
    return tuple(missing)


def _as_asked(population: str, question: str) -> str:
    """A population facet in the question's own word: "pregnant patients" when it says
    "pregnant" (and not "pregnancy"), "patients on haemodialysis" when it says "haemodialysis";
    other facets as they are."""
    lowered = question.lower()
    dialysis = re.search(r"\bh(?:a)?emodialysis\b", lowered)
    if population == "patients on dialysis" and dialysis:
        return f"patients on {dialysis.group(0)}"
    for adjective, name in _ADJECTIVES.items():
        if name != population or not re.search(rf"\b{adjective}\b", lowered):
            continue
        others = _POPULATIONS[name][0].replace(adjective, "(?!)")  # the group's other words
        if not re.search(others, lowered):
            return f"{adjective} patients"
    return population


def _is_population(name: str) -> bool:
    """Whether the facet `name` is a population: a named group or an age ("a 15-year-old")."""
    return (
        name in _POPULATIONS
        or name in {f"{adjective} patients" for adjective in _ADJECTIVES}
        or name.startswith("patients on ")  # "patients on haemodialysis"
        or name.endswith("-old")  # "children, such as a 9-year-old"
    )


def _article(phrase: str) -> str:
    """ "an" before a vowel sound ("an 8-year-old", "an 11-year-old", "an eGFR"), else "a"."""
    spoken = re.sub(r"^(?:8|11|18|8\d)(?!\d)", "eight", phrase)
    return "an" if spoken[:1].lower() in "aeiou" else "a"


def _is_drug(name: str) -> bool:
    """Whether the facet `name` is a drug: one ("apixaban") or a combination of a drug with
    drugs or words English hardly uses ("ceftazidime-avibactam", not "meropenem-resistant")."""
    if DRUG_NAME.fullmatch(name):
        return True
    parts = name.split("-")
    return (
        _COMBINATION.fullmatch(name) is not None
        and any(DRUG_NAME.fullmatch(part) for part in parts)
        and all(
            DRUG_NAME.fullmatch(part) or english_frequency(part) < RARE_IN_ENGLISH
            for part in parts
        )
    )


def _drugs_in(text: str) -> list[str]:
    """The drugs lower-cased `text` names by their shapes, in order, once each."""
    return [drug for drug in dict.fromkeys(DRUG_NAME.findall(text)) if drug not in _NOT_DRUGS]


def _drug_pattern(drug: str) -> re.Pattern[str]:
    """What a passage naming `drug` writes: its stem ("ceftriax" for ceftriaxone), or its class
    ("oral bisphosphonate therapy" states alendronate's DXA interval; "DOAC" apixaban's)."""
    stem, *classes = drug_forms(drug)
    named = [re.escape(stem), *(rf"{re.escape(form)}s?\b" for form in classes)]
    return re.compile(rf"\b(?:{'|'.join(named)})")


def _dosed_drug(question: str, facets: dict[str, re.Pattern[str] | None]) -> str:
    """The one drug whose dose `question` asks for: the one drug its asking sentences name,
    or, when they name none, the one drug the whole question names ("Life-threatening asthma,
    consider IV aminophylline. What loading dose should I give?"); "" otherwise."""
    asking = asking_sentences(question).lower()
    drugs = [name for name in facets if _is_drug(name) and name in asking]
    if not drugs and all(
        english_frequency(word) >= RARE_IN_ENGLISH for word in re.findall(r"[a-z]{4,}", asking)
    ):  # an asking sentence of plain words only ("What loading dose should I give?")
        drugs = _drugs_in(asked_part(question).lower())
    return drugs[0] if len(drugs) == 1 else ""


def _dose_named(question: str, facets: dict[str, re.Pattern[str] | None]) -> str:
    """The missing dose as a clinician would ask for it: of the one drug asked about ("a
    propranolol dose"), of the kind asked ("a levetiracetam loading dose"), per kilogram when
    asked so ("a dose in mg/kg")."""
    asking = asking_sentences(question).lower()
    drug = _dosed_drug(question, facets)
    kind = _DOSE_KIND.search(asking)
    dose = f"{kind.group(1)} dose" if kind else "dose"
    dose = f"{drug} {dose}" if drug else dose
    article = "an" if dose[0] in "aeiou" else "a"
    per_kg = " in mg/kg" if facets.get("a dose") is _WEIGHT_DOSE else ""
    return f"{article} {dose}{per_kg}"


def grade_evidence(
    question: str,
    coverage: Coverage | None,
    cited: Sequence[Hit],
    *,
    direct_score: float,
    is_term: Callable[[str], bool] = lambda word: True,
    is_rare: Callable[[str], bool] = lambda word: False,
    is_unindexed: Callable[[str], bool] = lambda word: False,
    is_unindexed_phrase: Callable[[str], bool] = lambda phrase: False,
) -> Evidence:
    """The grade of an answer to `question` citing the passages `cited`.

    `coverage` is the gate's measure of the question; `direct_score` the score it needs for a
    direct grade (setting answer.min_direct_score); `is_term` tells a specific term from an
    everyday word ("plasmapheresis" from "still"; rag asks the embedder's vocabulary);
    `is_rare` tells a term few passages of the index hold (at most RARE_TERM_PASSAGES) and
    `is_unindexed` one no passage holds in any form, `is_unindexed_phrase` words no passage
    writes together ("Down syndrome"). No cited passage: none."""
    if not cited:
        return Evidence(NONE)
    missing = list(missing_facets(question, cited))
    unindexed = [
        _in_full(_with_noun(word, question), question, is_unindexed)
        for word in (coverage.unknown_words if coverage is not None else ())
        if not any(word.lower() in item.lower() for item in missing)
    ]
    unindexed = _whole_terms(unindexed)
    gate_passed = coverage is None or coverage.covered(direct_score)
    unmentioned: list[str] = []
    # Neither a vignette's measurements nor, when the passages fit the patient, the rest of
    # its description is what the question asks about.
    measured = measurement_words(question) | described_patient(question, cited)
    # A term is named as unmentioned only if the user wrote it in this turn: a follow-up's
    # "(context: ...)" is the conversation's, said before.
    asked = asked_part(question)
    # A term only a vignette's story uses ("boggy", "surging") is the patient's, not what the
    # answer must name: the terms named as unmentioned come from the sentences that ask.
    asking = asking_sentences(question)
    asked_words = {word.lower() for word in re.findall(r"[\w-]+", asking)}
    if not missing and not unindexed:
        # An acronym the question names ("ESA", "TAVR") is what it is about: an answer whose
        # cited passages never write it answers something else, however well the words match.
        text = "\n".join(f"{hit.section}\n{hit.text}" for hit in cited)
        names = list(dict.fromkeys(_ACRONYM.findall(asked)))
        # Shorthand whose full form the passages write ("EVT": endovascular thrombectomy) is
        # mentioned (the passages are read for it only when the question uses shorthand).
        absent = (
            set(absent_words(asked, cited)) if any(map(alternatives, names)) else set()
        )
        unmentioned = [
            _with_noun(name, question)
            for name in names
            if name.lower() not in measured
            and name.upper() not in _SETTINGS_AND_ROLES
            and not (name.upper() in _TESTS_DONE and not re.search(rf"\b{name}\b", asking))
            and (not alternatives(name) or name.lower() in absent)
            and not re.search(rf"\b{re.escape(name)}s?\b", text, re.IGNORECASE)
            and not _spelled_out(name, text)
        ]
        # A rare, specific term the question asks about ("terlipressin", "debridement": few
        # passages of the index hold it) that the cited passages never state is what the
        # answer leaves out, however close the rest: "Octreotide or terlipressin?" answered
        # from an octreotide passage.
        rare = [
            _with_noun(word, question)
            for word in absent_words(asking, cited)
            if _nameable(word, measured, is_term) and word.upper() not in names and is_rare(word)
        ]
        unmentioned = list(dict.fromkeys([*unmentioned, *rare]))[:2]
    named = missing or unindexed or unmentioned
    if not gate_passed and not named and coverage is not None:
        # Partly covered with no facet of a known kind missing: name the specific terms the
        # top passages lack (no numbers, no everyday words), as the question wrote them.
        facets = question_facets(question)
        if coverage.dose_missing and not _states_dose(facets, cited):
            # The gate looked at the top hits only; the section expansion may have brought
            # the dose the answer cites ("Dose: 0.9 mg/kg" under the alteplase protocol).
            missing.append(_dose_named(question, facets))
        else:
            # The terms the passages the answer cites do not state: a term the gate found
            # missing from the top passages may be in a passage the answer cites ("cephalexin"
            # in the oral-agents table the section expansion brought), and is then no gap.
            candidates = absent_words(question, cited)
            unmentioned = [
                _with_noun(word, question)
                for word in candidates
                if word in asked_words and _nameable(word, measured, is_term)
            ][:2]
            if not unmentioned:
                unindexed = never_indexed(
                    question,
                    lambda word: (is_term(word) or _proper_name(word, question))
                    and is_unindexed(word),
                    is_unindexed_phrase,
                )
    if missing or unindexed or unmentioned or not gate_passed:
        named_terms = unmentioned or unindexed
        told = bool(named_terms) and not missing and not any(
            re.search(rf"(?<![\w-]){re.escape(term)}(?![\w-])", asking, re.IGNORECASE)
            for term in named_terms
        )
        return Evidence(PARTIAL, tuple(missing), tuple(unmentioned), tuple(unindexed), told)
    return Evidence(DIRECT)


# Inside a sentence: after a lower-case word or a comma, not where a sentence starts.
_INSIDE_SENTENCE = r"(?<=[a-z,] )"


def _proper_name(word: str, question: str) -> bool:
    """Whether `word` is a name the question capitalises inside a sentence ("Is a Ross
    procedure recommended?"): a term however common its spelling, unlike a sentence's first
    word or an acronym."""
    return (
        word[:1].isupper()
        and word[1:].islower()
        and re.search(rf"{_INSIDE_SENTENCE}{re.escape(word)}\b", question) is not None
    )


def _nameable(word: str, measured: set[str], is_term: Callable[[str], bool]) -> bool:
    """Whether a word the cited passages lack may be named as what they do not mention: a
    specific term (`is_term`) of more than three letters, no number, not one of the vignette's
    `measured` words, not everyday English ("today's" is how the question is said)."""
    return (
        len(word) > 3
        and not any(c.isdigit() for c in word)
        and word not in measured
        and is_term(word)
        and not is_everyday_english(word)
    )


# An adjective naming a drug or device takes the noun after it ("obeticholic acid").
_ADJECTIVE_ENDING = re.compile(r"(?:ic|al|ous|ive|ary|ular)$", re.IGNORECASE)


# A name and the noun it names in a sentence that asks ("adults with Down syndrome"): the
# name capitalised inside the sentence, the noun after it.
_NAMED_NOUN = re.compile(rf"{_INSIDE_SENTENCE}([A-Z][a-z]+\s+[a-z]{{4,}})\b")


def never_indexed(
    question: str,
    is_unindexed: Callable[[str], bool],
    is_unindexed_phrase: Callable[[str], bool] = lambda phrase: False,
) -> list[str]:
    """At most two of `question`'s topical words that no passage of the index holds in any
    form, as written, those of the sentences that ask first ("Is obeticholic acid an
    option?"), then the story's ("plans to fast for Ramadan"): what a partial answer names
    when its cited passages lack no term of a known kind, instead of a caution that names
    nothing. A word's measurements and numbers are the patient's, not terms ("HR 112"). First
    comes a name and its noun that the sentences that ask use and no passage writes together
    (`is_unindexed_phrase`), though each word is common: "Down syndrome"."""
    asking = asking_sentences(question)
    measured = measurement_words(question)
    ordered = [*topical_words(asking).values(), *topical_words(asked_part(question)).values()]
    named: list[str] = [
        phrase
        for phrase in dict.fromkeys(_NAMED_NOUN.findall(asking))
        if phrase.split()[1] not in STOPWORDS and is_unindexed_phrase(phrase)
    ]
    for word in dict.fromkeys(ordered):
        if (
            len(word) > 3
            and word.isalpha()
            and word.lower() not in measured
            and not alternatives(word)
            and is_unindexed(word)
        ):
            named.append(_in_full(_with_noun(word, question), question, is_unindexed))
    terms: list[str] = []
    for word in _whole_terms(named):
        if terms and re.search(rf"\b{re.escape(terms[-1])}\s+{re.escape(word)}\b", question):
            terms[-1] = f"{terms[-1]} {word}"  # side by side: one term ("anorexia nervosa")
        else:
            terms.append(word)
    return terms[:2]


# What a hyphen joins to a name without being part of it ("post-SAH", "non-HDL").
_PREFIXES = r"(?i:post|pre|non|anti|peri|intra|inter|sub|semi|co|re|mid|high|low|new|early|late)"


def _with_noun(word: str, question: str) -> str:
    """`word` with the noun it qualifies when it is an adjective ("obeticholic acid"), and with
    the number its name carries ("COVID-19", not "COVID")."""
    numbered = re.search(rf"\b{re.escape(word)}-\d+\b", question)
    if numbered:
        return numbered.group(0)
    # A word of a hyphenated name is named with the whole of it ("Swan-Ganz", not "Ganz"),
    # and a name ending in a participle with what it qualifies ("EUS-guided coil").
    compound = re.search(
        rf"(?<![\w-])(?:(?!{_PREFIXES}-)[A-Za-z0-9]+-)*{re.escape(word)}(?:-[A-Za-z0-9]+)*(?![\w-])",
        question,
    )
    if compound and "-" in compound.group(0) and compound.group(0) != word:
        whole = compound.group(0)
        following = re.match(r"\s+([a-z]{3,})\b", question[compound.end() :])
        if whole.endswith("ed") and following and following.group(1) not in STOPWORDS:
            return f"{whole} {following.group(1)}"
        return whole
    if not _ADJECTIVE_ENDING.search(word):
        return word
    following = re.search(rf"\b{re.escape(word)}\s+([a-z]{{3,}})\b", question)
    return f"{word} {following.group(1)}" if following else word


# The nouns a term an index never mentions is named with ("baroreflex activation therapy").
_HEAD_NOUNS = frozenset({
    "activation", "ablation", "stimulation", "denervation", "blockade", "implant", "device",
    "procedure", "therapy", "testing", "scan", "syndrome", "injection", "infusion",
})  # fmt: skip


def _whole_terms(terms: Sequence[str]) -> list[str]:
    """`terms` once each, without those another holds: "strontium ranelate", not also
    "strontium"."""
    return [
        term
        for n, term in enumerate(terms)
        if term not in terms[:n]
        and not any(
            term != other and re.search(rf"\b{re.escape(term)}\b", other) for other in terms
        )
    ]


def _in_full(term: str, question: str, is_unindexed: Callable[[str], bool]) -> str:
    """`term` as the question names it whole: with the word before it when the index never
    mentions that one either ("strontium ranelate"), and the noun after it that makes it a
    procedure or a therapy ("baroreflex activation")."""
    before = re.search(rf"\b([A-Za-z]{{4,}})\s+{re.escape(term)}\b", question)
    if before and before.group(1).lower() not in STOPWORDS and is_unindexed(before.group(1)):
        term = f"{before.group(1)} {term}"
    after = re.search(rf"\b{re.escape(term)}\s+([a-z]+)\b", question)
    if after and after.group(1) in _HEAD_NOUNS:
        term = f"{term} {after.group(1)}"
    return term


def _spelled_out(acronym: str, text: str) -> bool:
    """Whether `text` writes `acronym` in full: words of four letters or more opening with its
    letters, in order ("SBP": "systolic blood pressure"). Acronyms of three letters or more."""
    if len(acronym) < 3 or not acronym.isalpha():
        return False
    words = r"[\s-]+".join(rf"{letter}[a-z]{{3,}}" for letter in acronym.lower())
    return bool(re.search(rf"\b{words}\b", text, re.IGNORECASE))


def _states_dose(facets: dict[str, re.Pattern[str] | None], cited: Sequence[Hit]) -> bool:
    """Whether a cited passage gives an amount in a dose unit and names a drug the question
    names (its `facets`; any passage with an amount when it names no drug by its shape)."""
    drugs = [
        pattern
        for name, pattern in facets.items()
        if pattern is not None and _is_drug(name)
    ]
    for hit in cited:
        text = f"{hit.section}\n{hit.text}".lower()
        if DOSE_AMOUNT.search(text) and (not drugs or any(drug.search(text) for drug in drugs)):
            return True
    return False


def lead_with_missing(evidence: Evidence, answer: str, bottom_line: str) -> tuple[str, str]:
    """A partial answer's text and bottom line, led by what the sources lack."""
    statement = evidence.statement()
    if not statement:
        return answer, bottom_line
    if not evidence.missing and (
        evidence.told or (not evidence.unindexed and not evidence.unmentioned)
    ):
        # Nothing to name, or only terms of the patient's story ("TIA yesterday and AF found
        # on the monitor"): the caution heads the answer; the bottom line stays the answer.
        return f"{statement}\n\n{answer}", bottom_line
    said = bottom_line
    words = said.split(maxsplit=2)
    if said[:1].isupper() and not said[1:2].isupper() and not _title_case(words[1:2]):
        # "Apixaban ..." but not "CURB-65 ..." nor a label ("Clinical Response: ...").
        said = said[:1].lower() + said[1:]
    return f"{statement}\n\n{answer}", f"{evidence.gap()}; what they state: {said}"


def _title_case(words: Sequence[str]) -> bool:
    return bool(words) and words[0][:1].isupper()


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" or {items[-1]}"
