"""A score the question's values add up to.

"71F, AMT 9/10, urea 8.2 mmol/L, RR 26, BP 118/58: what's her CURB-65?" gives a value for
each criterion of the CURB-65 table a passage holds: urea 8.2 meets "> 7 mmol/L" (1 point),
the diastolic 58 meets "diastolic <= 60" (1), the age 71 meets "Age >= 65" (1), RR 26 misses
">= 30" and AMT 9 misses "<= 8". Their sum, 3, is the score the answer's row is chosen by
("Score 3-5"), and the answer shows the working so the clinician can check it.

A component table is a Markdown table whose points are a column ("Component | Criteria |
Points", the component written once for its rows), its header ("Variable | 0 Points | 1
Point | 2 Points") or its intro ("Criteria (1 point each)", "Each factor receives 1 point"),
or a list whose items give their points ("Hemoptysis: 1.0 point") or are counted one each
("at least two of the following three"). A component counts when the question gives a number
for it (after its name, its acronym or ward shorthand: "RR 26", "Hb 11.4"; the patient's age;
a number in the criterion's unit: "45 minutes") that meets a criterion, or names what a
worded criterion says ("melaena", "on insulin") without ruling it out ("no syncope"). What
the question does not state is counted as absent and named. A score is added up only for a
table the question asks for ("her CURB-65", "ABCD2?", "Rockall score"; not the "ICH" of
"cerebellar ICH 18 mL") and only from two components or more.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rag.generate.values import NAME_WITH_DIGITS, SCALE, Condition, Value, question_values
from rag.generate.values import conditions as value_conditions
from rag.index.lexical import american_spelling
from rag.shorthand import alternatives, stems_with_full_forms
from rag.text import (
    CONTEXT_OPENER,
    HEADING,
    LIST_ITEM,
    STOPWORDS,
    TABLE_ROW,
    TABLE_RULE,
    asked_part,
    asking_sentences,
    content_stems,
    is_everyday_english,
    plain,
    section_headings,
    told_sentences,
)
from rag.types import Chunk, Hit

# An intro giving every row one point: "Criteria (1 point each)", "Each factor receives 1
# point", "Assign 1 point for each of the following".
_ONE_POINT_EACH = re.compile(
    r"\b1 point (?:each|for each)\b|\beach (?:\w+ )?(?:receives|scores|is worth) 1 point\b",
    re.IGNORECASE,
)
_POINTS_COLUMN = re.compile(r"^(?:points?|score)$", re.IGNORECASE)
_POINTS_HEADER = re.compile(r"^(\d+)\s*points?$", re.IGNORECASE)
# A header of bare points, one column each ("Parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3" in NEWS2;
# "0 (on air)"): what a value in that column scores.
_BARE_POINTS = re.compile(r"^(\d)(?:\s*\([^)]*\))?$")
_YES = re.compile(r"^(?:yes|present)$", re.IGNORECASE)
_NO = re.compile(r"^(?:no|none|absent)$", re.IGNORECASE)
# A number the question gives for something it names just before ("urea 8.2", "BP 118/58",
# "GCS of 11", "AMT 9/10"); group 1: up to three words naming it, 2 and 3: the number(s).
_LABELLED = re.compile(
    r"((?:[A-Za-z][\w-]*\s+){0,2}[A-Za-z][\w-]*)\s*(?:(?:of|is|was|at|=|:)\s*)?"
    r"(\d+(?:\.\d+)?)(?:\s*/\s*(\d+(?:\.\d+)?))?"
)
_UNIT = re.compile(r"\b(mL|min(?:utes?)?|bpm|mmHg|mm|years?)\b")
# Words a criterion's name shares with others that do not tell it apart ("History of
# diabetes mellitus", "Preoperative serum creatinine").
_GENERIC = content_stems(
    "history preoperative presentation present requiring score criteria disease risk other "
    "failure scale"
)
# What a question rules out: from "no", "without", "denies" to the end of its clause ("no
# heart failure or stroke", "No melaena or syncope, no liver or heart disease").
_RULED_OUT = re.compile(r"\b(?:no|not|without|denies|never had)\s+([^,.;:?]+)", re.IGNORECASE)
# A test the question reports negative or normal ("first troponin negative", "first troponin
# normal", "negative troponin") and a habit it reports given up ("ex-smoker", "non-smoker"):
# ruled out too.
_NEGATIVE = re.compile(
    r"\b([A-Za-z][\w-]*)\s+(?:(?:was|is|came back)\s+)?(?:negative|normal)\b"
    r"|\b(?:negative|normal)\s+([A-Za-z][\w-]*)"
    r"|\b(?:ex|non|former|never)[- ]?(smok\w*)",
    re.IGNORECASE,
)
# A criterion that counts risk factors ("≥3 CAD risk factors (family history of CAD,
# hypertension, hypercholesterolemia, diabetes mellitus, or current smoker)", "1–2 risk
# factors") and where the factors are listed: in its brackets, or in a note by the table
# ("Risk factors include: Hypertension, Diabetes Mellitus, current smoker, obesity (BMI > 30)").
_COUNTS_FACTORS = re.compile(r"\brisk factors\b", re.IGNORECASE)
_FACTORS_LISTED = re.compile(
    r"\brisk factors\s*(?:\(((?:[^()]|\([^()]*\))+)\)|include:?\s*([^.\n]+))", re.IGNORECASE
)
# Words of a listed factor that do not tell it apart ("current smoker", "family history of
# premature CAD": "family" does).
_FACTOR_GENERIC = content_stems("current known premature history disease CAD coronary mellitus")
# The words a score table and a ward question write differently for one finding (British
# spellings, "melaena", are respelled by rag.index.lexical.american_spelling).
_SAME = {
    r"\bliver\b": "hepatic", r"\bheart\b": "cardiac", r"\bkidney\b": "renal",
    r"\bhigh cholesterol\b|\bhyperlipid\w*|\bdyslipid\w*": "hypercholesterolemia",
    # "1 mm ST depression" is an ST-segment deviation.
    r"\bST[- ](?:segment )?(?:depression|elevation)\b": "deviation",
    r"\bconfused\b": "confusion", r"\bIVH\b|\bintraventricular\b": "IVH",
    r"\bposterior fossa\b|\bcerebell|\bbrainstem\b": "infratentorial",
    # A finding on one side ("right arm weakness") is unilateral.
    r"\b(?:right|left)(?:-sided)?\b|\b[LR] (?=arm|leg|hand|face)": "unilateral",
}
_PRESSURE_SIDE = re.compile(r"\b(systolic|diastolic)\b", re.IGNORECASE)
# A component for one sex ("Hemoglobin — Female (g/dL)") and how a question gives the sex.
_SEXES = {"female": r"\b\d{1,3}\s?F\b|\b(?:woman|female|she|her|lady|girl)\b",
          "male": r"\b\d{1,3}\s?M\b|\b(?:man|male|he|his|him|gentleman|boy)\b"}


@dataclass(frozen=True)
class Item:
    """One way to earn points: a component's criterion and what it scores."""

    component: str
    criterion: str
    points: float
    header: tuple[str, ...] = ()  # the header of its table
    row: str = ""  # the component its row names, when it is counted on its own ("Other Markers")


