"""Units written as a reader reads them: one sentence for a bottom line, plainer words for patients.

`sentence_form` writes a unit as one sentence without adding a claim: a list item with its
nested items ("Apixaban: Standard dose is 5 mg BID; Dose Reduction: Reduce to 2.5 mg BID if
..."), a list intro with its items, a table row with its header, a decision-tree path as its
conditions and its leaf. `is_sentence` is the test every bottom line must pass (and the answer
benchmark counts). `for_patient` expands abbreviations (the dosing ones every prescription
uses, and those the passages define: "transjugular intrahepatic portosystemic shunt (TIPS)")
and drops the grading brackets a patient cannot use ("(Class I)", "(Strong, High)").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.generate.units import BARE_NUMBER, Unit, label_of
from rag.text import DRUG_NAME, SECTION_SEPARATOR

_VERBISH = re.compile(
    r"\b(?:is|are|was|were|be|been|being|has|have|had|do|does|did|can|could|may|might|must|"
    r"should|shall|will|would|need|needs|require|requires|required|recommend|recommends|"
    r"recommended|suggest|suggests|suggested|consider|considered|use|used|give|given|start|"
    r"started|stop|stopped|avoid|avoided|reduce|reduced|increase|increased|continue|"
    r"offer|offered|means|indicates|indicated|defined|include|includes|included|"
    # the imperatives of protocols and decision trees ("Initiate ICP-lowering therapy")
    r"initiate|administer|obtain|admit|refer|treat|begin|check|monitor|hold|maintain|lower|"
    r"add|switch|proceed|repeat|assess|titrate|discontinue|evaluate|perform|transfer|observe|target|"
    r"[a-z]{3,}(?:ed|es|s))\b",
    re.IGNORECASE,
)


def is_sentence(text: str) -> bool:
    """Whether `text` reads as one grammatical statement: it opens with a capital or a digit,
    ends with . or ! (a question answers nothing), has at least four words and a verb (by a word list and verb endings),
    is no table row, heading or arrow chain, and does not end on a colon (an intro without
    its list)."""
    text = re.sub(r"\s*\[\d+\]", "", text).strip()
    if len(text.split()) < 4 or not text[:1].isupper() and not text[:1].isdigit():
        return False
    if not re.search(r"[.!][\"'”’)]*$", text) or re.search(r":\s*[.!]?$", text):
        return False
    if "|" in text or "→" in text or text.startswith("#"):
        return False
    return bool(_VERBISH.search(text))


def _end(text: str) -> str:
    """`text` closed with a full stop (unless it already ends a sentence)."""
    text = text.rstrip(" ;,:")
    return text if re.search(r"[.!?][\"'”’)]*$", text) else text + "."


def _joined(head: str, items: list[str]) -> str:
    """ "head: a; b; c." — items lose their own full stops."""
    inner = "; ".join(item.rstrip(" .;") for item in items if item.strip())
    head = head.rstrip(" .")
    if head.endswith(":"):
        return _end(f"{head} {inner}")
    return _end(f"{head}; {inner}" if inner else head)


def sentence_form(unit: Unit) -> str:
    """`unit` as one sentence (see the module docstring); a short lead ("Women:", "Score 2
    (moderate risk):") is kept in front, because it says for whom the rest holds."""
    lead = unit.lead.rstrip()
    short_lead = lead if lead and len(lead.split()) <= 8 else ""
    if unit.kind == "item":
        text = _joined(
            _label_is(unit.text) if not unit.children else unit.text, list(unit.children)
        )
        kind_of = _HEADING_NOUN.match(unit.section)
        if (
            not (lead or unit.parent or unit.children or is_sentence(text))
            and kind_of
            and _verb(kind_of.group(1)) == "are"
        ):
            # A bare item says what its plural heading lists: "Absolute contraindications
            # include blood glucose < 50 mg/dL."
            return f"{_sentence_case(kind_of.group(1))} include {lowered(text)}"
        label = label_of(unit.text).lower()
        heading = unit.section.rpartition(SECTION_SEPARATOR)[2].strip()
        drugs = DRUG_NAME.findall(heading.lower())
        if (
            not (lead or unit.parent)
            and label in _ATTRIBUTE_LABELS
            and drugs
            and not any(drug in text.lower() for drug in drugs)
        ):
            # "Dose: 100 mg SC every 4 weeks" under "Anti-IL5: Mepolizumab" is the dose of
            # the drug the heading names: said alone it names no drug.
            return f"{heading} — {lowered(text)}"
        if unit.parent:
            parent = unit.parent.rstrip(" .:")
            if len(parent.split()) > 25:
                parent = label_of(unit.parent) or parent
            text = f"{parent}: {text[:1].lower() + text[1:] if not text[:2].isupper() else text}"
        return f"{short_lead} {text}" if short_lead and not text.startswith(short_lead) else text
    if unit.kind == "list":
        return _joined(unit.text, [_label_is(child) for child in unit.children])
    if unit.kind == "row":
        cells = [cell for cell in unit.cells if cell]
        header = list(unit.header)
        if len(cells) == 2 and len(header) == 2 and header[1].strip().lower() in _BARE_COLUMNS:
            # A column named only "Value" says nothing: "First 8 hours: 50% of total volume."
            text = _end(f"{cells[0]}: {cells[1]}")
        elif len(cells) >= 2 and len(header) >= 2:
            # "For <first cell>, <column> is <cell> and <column> is <cell>.": the header says
            # what each cell is; nothing else is added.
            text = _end(f"For {_first_cell(header[0], cells[0])}, {_named_cells(header, cells)}")
        else:
            text = _end(" — ".join(cells))
        return f"{short_lead} {text}" if short_lead else text
    if unit.kind == "table":
        head = unit.lead or f"{unit.section}:"
        return _joined(head if head.endswith(":") else head + ":", _table_clauses(unit))
    if unit.kind == "path":
        return _path_sentence(unit.text)
    return _end(unit.text)


def _first_cell(column: str, cell: str) -> str:
    """A row's first cell as its condition: a bare number with its column's name and unit
    ("CrCl 15-29 mL/min" for "15-29" under "CrCl (mL/min)"), anything else as written."""
    if not column or not BARE_NUMBER.match(cell):
        return cell
    named = re.fullmatch(r"(.*?)\s*\(([^()]+)\)\s*", column)
    return f"{named.group(1)} {cell} {named.group(2)}" if named else f"{column} {cell}"


def rows_form(unit: Unit) -> str:
    """The rows of a table unit as one sentence of clauses, without its intro: the rest of a
    table the chunker cut in two, said after its first part."""
    return _end("; ".join(_table_clauses(unit)))


def _table_clauses(unit: Unit) -> list[str]:
    """A table unit's rows as clauses (see _row_clauses)."""
    return _row_clauses([row.split(" | ") for row in unit.children], list(unit.header))


def _label_is(text: str) -> str:
    """ "Dose: 0.9 mg/kg (maximum 90 mg)." as "Dose is 0.9 mg/kg (maximum 90 mg).": a label and
    its value with no verb between them read as a statement once joined by "is" ("are" after a
    plural label). Anything else is returned as it was."""
    label = label_of(text)
    value = text[len(label) :].lstrip(" :") if label and not text.rstrip().endswith(":") else ""
    if not value or len(label.split()) > 8 or _VERBISH.search(label) or _VERBISH.search(value):
        return text
    verb = _verb(label)
    return f"{label} {verb} {lowered(value)}"


# Labels naming an attribute of the drug a heading names ("Dose", "Eligibility", "Age").
_ATTRIBUTE_LABELS = frozenset(
    {
        "dose", "dosing", "starting dose", "maintenance dose", "loading dose", "target dose",
        "titration", "route", "frequency", "duration", "eligibility", "age", "indication",
        "indications", "monitoring", "mechanism", "administration", "side effects",
        "adverse effects", "contraindications", "efficacy", "cost",
    }
)  # fmt: skip

# A heading naming a kind of thing ("Absolute Contraindications", "Risk Factors (Not
# Graded)"): its parenthesis aside. Said as a list only when plural (_verb).
_HEADING_NOUN = re.compile(r"^([A-Z][\w /-]*[a-z])(?:\s*\([^)]*\))?$")


def _sentence_case(heading: str) -> str:
    """ "Absolute Contraindications" as "Absolute contraindications"; acronyms kept."""
    first, *rest = heading.split()
    return " ".join([first, *(word.lower() if word[1:].islower() else word for word in rest)])


def _verb(name: str) -> str:
    """ "are" after a plural name ("Points", "Criteria"), else "is" ("Diagnosis",
    "Pancreatitis": singulars in -is)."""
    return "are" if re.search(r"(?:[^isu]s|ia)$", name.strip().lower()) else "is"


def lowered(name: str) -> str:
    """`name` with its first letter lower-cased, unless it opens an acronym ("CURB-65") or an
    eponym ("Glasgow-Blatchford Score", "Child-Pugh A")."""
    return name[:1].lower() + name[1:] if name[1:2].islower() and not _EPONYM.match(name) else name


_EPONYM = re.compile(r"[A-Z][a-z]+-[A-Z]")


# Column names that say nothing about what their cells are.
_BARE_COLUMNS = frozenset({"value", "values", "detail", "details", "description", "notes", "comment"})


def _named_cells(header: Sequence[str], cells: Sequence[str]) -> str:
    """A row's cells after the first, each named by its column: "criterion is >= 60 years and
    points are 1" ("" when every such cell is empty)."""
    named = [
        f"{lowered(name)} {_verb(name)} {cell}" if name else cell
        for name, cell in zip(header[1:], cells[1:], strict=False)
        if cell
    ]
    if not named:
        return ""
    return ", ".join(named[:-1]) + (" and " if len(named) > 1 else "") + named[-1]


def _row_clauses(rows: list[list[str]], header: list[str]) -> list[str]:
    """A table's rows as clauses: "remission is < 2.6" for a two-column table, "Group B:
    exacerbation risk is low and symptom burden is high" with more columns (the header names
    each cell); a row without a header as its cells."""
    clauses = []
    for row in rows:
        # A cell's arrow is a sequence ("Wells Score → D-dimer or CTPA"): said as "then" in a
        # sentence, where an arrow would read as a decision-tree path.
        cells = [re.sub(r"\s*→\s*", ", then ", cell.strip()) for cell in row]
        if len(cells) == 2 and cells[1]:
            clauses.append(f"{lowered(cells[0])} is {cells[1]}")
        elif len(cells) > 2 and len(header) >= len(cells):
            named = _named_cells(header, cells)
            # A row continuing the one above leaves its first cell empty ("| | OR Bicarbonate |").
            clauses.append(f"{cells[0]}: {named}" if cells[0] and named else named or cells[0])
        else:
            clauses.append(" — ".join(cells))
    return clauses


def _path_sentence(path: str) -> str:
    """ "Root → Question? → YES → Action" as "Root — question? yes: action." (a tree's own
    questions and answers kept as written, so nothing is reworded)."""
    steps = [step.strip() for step in path.split("→") if step.strip()]
    if len(steps) < 2:
        return _end(path)
    conditions: list[str] = []
    for step in steps[1:-1]:
        step = step.rstrip(" :")
        if step.upper() in ("YES", "NO") and conditions:
            conditions[-1] += f" {step.lower()}"
        else:
            conditions.append(step)
    action = steps[-1].rstrip(" ?:")
    if action.upper() in ("YES", "NO") and conditions:
        conditions[-1] += f" {action.lower()}"
        action = ""
    sentence = steps[0].rstrip(" :?")
    if conditions:
        sentence += " — " + "; ".join(conditions)
    if action:
        sentence += ": " + action
    return _end(sentence)


# Abbreviations every prescription uses, in the words a patient would use.
PLAIN_WORDS = {
    "BID": "twice a day", "BD": "twice a day", "TID": "three times a day",
    "TDS": "three times a day", "QID": "four times a day", "QDS": "four times a day",
    "OD": "once a day", "QD": "once a day", "PRN": "when needed", "PO": "by mouth",
    "IV": "into a vein (IV)", "IM": "into a muscle", "SC": "under the skin",
    "hrs": "hours", "ICU": "intensive care (ICU)",
    "OAC": "blood-thinning medicine (OAC)", "DOAC": "blood-thinning tablet (DOAC)",
    "DOACs": "blood-thinning tablets (DOACs)", "NSAID": "anti-inflammatory painkiller (NSAID)",
    "NSAIDs": "anti-inflammatory painkillers (NSAIDs)", "BP": "blood pressure",
    "HR": "heart rate", "CKD": "chronic kidney disease", "AF": "atrial fibrillation",
    "MI": "heart attack", "CXR": "chest X-ray", "GP": "family doctor",
}  # fmt: skip
_GRADING = re.compile(
    r"\s*\((?:Class|COR|LOE|Level|Grade|Strong|Conditional|Weak|Recommendation|Evidence)\b[^()]*\)",
    re.IGNORECASE,
)
_DEFINED = re.compile(r"\b([A-Za-z][A-Za-z -]{6,80}?)\s+\(([A-Z][A-Za-z0-9]{1,7})\)")


def definitions(text: str) -> dict[str, str]:
    """Abbreviations a text defines, "Direct oral anticoagulants (DOACs)" -> {"DOACs": ...};
    the definition is the words before the bracket that start with the abbreviation's letters."""
    found: dict[str, str] = {}
    for match in _DEFINED.finditer(text):
        words, abbreviation = match.group(1).split(), match.group(2)
        letters = [char for char in abbreviation if char.isupper()]
        if len(letters) < 2 or len(letters) > len(words):
            continue
        phrase = words[-len(letters) :]
        if all(word[:1].upper() == letter for word, letter in zip(phrase, letters, strict=True)):
            found.setdefault(abbreviation, " ".join(phrase).lower())
    return found


def for_patient(text: str, defined: dict[str, str] | None = None) -> str:
    """`text` in plainer words: grading brackets dropped, abbreviations spelled out (the
    definition followed by the abbreviation in brackets when a passage defined it), and
    clauses joined by semicolons written as sentences of their own."""
    text = _GRADING.sub("", text)
    glossary = {**(defined or {}), **PLAIN_WORDS}

    def spell(match: re.Match[str]) -> str:
        word = match.group(0)
        plain = glossary.get(word)
        if plain is None or plain == word:
            return word
        if word in PLAIN_WORDS:
            return plain
        return f"{plain} ({word})"

    text = re.sub(r"\b[A-Za-z]{1,7}s?\b", spell, text)
    # Shorter sentences: each clause a list of rules ran together becomes a sentence.
    return re.sub(r";\s+(\w)", lambda m: ". " + m.group(1).upper(), text)
