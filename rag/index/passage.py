"""Chunk -> passage: the one string per chunk that the index embeds and BM25 scores.

Both backends rebuild their lexical index from stored chunks, so the passage is the index's
to define; the chunker (rag.ingest.chunking) measures its token budget against it.
"""

from __future__ import annotations

_TITLE_CHARS = 120  # longest title kept in the embedded prefix
_SECTION_CHARS = 120  # longest section path kept in the embedded prefix


def passage_for_embedding(title: str, section: str, text: str) -> str:
    """The string the index embeds for a chunk: a "title — section" line, a blank line, the text.

    The heading line lets a passage match questions that name the topic only in its title or
    heading. Overlong titles and section paths are shortened (a section keeps its deepest,
    most specific headings), so the prefix cost is bounded.
    """
    heading_line = " — ".join(
        part for part in (_short_title(title), _short_section(section)) if part
    )
    return f"{heading_line}\n\n{text}" if heading_line else text


def _short_title(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= _TITLE_CHARS else title[: _TITLE_CHARS - 1].rstrip() + "…"


def _short_section(section: str) -> str:
    section = " ".join(section.split())
    if len(section) <= _SECTION_CHARS:
        return section
    return "…" + section[-(_SECTION_CHARS - 1) :].lstrip()