@dataclass(frozen=True)
class Tally:
    """The score the question's values add up to, with the working: each component counted
    (what the question said of it, its points) and those the question does not state."""

    name: str
    total: float
    counted: tuple[tuple[str, float], ...]
    unstated: tuple[str, ...]
    passages: tuple[int, ...]  # the 1-based numbers of the passages holding the table
    headers: frozenset[tuple[str, ...]] = frozenset()  # the component table's header
    scored: frozenset[tuple[str, str]] = frozenset()  # (component, criterion) that scored
    measured: frozenset[str] = frozenset()  # the components the question gave a number for
    ceiling: float = 0.0  # the total if every component not stated scored its most

    def is_component(self, header: Sequence[str]) -> bool:
        """Whether a table unit with `header` is the component table added up: the story's
        values are counted in the working, not matched to its rows again."""
        return tuple(plain(cell).strip() for cell in header) in self.headers

    def is_scored(self, cells: Sequence[str]) -> bool:
        """Whether a row of the table (its `cells`) is a criterion that scored, or the first
        row of a component the question gave a number for (its threshold, met or not): shown,
        with the table's header, so the clinician can check the working against it."""
        said = [plain(cell).strip() for cell in cells]
        if not said or not said[0]:
            return False  # a row under another's component ("| | 10.0–11.9 | 3"): whose?
        component = _component(said[0])
        if component in self.measured:
            return True
        return any((component, cell) in self.scored for cell in said[1:]) or (
            len(said) == 2 and (component, f"{component}: {said[1]}") in self.scored
        )

    @property
    def most(self) -> float:
        """The most points one component scored."""
        return max((points for _, points in self.counted), default=0.0)

    @property
    def passage(self) -> int:
        return self.passages[0]

    def sentence(self) -> str:
        scored = ", ".join(f"{said} ({points:g})" for said, points in self.counted if points)
        text = (
            f"By the values given, {self.name} is {self.total:g}: "
            f"{scored or 'no component scores'}"
        )
        nothing = [said for said, points in self.counted if not points]
        if nothing:
            text += f"; 0 for {', '.join(nothing)}"
        if self.unstated:
            text += f"; not stated, counted as absent: {', '.join(self.unstated)}"
            if self.ceiling > self.total:
                # What is not stated may change the band: "HEART is 3" with troponin unstated
                # is not a low-risk patient yet.
                text += f" (up to {self.ceiling:g} if present)"
        return text


SCORE_ROW_CHUNKS = 2  # chunks of the score's rows added beside its component table


