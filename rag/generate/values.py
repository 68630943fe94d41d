"""The values a question gives, matched against the conditions a guideline row states.

"What does a CURB-65 score of 2 mean for site of care?" gives the value 2 (a score); the row
"Score 2 (Moderate risk)" matches it and "Score 0–1" and "Score 3–5" do not. "eGFR 25 on
metformin" gives 25 mL/min; "eGFR < 30: contraindicated" matches, "eGFR 30–45: reduce" does
not. A value and a condition are compared only when they measure the same kind of thing (age,
weight, kidney function, a score, a time, a dose, a percentage, a pressure) or one of them
does not say; the digits inside names (CURB-65, CHA2DS2-VASc, NEWS2, IL-1, HbA1c) are not
values.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from rag.text import CONTEXT_OPENER, DRUG_NAME

# Names with digits in them: a letter, then letters/digits, a digit somewhere ("CURB-65",
# "CHA2DS2-VASc", "NEWS2", "IL-1", "HbA1c", "COVID-19", "T2DM", "PaO2/FiO2").
NAME_WITH_DIGITS = re.compile(r"\b[A-Za-z][A-Za-z0-9/-]*\d[A-Za-z0-9-]*\b")
# A minus sign only where no word or number comes before it: "NFS −1.9", "T-score <= -2.5";
# "1-2 hourly" is a range.
_NUMBER = r"(?:(?<![\w.)])[-−](?=\d))?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+(?:[.,]\d+)?)"
_RANGE = re.compile(rf"({_NUMBER})\s*(?:--|–|—|-|to)\s*({_NUMBER})")  # "--": a typed en dash
# "T-score between -1.0 and -2.5": a range, whichever bound is written first.
_BETWEEN_AND = re.compile(rf"\bbetween\s+({_NUMBER})\s+and\s+({_NUMBER})", re.IGNORECASE)
TITER_MARK = "#:"  # what _masked writes for a titer's "1:"
_COMPARISON = re.compile(
    rf"(≥|>=|≤|<=|>|<|=|at least|more than|less than|over|under|above|below|within)\s*"
    rf"(?:{TITER_MARK}\s*)?({_NUMBER})",
    re.IGNORECASE,
)
# A chained comparison: "50% ≤ FEV1 < 80%" is one band, not "< 80%" and a bare 50%.
_BETWEEN = re.compile(
    # (_masked blanks a name holding digits, "FEV1": the name may be spaces.)
    rf"({_NUMBER})\s*%?\s*(≤|<=|<)([^\d<>≤≥=|;,.]{{1,25}}?)(≤|<=|<)\s*({_NUMBER})"
)
_PLAIN = re.compile(rf"(?<![\d.,])({_NUMBER})(?![\d.,]*\s*(?:–|—|to)\s*\d)")
# A blood pressure written as a pair ("BP 192/104", "> 185/110 mmHg"): the systolic, then
# the diastolic, each read against conditions on it ("SBP 150-220 mmHg?"); a comparison before
# the pair holds for both (group 1).
_PRESSURE_PAIR = re.compile(
    r"(?:\b(?:BP|blood pressure)\b[^\d/]{0,12}?"
    r"(≥|>=|≤|<=|>|<|at least|more than|less than|over|under|above|below)?\s*"
    r"(\d{2,3})\s*/\s*(\d{2,3})\b"
    r"|(≥|>=|≤|<=|>|<)?\s*(\d{2,3})\s*/\s*(\d{2,3})\s*mm\s?hg)",
    re.IGNORECASE,
)


def _pressure_pairs(text: str) -> list[tuple[str, re.Match[str], int]]:
    """(comparison, match, group of the systolic; the diastolic's is the next) of each blood
    pressure pair."""
    pairs = []
    for match in _PRESSURE_PAIR.finditer(text):
        first = 2 if match.group(2) else 5
        if float(match.group(first)) > float(match.group(first + 1)):
            pairs.append((match.group(first - 1) or "", match, first))
    return pairs
_OR_MORE = re.compile(
    rf"({_NUMBER})(?:\s*(?:\w+\s+)?(?:or|and) (?:more|older|above|over|higher|greater)"
    r"|\+(?![\d\w]))"  # "Age 60+"
)
_OR_LESS = re.compile(
    rf"({_NUMBER})\s*(?:\w+\s+)?(?:or|and) (?:less|younger|below|under|lower|fewer)"
)

_KINDS = (
    (
        "age",
        re.compile(
            # "65 years", "72-year-old", "80 yo"; not "10-year ASCVD risk" (a time horizon)
            r"^\s*(?:years?|yrs?|y/?o|yo)\b|^\s*-\s*(?:years?|yrs?)-old\b|^\s*(?:y\b)",
            re.IGNORECASE,
        ),
    ),
    # "78M", "34F": a case's age and sex (lower-cased in a follow-up's context: "32m")
    ("age", re.compile(r"^[MF]\b(?!-)", re.IGNORECASE)),  # not "4F-PCC"
    ("weight", re.compile(r"^\s*kg\b", re.IGNORECASE)),
    ("kidney", re.compile(r"^\s*(?:ml/min|ml/min/1\.73)", re.IGNORECASE)),
    ("percent", re.compile(r"^\s*%")),
    ("pressure", re.compile(r"^\s*mm\s?hg\b", re.IGNORECASE)),
    (
        "time",
        re.compile(
            r"^\s*(?:-?\s*)(?:hours?|hrs?|h|days?|weeks?|months?|minutes?|min)\b|^\s*-\s*years?\b",
            re.IGNORECASE,
        ),
    ),
    # A level in the blood ("250 mg/dL", "3.3 mEq/L"), not an amount given.
    (
        "concentration",
        re.compile(
            r"^\s*(?:mg|g|mcg|µg|ng|pg|mmol|µmol|umol|meq|iu|units?)\s*/\s*(?:dl|l|ml)\b",
            re.IGNORECASE,
        ),
    ),
    ("dose", re.compile(r"^\s*(?:mg|g|mcg|µg|units?|iu|ml)\b", re.IGNORECASE)),
    ("osmolality", re.compile(r"^\s*mOsm\b", re.IGNORECASE)),
    ("temperature", re.compile(r"^\s*°", re.IGNORECASE)),
    ("percentile", re.compile(r"^\s*(?:st|nd|rd|th)?\s+percentile\b", re.IGNORECASE)),
    ("rate", re.compile(r"^\s*(?:bpm|breaths|/min)\b", re.IGNORECASE)),
)
_BEFORE = (
    ("titer", re.compile(rf"{TITER_MARK}\s*$")),
    # "age 71", "aged 71"; "She's 51," (a number with no unit after it)
    ("age", re.compile(r"\b(?:age|aged|ages|(?:she|he)(?:'s|’s| is))\s*$", re.IGNORECASE)),
    (
        "kidney",
        re.compile(r"\b(?:egfr|crcl|gfr|creatinine clearance)\s*(?:of|is|was)?\s*$", re.IGNORECASE),
    ),
    ("weight", re.compile(r"\b(?:weight|weighs|weighing)\s*(?:of|is)?\s*$", re.IGNORECASE)),
    # "on citalopram 40", "amlodipine 10": a drug's dose with its unit left out
    ("dose", re.compile(rf"(?:{DRUG_NAME.pattern})\s*$", re.IGNORECASE)),
    (
        "score",
        re.compile(
            r"(?:\bscore|\bscores|\bscored|\bpoints?|\bgrade|\bstage|\bclass)\s*(?:of|is|was|=)?\s*$",
            re.IGNORECASE,
        ),
    ),
)


# The acronym a number is read against ("ICP 26", "SBP < 90", "MAP of 80"): two measurements
# of one kind (both pressures) with different acronyms are not compared.
_ACRONYM_BEFORE = re.compile(
    r"\b([A-Z][A-Z0-9]{1,5})\s*(?:(?:of|is|was|at|=|:|≥|>=|≤|<=|>|<)\s*)?$"
)


# Laboratory measurements by the names a question or a row gives them ("glucose 540", "pH
# 7.12", "K 5.4", "Glucose < 250 mg/dL", "plasma glucose falls below 250"): a pH is no glucose,
# though "< 250 mg/dL" and a bare 7.12 would otherwise be compared. Each name maps to one label.
_LABS = {
    "glucose": ("glucose", "blood glucose", "plasma glucose", "blood sugar", "sugar", "bg", "bgl"),
    "ph": ("ph",),
    "potassium": ("potassium", "k", "k+"),
    "sodium": ("sodium", "na", "na+"),
    "creatinine": ("creatinine", "creat", "cr", "scr"),
    "bicarbonate": ("bicarbonate", "bicarb", "hco3", "hco3-"),
    "lactate": ("lactate", "lactic acid"),
    "hemoglobin": ("hemoglobin", "haemoglobin", "hb", "hgb"),
    "platelets": ("platelets", "platelet count", "platelet", "plt", "plts"),
    "inr": ("inr",),
    "troponin": ("troponin", "trop", "hs-ctn", "ctn"),
    "bilirubin": ("bilirubin", "bili"),
    "albumin": ("albumin",),
    "urate": ("urate", "serum urate", "uric acid", "su"),
    "calcium": ("calcium", "corrected calcium", "corrected ca", "ca"),
    "magnesium": ("magnesium",),
    "phosphate": ("phosphate",),
    "lipase": ("lipase",),
    "ferritin": ("ferritin",),
    "wbc": ("wbc", "white cell count", "white count"),
    "crp": ("crp", "hs-crp"),
    "ldl": ("ldl", "ldl-c"),
    "hdl": ("hdl", "hdl-c"),
    "triglycerides": ("triglycerides", "tg"),
    "tsh": ("tsh",),
    "bnp": ("bnp", "nt-probnp"),
    "hba1c": ("hba1c", "a1c"),
    "ketones": ("ketones", "beta-hydroxybutyrate", "β-hydroxybutyrate", "bhb"),
    "anion gap": ("anion gap",),
    "osmolality": ("osmolality", "osm"),
    "eosinophils": ("eosinophils", "eosinophil count", "blood eosinophils", "eos", "blood eos", "eosinophil"),
    "feno": ("feno",),
}
_LAB_LABEL = {name: label for label, names in _LABS.items() for name in names}
LAB_LABELS = frozenset(_LABS)
_LAB_BEFORE = re.compile(
    r"(?<![\w+-])(?<!vitamin )("
    + "|".join(re.escape(name) for name in sorted(_LAB_LABEL, key=len, reverse=True))
    + r")(?![\w+])(?:\s+(?:levels?|concentration|value))?"
    r"(?:\s+(?:is|was|of|now|still|falls?|fell|rises?|rose|remains?|drops?|dropped|under|over|"
    r"below|above|less than|more than|greater than|came back|come back|returned|at))*"
    r"\s*(?:[:=|]\s*)?$",
    re.IGNORECASE,
)


# "systolic BP < 90", "diastolic blood pressure of 110": the acronyms a pair is read by.
_PRESSURE_BEFORE = re.compile(
    r"\b(systolic|diastolic)\s+(?:blood pressure|BP)\s*"
    r"(?:(?:of|is|was|at|=|:|≥|>=|≤|<=|>|<|at least|more than|less than|over|under|above|below)\s*)?$",
    re.IGNORECASE,
)


def _pressure_side(word: str) -> str:
    """"SBP" for "systolic", "DBP" for "diastolic"."""
    return "SBP" if word.lower() == "systolic" else "DBP"


def _label(text: str, start: int, original: str | None = None) -> str:
    """The label a number at `start` is given with: the acronym just before it ("ICP 26"), or
    the laboratory measurement ("glucose 540", "K 5.4"; read in the `original` text, whose
    names' digits are not masked: "HCO3 6"), as one label per measurement."""
    pressure = _PRESSURE_BEFORE.search(text[max(0, start - 40) : start])
    if pressure:
        return _pressure_side(pressure.group(1))
    match = _ACRONYM_BEFORE.search(text[max(0, start - 16) : start])
    if match:
        return _LAB_LABEL.get(match.group(1).lower(), match.group(1))
    lab = _LAB_BEFORE.search((original or text)[max(0, start - 40) : start])
    return _LAB_LABEL[lab.group(1).lower()] if lab else ""


@dataclass(frozen=True)
class Value:
    """A number a question gives, with the kind of thing it measures ("" when unknown) and
    the acronym it is given for ("ICP"; "" when none)."""

    number: float
    kind: str
    label: str = ""
    loose: bool = False  # a bare number of a follow-up's context: it meets, never contradicts
    # A number of a question asking for a score it does not give ("RR 22, HR 98 ... What's
    # her NEWS2?"): a measurement, never the score, so never read against a score's rows or a
    # condition that does not say what it measures.
    measured: bool = False
    score: str = ""  # the name a score is given with ("ABCD2 5": "ABCD2"), lower-cased


@dataclass(frozen=True)
class Condition:
    """A condition a row states: low <= x <= high (either end open), for a kind of thing."""

    low: float | None
    high: float | None
    kind: str
    strict_low: bool = False
    strict_high: bool = False
    label: str = ""

    def holds(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.strict_low and value == self.low)):
            return False
        return not (
            self.high is not None
            and (value > self.high or (self.strict_high and value == self.high))
        )


# "1,100 mg/dL", "100,000/mm³": a comma before three digits groups thousands; "2,5" is a
# decimal comma.
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+$")


def _number(text: str) -> float:
    text = text.replace("−", "-")
    if _THOUSANDS.match(text):
        return float(text.replace(",", ""))
    return float(text.replace(",", "."))


def _masked(text: str) -> str:
    """`text` with the digits inside names blanked out, positions kept; a score name leaves
    the word "score" so the number after it reads as a score. A time horizon ("10-year ASCVD
    risk", "5-year survival") is part of the name of what it measures, not a value; nor is a
    heading's or a step's number ("2. SGLT2 Inhibitors", "Pillar 4"), nor oxygen given ("on 100% O2"), nor a
    drug's strength ("budesonide-formoterol 200/6")."""
    text = _HORIZON.sub(lambda m: " " * len(m.group(0)), text)
    text = SCALE.sub(lambda m: " " * len(m.group(0)), text)
    text = _OXYGEN_GIVEN.sub(lambda m: " " * len(m.group(0)), text)
    text = _ENUMERATION.sub(lambda m: " " * len(m.group(0)), text)
    text = _NUMBERED_PART.sub(lambda m: m.group(1).ljust(len(m.group(0))), text)
    text = _STRENGTH.sub(
        lambda m: (
            m.group(1).ljust(len(m.group(0)))
            if DRUG_NAME.search(m.group(1).lower())
            else m.group(0)
        ),
        text,
    )
    # A titer is its dilution: "1:1600" is 1600 (of kind titer), and meets "> 1:800".
    text = _TITER.sub(lambda m: TITER_MARK.ljust(len(m.group(0))), text)
    return NAME_WITH_DIGITS.sub(
        lambda m: (
            "score" + " " * (len(m.group(0)) - 5) if len(m.group(0)) >= 5 else " " * len(m.group(0))
        ),
        text,
    )


_TITER = re.compile(r"(?<![\d.:])1\s*:\s*(?=\d{2,})")
# A scale with its number ("SpO₂ Scale 2" of NEWS2): the number says which scale, it is no
# value (rag.generate.scores reads the scale a question names by it).
SCALE = re.compile(r"\bscale\s*(\d)\b", re.IGNORECASE)
_HORIZON = re.compile(r"\b\d+-(?:year|month|day|week)\b(?!-old)", re.IGNORECASE)
# Oxygen given ("on 100% oxygen", "15 L O2") is a treatment, not a finding a row's condition
# is about: "100% O2" is no carboxyhemoglobin "> 40%".
_OXYGEN_GIVEN = re.compile(r"\b\d+\s*(?:%|L(?:/min)?)\s*(?:oxygen|O2|FiO2)\b", re.IGNORECASE)
# A drug's strength after its name ("budesonide-formoterol 200/6", "fluticasone-salmeterol
# 250/50") says which inhaler, not what the patient measures: "200/6" is no "200-400" band.
_STRENGTH = re.compile(r"\b([A-Za-z][A-Za-z-]*\s+)\d+(?:\.\d+)?/\d+(?:\.\d+)?\b")
# A numbered part of a document ("Pillar 4: SGLT2 Inhibitors", "Statement 3", "Rec 3") is no
# condition: an eGFR of 18 does not fail "Pillar 4". Steps and tracks stay: GINA's are a
# patient's treatment level.
_NUMBERED_PART = re.compile(
    r"\b((?:pillar|statement|recommendations?|rec|table|figure|section|part|box|option|tier)\s*)"
    r"\d+(?:\.\d+)*[a-z]?\b",
    re.IGNORECASE,
)
_ENUMERATION = re.compile(r"^\s*(?:step\s+)?\d+(?:\.\d+)*[.)](?=\s+[A-Za-z])", re.IGNORECASE)


_TIME_UNITS = (
    (re.compile(r"^\s*-?\s*(?:minutes?|mins?)\b", re.IGNORECASE), 1 / 60),
    (re.compile(r"^\s*-?\s*(?:days?)\b", re.IGNORECASE), 24.0),
    (re.compile(r"^\s*-?\s*(?:weeks?|wks?)\b", re.IGNORECASE), 24.0 * 7),
    (re.compile(r"^\s*-?\s*(?:months?)\b", re.IGNORECASE), 24.0 * 365 / 12),
    (re.compile(r"^\s*-?\s*(?:years?)\b", re.IGNORECASE), 24.0 * 365),
)


def _in_hours(number: float, kind: str, text: str, end: int) -> float:
    """A time in hours, whatever unit follows it ("3 weeks" -> 504, "40 days" -> 960), so a
    question's "MI 3 weeks ago" meets a row's "< 40 days post-MI"; other kinds unchanged."""
    if kind != "time":
        return number
    after = text[end : end + 14]
    return number * next((scale for unit, scale in _TIME_UNITS if unit.match(after)), 1.0)


# Years counted since something, not a person's age: "T2DM for 20 years", "over the past 3
# years", "a decade or 10 years ago".
_YEARS_COUNTED = re.compile(
    # ("adults over 60 years" is an age)
    r"\b(?:for|(?<!adults )(?<!patients )(?<!people )(?<!women )(?<!men )(?<!those )over"
    r"|past|last|since|within|after)\s+(?:the\s+)?(?:past\s+|last\s+)?"
    r"(?:at least\s+|up to\s+|more than\s+)?$"
    r"|^\s*years?\s+(?:ago|since|before|after|of)\b",
    re.IGNORECASE,
)


def _kind(text: str, start: int, end: int) -> str:
    after = text[end : end + 14]
    for kind, pattern in _KINDS:
        if pattern.match(after):
            if kind == "age" and (
                _YEARS_COUNTED.search(text[max(0, start - 24) : start])
                or _YEARS_COUNTED.match(after)
            ):
                return "time"
            return kind
    before = re.sub(
        r"(?:≥|>=|≤|<=|>|<|=|at least|more than|less than)\s*$",
        "",
        text[max(0, start - 40) : start],
    )
    for kind, pattern in _BEFORE:
        if pattern.search(before):
            return kind
    # A table row under a header giving its unit: "CrCl (mL/min): 15-29", "Weight (kg): 60".
    header_unit = _HEADER_UNIT.search(before)
    if header_unit:
        for kind, pattern in _KINDS:
            if pattern.match(header_unit.group(1)):
                return kind
    return ""


_HEADER_UNIT = re.compile(r"\(([^()]{1,16})\)\s*[:|]?\s*$")


def question_values(question: str) -> list[Value]:
    """The numbers `question` gives, each with its kind; names' digits excluded. A condensed
    follow-up ("What if the score is 5? (context: ... score 2)") gives its own values when it
    has any: the context's are what it replaces; else the context's."""
    asked, _, context = question.partition(CONTEXT_OPENER)
    own = _values(asked)
    if own or not context:
        return own + _reduction(asked)
    # The context is the conversation's terms, not its sentences: "at 5 weeks" comes back as
    # "5". A bare number of it may meet a row ("edoxaban 60 daily": "edoxaban 60 mg daily")
    # but turns none away ("in 25-60% of patients").
    return [
        value if value.kind or value.label else replace(value, loose=True)
        for value in _values(context)
    ]


# A measure given at baseline and again now: "PHQ-9 22 at baseline, 14 today", "baseline PHQ-9
# 20 and 13 today" (read in the masked text: "PHQ-9" has no digits there).
_BASELINE_THEN = re.compile(
    r"(?:\bbaseline\b[^\d.;]{0,24}?(\d+(?:\.\d+)?)|(\d+(?:\.\d+)?)\s+at\s+baseline)"
    r"[^\d;]{0,24}?(?:(\d+(?:\.\d+)?)\s+(?:today|now|currently)\b|\b(?:today|now|currently)\s+(?:is\s+|at\s+)?(\d+(?:\.\d+)?))",
    re.IGNORECASE,
)


def _reduction(question: str) -> list[Value]:
    """The reduction from baseline a question's two readings of a score make, as a percent:
    "PHQ-9 22 at baseline, 14 today" is a 36% reduction, which "Partial response: 25-49% reduction in
    PHQ-9 score from baseline" holds."""
    masked = _masked(question)
    match = _BASELINE_THEN.search(masked)
    # Of a score ("PHQ-9 22 at baseline"): a creatinine's rise is read as a ratio, not this.
    if not match or "score" not in masked[max(0, match.start() - 24) : match.end()].lower():
        return []
    before = float(match.group(1) or match.group(2))
    now = float(match.group(3) or match.group(4))
    return [Value(round(100 * (before - now) / before, 1), "percent")] if before > 0 else []


_PRESSURE_AFTER = re.compile(r"\s*(?:mm\s?hg\s*)?(systolic|diastolic)\b", re.IGNORECASE)
_RANGE_DASH = re.compile(r"\s*(?:-|–|—|to)\s*")
# What a measurement given by its acronym alone measures: "ICP 28" is no "320 mOsm/L".
_LABEL_KINDS = {
    **dict.fromkeys(("ICP", "CPP", "MAP", "SBP", "DBP", "BP"), "pressure"),
}


def _values(question: str) -> list[Value]:
    text = _masked(question)
    pressures = {
        pair.start(group): label
        for _, pair, first in _pressure_pairs(text)
        for group, label in ((first, "SBP"), (first + 1, "DBP"))
    }
    values: list[Value] = []
    listed: list[bool] = []  # a number listed before another ("5 and 10 minutes")
    last_end = 0
    scales: list[float] = []  # what each number was multiplied by to be in hours
    for match in re.finditer(_NUMBER, text):
        before = text[max(0, match.start() - 1) : match.start()]
        if before.isalpha():
            continue
        kind = _kind(text, match.start(), match.end())
        raw = _number(match.group(0))
        number = _in_hours(raw, kind, text, match.end())
        counted = _COUNTED_TIME.search(text[max(0, match.start() - 8) : match.start()])
        if not kind and counted:
            # "on day 2", "week 6": a time counted in the unit before it.
            kind = "time"
            number = _in_hours(raw, kind, counted.group(1), 0)
        # "above the 99th percentile", "over 180": just past the number, so a row's "> 99th"
        # holds for it and "< 99th" does not.
        side = _SIDE.search(text[max(0, match.start() - 24) : match.start()])
        if side:
            number += _PAST if side.group(1) else -_PAST
        # The side of a blood pressure pair, a pressure named after its number ("sitting at 124
        # systolic"), or the name before it.
        named_after = _PRESSURE_AFTER.match(text, match.end())
        label = (
            pressures.get(match.start())
            or (named_after and _pressure_side(named_after.group(1)))
            or _label(text, match.start(), question)
        )
        value = Value(number, kind, label)
        if values and not value.label and _RANGE_DASH.fullmatch(text[last_end : match.start()]):
            # "INR 2-3": the range's end is the same measurement as its start.
            value = replace(value, label=values[-1].label, kind=value.kind or values[-1].kind)
        if not value.kind and value.label in _LABEL_KINDS:
            value = replace(value, kind=_LABEL_KINDS[value.label])  # "ICP 28": a pressure
        named = _SCORE_GIVEN.search(question[max(0, match.start() - 40) : match.start()])
        if kind == "score" and named:
            value = replace(value, score=named.group(1).lower())
        if not value.kind and re.fullmatch(r"(?:19|20)\d\d", match.group(0)):
            continue  # a year ("ACR 2020", "the 2019 guideline") is no value of the patient's
        values.append(value)
        last_end = match.end()
        scales.append(value.number / raw if raw else 1.0)
        listed.append(not value.kind and _LISTED.match(text, match.end()) is not None)
    # "at 5 and 10 minutes": a number listed before another takes that one's kind and unit.
    for position in range(len(values) - 2, -1, -1):
        if listed[position]:
            scales[position] = scales[position + 1]
            values[position] = replace(
                values[position],
                kind=values[position + 1].kind,
                number=values[position].number * scales[position],
            )
    return values


# A score's name just before its value: "ABCD2 5", "CURB-65 score of 2", "NEWS2 is 6".
_SCORE_GIVEN = re.compile(
    rf"({NAME_WITH_DIGITS.pattern})(?:\s+score)?\s*(?:of|is|was|=|:)?\s*$", re.IGNORECASE
)
# The scores a text names: one with digits ("CURB-65") or a name before "score", "class" or
# "index" ("TIMI Risk Score", "PSI class").
SCORE_NAMES = re.compile(
    rf"({NAME_WITH_DIGITS.pattern})"
    r"|\b([A-Z][A-Za-z-]{2,})\s+(?i:risk\s+)?(?i:score|class|index)\b"
)


_NO_SCORE_NAMES = frozenset(
    {"the", "total", "risk", "severity", "clinical", "this", "each", "final"}
)


def other_score(value: Value, text: str) -> bool:
    """Whether `text` names scores and not the one `value` was given for: "ABCD2 5" is no
    score of the TIMI table's "Score 5-7" rows."""
    if not value.score:
        return False
    named = {(a or b).lower() for a, b in SCORE_NAMES.findall(text)} - _NO_SCORE_NAMES
    return bool(named) and value.score not in named


_SIDE = re.compile(
    r"(?:\b(above|over|greater than|higher than|more than|>)|\b(?:below|under|less than|"
    r"lower than|<))\s*(?:the\s+)?$",
    re.IGNORECASE,
)
_PAST = 1e-6
_COUNTED_TIME = re.compile(r"\b(day|week|month|hour)\s*$", re.IGNORECASE)
_LISTED = re.compile(r"\s*(?:,|and\b|or\b|-|–|to\b)\s*(?=\d)")


# A value to reach, not one the patient must have, and how long to hold it: "Maintain BP <
# 180/105 mmHg for the first 24 hours", "Target SBP < 130", "goal LDL-C < 70". A patient above
# it is who the target is for.
_TARGET = re.compile(
    r"\b(?:maintain|target|goal|keep|aim(?: for)?|titrate to)\b[^.;:\d<>≤≥]{0,30}"
    r"(?:<|≤|<=|below|under|less than)\s*[\d.,]+(?:\s*/\s*[\d.,]+)?(?:\s*mm ?hg)?"
    r"(?:\s+for (?:the first |at least )?[\d.,]+\s*(?:hours?|h|days?))?"
    # An end point to wait or go on for: "DELAY insulin until K+ > 3.5 mmol/L" is the branch
    # for a potassium below 3.5, not one above it.
    r"|\buntil\b[^.;:\d<>≤≥]{0,30}(?:<|≤|<=|>|≥|>=|below|under|above|over)\s*[\d.,]+",
    re.IGNORECASE,
)


def conditions(text: str) -> list[Condition]:
    """The numeric conditions `text` states: ranges, comparisons, "65 or older", bare numbers;
    not a target to reach ("Maintain BP < 180/105", "until K+ > 3.5")."""
    original = text
    text = _TARGET.sub(lambda m: " " * len(m.group(0)), _masked(text))
    found: list[Condition] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for sign, pair, first in _pressure_pairs(text):
        # Below a pair is below both ("BP < 185/110" fails for 192/104); above it, above either.
        below = sign in ("<", "≤", "<=", "less than", "under", "below")
        strict = sign in (
            ">", "<", "more than", "less than", "over", "under", "above", "below"
        )  # fmt: skip
        for group, label in ((first, "SBP"), (first + 1, "DBP"))[: 1 if below else 2]:
            number = _number(pair.group(group))
            low, high = (None, number) if below else (number, None) if sign else (number, number)
            found.append(
                Condition(
                    low, high, "pressure", strict_low=strict and not below,
                    strict_high=strict and below, label=label,
                )
            )
        taken.append(pair.span())
    for match in _BETWEEN.finditer(text):
        kind = _kind(text, match.start(5), match.end(5))
        low, high = (_in_hours(_number(match.group(n)), kind, text, match.end()) for n in (1, 5))
        if low <= high:
            found.append(
                Condition(
                    low,
                    high,
                    kind,
                    strict_low=match.group(2) == "<",
                    strict_high=match.group(4) == "<",
                    label=_label(text, match.start(), original),
                )
            )
            taken.append(match.span())
    for match in [*_BETWEEN_AND.finditer(text), *_RANGE.finditer(text)]:
        if not free(*match.span()):
            continue
        low, high = _number(match.group(1)), _number(match.group(2))
        if match.re is _BETWEEN_AND:
            low, high = sorted((low, high))
        if low <= high:
            kind = _kind(text, match.start(), match.end())
            low, high = (_in_hours(bound, kind, text, match.end()) for bound in (low, high))
            found.append(Condition(low, high, kind, label=_label(text, match.start(), original)))
            taken.append(match.span())
    for pattern, open_high in ((_OR_MORE, True), (_OR_LESS, False)):
        for match in pattern.finditer(text):
            if free(*match.span()):
                kind = _kind(text, match.start(1), match.end(1))
                number = _in_hours(_number(match.group(1)), kind, text, match.end(1))
                found.append(
                    Condition(number, None, kind) if open_high else Condition(None, number, kind)
                )
                taken.append(match.span())
    for match in _COMPARISON.finditer(text):
        if not free(*match.span()):
            continue
        kind = _kind(text, match.start(2), match.end(2))
        sign = match.group(1).lower()
        number = _in_hours(_number(match.group(2)), kind, text, match.end(2))
        label = _label(text, match.start(), original)
        if sign in ("≥", ">=", "at least"):
            found.append(Condition(number, None, kind, label=label))
        elif sign in (">", "more than", "over", "above"):
            found.append(Condition(number, None, kind, strict_low=True, label=label))
        elif sign in ("≤", "<=", "within"):
            found.append(Condition(None, number, kind, label=label))
        elif sign in ("<", "less than", "under", "below"):
            found.append(Condition(None, number, kind, strict_high=True, label=label))
        else:
            found.append(Condition(number, number, kind, label=label))
        taken.append(match.span())
    for match in _PLAIN.finditer(text):
        if free(*match.span()) and not text[max(0, match.start() - 1) : match.start()].isalpha():
            kind = _kind(text, match.start(), match.end())
            number = _in_hours(_number(match.group(1)), kind, text, match.end())
            found.append(Condition(number, number, kind, label=_label(text, match.start(), original)))
    return found


def names_number(text: str, number: float) -> bool:
    """Whether `text` (a heading) names `number` as a plain number ("Office 130/80 mm Hg"), not
    as a bound of a range or comparison it states ("NEWS2 Score 5–6", "Score >= 7"): a heading
    naming a value says which table is asked about, one bounding it says which patients."""
    plain = _COMPARISON.sub(" ", _RANGE.sub(" ", text))
    return re.search(rf"(?<![\d.]){re.escape(f'{number:g}')}(?![\d.])", plain) is not None


# Measurements of the patient: stated as one number (not a range or a threshold), they
# describe an example patient.
_OF_THE_PATIENT = frozenset({"age", "weight", "percent"})
_PHYSICAL = frozenset(
    {
        "age", "weight", "kidney", "percent", "pressure", "time", "dose", "concentration",
        "temperature", "rate", "titer", "osmolality",
    }
)


def compatible(value: Value, condition: Condition) -> bool:
    """Whether a value and a condition measure the same kind of thing. A condition that does
    not say ("> 2.67" in a FIB-4 table) is compared with values that are not measurements
    (a score, a bare number), never with an age or a weight. Two acronyms name two different
    measurements ("ICP 26" is not compared with "SBP < 90")."""
    if value.label and condition.label:
        return value.label == condition.label  # "SBP 192" and "SBP 150-220 mmHg?"
    if value.measured and (condition.kind == "score" or not condition.kind):
        return bool(value.label) and value.label == condition.label
    if value.label and condition.kind in ("age", "weight"):
        return False  # "MAP 80" is no age
    if value.label in LAB_LABELS and condition.kind == "dose":
        return False  # "INR 9" is no dose of vitamin K
    if (
        value.label in LAB_LABELS
        and not value.kind
        and condition.kind not in ("", "concentration")
        and condition.label != value.label
    ):
        return False  # "eos under 300" is no FEV1 of "FEV1 < 50%"
    if condition.label in LAB_LABELS and value.label != condition.label:
        # A laboratory condition ("K+ > 5.0 mEq/L") is met by that measurement only, or by a
        # value given in its unit: a "30-a-day" smoker has no potassium of 30.
        return value.kind == condition.kind
    if not condition.kind:
        return value.kind not in _PHYSICAL
    if condition.kind == "time":
        return value.kind == "time"  # in hours: a bare number has no unit to convert
    return not value.kind or value.kind == condition.kind


def match(values: list[Value], condition_text: str, *, every: bool = False) -> int:
    """+1 when a value of the question meets a condition of `condition_text`, -1 when the
    condition text states conditions of the kinds the question gives and none is met, 0 when
    they cannot be compared (no values, no conditions, or different kinds). `every`: the
    conditions are steps of one path, all to be met ("LVEF still <= 35%? -> NO (LVEF > 35%)"
    is no branch for an EF of 25)."""
    # A loose value (a bare number of a follow-up's context) counts only where it is met; so
    # does a number of no unit read against an amount to give, which is no condition on the
    # patient: "SBP in the 90s" fails no "60 mg every 4 hours". (A dose the patient takes is
    # read against it: "on dabigatran 150 mg" meets "150 mg BID", not "20 mg once daily".)
    comparable = [
        (v, c)
        for v, c in _comparable(values, condition_text)
        if not (v.loose or (_amount_to_give(c) and v.kind != "dose")) or c.holds(v.number)
    ]
    if not comparable:
        return 0
    if any(
        c.low == c.high and c.kind in _OF_THE_PATIENT and v.kind == c.kind and not c.holds(v.number)
        for v, c in comparable
    ):
        # "A 70 kg patient with 30% TBSA: first 8 hours 4,200 mL" is a worked example for
        # another patient than an 80 kg one, whatever else it matches ("first 8 hours").
        return -1
    if every:
        # A bare amount on the way ("Add ivabradine 5 mg BID") is an action, not a step's
        # condition.
        met: dict[Condition, bool] = {}
        for v, c in comparable:
            if c.low != c.high:
                met[c] = met.get(c, False) or c.holds(v.number)
        if met:
            return 1 if all(met.values()) else -1
    return 1 if any(c.holds(v.number) for v, c in comparable) else -1


def _amount_to_give(condition: Condition) -> bool:
    return condition.kind == "dose" and condition.low == condition.high


def slack(values: list[Value], condition_text: str) -> float:
    """How closely the conditions of `condition_text` that the question's values meet fit
    them: the least distance from a value to a bound of a condition it meets (inf when none
    is met). A heart rate of 50 meets "< 100" and "< 60"; the second, closer bound is the
    branch written for it. Of bounds as close, a band's ("3-4") fits closer than an open
    condition's ("≥ 3"): it is written for fewer patients."""
    distances = [
        abs(v.number - bound) + 1e-10 * (c.high - c.low if c.low is not None and c.high is not None else 1e6)
        for v, c in _comparable(values, condition_text)
        if c.holds(v.number)
        for bound in (c.low, c.high)
        if bound is not None
    ]
    return min(distances, default=math.inf)


def _comparable(values: list[Value], condition_text: str) -> list[tuple[Value, Condition]]:
    """The (value, condition) pairs of the question's values and the conditions of
    `condition_text` that measure the same thing."""
    if not values:
        return []
    stated = conditions(condition_text)
    kinds = {v.kind for v in values}
    # A score's rows ("HEART Score 0-3") are read against the score the question gives ("HEART
    # 9", "score of 2"), not against its other bare numbers ("1.5 mm ST depression").
    # (A laboratory value, "glucose 540", is no score.)
    scores = [v for v in values if v.kind == "score" or (v.label and v.label not in LAB_LABELS)]
    # A condition of a kind the question gives a value of ("12%" for ">= 20%") is compared
    # with that value, not with a value of no stated kind ("LDL 130"); a condition of no
    # stated kind ("GBS >= 2") is compared with the question's score.
    comparable = [
        (v, c)
        for v in values
        for c in stated
        if compatible(v, c)
        and (
            # One name on both sides: "K 3.1" is read against "K+ < 3.5 mmol/L" though the
            # glucose has its unit, "EPDS 15" against "EPDS 13-19" though "item 10 scored 0"
            # gives a score.
            (v.label and v.label == c.label)
            or (
                (v.kind or c.kind)
                and (v.kind == c.kind or c.kind not in kinds or (v.kind == "score" and not c.kind))
                and not (c.kind == "score" and scores and v not in scores)
            )
        )
    ]
    if not comparable:
        # Neither side says what it measures in a unit: compare plain numbers only when both
        # name the same laboratory measurement ("eos under 300", "eosinophils < 300 cells/µL")
        # or the condition is a score-like small number and so is the value.
        comparable = [
            (v, c) for v in values for c in stated
            if not v.kind and not c.kind and compatible(v, c)
            and ((v.label in LAB_LABELS and v.label == c.label)
                 or (v.number <= 50 and (c.high or c.low or 0) <= 50))
        ]  # fmt: skip
    return comparable
