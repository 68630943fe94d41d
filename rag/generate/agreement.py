"""Sources on the same point: the newer leads, and a disagreement is said out loud.

An answer written from one guideline can be out of date or contested by another indexed
source: BTS 2009 recommends CURB-65 for the site-of-care decision, ATS/IDSA 2019 prefers the
PSI; a hospital's local note may state another colchicine dose than the ACR guideline. After a
draft is written (by any backend), `compare_sources` looks among the passages the answer was
written from for another source (another guideline title) whose best unit addresses the same
point: it shares most of the question's topical words, as much as the draft's own best unit
does. Such a source is added to the draft, labelled with organisation and year:

- when the two disagree (numbers in the same unit differ: "within 24 h" vs "within 72 h",
  "150-300 mg" vs "162-325 mg"; or one recommends against, prefers another option or no longer
  recommends what the other recommends), under "Sources differ on this point" at the top of
  the body, newer source first and the older marked as older guidance;
- when they agree, under "Other guidance on this point" after the body.

It works on passage numbers before the citation contract is enforced, so the added lines cite
like any other and every [n] resolves. `Disagreement` keeps each side's passage number;
`Engine.ask` turns them into citation numbers for the JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag.generate.abstention import DOSE_AMOUNT
from rag.generate.extractive import (
    answer_type,
    guideline,
    names_all,
    names_ruled_out,
    origin,
    quotable,
)
from rag.generate.units import Unit, passage_units, shown_text
from rag.generate.values import NAME_WITH_DIGITS
from rag.generate.wording import sentence_form
from rag.shorthand import BROAD_CLASSES, drug_forms, stems_with_full_forms, writes_form
from rag.text import DRUG_NAME, content_stems, negated_stems
from rag.types import Citation, Hit

# How much of the question's topical words a unit must share to address the same point, alone
# and against the draft's own best unit.
SAME_POINT_SHARE = 0.4
SAME_POINT_RATIO = 0.7
UNITS_COMPARED = 3  # the best units of each side whose pairs are compared
# With the embedder: another source's best unit addresses the point when its cosine with the
# question reaches this, and this share of the lead's best unit's.
SAME_POINT_COSINE = 0.55
SAME_POINT_COSINE_RATIO = 0.85
MEANING_UNITS = 64  # the most units embedded for one comparison (about a second here)
UNITS_BY_MEANING = 8  # the best units of each side compared, ranked by cosine
MAX_OTHER_SOURCES = 2

_MARKER = re.compile(r"\[(\d+)\]")
_BOTTOM_LINE = re.compile(r"^\W*bottom[\s-]+line\b", re.IGNORECASE)
_AGAINST = re.compile(
    r"\b(?:not recommended|no longer|should not|not be used|recommends? against|rather than|"
    r"(?:preferred|recommended|favou?red) over|instead of|avoid(?:ed)?|not routinely|is not|"
    r"are not|do not|does not)\b",
    re.IGNORECASE,
)
# What makes a statement a recommendation, whose direction can oppose another's ("CURB-65 is
# the recommended tool" / "PSI is preferred over CURB-65"); a limitation or a fact ("CURB-65
# does not account for radiographic severity") takes no side.
_RECOMMENDS = re.compile(
    r"\b(?:recommend\w*|suggest\w*|should|prefer\w*|indicated|first-line|advised|consider\w*|"
    r"(?:is|are) (?:the )?(?:tool|choice|option|treatment) of choice)\b",
    re.IGNORECASE,
)
# An amount and its unit; a range ("150-300 mg") or a blood pressure ("130/80 mm Hg") gives two.
# A unit per something is a unit of its own: 200 mg/dL of glucose is no 25 mg dose, and
# 3,500 mg/day of dietary potassium no 10 mg of finerenone. A percentage is not compared: it
# measures too many things (an FEV1, an LDL-C reduction, an oxygen fraction) to be one point.
_AMOUNT = re.compile(
    r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*(?:--|-|–|to|/)\s*(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?))?\s*"
    r"((?:mg|g|mcg|mm ?hg|mmol|ml|hours?|h|days?|weeks?|months?|years?|minutes?|min|points?)"
    r"(?:\s*/\s*(?:kg|dl|l|day|d|24 ?h|hr|h|min|g|m2|m²|1\.73 ?m2|1\.73 ?m²))*)(?![\w/])",
    re.IGNORECASE,
)
# An amount after these words is a look-back ("received antibiotics in the last 90 days"),
# not a value of the point (a course of 5 days).
_LOOK_BACK = re.compile(r"\b(?:last|past|previous|prior|preceding)\s*$", re.IGNORECASE)
_UNIT_FAMILY = {"hour": "h", "hours": "h", "day": "d", "days": "d", "week": "w", "weeks": "w",
                "month": "mo", "months": "mo", "year": "y", "years": "y", "minute": "min",
                "minutes": "min", "point": "pt", "points": "pt"}  # fmt: skip
_PER = {"hr": "h", "d": "day", "24h": "day", "m²": "m2", "1.73m²": "1.73m2"}
_DOSE_UNITS = frozenset({"mg", "g", "mcg", "ml", "mmol"})
# Per-unit families that are concentrations or ratios, not doses.
_NOT_DOSES = re.compile(r"/(?:dl|l|g|m2|m²|1\.73)")


@dataclass(frozen=True)
class Side:
    """One source's statement on the point: its passage number (1-based) and label."""

    passage: int
    label: str  # "ATS/IDSA 2019"
    year: int | None
    text: str