def with_whole_tables(
    question: str, hits: Sequence[Hit], chunks_of: Callable[[str], Sequence[Chunk]]
) -> list[Hit]:
    """`hits` with, after a hit holding part of a component table the question names (with no
    score of its own), the other chunks of its section: a table the chunker cut into parts is
    added up whole. Then the document's chunks that give a value of the score ("GBS ≥ 7",
    "CURB-65 3–5"), at most SCORE_ROW_CHUNKS: the rows the total picks from. Ranks are
    renumbered 1..n."""
    names = _asked_scores(question)
    if not names:
        return list(hits)
    # Looked up only for a score the question itself asks for: a follow-up's context ("And
    # the 7-day risk for her? (context: ... no diabetes ABCD2)") has lost the story's "no".
    hits = _with_component_tables(_asked_scores(asked_part(question)), hits, chunks_of)
    present = {hit.chunk_id for hit in hits}
    whole: list[Hit] = []
    for hit in hits:
        whole.append(hit)
        contexts = [context for context, _ in _component_tables(hit)]
        named = [name for name in names if any(_names(context, name) for context in contexts)]
        if not named:
            continue
        chunks = chunks_of(hit.doc_id)
        for chunk in chunks:
            if chunk.section == hit.section and chunk.id not in present:
                present.add(chunk.id)
                whole.append(replace(hit, chunk_id=chunk.id, text=chunk.text))
        # The score's rows may sit in another section, under its short name: "Glasgow-Blatchford
        # Score (GBS)" is read in a disposition tree as "GBS ≥ 7".
        aliases = named + [
            short
            for context in contexts
            for name in named
            for short in re.findall(
                rf"{re.escape(name)}[^()]{{0,12}}\(([A-Z][A-Za-z0-9-]+)\)", context, re.IGNORECASE
            )
        ]
        alias = rf"(?<![\w-])(?:{'|'.join(map(re.escape, aliases))})(?![\w-])"
        valued = re.compile(
            rf"{alias}(?:\s+score)?\s*(?:=|≥|>=|≤|<=|<|>|of)?\s*\d", re.IGNORECASE
        )
        # ... or under a heading naming it ("2-Day Stroke Risk by ABCD2 Score": "0–3 | Low").
        headed = re.compile(alias, re.IGNORECASE)
        # ... or in a table whose first column is the score ("| NEWS2 Score | Clinical Risk |").
        columned = re.compile(rf"^\|\s*(?:\*\*)?{alias}", re.IGNORECASE | re.MULTILINE)
        # ... or in a table with a column of scores before what they mean ("| Risk Group |
        # Score | Actionable Recommendation |": TIMI's bands, under a heading not naming it).
        banded = re.compile(
            rf"^\|(?:[^|\n]*\|)*?\s*(?:\*\*)?(?:(?:{alias}|total)\s+)?score(?:\*\*)?\s*\|[^|\n]+\|",
            re.IGNORECASE | re.MULTILINE,
        )
        rows = [
            c
            for c in chunks
            if c.id not in present
            and (
                valued.search(c.text)
                or columned.search(c.text)
                or banded.search(c.text)
                or headed.search(" ".join(section_headings(c.section)[-1:]))
            )
        ]
        for chunk in rows[:SCORE_ROW_CHUNKS]:
            present.add(chunk.id)
            whole.append(replace(hit, chunk_id=chunk.id, text=chunk.text, section=chunk.section))
    return [replace(hit, rank=rank) for rank, hit in enumerate(whole, start=1)]


def _with_component_tables(
    names: Sequence[str], hits: Sequence[Hit], chunks_of: Callable[[str], Sequence[Chunk]]
) -> list[Hit]:
    """`hits` with, after the first hit of a document, that document's chunk holding the
    component table of a score the question asks for when no hit holds it: retrieval may
    find the score's risk rows ("2-Day Stroke Risk by ABCD2 Score") and not the points
    they are added up from."""
    held = {
        name
        for hit in hits
        for context, _ in _component_tables(hit)
        for name in names
        if _names(context, name)
    }
    wanted = [name for name in names if name not in held]
    if not wanted:
        return list(hits)
    present = {hit.chunk_id for hit in hits}
    read: set[str] = set()  # documents whose chunks were looked through
    out: list[Hit] = []
    for hit in hits:
        out.append(hit)
        if hit.doc_id in read:
            continue
        read.add(hit.doc_id)
        for chunk in chunks_of(hit.doc_id):
            if chunk.id in present:
                continue
            candidate = replace(hit, chunk_id=chunk.id, text=chunk.text, section=chunk.section)
            tables = _component_tables(candidate)
            if any(_names(context, name) for context, _ in tables for name in wanted):
                present.add(chunk.id)
                out.append(candidate)
    return out


def tally(question: str, hits: Sequence[Hit]) -> Tally | None:
    """The score `question`'s values add up to on a component table of `hits` that the
    question names, None when the question gives the score itself, names no such table or
    states fewer than two of its components. A follow-up's context does not name it: what the
    context keeps of the story ("And the 7-day risk for her? (context: 64f 40 min arm ...)")
    is not enough to add up."""
    names = _asked_scores(asked_part(question))
    if not names:
        return None
    # A table the chunker cut into parts is read whole: the parts of one section are joined.
    tables: dict[tuple[str, str], tuple[list[int], list[str], list[Item]]] = {}
    # The intro giving each row one point sits in the first part of a table the chunker cut.
    one_each = {
        (hit.doc_id, hit.section)
        for hit in hits
        if _ONE_POINT_EACH.search(f"{hit.section} {hit.text}")
    }
    for passage, hit in enumerate(hits, start=1):
        for context, items in _component_tables(hit, (hit.doc_id, hit.section) in one_each):
            held, contexts, joined = tables.setdefault((hit.doc_id, hit.section), ([], [], []))
            held.append(passage)
            contexts.append(context)
            joined.extend(item for item in items if item not in joined)
    best: Tally | None = None
    scale = SCALE.search(question)
    for (doc_id, section), (held, contexts, items) in tables.items():
        context = " ".join(contexts)
        said = [n for n in names if _names(context, n)]
        if not said:
            continue
        if scale:
            # The scale the question names ("NEWS2 on scale 2") replaces the table's rows for
            # another ("SpO₂ Scale 1") by the rows of its own table in the same document.
            items = [i for i in items if SCALE.search(i.component) is None] + [
                item
                for (other_doc, other), (_, other_contexts, other_items) in tables.items()
                if other_doc == doc_id and other != section
                and any(
                    named.group(1) == scale.group(1)
                    for named in SCALE.finditer(" ".join(other_contexts))
                )
                for item in other_items
            ]
        # Called as the table calls itself ("rcri" in a follow-up's context: "RCRI").
        found_name = re.search(re.escape(said[0]), context, re.IGNORECASE)
        name = found_name.group(0) if found_name else said[0]
        factors = listed_factors("\n".join(hit.text for hit in hits if hit.doc_id == doc_id))
        found = _add_up(question, _for_sex(items, question), name, tuple(held), factors)
        if found is not None and (best is None or len(found.counted) > len(best.counted)):
            best = found
    return best


