"""Related questions: follow-ups the index can actually answer, shown under an answer.

Each suggestion is built from a section heading that exists in the index (a section of a
retrieved document that the answer did not use, or a neighbouring section of a cited
guideline), so it is grounded by construction; it is kept only when retrieving it brings back
that very section's document near the top, so the index can answer it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rag.types import Citation, Hit

GENERIC_HEADINGS = {"overview", "introduction", "summary", "background", "notes", "notice", "references"}


def heading_question(title: str, source: str, year: int | None, section: str) -> str | None:
    """'What does <source year> recommend on <section>?' for a heading worth asking about."""
    leaf = _clean_heading(section.split(" > ")[-1]) if section else ""
    if not leaf or leaf.lower() in GENERIC_HEADINGS or len(leaf) < 4:
        return None
    leaf = " ".join(word if _is_acronym(word) else word.lower() for word in leaf.split())
    guideline = " ".join(str(part) for part in (source, year) if part) or title
    return f"What does the {guideline} guideline say about {leaf}?"


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
    used_sections = {(citation.doc_id, citation.section) for citation in citations}
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
    heading = re.sub(r"\s*[—–-]\s*[A-Z][A-Za-z/&]+ \d{4}$", "", heading)  # "... — AASLD 2023"
    heading = re.sub(r"^\d+(\.\d+)*[.)]?\s+", "", heading)  # "2.1 Dosing"
    return heading.strip(" :.")


def _is_acronym(word: str) -> bool:
    """CURB-65, IL-1, NSAIDs, qSOFA: words whose capitals carry meaning and must stay."""
    parts = word.split("-")  # "Second-Line" is Title Case, "IL-1" is not
    return any(sum(char.isupper() for char in part) > 1 for part in parts) or (
        any(char.isupper() for char in word) and any(char.isdigit() for char in word)
    )
