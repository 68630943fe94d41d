"""Corpus JSONL files (the shape of shared/data: id, title, text, source, year, url, doi), one
Document a line; a bad line is a problem naming its line number and the other lines still load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from rag.ingest.loaders.common import IngestProblem, Unusable, clean, read_text, year_from
from rag.types import Document


def load_jsonl(path: Path, shown: str) -> Iterator[Document | IngestProblem]:
    text = read_text(path)
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield _jsonl_document(line, shown)
        except Unusable as problem:
            yield IngestProblem(shown, problem.message, line_number)


def _jsonl_document(line: str, shown: str) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise Unusable(f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise Unusable("expected a JSON object with id, title and text")
    for key in ("id", "text"):
        value = record.get(key)
        if isinstance(value, int | float) and key == "id" and not isinstance(value, bool):
            continue
        if not isinstance(value, str) or not value.strip():
            raise Unusable(f"missing or empty '{key}'")
    for key in ("title", "source", "url", "doi"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise Unusable(f"'{key}' must be a string or null")
    year = record.get("year")
    if year is not None and (isinstance(year, bool) or year_from(year) is None):
        raise Unusable(f"'year' must be a year number or null, got {year!r}")
    return Document(
        id=str(record["id"]),
        title=clean(record.get("title")) or str(record["id"]),
        text=record["text"],
        source=clean(record.get("source")),
        year=year_from(year) if year is not None else None,
        url=record.get("url") or None,
        doi=record.get("doi") or None,
        origin=shown,
    )