def measured(added_up: Tally | None, values: Sequence[Value]) -> list[Value]:
    """`values` marked as measurements when they add up to a score (`added_up`): "RR 22, HR
    98, temp 37.2. What's her NEWS2?" gives no NEWS2 of 22, 98 or 37."""
    if added_up is None:
        return list(values)
    return [replace(value, measured=True) for value in values]


def _for_sex(items: list[Item], question: str) -> list[Item]:
    """`items` without the components for the other sex than the question's; both kept when
    it gives none."""
    sexes = [sex for sex, pattern in _SEXES.items() if re.search(pattern, question)]
    if len(sexes) != 1:
        return items
    other = "male" if sexes[0] == "female" else "female"
    return [i for i in items if not re.search(rf"\b{other}\b", i.component, re.IGNORECASE)]


def _asked_scores(question: str) -> list[str]:
    """The names `question` asks a score by (see _asks_score); none when it gives the score
    itself ("CURB-65 of 2": the score is given, not to be worked out)."""
    if any(value.kind == "score" for value in question_values(question)):
        return []
    return [name for name in _named_scores(question) if _asks_score(question, name)]


def _named_scores(question: str) -> list[str]:
    """The names `question` may call a score by: names with digits ("CURB-65", "ABCD2"),
    acronyms ("RCRI", "GBS") and the word before "score" or "class" ("Rockall score")."""
    names = [match.group(0) for match in NAME_WITH_DIGITS.finditer(question)]
    # Any other word may be a score's name ("RCRI", "Rockall", "rcri" in a follow-up's
    # context): _names holds it to a table called by it.
    names += re.findall(r"[A-Za-z][A-Za-z-]{2,}", question)
    common = STOPWORDS | {"total", "score", "risk", "class"}
    return [name for name in dict.fromkeys(names) if name.lower() not in common]


def _asks_score(question: str, name: str) -> bool:
    """Whether `question` asks for the score `name`, not about its disease: a name with digits
    ("CURB-65"), one the question calls a score ("ICH score", "Child-Pugh class"), one the
    sentences that ask name ("What's her RCRI?"), or, in a follow-up asking about "that
    score", one its conversation named. "Cerebellar ICH 18 mL, GCS 14. Conservative or OR?"
    asks about the haemorrhage, not its ICH score."""
    if NAME_WITH_DIGITS.fullmatch(name):
        return True
    word = rf"(?<![\w-]){re.escape(name)}(?![\w-])"
    called = rf"{word}\s+(?:score|class|index|criteria|grade|points)\b"
    if re.search(called, question, re.IGNORECASE):
        return True
    if not name.isupper() and is_everyday_english(name):
        return False  # "heart failure" names no HEART score, "news" no NEWS2
    asking = asking_sentences(question)
    if re.search(word, asking, re.IGNORECASE):
        return True
    _, _, context = question.partition(CONTEXT_OPENER)
    return bool(
        re.search(r"\bscore\b", asking, re.IGNORECASE)
        and re.search(word, context, re.IGNORECASE)
    )


def _names(context: str, name: str) -> bool:
    """Whether `context` calls its table by `name`: a name with digits anywhere in it, other
    names before "score", "index" or "class" ("RCRI Risk Factors" aside, an organisation's
    acronym is no score's name)."""
    pattern = rf"(?<![\w-]){re.escape(name)}(?![\w-])"
    if not NAME_WITH_DIGITS.fullmatch(name):
        pattern += (
            r"\s*(?:\([A-Z]+\)\s*)?(?:risk\s+)?"
            r"(?:score|index|class|classification|criteria|factors)\b"
        )
    return re.search(pattern, context, re.IGNORECASE) is not None


def _component_tables(hit: Hit, one_each: bool = False) -> list[tuple[str, list[Item]]]:
    """The component tables of `hit`'s text, each with what names it (the section path, the
    headings and prose above it) and its items. A list is one too when its items give their
    points ("- **Hemoptysis**: 1.0 point") or its intro gives each one point ("Assign 1 point
    for each of the following", "at least two of the following three")."""
    found: list[tuple[str, list[Item]]] = []
    lines = hit.text.splitlines()
    above: list[str] = list(section_headings(hit.section))
    i = 0
    while i < len(lines):
        if LIST_ITEM.match(lines[i]):
            start = i
            while i < len(lines) and (LIST_ITEM.match(lines[i]) or lines[i].startswith("  ")):
                i += 1
            # One point each only by the intro right above the list: another list of the
            # chunk ("Anti-ischemic therapy") is no criteria list.
            intro = plain(above[-1]) if above else ""
            each = bool(_ONE_POINT_EACH.search(intro) or _SOME_OF.search(intro))
            items = _listed(lines[start:i], each)
            if items:
                found.append((" ".join(above), items))
            continue
        if not TABLE_ROW.match(lines[i]):
            heading = HEADING.match(lines[i])
            if lines[i].strip():
                above.append(heading.group(1) if heading else lines[i])
            i += 1
            continue
        start = i
        while i < len(lines) and TABLE_ROW.match(lines[i]):
            i += 1
        rows = [_cells(line) for line in lines[start:i] if not TABLE_RULE.match(line)]
        intro = " ".join(above[-3:])
        items = _items(rows, one_each=one_each or bool(_ONE_POINT_EACH.search(intro)))
        if items:
            found.append((" ".join(above), items))
    return found


