"""Passages -> quotable units that keep the structure a clinician needs to read them right.

A guideline states a dose with its dose-reduction rule nested under it, a criterion as a table
row whose meaning is in the header, a list of criteria under an intro ("requires 2 of the
following 3:"), a decision as a path through a tree. Quoting any of these pieces alone says
something else, so a unit here is the whole piece:

- `sentence`: a sentence of prose;
- `item`: a list item with its nested items (`children`), under the label of the item it sits
  in or the intro the list follows (`lead`: "Apixaban:", "Women:", "Criteria for admission:");
- `list`: a list intro with all its (short) items, for questions asking what the criteria are;
- `row`: a table row with the table's `header`; `table`: a short table whole;
- `path`: a leaf of a fenced decision tree with the steps leading to it.

Every unit knows its `condition` (the label, lead, first cell or heading saying when it
applies: "Score 2 (Moderate risk)", "CrCl 15–50 mL/min"), which `rag.generate.values` matches
against the values a question gives. Text is plain: Markdown emphasis and the source's own
numeric citation markers are dropped, nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from rag.text import (
    FENCE,
    HEADING,
    LIST_ITEM,
    TABLE_ROW,
    TABLE_RULE,
    content_stems,
    plain,
    section_headings,
    split_prose_sentences,
    tree_step,
)
from rag.types import Hit

# "Apixaban: Standard dose ..." -> label "Apixaban"; a label is short and comes first.
_LABEL = re.compile(r"^([^:]{1,80}?):\s+(?=\S)")

_ARROW = re.compile(r"-->|->|→")

# An intro announcing its items as criteria met together ("who have all of the following:").
_ANNOUNCES_SET = re.compile(r"\bof the following\b|\bcriteria\b", re.IGNORECASE)
SHORT_ITEM_WORDS = 30  # a list whose items are all this short can be quoted whole
LIST_MAX_ITEMS = 10
TABLE_MAX_ROWS = 8


@dataclass(frozen=True)
class Unit:
    """One quotable piece of a passage, with the structure around it."""

    kind: str  # sentence | item | list | row | table | path
    text: str  # the unit's own words (a row: its cells joined by " | ")
    passage: int  # 1-based position of its hit
    position: int  # order inside the passage
    section: str  # the heading it sits under
    group: int = -1  # the list or table it belongs to (rows of one table share it)
    lead: str = ""  # the intro or label line it is read under ("Women:", "Criteria:")
    parent: str = ""  # a nested item's parent item ("Apixaban: Standard dose is 5 mg BID.")
    children: tuple[str, ...] = ()  # nested items (item), items (list), rows (table)
    header: tuple[str, ...] = ()  # a table's header cells (row, table)
    cells: tuple[str, ...] = ()  # a row's cells
    words: frozenset[str] = field(default=frozenset(), compare=False)  # content words shown
    condition: str = ""  # when it applies: label, lead, first cell, heading

    @property
    def is_header_only(self) -> bool:
        return self.kind == "row" and self.cells == self.header


_ORDINAL_COLUMNS = {"#", "no", "no.", "nr", "number"}
_SCORE_COLUMN = re.compile(r"^(?:[\w-]+\s+)?(?:total\s+)?score$", re.IGNORECASE)


def is_headed_list(unit: Unit) -> bool:
    """Whether `unit` is a whole list read under its section heading (no intro line of its own)."""
    return unit.kind == "list" and unit.text.rstrip(":") == unit.section


def label_of(text: str) -> str:
    """The label a list item opens with ("Apixaban: Standard dose ..." -> "Apixaban"), the
    whole item when it is a label for its nested items ("Score 2 (Moderate risk):"), or ""."""
    if text.rstrip().endswith(":") and len(text.split()) <= 15:
        return text.rstrip().rstrip(":")
    match = _LABEL.match(text)
    return match.group(1).strip() if match else ""


def shown_text(unit: Unit) -> str:
    """Everything a unit shows, as one plain string (for scoring and overlap)."""
    parts = [unit.lead, unit.parent, unit.text, *unit.children]
    if unit.kind in ("row", "table"):
        parts.append(" ".join(unit.header))
    return " ".join(part for part in parts if part)


@dataclass
class _ListItem:
    indent: int
    text: str
    children: list[_ListItem] = field(default_factory=list)


def passage_units(hit: Hit, passage: int, *, continues: bool = False) -> list[Unit]:
    """The quotable units of `hit`'s text, in reading order; `passage` is its 1-based number.
    `continues`: the chunk goes on from another of its section (its text does not open the
    section, so a list at its start is not the list the heading announces)."""
    builder = _Builder(passage, _section_name(hit))
    builder.fresh = not continues
    lines = hit.text.splitlines()
    fences = [number for number, line in enumerate(lines) if FENCE.match(line)]
    if (
        len(fences) % 2
        and fences[0] > 0
        and any(_ARROW.search(line) for line in lines[: fences[0]])
    ):
        # The chunker cut a fenced tree: this chunk opens inside it, its fence only closes.
        lines = ["```", *lines]
    index = 0
    paragraph: list[str] = []
    while index < len(lines):
        line = lines[index]
        heading = HEADING.match(line)
        if FENCE.match(line):
            builder.paragraph(paragraph)
            end = index + 1
            while end < len(lines) and not FENCE.match(lines[end]):
                end += 1
            builder.tree(lines[index + 1 : end], cut=end >= len(lines))
            index = end + 1
        elif heading:
            builder.paragraph(paragraph)
            builder.section = plain(heading.group(1)) or builder.default_section
            builder.intro = ""
            builder.fresh = True
            index += 1
        elif not line.strip():
            builder.paragraph(paragraph, keep_intro=True)
            index += 1
        elif TABLE_ROW.match(line):
            builder.paragraph(paragraph, keep_intro=True)
            end = index
            while end < len(lines) and (
                TABLE_ROW.match(lines[end]) or TABLE_RULE.match(lines[end])
            ):
                end += 1
            builder.table(lines[index:end])
            index = end
        elif LIST_ITEM.match(line):
            builder.paragraph(paragraph, keep_intro=True)
            end = index + 1
            while end < len(lines):
                current = lines[end]
                if (
                    LIST_ITEM.match(current)
                    or (current.startswith((" ", "\t")) and current.strip())
                    or not current.strip()
                    and end + 1 < len(lines)
                    and LIST_ITEM.match(lines[end + 1])
                ):
                    end += 1
                else:
                    break
            builder.list(lines[index:end])
            index = end
        else:
            paragraph.append(line.strip().lstrip("> ").strip())  # a quoted aside reads as prose
            index += 1
    builder.paragraph(paragraph)
    return builder.units


class _Builder:
    """Collects the units of one passage; `intro` is the sentence a following list or table
    is read under (a paragraph ending in ":", or a bold label line such as "Women:")."""

    def __init__(self, passage: int, section: str) -> None:
        self.passage = passage
        self.default_section = section
        self.section = section
        self.intro = ""
        self.units: list[Unit] = []
        self.groups = 0
        self.fresh = True  # nothing yet under the current heading

    def add(self, kind: str, text: str, **fields: object) -> None:
        self.fresh = False
        unit = Unit(kind, plain(text), self.passage, len(self.units), self.section, **fields)  # type: ignore[arg-type]
        shown = shown_text(unit)
        words = content_stems(shown)
        if len(shown.split()) < 3 or not words:
            return
        condition = unit.condition or " ".join(
            part for part in (unit.lead, unit.parent, label_of(unit.text)) if part
        )
        if not condition.endswith(self.section):
            condition = f"{condition} {self.section}".strip()
        self.units.append(replace(unit, words=words, condition=condition))

    def paragraph(self, lines: list[str], *, keep_intro: bool = False) -> None:
        """Prose sentences; a paragraph ending in ":" becomes the intro of what follows."""
        if not lines:
            if not keep_intro:
                self.intro = ""
            return
        sentences = split_prose_sentences(" ".join(lines))
        lines.clear()
        for sentence in sentences:
            self.add("sentence", sentence)
        last = plain(sentences[-1]) if sentences else ""
        self.intro = last if last.endswith(":") else ""
        if self.intro and self.units and self.units[-1].text == self.intro:
            self.units.pop()  # an intro alone says nothing; it is quoted with its list

    def new_group(self) -> int:
        self.groups += 1
        return self.groups

    def list(self, lines: Sequence[str]) -> None:
        roots = _parse_items(lines)
        group = self.new_group()
        intro = self.intro
        self.intro = ""
        # A list right under its heading is read under it: "Absolute Contraindications to
        # Fibrinolytic Therapy" is what its items are (the items keep no lead: the heading
        # is shown above them anyway).
        whole_intro = intro or (f"{self.section}:" if self.fresh else "")
        for item in roots:
            self._item(item, intro, "", group)
        # A list quoted whole must not lose nested rules: only flat lists of short items, or
        # criteria a patient must meet together, each said with its own nested items ("all of
        # the following: ... No significant renal dysfunction (Serum creatinine <= 2.5 mg/dL
        # in men ...)").
        nested = any(item.children for item in roots) and _ANNOUNCES_SET.search(whole_intro)
        flat = [_flatten(item, labelled=False) if nested else plain(item.text) for item in roots]
        if (
            whole_intro
            and 2 <= len(flat) <= LIST_MAX_ITEMS
            and all(
                len(text.split()) <= SHORT_ITEM_WORDS and (nested or not item.children)
                for text, item in zip(flat, roots, strict=True)
            )
        ):
            self.add("list", whole_intro, group=group, children=tuple(flat), condition=whole_intro)

    def _item(self, item: _ListItem, lead: str, parent: str, group: int) -> None:
        text = plain(item.text)
        children = tuple(_flatten(child) for child in item.children)
        self.add("item", text, group=group, lead=lead, parent=parent, children=children)
        # A nested item is also a unit of its own, read under its parent item.
        for child in item.children:
            self._item(child, lead, text, group)

    def table(self, lines: Sequence[str]) -> None:
        rows = [_cells(line) for line in lines if not TABLE_RULE.match(line)]
        has_rule = len(lines) > 1 and bool(TABLE_RULE.match(lines[1]))
        if not rows:
            return
        header = tuple(rows[0]) if has_rule else ()
        body = rows[1:] if has_rule else rows
        group = self.new_group()
        intro = self.intro
        self.intro = ""
        # A first column that numbers the rows ("#": 1, 2, 3) says no condition, and the
        # intro's ("at least 2 of the following 11 criteria") holds for the table, not for
        # one row: "3 DSM-5 criteria met" is not row 3.
        numbered = bool(header) and header[0].strip().lower() in _ORDINAL_COLUMNS
        # A column of scores between the first and the last ("| Risk Group | Score | Action
        # |": "Intermediate Risk | 3-4") says for which score the row holds; a last one
        # ("| ACVPU | Description | NEWS2 Score |") gives a component's points.
        scored_at = next(
            (
                n
                for n, cell in enumerate(header[:-1])
                if n and _SCORE_COLUMN.match(plain(cell))
            ),
            None,
        )
        for cells in body:
            if not any(cells):
                continue
            # A first cell that is only a number or range is read under its column's name:
            # "15-29" under "CrCl (mL/min)" is a creatinine clearance.
            first = cells[0]
            if header and header[0] and BARE_NUMBER.match(first):
                first = f"{header[0]}: {first}"
            if scored_at is not None and scored_at < len(cells) and BARE_NUMBER.match(cells[scored_at]):
                first = f"{first}, score {cells[scored_at].strip()}"
            self.add(
                "row", " | ".join(cell for cell in cells if cell), group=group, lead=intro,
                header=header, cells=tuple(cells),
                condition=self.section if numbered else f"{intro} {first}".strip(),
            )  # fmt: skip
        if header and 2 <= len(body) <= TABLE_MAX_ROWS:
            self.add(
                "table", intro or " | ".join(header), group=group, lead=intro, header=header,
                children=tuple(" | ".join(cells) for cells in body), condition=intro,
            )  # fmt: skip

    def tree(self, lines: Sequence[str], *, cut: bool = False) -> None:
        """One unit per branch end: leaves under the same steps are one unit ("Score 5–6? →
        urgent response within 60 minutes; hourly monitoring; consider sepsis"). `cut`: the
        chunk ends inside the tree, so its last line may be a step whose actions follow in
        the next chunk."""
        self.intro = ""
        branches: dict[str, list[str]] = {}
        for path in tree_paths(lines, cut=cut):
            steps = path.split(" → ")
            branches.setdefault(" → ".join(steps[:-1]), []).append(steps[-1])
        for prefix, leaves in branches.items():
            text = " → ".join(part for part in (prefix, "; ".join(leaves)) if part)
            self.add("path", text, condition=prefix)


def _parse_items(lines: Sequence[str]) -> list[_ListItem]:
    """List lines -> items with their nested items; continuation lines join their item."""
    roots: list[_ListItem] = []
    stack: list[_ListItem] = []
    for line in lines:
        if not line.strip():
            continue
        match = LIST_ITEM.match(line)
        if not match:
            if stack:
                stack[-1].text += " " + line.strip()
            continue
        indent = len(match.group(1).expandtabs(4))
        item = _ListItem(indent, line[match.end() :].strip())
        while stack and stack[-1].indent >= indent:
            stack.pop()
        (stack[-1].children if stack else roots).append(item)
        stack.append(item)
    return roots


def _flatten(item: _ListItem, *, labelled: bool = True) -> str:
    """An item and its own nested items as one line: "Label: text (sub; sub)"; with
    `labelled` False, a label's items in brackets too ("No hyperkalemia (Serum potassium <
    5.0 mEq/L)"), as an item of a list said in one sentence."""
    text = plain(item.text)
    if item.children:
        inner = "; ".join(_flatten(child) for child in item.children)
        labels = labelled and text.endswith(":")
        text = f"{text.rstrip(':')}: {inner}" if labels else f"{text.rstrip(':')} ({inner})"
    return text