@dataclass(frozen=True)
class Disagreement:
    """Two or more sources stating different things on one point, newest first."""

    point: str
    sides: tuple[Side, ...]


def compare_sources(
    question: str,
    draft: str,
    passages: Sequence[Hit],
    generic_words: frozenset[str] = frozenset(),
    similarity: Callable[[Sequence[str]], Sequence[float]] | None = None,
) -> tuple[str, list[Disagreement]]:
    """`draft` with other sources on the same point added, and the disagreements found.

    `generic_words` are answer-type words ("dose", "recommended") that do not make a point.
    `similarity` (optional) gives each text's cosine with the question (the embedder's): with
    it, a unit is on the point by its meaning as well as by shared words, so "BP target: < 130/80
    mm Hg" under a CKD heading meets "what systolic target in CKD G3b?"."""
    cited = [
        n for n in dict.fromkeys(int(m) for m in _MARKER.findall(draft)) if 1 <= n <= len(passages)
    ]
    words = content_stems(question) - generic_words
    if not cited or len(words) < 2:
        return draft, []
    lead_titles = {guideline(passages[n - 1]) for n in cited}
    lead_units = _units_on_point([(n, passages[n - 1]) for n in cited], words)
    if not lead_units:
        return draft, []
    floor = max(SAME_POINT_SHARE, SAME_POINT_RATIO * lead_units[0][0])
    # A score or drug the question names with digits ("ABCD2", "CURB-65") is the point: another
    # source's unit that does not name it is about something else (the ICH score's rows). Not
    # a name the answer's own passages never write either: "G3b" in "CKD G3b with
    # hypertension" is the patient's stage, and a target for adults with CKD is on the point.
    lead_text = "\n".join(
        f"{passages[n - 1].section}\n{passages[n - 1].text}" for n in cited
    ).lower()
    names = {
        name.lower() for name in NAME_WITH_DIGITS.findall(question) if name.lower() in lead_text
    }
    # The passages of other guidelines on the question's subject: the only ones that may take
    # a side, by shared words or by meaning. Two documents of one organisation from one year
    # are one body of guidance, not sources that may disagree: ADA 2024's DKA insulin infusion
    # takes no side against ADA 2024's basal insulin.
    lead_origins = {origin(passages[n - 1]) for n in cited}
    other_sources = {
        n
        for n, hit in enumerate(passages, start=1)
        if guideline(hit) not in lead_titles
        and origin(hit) not in lead_origins
        and _on_subject(hit, words)
    }
    others: dict[str, list[tuple[float, Unit]]] = {}
    for n, hit in enumerate(passages, start=1):
        if n in other_sources:
            others.setdefault(guideline(hit), []).extend(
                (share, unit)
                for share, unit in _units_on_point([(n, hit)], words)
                if names_all(unit, names)
            )
    # Each unit's score as a share of the bar it must clear (1.0 and up: on the point), by
    # shared words and, with the embedder, by meaning: a source on the point by either counts.
    lead_units = _relative(lead_units, floor)
    others = {source: _relative(units, floor) for source, units in others.items()}
    on_point_by_words = {source for source, units in others.items() if units and units[0][0] >= 1.0}
    # A source that agrees is worth a line only when it is on the point by meaning and by
    # words, or names the drug asked about (meaning alone lets neighbouring statements
    # through: GOLD's "Initial therapy: bronchodilator" for asthma reversibility); one that
    # differs always is.
    drugs = set(DRUG_NAME.findall(question.lower()))
    agrees_worth_showing = set(others) if similarity is None else set()
    if similarity is not None:
        by_meaning, meaning_others, meaning_floor = _by_meaning(
            passages, cited, other_sources, names, similarity
        )
        lead_units = _merged(lead_units, _relative(by_meaning, meaning_floor))
        for source, units in meaning_others.items():
            others[source] = _merged(others.get(source, []), _relative(units, meaning_floor))
            if (
                units
                and units[0][0] >= meaning_floor
                and (source in on_point_by_words or _names_drug(units[0][1], drugs))
            ):
                agrees_worth_showing.add(source)
    # A source written for a population the question rules out ("Standards of Care in
    # Diabetes" for a patient with no diabetes) is not on the point.
    ruled_out = negated_stems(question)
    excluded = {
        guideline(hit)
        for hit in passages
        if names_ruled_out(f"{hit.title} {hit.section}", ruled_out)
    }
    # The condition the question is about, as the answer's guideline titles it ("intracerebral
    # hemorrhage" for "55 mL lobar ICH"): another source's statement is on the point only when
    # its title, section or words name it too. A TBI guideline's ICP rule is no side on an ICH
    # question, an endocarditis guideline's blood cultures none on a pneumonia one.
    condition = _condition_words(question, [passages[n - 1] for n in cited])
    ranked = sorted(
        (
            (
                source,
                [item for item in units if _names_condition(passages, item[1], condition)][
                    :UNITS_BY_MEANING
                ],
            )
            for source, units in others.items()
            if source not in excluded
        ),
        key=lambda item: -item[1][0][0] if item[1] else 0.0,
    )
    chosen = [(source, units) for source, units in ranked if units and units[0][0] >= 1.0]
    chosen = chosen[:MAX_OTHER_SOURCES]
    if not chosen:
        return draft, []
    lead_side = _side(passages, lead_units[0][1])
    # For a dose question, two statements differ on a dose, not on a time or a pressure they
    # mention on the side ("within 4.5 hours" beside "BP < 180/105 for 24 hours").
    asks_dose = answer_type(question) == "dose"
    differing: list[Side] = []
    agreeing: list[Side] = []
    for source, units in chosen:
        pair = next(
            ((mine, theirs) for _, mine in lead_units for _, theirs in units
             if _one_statement(mine) and _one_statement(theirs)
             and _shares_entity(mine, theirs, words)
             and _on_the_drug(mine, drugs) and _on_the_drug(theirs, drugs)
             and not _other_grades(mine, theirs)
             and _differ_on_shared_drugs(mine, theirs, doses_only=asks_dose)
             and not any(_agree_on_shared_drugs(mine, also) for _, also in units)),
            None,
        )  # fmt: skip
        if pair is None:
            # For a dose question, another source agrees on a dose, not on a BP to reach first;
            # and on the drug asked about, not on another ("metoprolol succinate 200 mg"
            # beside bisoprolol's dose).
            if (
                source in agrees_worth_showing
                and (not asks_dose or DOSE_AMOUNT.search(shown_text(units[0][1])))
                and _on_the_drug(units[0][1], drugs)
            ):
                agreeing.append(_side(passages, units[0][1]))
        else:
            lead_side = _side(passages, pair[0])
            differing.append(_side(passages, pair[1]))
    disagreements: list[Disagreement] = []
    if differing:
        sides = _newest_first([lead_side, *differing])
        disagreements.append(Disagreement(point=question.strip(), sides=tuple(sides)))
        draft = _after_bottom_line(
            draft, _section("Sources differ on this point", sides, lead_side)
        )
    if agreeing:
        draft = (
            draft.rstrip() + "\n\n" + _section("Other guidance on this point", agreeing, lead_side)
        )
    return draft, disagreements


