"""Related questions: follow-ups the index can actually answer, shown under an answer.

Each suggestion is built from a section heading that exists in the index (a section of a
retrieved document that the answer did not use, or a neighbouring section of a cited
guideline), so it is grounded by construction; it is kept only when retrieving it brings back
that very section's document near the top, so the index can answer it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rag.text import section_headings
from rag.types import Citation, Hit

GENERIC_HEADINGS = {
    "overview", "introduction", "summary", "background", "notes", "notice", "references",
    "rationale", "key points", "clinical pearls", "pearls",
}  # fmt: skip
# Units a heading naming a branch's values carries ("SBP > 220 mmHg"): no topic to ask about.
_UNITS = frozenset(
    {"mmhg", "mg", "mcg", "kg", "ml", "mmol", "dl", "iu", "units", "min", "hours", "days", "weeks",
     "months", "years", "bpm"}
)  # fmt: skip


def heading_question(title: str, source: str, year: int | None, section: str) -> str | None:
    """A question a clinician would ask about a heading worth asking about, in plain words:
    "Bleeding Risk Assessment" under "Anticoagulation in Atrial Fibrillation" becomes "How is
    bleeding risk assessed in anticoagulation in atrial fibrillation?"; a heading no pattern
    fits becomes "What does ACC/AHA 2023 say about <heading>?"."""
    parts = section_headings(section)
    leaf = _clean_heading(parts[-1]) if parts else ""
    # A branch's values ("Renal Impairment (CrCl < 30 mL/min)") are not part of the topic; a
    # heading that is a condition ("Age <= 75 Years", "SBP > 220 mmHg") has none.
    leaf = re.sub(r"\s*\([^)]*\d[^)]*\)", "", leaf)
    words = [word for word in re.findall(r"[A-Za-z]+", leaf) if word.lower() not in _UNITS]
    if (
        re.search(r"[<>≤≥=]|\d\s*(?:-|–|to)\s*\d|\d\s*(?:mmhg|mg|kg|%)", leaf, re.IGNORECASE)
        or not any(len(word) >= 3 for word in words)
    ):
        return None  # "SBP 150-220 mmHg (Without Contraindication)": a branch, not a topic
    if leaf.lower() in GENERIC_HEADINGS or len(leaf) < 4:
        return None
    leaf = _lowered(leaf.replace(": ", " "))  # "Second-Line: IL-1 Inhibitors"
    topic = _lowered(_clean_heading(parts[0])) if len(parts) > 1 else ""
    # "Timing of Blood Pressure Management" under "Blood Pressure Management in ICH" needs no
    # "for blood pressure management in ICH" after it: the leaf already names its topic (a
    # word of it, as "Oral Anticoagulation" under "Anticoagulation in AF").
    shared = set(re.findall(r"[a-z]{4,}", topic.lower())) & set(
        re.findall(r"[a-z]{4,}", leaf.lower())
    )
    where = f" for {topic}" if topic and topic not in leaf and not shared else ""
    guideline = " ".join(str(part) for part in (source, year) if part) or title
    for pattern, template in _TEMPLATES:
        match = pattern.fullmatch(leaf)
        if match:
            return template.format(x=match.group(1).strip(), where=where, guideline=guideline)
    return f"What does {guideline} say about {leaf}{where}?"


# Headings that say what kind of question they answer: "<x> assessment", "dosing of <x>".
_TEMPLATES = tuple(
    (re.compile(pattern, re.IGNORECASE), template)
    for pattern, template in (
        (r"(.+?) (?:assessment|evaluation)", "How is {x} assessed{where}?"),
        (r"(?:assessment|evaluation) of (.+)", "How is {x} assessed{where}?"),
        (r"timing of (.+)", "When should {x} start{where}?"),
        (r"(.+?) criteria", "What are the {x} criteria{where}?"),
        (r"(.+?) (?:dosing|doses|dosage)(?: and adjustments)?", "How is {x} dosed{where}?"),
        (r"(?:management|treatment) of (.+)", "How is {x} managed?"),
        (r"(.+?) (?:management|treatment)", "How is {x} managed{where}?"),
        (r"contraindications (?:to|for) (.+)", "What are the contraindications to {x}?"),
        (r"indications for (.+)", "When is {x} indicated?"),
        (r"(.+?) monitoring", "How should {x} be monitored{where}?"),
        (r"(.+?) (?:targets?|goals?|thresholds?)", "What are the {x} targets{where}?"),
        (r"(.+?) (?:prevention|prophylaxis)", "How is {x} prevented{where}?"),
        (r"(.+?) diagnosis", "How is {x} diagnosed{where}?"),
        (r"diagnosis of (.+)", "How is {x} diagnosed?"),
        (r"recommendations? (?:for|on) (.+)", "What does {guideline} recommend for {x}{where}?"),
        (r"choice of (.+)", "Which {x} is preferred{where}?"),
    )
)


def _lowered(text: str) -> str:
    """Lower case except words whose capitals carry meaning (CURB-65, NSAIDs, qSOFA)."""
    return " ".join(word if _is_acronym(word) else word.lower() for word in text.split())


def related_questions(
    question: str,
    hits: Sequence[Hit],
    citations: Sequence[Citation],
    neighbours: Callable[[str], Sequence[Hit]],
    retrieve: Callable[[str], Sequence[Hit]],
    *,
    limit: int = 4,
) -> list[str]:
    """Up to `limit` follow-up questions answerable from the index.

    hits: what was retrieved for the question; citations: what the answer used;
    neighbours(doc_id): other sections (as hits) of the same guideline, for cited documents;
    retrieve(question): the engine's retrieval, to check each suggestion is answerable.
    """
    # The section the bottom line quotes is what was asked; sections the body only brushes
    # (one rule of a longer section) are still worth asking about in full.
    used_sections = {(citation.doc_id, citation.section) for citation in citations[:1]}
    candidates: list[Hit] = []
    for citation in citations:
        candidates += neighbours(citation.doc_id)
    # Beyond the cited guidelines, only the best few hits: lower ones drift off topic.
    candidates += list(hits)[:3]

    suggestions: list[str] = []
    seen: set[str] = {question.strip().lower()}
    for hit in candidates:
        if (hit.doc_id, hit.section) in used_sections:
            continue
        suggestion = heading_question(hit.title, hit.source, hit.year, hit.section)
        if not suggestion or suggestion.lower() in seen:
            continue
        seen.add(suggestion.lower())
        top_documents = {found.doc_id for found in list(retrieve(suggestion))[:3]}
        if hit.doc_id in top_documents:
            suggestions.append(suggestion)
        if len(suggestions) == limit:
            break
    return suggestions


def _clean_heading(heading: str) -> str:
    heading = re.sub(r"[*_`#]+", "", heading)
    heading = re.sub(r"\s*[—–-]\s*[A-Z][A-Za-z/&]+(?: [A-Z][A-Za-z/&]+)? \d{4}$", "", heading)  # "... — AASLD 2023"
    heading = re.sub(r"\s*\((?:Class|Rec|Recommendation|LOE)[^)]*\)", "", heading)
    heading = re.sub(r"^\d+(\.\d+)*[.)]?\s+", "", heading)  # "2.1 Dosing"
    return heading.strip(" :.")


def _is_acronym(word: str) -> bool:
    """CURB-65, IL-1, NSAIDs, qSOFA: words whose capitals carry meaning and must stay."""
    parts = word.split("-")  # "Second-Line" is Title Case, "IL-1" is not
    return any(sum(char.isupper() for char in part) > 1 for part in parts) or (
        any(char.isupper() for char in word) and any(char.isdigit() for char in word)
    )