# "- **Heart rate > 100 beats per minute**: 1.5 points"; groups: the criterion, its points.
_LISTED_POINTS = re.compile(r"^(.+?):\s*(\d+(?:\.\d+)?)\s*points?\b", re.IGNORECASE)
# A list of criteria a score counts one each: "meets the qSOFA criteria if ... at least two of
# the following three".
_SOME_OF = re.compile(r"\bat least (?:two|three|2|3) of the following\b", re.IGNORECASE)


def _listed(lines: list[str], one_each: bool) -> list[Item]:
    """The items of a list of criteria: each with its own points, or one point each."""
    items: list[Item] = []
    for line in lines:
        opened = LIST_ITEM.match(line)
        if not opened or opened.group(1):  # nested lines explain their item
            continue
        text = plain(line[opened.end() :]).strip()
        priced = _LISTED_POINTS.match(text)
        if priced:
            criterion = priced.group(1).strip()
            items.append(Item(criterion, criterion, float(priced.group(2))))
        elif one_each:
            label = text.split(":", 1)[0].strip()
            items.append(Item(label, text, 1.0))
    # Every item priced, or none: a list of actions with one "2 points" line is no score.
    listed = [line for line in lines if (opened := LIST_ITEM.match(line)) and not opened.group(1)]
    return items if len(items) >= 2 and len(items) == len(listed) else []


def _cells(line: str) -> list[str]:
    match = TABLE_ROW.match(line)
    return [plain(cell).strip() for cell in match.group(1).split("|")] if match else []


def _items(rows: list[list[str]], *, one_each: bool) -> list[Item]:
    if len(rows) < 2:
        return []
    header, body = rows[0], rows[1:]
    head = tuple(header)
    by_column = {
        n: int(m.group(1)) for n, cell in enumerate(header) if (m := _POINTS_HEADER.match(cell))
    }
    bare = [_BARE_POINTS.match(cell) for cell in header[1:]]
    if not by_column and len(bare) >= 2 and all(bare):
        by_column = {n: int(m.group(1)) for n, m in enumerate(bare, start=1) if m}
    items: list[Item] = []
    if by_column:  # "Variable | 0 Points | 1 Point | 2 Points"
        for row in body:
            for n, points in by_column.items():
                if n < len(row) and row[n] and row[n] not in {"—", "-", "–"}:
                    items.append(Item(_component(row[0]), row[n], points, head))
        return items
    points_at = next((n for n, cell in enumerate(header) if _POINTS_COLUMN.match(cell)), None)
    if points_at is not None and points_at > 0:  # "Component | Criteria | Points"
        component = ""
        for row in body:
            if len(row) <= points_at or not re.fullmatch(r"\d+", row[points_at]):
                continue
            component = _component(row[0]) or component
            criterion = row[1] if points_at > 1 else row[0]
            if component:
                items.append(Item(component, criterion, int(row[points_at]), head))
        return items
    if one_each and len(header) == 2:  # "Criterion | Definition" under "(1 point each)"
        return [
            Item(_component(row[0]), f"{_component(row[0])}: {row[1]}", 1, head)
            for row in body
            if len(row) == 2
        ]
    return []


def _component(cell: str) -> str:
    """A component's name as said: "**1. High-risk surgery**" -> "High-risk surgery"."""
    return re.sub(r"^\d+\.\s*", "", cell).strip()


@dataclass(frozen=True)
class _Given:
    said: str  # the question's words for it: "urea 8.2"
    number: float
    second: float | None  # the diastolic of "118/58"


