"""Answers and hits as the Markdown a person reads in a terminal (and `rag chat`)."""

from __future__ import annotations

from collections.abc import Sequence

from rag.types import DISCLAIMER, Answer, Citation, Hit


def reference_line(citation: Citation) -> str:
    """`[n] Title. Organisation, year. Section: ... https://doi.org/...`"""
    parts = [f"[{citation.n}] {citation.title.rstrip('.')}."]
    origin = ", ".join(str(part) for part in (citation.source, citation.year) if part)
    if origin:
        parts.append(f"{origin}.")
    if citation.section:
        parts.append(f"Section: {citation.section}.")
    if citation.doi:
        parts.append(f"https://doi.org/{citation.doi}")
    elif citation.url:
        parts.append(citation.url)
    return " ".join(parts)


EVIDENCE_WORDING = {
    "direct": "direct: the cited passages state the answer to what was asked.",
    "partial": "partial: the sources cover the topic but not everything asked.",
}


def evidence_line(evidence: object) -> str:
    """The evidence grade as a reader sees it: "partial: No indexed source addresses ..."."""
    grade = getattr(evidence, "grade", "")
    statement = evidence.statement() if hasattr(evidence, "statement") else ""
    if grade == "partial" and statement:
        return f"partial: {statement}"
    return EVIDENCE_WORDING.get(grade, grade)


def answer_markdown(answer: Answer, *, numbered_related: bool = False) -> str:
    """Bottom line, body, references, related questions and the disclaimer."""
    lines = [f"**Bottom line:** {answer.bottom_line}", ""]
    if answer.evidence is not None and not answer.abstained:
        lines.insert(1, f"**Evidence:** {evidence_line(answer.evidence)}")
    if answer.standalone_question and answer.standalone_question != answer.question:
        lines[:0] = [f"_Understood as: {answer.standalone_question}_", ""]
    lines += [answer.answer.strip(), ""]
    if answer.abstained and answer.retrieved:
        lines.append("### Nearest sources")
        seen: set[str] = set()
        for hit in answer.retrieved:
            if hit.doc_id not in seen:
                seen.add(hit.doc_id)
                lines.append(f"- {hit.title} ({hit.section})" if hit.section else f"- {hit.title}")
            if len(seen) == 3:
                break
        lines.append("")
    if answer.citations:
        lines.append("### References")
        lines += [f"- {reference_line(citation)}" for citation in answer.citations]
        lines.append("")
    if answer.related_questions:
        lines.append("### Related questions")
        for number, related in enumerate(answer.related_questions, start=1):
            lines.append(f"{number}. {related}" if numbered_related else f"- {related}")
        lines.append("")
    lines.append(f"_{DISCLAIMER}_")
    return "\n".join(lines)


def hits_markdown(hits: Sequence[Hit], *, width: int = 300) -> str:
    """Ranked passages, one block each."""
    if not hits:
        return "No passages found."
    blocks = []
    for hit in hits:
        where = f"{hit.title} > {hit.section}" if hit.section else hit.title
        text = " ".join(hit.text.split())
        if len(text) > width:
            text = text[: width - 1].rsplit(" ", 1)[0] + "…"
        blocks.append(f"{hit.rank}. [{hit.score:.3f}] {where} ({hit.doc_id})\n   {text}")
    return "\n".join(blocks)
