"""Markdown and plain text files: citation fields from a leading `---` front matter block, the
title from it or from the first "# " heading, the rest of the file as the text."""

from __future__ import annotations

from pathlib import Path

from rag.ingest.loaders.common import Unusable, doi_from, first_heading, read_text, year_from
from rag.types import Document

# Front matter keys that carry citation metadata; everything else in the block is ignored.
_FRONT_MATTER_KEYS = {
    "title": "title",
    "source": "source",
    "organisation": "source",
    "organization": "source",
    "journal": "source",
    "year": "year",
    "date": "year",
    "doi": "doi",
    "url": "url",
}


def load_markdown(path: Path, shown: str, *, is_markdown: bool) -> Document:
    text = read_text(path)
    metadata, body = _split_front_matter(text)
    if not body.strip():
        raise Unusable("no text after the front matter")
    title = metadata.get("title", "")
    if not title:
        # Markdown: the first "# " heading; plain text: a "# " heading on its first line.
        title = first_heading(body if is_markdown else body.lstrip().split("\n", 1)[0])
    return Document(
        id=shown,
        title=title or path.stem,
        text=body.strip("\n"),
        source=metadata.get("source", ""),
        year=year_from(metadata.get("year")),
        url=metadata.get("url") or None,
        doi=doi_from(metadata.get("doi")),
        origin=shown,
    )


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """(citation metadata, body) from a leading `---` block of `key: value` lines."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    closing = next(
        (number for number, line in enumerate(lines) if number and line.strip() in {"---", "..."}),
        None,
    )
    if closing is None:
        raise Unusable("front matter opened with '---' is never closed", 1)
    metadata: dict[str, str] = {}
    for line in lines[1:closing]:
        key, separator, value = line.partition(":")
        if not separator or line[:1].isspace():
            continue  # nested YAML, lists and comments carry nothing a citation uses
        field_name = _FRONT_MATTER_KEYS.get(key.strip().lower())
        value = value.strip().strip("\"'").strip()
        if field_name and value and field_name not in metadata:
            metadata[field_name] = value
    return metadata, "\n".join(lines[closing + 1 :])
