"""Files on disk -> Documents: Markdown, plain text, HTML, PDF, PubMed/PMC XML and corpus JSONL.

`load_paths` walks files and folders and yields one `Document` per source document, or an
`IngestProblem` for each input it cannot use, so one bad file never stops an ingest. Every
loader keeps what a citation needs (title, source, year, DOI, URL) and turns structure into
Markdown ("## " headings, "- " list items, "| a | b |" table rows) for the chunker.

This module hands each file to the loader of its format, one module per format:

    files.py      which files are read: supported suffixes, folder walks, display paths
    markdown.py   Markdown and plain text (front matter gives the citation fields)
    web_page.py   HTML pages
    pdf.py        PDF
    jsonl.py      corpus JSONL
    pubmed.py     PubMed and PMC JATS XML
    common.py     what the loaders share: IngestProblem, UTF-8 reading, years, DOIs, pipe tables
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from rag.ingest.loaders.common import IngestProblem, Unusable
from rag.ingest.loaders.files import (
    HTML_SUFFIXES,
    JSONL_SUFFIXES,
    MARKDOWN_SUFFIXES,
    PDF_SUFFIXES,
    SUPPORTED_SUFFIXES,
    TEXT_SUFFIXES,
    XML_SUFFIXES,
    broken_link,
    display_path,
    resolved,
    walk_folder,
)
from rag.ingest.loaders.jsonl import load_jsonl
from rag.ingest.loaders.markdown import load_markdown
from rag.ingest.loaders.pdf import load_pdf
from rag.ingest.loaders.pubmed import load_xml
from rag.ingest.loaders.web_page import load_html
from rag.types import Document

__all__ = [
    "HTML_SUFFIXES",
    "JSONL_SUFFIXES",
    "MARKDOWN_SUFFIXES",
    "PDF_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "TEXT_SUFFIXES",
    "XML_SUFFIXES",
    "IngestProblem",
    "display_path",
    "load_file",
    "load_paths",
]


def load_paths(
    paths: Sequence[Path], *, exclude: Collection[Path] = ()
) -> Iterator[Document | IngestProblem]:
    """Documents from files and folders, in a stable order, with a problem for each bad input.

    Folders are walked recursively in sorted order, skipping hidden entries, anything in
    `exclude` and files of unsupported types. A file named explicitly must be of a supported
    type. Ids are stable across re-ingests (see `display_path`); an id seen twice in one
    call is reported and the later document skipped.
    """
    excluded = {resolved(Path(path)) for path in exclude}
    seen_ids: dict[str, str] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            yield IngestProblem(str(given), broken_link(path) or "no such file or folder")
            continue
        if resolved(path) in excluded:
            continue
        files: Iterator[Path | IngestProblem]
        if path.is_dir():
            files = walk_folder(path, excluded)
        elif path.suffix.lower() in SUPPORTED_SUFFIXES:
            files = iter([path])
        else:
            supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
            kind = f"'{path.suffix}'" if path.suffix else "without an extension"
            yield IngestProblem(
                display_path(path), f"unsupported file type {kind} (supported: {supported})"
            )
            continue
        for file_path in files:
            if isinstance(file_path, IngestProblem):
                yield file_path
                continue
            for item in load_file(file_path):
                if isinstance(item, Document):
                    first_origin = seen_ids.get(item.id)
                    if first_origin is not None:
                        yield IngestProblem(
                            item.origin,
                            f"duplicate document id '{item.id}' (first seen in {first_origin});"
                            " skipped",
                        )
                        continue
                    seen_ids[item.id] = item.origin
                yield item


def load_file(path: Path) -> Iterator[Document | IngestProblem]:
    """The documents in one file of a supported type (a JSONL or XML file may hold many)."""
    suffix = path.suffix.lower()
    shown = display_path(path)
    try:
        if suffix in JSONL_SUFFIXES:
            yield from load_jsonl(path, shown)
        elif suffix in XML_SUFFIXES:
            yield from load_xml(path, shown)
        elif suffix in PDF_SUFFIXES:
            yield load_pdf(path, shown)
        elif suffix in HTML_SUFFIXES:
            yield load_html(path, shown)
        elif suffix in MARKDOWN_SUFFIXES or suffix in TEXT_SUFFIXES:
            yield load_markdown(path, shown, is_markdown=suffix in MARKDOWN_SUFFIXES)
        else:
            raise Unusable(f"unsupported file type '{path.suffix}'")
    except Unusable as problem:
        yield IngestProblem(shown, problem.message, problem.line)
    except OSError as error:
        yield IngestProblem(shown, f"cannot read file ({error.strerror or error})")