# A table cell that is a number, a range or a comparison and nothing else ("15-29", "< 15",
# ">= 60").
BARE_NUMBER = re.compile(r"^\s*(?:[<>≤≥]=?\s*)?\d[\d.,]*(?:\s*[-–]\s*\d[\d.,]*)?\s*$")


def _cells(line: str) -> list[str]:
    match = TABLE_ROW.match(line)
    inner = match.group(1) if match else line.strip().strip("|")
    return [plain(cell.strip()) for cell in inner.split("|")]


def tree_paths(lines: Sequence[str], *, cut: bool = False) -> list[str]:
    """Each leaf of an indented tree (a fenced decision tree's lines) with the lines it sits
    under, root first, joined by " → ": "Variceal bleeding confirmed → Oesophageal varices? →
    YES → Band ligation". A line followed by a deeper one is a branch, quoted only as part of
    its leaves' paths; a blank line ends a tree. In a tree `cut` short by its chunk, a last
    line asking or opening a condition ("INR 1.3-1.9:") is a step, not a leaf. A line opening
    in lower case or with a parenthesis continues the line before it. Arrows and connector
    glyphs the source drew ("├──", "→") are dropped from the steps."""
    paths: list[str] = []
    rows: list[tuple[int, str]] = []
    for line in lines:
        indent, text = tree_step(line)
        if line.strip() and not text:
            continue  # a line of connectors only ("  |     |") joins the lines around it
        if rows and rows[-1][1] and text and (text[:1].islower() or text.startswith("(")):
            rows[-1] = (rows[-1][0], f"{rows[-1][1]} {text}")
        else:
            rows.append((indent, text))
    branch: list[tuple[int, str]] = []
    for number, (indent, text) in enumerate(rows):
        if not text:
            branch.clear()
            continue
        while branch and branch[-1][0] >= indent:
            branch.pop()
        following = rows[number + 1] if number + 1 < len(rows) else (0, "")
        cut_step = cut and number == len(rows) - 1 and text.endswith((":", "?"))
        if not (following[1] and following[0] > indent) and not cut_step:
            steps = [step for _, step in branch] + [text]
            paths.append(" → ".join(plain(step).rstrip(" →") for step in steps))
        branch.append((indent, text))
    return paths


def _section_name(hit: Hit) -> str:
    """The deepest heading of the hit's section path, else its title, else "Other"."""
    if hit.section:
        return section_headings(hit.section)[-1].strip() or hit.section
    return hit.title or "Other"