# Words of a guideline's title that say what kind of document it is, not what it is about.
_TITLE_WORDS = frozenset(
    content_stems(
        "guideline guidelines guidance management clinical practice diagnosis treatment "
        "evaluation prevention detection assessment patients adults women international consensus "
        "definitions report strategy global standards care official statement scientific update "
        "edition society american association college committee opinion campaign acute chronic "
        "severe early disease disorder pharmacological pharmacologic method"
    )
)


def _condition_words(question: str, cited: Sequence[Hit]) -> frozenset[str]:
    """The words of the answer's guideline titles, beyond what kind of document each is, that
    the question (its shorthand spelled out) names: the condition it asks about."""
    titles = set().union(*(content_stems(hit.title) for hit in cited)) - _TITLE_WORDS
    return frozenset(
        word for word in titles & stems_with_full_forms(question) if not word.isdigit()
    )


def _names_condition(passages: Sequence[Hit], unit: Unit, condition: frozenset[str]) -> bool:
    """Whether `unit`'s guideline title, section or words name one of the `condition` words
    (any unit does when the question names no condition of the answer's guidelines)."""
    if not condition:
        return True
    hit = passages[unit.passage - 1]
    return bool(
        stems_with_full_forms(f"{hit.title} {hit.section} {shown_text(unit)}") & condition
    )


