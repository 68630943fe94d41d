"""What the user reads: the wording of an abstention, and answers and hits as the Markdown a
person reads in a terminal (`rag ask`, `rag chat`, the chat-completions API)."""

from __future__ import annotations

from collections.abc import Sequence

from rag.generate.abstention import Abstention
from rag.types import DISCLAIMER, Answer, Citation, Hit

NOT_COVERED = (
    "The indexed sources do not answer this question. The nearest sources found are listed "
    "below; check them directly or ask a more specific question."
)
NOT_COVERED_BOTTOM_LINE = "The indexed sources do not cover this question."
# What an abstention adds to NOT_COVERED, by reason (rag.generate.abstention.REASONS); the
# reasons not listed say nothing more than NOT_COVERED does.
ABSTENTION_DETAILS = {
    "unknown_words": " No indexed passage mentions {words}.",
    "dose_missing": " None of the passages found states a dose for what was asked.",
    "not_stated": " The passages found are on the topic but do not state an answer to it.",
}


def abstention_text(abstention: Abstention) -> tuple[str, str]:
    """(answer, bottom line) of an answer that abstains for `abstention`'s reason."""
    detail = ABSTENTION_DETAILS.get(abstention.reason, "")
    words = ", ".join(f"'{word}'" for word in abstention.unknown_words)
    return NOT_COVERED + detail.format(words=words), NOT_COVERED_BOTTOM_LINE


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
    """The evidence grade as a reader sees it: "partial: The cited sources do not address ..."."""
    grade = getattr(evidence, "grade", "")
    statement = evidence.statement() if hasattr(evidence, "statement") else ""
    if grade == "partial" and statement:
        return f"partial: {statement}"
    return EVIDENCE_WORDING.get(grade, grade)


def answer_markdown(answer: Answer, *, numbered_related: bool = False) -> str:
    """Bottom line, body, references, related questions and the disclaimer."""
    lines = [f"**Bottom line:** {answer.bottom_line}", ""]
    body = answer.answer.strip()
    if answer.evidence is not None and not answer.abstained:
        lines.insert(1, f"**Evidence:** {evidence_line(answer.evidence)}")
        # The answer text opens with the partial grade's statement (for readers of the JSON);
        # here the Evidence line has just said it.
        statement = answer.evidence.statement() if hasattr(answer.evidence, "statement") else ""
        if statement and body.startswith(statement):
            body = body[len(statement) :].lstrip()
    if answer.standalone_question and answer.standalone_question != answer.question:
        lines[:0] = [f"_Understood as: {answer.standalone_question}_", ""]
    if body:  # a bottom line that is the whole answer leaves no body
        lines += [body, ""]
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