def _add_up(
    question: str,
    items: list[Item],
    name: str,
    passages: tuple[int, ...],
    factors: Sequence[str] = (),
) -> Tally | None:
    """The score `items` add up to by what `question` states, None when it states fewer than
    two components. A component counting risk factors counts those of `factors` the story
    names (see _factors_given)."""
    headers = frozenset(item.header for item in items)
    # "Other Markers | Melena at presentation | 1", "| Syncope at presentation | 1": findings
    # listed under "Other" each add their points.
    items = [
        replace(item, component=item.criterion, row=item.component)
        if re.search(r"\bother\b", item.component, re.IGNORECASE)
        else item
        for item in items
    ]
    components = list(dict.fromkeys(item.component for item in items))
    labelled = _labelled_numbers(question)
    # The story states the findings; the sentences that ask ("and estimated risk of a major
    # cardiac complication?") do not.
    asking = asking_sentences(question)
    story = told_sentences(question, asking)
    ruled_out = " ".join(match.group(1) for match in _RULED_OUT.finditer(story))
    ruled_out += " " + " ".join(" ".join(filter(None, m.groups())) for m in _NEGATIVE.finditer(story))
    negated = _finding_stems(ruled_out)
    stated = _finding_stems(_NEGATIVE.sub(" ", _RULED_OUT.sub(" ", story)))
    counted: list[tuple[str, float]] = []
    unstated: list[str] = []
    total_floor: list[float] = []
    headroom: list[float] = []  # what each component not stated could add
    scored: set[tuple[str, str]] = set()
    measured: set[str] = set()
    grade = _story_grade(story)
    for component in components:
        own = [item for item in items if item.component == component]
        given = _given_for(component, own, labelled, question)
        if given is None and any(_COUNTS_FACTORS.search(item.criterion) for item in own):
            given = _factors_given(factors, stated, negated, labelled)
        if given is not None:
            met = [item for item in own if _meets(given, item)]
            points = max((item.points for item in met), default=0)
            counted.append((given.said, points))
            scored.update(
                (item.row or item.component, item.criterion)
                for item in met
                if item.points == points and points
            )
            if len(own) == 1:  # its one row states the threshold, met or not
                measured.add(component)
            continue
        worded = _graded(own, grade) or _worded(component, own, stated, negated, items)
        if worded is not None:
            counted.append(worded)
            if worded[1]:
                scored.update(
                    (item.row or item.component, item.criterion)
                    for item in own
                    if item.points == worded[1]
                )
            continue
        # Not stated: counted as absent, which is 1 point in a table that starts at 1
        # (Child-Pugh).
        lowest = next((item.points for item in own if _NO.match(item.criterion)), 0)
        unstated.append(_short(component) + (f" ({lowest:g})" if lowest else ""))
        total_floor.append(lowest)
        headroom.append(max((item.points for item in own), default=lowest) - lowest)
    if len(counted) < 2:
        return None
    total = sum(points for _, points in counted) + sum(total_floor)
    return Tally(
        name=name,
        total=total,
        ceiling=total + sum(headroom),
        counted=tuple(counted),
        unstated=tuple(unstated),
        passages=passages,
        headers=headers,
        scored=frozenset(scored),
        measured=frozenset(measured),
    )


def listed_factors(text: str) -> list[str]:
    """The risk factors `text` lists for a criterion that counts them, each once:
    "hypertension", "obesity (BMI > 30)", "family history of premature CAD"."""
    factors: list[str] = []
    for match in _FACTORS_LISTED.finditer(text):
        listing = plain(match.group(1) or match.group(2))
        for factor in re.split(r",\s*(?:(?:or|and)\s+)?|\s+(?:or|and)\s+(?![^(]*\))", listing):
            factor = factor.strip(" .;")
            if factor and factor.lower() not in (f.lower() for f in factors):
                factors.append(factor)
    return factors


def _factors_given(
    factors: Sequence[str],
    stated: frozenset[str],
    negated: frozenset[str],
    labelled: list[tuple[frozenset[str], str, _Given]],
) -> _Given | None:
    """How many of `factors` the story names ("diabetic, hypertensive, current smoker": 3;
    "BMI of 33" meets "obesity (BMI > 30)"), as a number for a criterion counting them; None
    when it names none (not stated, counted as absent)."""
    present: list[str] = []
    for factor in factors:
        named = re.sub(r"\(.*?\)", "", factor).strip()
        words = content_stems(named) - _FACTOR_GENERIC or content_stems(named)
        said = any(_same_stem(word, stated) for word in words)
        if not said:
            # A factor defined by a measurement ("obesity (BMI > 30)") met by the story's value.
            bracket = re.search(r"\((.*?)\)", factor)
            for condition in value_conditions(bracket.group(1)) if bracket else []:
                said = any(
                    written.lower() == condition.label.lower() and condition.holds(given.number)
                    for _, written, given in labelled
                )
        if said and not any(_same_stem(word, negated) for word in words):
            present.append(_short(named))
    if not present:
        return None
    return _Given(f"{len(present)} risk factors ({', '.join(present)})", len(present), None)


def _same_stem(word: str, stems: frozenset[str]) -> bool:
    """Whether `stems` hold `word` or a longer or shorter form of it ("smoker", "smoke")."""
    return word in stems or (
        len(word) >= 5 and any(len(s) >= 5 and (s.startswith(word) or word.startswith(s)) for s in stems)
    )


def _finding_stems(text: str) -> frozenset[str]:
    """The stems of `text` with the full forms of its shorthand ("MI": myocardial
    infarction), the table's words for its findings ("liver": hepatic) and the American
    spelling of its words ("melaena": melena)."""
    same = " ".join(
        word for pattern, word in _SAME.items() if re.search(pattern, text, re.IGNORECASE)
    )
    american = " ".join(american_spelling(word) for word in re.findall(r"[A-Za-z]+", text))
    return stems_with_full_forms(f"{text} {same} {american}")


# Ward words for a measurement that are no shorthand of the table (rag.shorthand).
_MEASURED_AS = {
    "pulse": "heart rate",
    "sats": "oxygen saturation",
    "spo2": "oxygen saturation",
    "temp": "temperature",
}
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")


def _full_form(word: str) -> str:
    return alternatives(word) or _MEASURED_AS.get(word.lower(), "")


