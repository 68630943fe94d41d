"""Gold sets: a JSONL file of questions with their relevant documents -> GoldQuestion list.

One line per question (see ../shared/data/MANIFEST.md):

    {"id": "...", "question": "...", "relevant_doc_ids": ["..."], "answer": "..." | null,
     "label": "yes" | "no" | "maybe" | null, "relevant_section": "...", "qtype": "..."}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import InputError
from rag.jsonl import read_jsonl


@dataclass(frozen=True)
class GoldQuestion:
    """One line of a gold JSONL file (see the data MANIFEST for the shape)."""

    id: str
    question: str
    relevant_doc_ids: tuple[str, ...]
    answer: str | None = None
    label: str | None = None
    relevant_section: str = ""
    qtype: str = ""


def read_gold(path: str | Path) -> list[GoldQuestion]:
    """Read a gold JSONL file; blank lines are skipped.

    Raises InputError naming `file:line` for a line that is not a JSON object, lacks a string
    `id` or `question`, has no non-empty list of string `relevant_doc_ids`, or repeats an id;
    and naming the file when it is missing or holds no questions.
    """
    questions: list[GoldQuestion] = []
    seen: set[str] = set()
    for where, record in read_jsonl(path, "gold file"):
        question = _gold_question(record, where)
        if question.id in seen:
            raise InputError(f"{where}: question id '{question.id}' appears twice")
        seen.add(question.id)
        questions.append(question)
    if not questions:
        raise InputError(f"{path}: the gold file holds no questions")
    return questions


def _gold_question(record: dict[str, Any], where: str) -> GoldQuestion:
    for name in ("id", "question"):
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{where}: '{name}' must be a non-empty string")
    doc_ids = record.get("relevant_doc_ids")
    if (
        not isinstance(doc_ids, list)
        or not doc_ids
        or not all(isinstance(doc_id, str) and doc_id for doc_id in doc_ids)
    ):
        raise InputError(f"{where}: 'relevant_doc_ids' must be a non-empty list of document ids")
    answer, label = record.get("answer"), record.get("label")
    if answer is not None and not isinstance(answer, str):
        raise InputError(f"{where}: 'answer' must be a string or null")
    if label is not None and label not in ("yes", "no", "maybe"):
        raise InputError(f"{where}: 'label' must be yes, no, maybe or null, got {label!r}")
    return GoldQuestion(
        id=record["id"],
        question=record["question"],
        relevant_doc_ids=tuple(dict.fromkeys(doc_ids)),  # a repeated id is one document
        answer=answer,
        label=label,
        relevant_section=str(record.get("relevant_section") or ""),
        qtype=str(record.get("qtype") or ""),
    )