def _on_subject(hit: Hit, words: frozenset[str]) -> bool:
    """Whether `hit`'s guideline title or section path names one of the question's topical
    `words`: another source is on the question's subject before any of its statements can be
    on its point. GINA's "symptoms improving, consider discharge" shares "improving" with a
    question on a pyelonephritis course, but nothing in "Asthma > Acute exacerbations" is
    what the question is about."""
    return bool(content_stems(f"{hit.title} {hit.section}") & words)


def _relative(units: Sequence[tuple[float, Unit]], floor: float) -> list[tuple[float, Unit]]:
    return [(score / floor, unit) for score, unit in units]


def _merged(*lists: Sequence[tuple[float, Unit]]) -> list[tuple[float, Unit]]:
    """The units of `lists`, each once with its best score, best first."""
    best: dict[tuple[int, str], tuple[float, Unit]] = {}
    for units in lists:
        for score, unit in units:
            key = (unit.passage, shown_text(unit))
            if key not in best or score > best[key][0]:
                best[key] = (score, unit)
    return sorted(best.values(), key=lambda item: -item[0])


def _by_meaning(
    passages: Sequence[Hit],
    cited: Sequence[int],
    other_sources: set[int],
    names: set[str],
    similarity: Callable[[Sequence[str]], Sequence[float]],
) -> tuple[list[tuple[float, Unit]], dict[str, list[tuple[float, Unit]]], float]:
    """The lead units, the units of the passages `other_sources` by guideline (best
    UNITS_BY_MEANING each) and the floor a source's best unit must reach, all by cosine with
    the question: the floor is SAME_POINT_COSINE, or SAME_POINT_COSINE_RATIO of the lead's best
    if higher. At most MEANING_UNITS units are embedded, the lead's cited passages' first."""
    candidates: list[Unit] = []
    for n, hit in enumerate(passages, start=1):
        if quotable(hit) and (n in cited or n in other_sources):
            candidates += [
                unit
                for unit in passage_units(hit, n)
                if not unit.is_header_only and (n in cited or names_all(unit, names))
            ]
    candidates.sort(key=lambda unit: unit.passage not in cited)
    candidates = candidates[:MEANING_UNITS]
    if not candidates:
        return [], {}, 1.0
    cosines = similarity([f"{unit.section}: {shown_text(unit)}" for unit in candidates])
    scored = sorted(zip(cosines, candidates, strict=True), key=lambda item: -item[0])
    lead = [(float(c), unit) for c, unit in scored if unit.passage in cited][:UNITS_BY_MEANING]
    others: dict[str, list[tuple[float, Unit]]] = {}
    for cosine, unit in scored:
        if unit.passage not in cited:
            source = others.setdefault(guideline(passages[unit.passage - 1]), [])
            if len(source) < UNITS_BY_MEANING:
                source.append((float(cosine), unit))
    floor = max(SAME_POINT_COSINE, SAME_POINT_COSINE_RATIO * lead[0][0]) if lead else 1.0
    return lead, others, floor


def _differ_on_shared_drugs(mine: Unit, theirs: Unit, *, doses_only: bool) -> bool:
    """Whether two units differ in what they say of the drugs both name (all they say, when
    they name none in common)."""
    shared = _drugs_of(mine) & _drugs_of(theirs)
    return differ(
        _said_of(shown_text(mine), shared), _said_of(shown_text(theirs), shared),
        doses_only=doses_only,
    )  # fmt: skip