def _labelled_numbers(question: str) -> list[tuple[frozenset[str], str, _Given]]:
    """The numbers `question` gives after a name: (the stems the name and its full form
    have, the name as written, the value)."""
    found = []
    for match in _LABELLED.finditer(question):
        label = match.group(1)
        last = label.split()[-1]
        before = label.split()[-2:]  # "respiratory rate 26", "newly confused urea 9": "urea"
        full = " ".join(_full_form(word) for word in before)
        stems = content_stems(f"{' '.join(before)} {full}")
        if not content_stems(_full_form(last) or last):
            continue
        number = float(match.group(2))
        second = float(match.group(3)) if match.group(3) else None
        said = f"{last} {match.group(2)}" + (f"/{match.group(3)}" if match.group(3) else "")
        # The word just before the number, as its full form when it is shorthand ("RR":
        # respiratory rate), is what the number measures.
        measured = content_stems(_full_form(last) or last)
        marked = stems | {f"={stem}" for stem in measured}
        found.append((marked, last, _Given(said, number, second)))
    return found


def _acronyms(text: str) -> set[str]:
    """The acronyms `text` writes ("BUN", "GCS") and the initials of its phrases of two to
    four capitalised words or words joined into a name ("Abbreviated Mental Test" -> "AMT",
    "Systolic BP" -> "SBP", "Heart Rate" -> "HR", "Respiratory rate" -> "RR")."""
    found = set(re.findall(r"\b[A-Z]{2,5}\b", text))
    words = re.findall(r"[A-Za-z]+", text)
    for size in (2, 3, 4):
        for start in range(len(words) - size + 1):
            chunk = words[start : start + size]
            if chunk[0][0].isupper():
                found.add("".join(w[0] if not w.isupper() else w for w in chunk).upper())
    return found


def _given_for(
    component: str,
    own: list[Item],
    labelled: list[tuple[frozenset[str], str, _Given]],
    question: str,
) -> _Given | None:
    """The number the question gives for `component`, None when it gives none."""
    if not any(_measured(item.criterion) for item in own):
        return None  # a worded component ("Melena at presentation"): see _worded
    name = re.sub(r"\(.*?\)|—.*$|[≥≤<>=]+\s*\d.*$", "", component).strip()
    if "age" in content_stems(name):
        ages = [value for value in question_values(question) if value.kind == "age"]
        return _Given(f"age {ages[0].number:g}", ages[0].number, None) if ages else None
    name = name.translate(_SUBSCRIPTS)  # "SpO₂" as a question types it
    name_stems = content_stems(name) - _GENERIC or content_stems(name)
    name_stems = frozenset(stem for stem in name_stems if not stem.isdigit())
    # The ward's word for what the table names ("Pulse": heart rate).
    also_stems = content_stems(
        " ".join(_MEASURED_AS.get(word.lower(), "") for word in name.split())
    )
    criteria_stems = frozenset().union(*(content_stems(item.criterion) for item in own))
    acronyms = _acronyms(name) | {a for item in own for a in _acronyms(item.criterion)}
    for stems, written, given in labelled:
        last = {stem[1:] for stem in stems if stem.startswith("=")}
        if (
            (written.upper() in acronyms and len(written) >= 2)
            or any(
                named and named <= stems and named & last for named in (name_stems, also_stems)
            )
            or (last and last <= criteria_stems)
            or bool(content_stems(written) & name_stems)  # "SpO2 90" for "SpO₂ (%)"
        ):
            return replace(given, said=_as_the_table_says(name, written, given.said))
    # A number in the criterion's unit ("45 minutes" for "10-59 minutes"), the one the
    # question writes in that unit; a time in minutes is read in hours, as
    # rag.generate.values reads the criterion. "35 minutes of slurred speech, seen 20 h after
    # onset" gives the duration 35 minutes: the 20 h is written in another unit.
    units = {unit.lower() for item in own for unit in _UNIT.findall(item.criterion)}
    for unit in units:
        # ("1 mm ST depression" for "ST-segment deviation >= 0.5 mm"; no "90 mmHg")
        written = re.escape(unit) if unit == "mm" else rf"{re.escape(unit[:3])}\w*"
        said = re.findall(rf"(\d+(?:\.\d+)?)\s*{written}\b", question, re.IGNORECASE)
        if len(said) != 1:
            continue
        if unit.startswith("min"):
            return _Given(f"{_short(name)} {said[0]} minutes", float(said[0]) / 60, None)
        return _Given(f"{_short(name)} {said[0]} {unit}", float(said[0]), None)
    return None


def _as_the_table_says(name: str, written: str, said: str) -> str:
    """A value said by the table's name for it, the question's word kept where the table
    does not spell it out: "BP 118/58" -> "blood pressure 118/58", "AMT 9/10" -> "confusion
    (AMT 9/10)", "urea 8.2" as it is."""
    value = said.split(" ", 1)[1]
    shown = _short(name)
    words = content_stems(name)
    if (
        content_stems(written) <= words
        or written.upper() in _acronyms(name)
        or (_full_form(written) and content_stems(_full_form(written)) <= words)
    ):
        return f"{shown} {value}"
    return f"{shown} ({written} {value})"


def _meets(given: _Given, item: Item) -> bool:
    """Whether the number `given` meets `item`'s criterion. A pressure pair ("118/58") is
    read as systolic/diastolic against the side each condition names; of conditions in two
    units ("> 20 mg/dL (> 7 mmol/L)"), the one nearest the number's scale is used."""
    found = value_conditions(item.criterion)
    if not found:
        return False
    if given.second is not None and re.search(r"systolic|diastolic", item.criterion, re.IGNORECASE):
        for condition in found:
            side = _side(item.criterion, condition)
            number = given.second if side == "diastolic" else given.number
            if condition.holds(number):
                return True
        return False
    return _nearest(found, given.number).holds(given.number)