def _agree_on_shared_drugs(mine: Unit, theirs: Unit) -> bool:
    """Whether `theirs` states amounts for the drugs both units name and all of them are
    amounts `mine` states too: a source whose table gives the lead's "1 mg/kg every 12 hours"
    in one row and "1.5 mg/kg once daily (alternative)" in the next offers an alternative, it
    does not disagree."""
    shared = _drugs_of(mine) & _drugs_of(theirs)
    if not shared:
        return False
    amounts_a = _amounts(_said_of(shown_text(mine), shared))
    amounts_b = _amounts(_said_of(shown_text(theirs), shared))
    common = set(amounts_a) & set(amounts_b)
    return bool(common) and all(amounts_a[family] & amounts_b[family] for family in common)


# Grades of one scale a heading names ("High-Intensity Statin", "Moderate-Intensity Statin
# Therapy"; "Mild", "Severe"): statements under two different grades are on two points.
_GRADES = frozenset({"low", "moderate", "high", "mild", "severe", "intermediate"})


def _other_grades(a: Unit, b: Unit) -> bool:
    """Whether the headings of `a` and `b` both name a grade and share none: rosuvastatin
    5-10 mg under "Moderate-Intensity Statin Therapy" and 20-40 mg under "High-Intensity
    Statin" are two intensities, not two sources disagreeing on one dose."""
    grades_a = set(re.findall(r"[a-z]+", a.section.lower())) & _GRADES
    grades_b = set(re.findall(r"[a-z]+", b.section.lower())) & _GRADES
    return bool(grades_a) and bool(grades_b) and not grades_a & grades_b


def differ(a: str, b: str, *, doses_only: bool = False) -> bool:
    """Whether two statements on one point disagree: amounts in the same unit that share no
    value (only dose units when `doses_only`), or (when neither states amounts in a unit the
    other uses, and both are recommendations) one recommending against, or preferring another
    option, and the other not."""
    amounts_a, amounts_b = _amounts(a), _amounts(b)
    if doses_only:
        amounts_a = {family: v for family, v in amounts_a.items() if _is_dose(family)}
        amounts_b = {family: v for family, v in amounts_b.items() if _is_dose(family)}
    shared = set(amounts_a) & set(amounts_b)
    for family in shared:
        if not amounts_a[family] & amounts_b[family]:
            return True
    if shared:
        # The same amounts: "avoid in acute HF" beside the same nicardipine dose is a note,
        # not a conflict.
        return False
    if bool(amounts_a) != bool(amounts_b):
        return False  # a dose beside a choice of drug: two kinds of statement, not a conflict
    if not (_RECOMMENDS.search(a) and _RECOMMENDS.search(b)):
        return False  # a limitation or a fact beside a recommendation takes no side
    return bool(_AGAINST.search(a)) != bool(_AGAINST.search(b))


def _is_dose(family: str) -> bool:
    """Whether an amount of this unit family is a dose ("mg", "mg/kg", "mL/kg/h"), not a
    concentration or ratio ("mg/dL", "mmol/L", "mg/g")."""
    return family.split("/")[0] in _DOSE_UNITS and not _NOT_DOSES.search(family)


def _amounts(text: str) -> dict[str, set[float]]:
    found: dict[str, set[float]] = {}
    for match in _AMOUNT.finditer(text):
        if _LOOK_BACK.search(text[: match.start()]):
            continue
        low, high, unit = match.groups()
        unit = re.sub(r"\s+", "", unit.lower())
        base, *per = unit.split("/")
        family = "/".join([_UNIT_FAMILY.get(base, base), *(_PER.get(p, p) for p in per)])
        values = found.setdefault(family, set())
        values.add(float(low.replace(",", "")))
        if high:
            values.add(float(high.replace(",", "")))
    return found


def _units_on_point(
    numbered: Sequence[tuple[int, Hit]], words: frozenset[str]
) -> list[tuple[float, Unit]]:
    """The best units of these passages by their share of the question's words, best first."""
    scored = []
    for n, hit in numbered:
        if not quotable(hit):
            continue
        for unit in passage_units(hit, n):
            if unit.is_header_only:
                continue
            own = content_stems(shown_text(unit)) & words
            heading = (content_stems(unit.section) & words) - own
            share = (len(own) + 0.5 * len(heading)) / len(words)  # the heading counts half
            if share > 0:
                scored.append((share, unit))
    scored.sort(key=lambda item: -item[0])
    return scored[:UNITS_COMPARED]


def _names_drug(unit: Unit, drugs: set[str]) -> bool:
    """Whether `unit` names one of `drugs` (lower-cased names)."""
    return bool(drugs & _drugs_of(unit))