def _side(criterion: str, condition: Condition) -> str:
    """"systolic" or "diastolic": the side a condition of a pressure criterion is stated for
    (the nearest such word before its bound)."""
    bound = condition.high if condition.high is not None else condition.low
    at = criterion.find(f"{bound:g}") if bound is not None else -1
    sides = _PRESSURE_SIDE.findall(criterion[: at if at >= 0 else len(criterion)])
    return sides[-1].lower() if sides else "systolic"


def _nearest(found: list[Condition], number: float) -> Condition:
    def distance(condition: Condition) -> float:
        bounds = [b for b in (condition.low, condition.high) if b]
        if not bounds or number <= 0:
            return math.inf
        return min(abs(math.log(number / bound)) for bound in bounds)

    return min(found, key=distance)


# What qualifies a criterion without being its measure: "(prior coronary stenosis >= 50%)",
# "in the past 7 days".
_QUALIFIER = re.compile(
    r"\([^)]*\)|\b(?:in|within|over|during) the (?:past|last|previous|preceding) \d+ \w+",
    re.IGNORECASE,
)


def _measured(criterion: str) -> bool:
    """Whether `criterion` is met by a number ("Urea > 7 mmol/L"), not by a finding whose
    qualifier has one ("Aspirin use in the past 7 days", "Known CAD (stenosis >= 50%)")."""
    return bool(value_conditions(_QUALIFIER.sub(" ", criterion)))


def _worded(
    component: str,
    own: list[Item],
    stated: frozenset[str],
    negated: frozenset[str],
    items: list[Item],
) -> tuple[str, float] | None:
    """What the question says of a worded component: (what it said, the points of the
    criterion it names), the points of the "None" row when it rules the component out, None
    when it says nothing of it. A "Yes" row, and a criterion with a number the question gave
    none for ("Confusion: AMT <= 8 or new disorientation"), is named by the component's own
    words; other rows by their words no other row of the table has."""
    name = re.sub(r"\(.*?\)", "", component).strip()
    name_stems = content_stems(f"{name} {alternatives(name)}") - _GENERIC
    none = next((item.points for item in own if _NO.match(item.criterion)), 0)
    if name_stems and name_stems <= negated and not name_stems & stated:
        return (f"no {_short(component)}", none)  # "no encephalopathy"
    best: tuple[str, float] | None = None
    ruled_out = False
    for item in own:
        if _NO.match(item.criterion):
            continue
        numeric = _measured(item.criterion)
        if _YES.match(item.criterion) or numeric:
            # A number's criterion is named by its component only when it has words besides
            # ("AMT <= 8 or new disorientation": "newly confused").
            worded = re.search(r"\bor\s+[a-z]", item.criterion) and not re.search(r"\d", name)
            words = name_stems if not numeric or worded else set()
        else:
            shared = {
                stem
                for other in items
                if other is not item
                for stem in content_stems(other.criterion)
            }
            words = content_stems(item.criterion) - _GENERIC - shared
        words = {word for word in words if not word[0].isdigit()}  # "1. High-risk surgery"
        said, denied = len(words & stated), len(words & negated)
        if said > denied and (best is None or item.points > best[1]):
            kept = (
                component
                if _YES.match(item.criterion) or numeric or item.criterion.startswith(component)
                else item.criterion
            )
            best = (_short(kept), item.points)
        elif denied > said:
            ruled_out = True
    if best is None and ruled_out:
        return (f"no {_short(component)}", none)
    return best


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5}
_GRADE_SAID = re.compile(r"\bgrade\s+(iv|v|i{1,3}|[1-5])\b", re.IGNORECASE)
_GRADE_RANGE = re.compile(
    r"\bgrades?\s+(iv|v|i{1,3}|[1-5])(?:\s*(?:–|-|to)\s*(iv|v|i{1,3}|[1-5]))?\b", re.IGNORECASE
)


def _grade_number(text: str) -> int:
    return int(text) if text.isdigit() else _ROMAN[text.lower()]


def _story_grade(story: str) -> int | None:
    """The one grade `story` gives ("grade I HE on lactulose": 1); None for none or several."""
    said = _GRADE_SAID.findall(story)
    return _grade_number(said[0]) if len(said) == 1 else None


def _graded(own: list[Item], grade: int | None) -> tuple[str, float] | None:
    """The row of a component graded by rows ("Grade I–II (managed)", "Grade III–IV") that
    holds the one `grade` the story gives (_story_grade): (the row, its points). Read by
    number, not by words: "mild ascites controlled on diuretics" shares "controlled" with
    "Grade III–IV (poorly controlled)"."""
    if grade is None:
        return None
    for item in own:
        bounds = _GRADE_RANGE.search(item.criterion)
        if bounds:
            low = _grade_number(bounds.group(1))
            high = _grade_number(bounds.group(2)) if bounds.group(2) else low
            if low <= grade <= high:
                return (_short(item.criterion), item.points)
    return None


def _short(text: str) -> str:
    """`text` without its brackets, its capitalised words in lower case ("Heart Rate" ->
    "heart rate"; "GCS", "CHF" kept)."""
    text = re.sub(r"\(.*?\)", "", text).strip()
    return " ".join(
        word.lower() if word[:1].isupper() and word[1:].islower() else word
        for word in text.split()
    )