def _drugs_of(unit: Unit) -> set[str]:
    """The drugs `unit` names by their shapes (DRUG_NAME), lower-cased; a unit naming none is
    on the drug its heading names (the row "CKD stage 1-2 | <= 100 mg/day" under "Allopurinol
    Dosing in CKD")."""
    return set(DRUG_NAME.findall(shown_text(unit).lower())) or set(
        DRUG_NAME.findall(unit.section.lower())
    )


def _said_of(text: str, drugs: set[str]) -> str:
    """What `text` says of `drugs`: a statement naming several drugs, from each mention of one
    of `drugs` to the next drug it names ("Add ticagrelor (180 mg load) OR prasugrel (only
    after coronary anatomy is known)" says no dose of prasugrel); otherwise all of it."""
    lowered = text.lower()
    mentions = list(DRUG_NAME.finditer(lowered))
    if len({mention.group(0) for mention in mentions}) < 2 or not drugs:
        return text
    spans = [
        text[mention.start() : mentions[i + 1].start() if i + 1 < len(mentions) else len(text)]
        for i, mention in enumerate(mentions)
        if mention.group(0) in drugs
    ]
    return " ".join(spans) if spans else text


_BROAD_CLASS = r"\b(?:" + "|".join(re.escape(form) for form in sorted(BROAD_CLASSES)) + r")s?\b"


def _one_statement(unit: Unit) -> bool:
    """Whether `unit` says one thing: not a whole list or table, whose items and rows are
    units of their own (a list's "should be continued" and "should be discontinued" are two
    statements, and a side that runs them together reads as neither)."""
    return unit.kind not in ("list", "table")


def _on_the_drug(unit: Unit, drugs: set[str]) -> bool:
    """Whether `unit` is on the `drugs` the question names: it names one of them (or its
    class), or names no drug at all ("a course of 7 days" for pyelonephritis on ceftriaxone).
    One naming only other drugs or a class of them is not: GINA's "biologic therapy should be
    continued during pregnancy" is about asthma's biologics, no side on certolizumab."""
    if not drugs:
        return True
    text = shown_text(unit).lower()
    forms = [form for drug in drugs for form in drug_forms(drug)]
    if writes_form(text, forms):
        return True
    if DRUG_NAME.search(text) or re.search(_BROAD_CLASS, text):
        return False
    # Naming no drug itself, it is on the drug its heading names, if any.
    heading = unit.section.lower()
    return not DRUG_NAME.search(heading) or writes_form(heading, forms)


def _shares_entity(a: Unit, b: Unit, words: frozenset[str]) -> bool:
    """Whether two units both name one of the question's words in their own text (not only
    in their headings): they talk about the same thing. Two units naming drugs talk about
    the same thing only when they name one drug in common: a losartan row and a lisinopril
    row give two drugs' doses, not two sources' doses of one."""
    drugs_a, drugs_b = _drugs_of(a), _drugs_of(b)
    if drugs_a and drugs_b and not drugs_a & drugs_b:
        return False
    # A number both write ("1 point", "1 mm") is no shared thing.
    shared = content_stems(shown_text(a)) & content_stems(shown_text(b)) & words
    return any(not word.isdigit() for word in shared)


def _side(passages: Sequence[Hit], unit: Unit) -> Side:
    hit = passages[unit.passage - 1]
    # A table row is said as a sentence under its header, not as its cells run together.
    text = sentence_form(unit) if unit.kind in ("row", "table") else shown_text(unit)
    return Side(unit.passage, origin(hit) or hit.doc_id, hit.year, text)


def _newest_first(sides: Sequence[Side]) -> list[Side]:
    return sorted(sides, key=lambda side: -(side.year or 0))


def _section(heading: str, sides: Sequence[Side], lead: Side) -> str:
    newest = max((side.year or 0) for side in [*sides, lead])
    lines = [f"### {heading}", ""]
    for side in sides:
        label = side.label
        if side.year and side.year < newest:
            label += " (older guidance)"
        elif (
            side.year
            and side.year == newest
            and any((s.year or 0) < newest for s in [*sides, lead])
        ):
            label += " (newer)"
        text = side.text.rstrip().rstrip(".")
        lines.append(f"- {label}: {text} [{side.passage}].")
    return "\n".join(lines)


def _after_bottom_line(draft: str, section: str) -> str:
    lines = draft.splitlines()
    for i, line in enumerate(lines):
        if _BOTTOM_LINE.match(line):
            return "\n".join([*lines[: i + 1], "", section, "", *lines[i + 1 :]])
    return f"{section}\n\n{draft}"


def cited_sides(
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
