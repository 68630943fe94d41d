"""Files on disk -> Documents: Markdown, plain text, HTML, PDF, PubMed/PMC XML and corpus JSONL.

`load_paths` walks files and folders and yields one `Document` per source document, or an
`IngestProblem` for each input it cannot use, so one bad file never stops an ingest. Every
loader keeps what a citation needs (title, source, year, DOI, URL) and turns structure into
Markdown ("## " headings, "- " list items, "| a | b |" table rows) for the chunker.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

from rag.types import Document

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
XML_SUFFIXES = frozenset({".xml"})
JSONL_SUFFIXES = frozenset({".jsonl"})
SUPPORTED_SUFFIXES = (
    MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | XML_SUFFIXES | JSONL_SUFFIXES
)

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

_YEAR = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d|21\d\d)(?!\d)")
_DOI = re.compile(r"10\.\d{4,9}/\S+")
_ATX_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$")


@dataclass(frozen=True)
class IngestProblem:
    """An input that could not be used: which file (and line), and what is wrong with it."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class _Unusable(Exception):
    """Raised inside a loader for a whole-file problem; load_paths turns it into IngestProblem."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def load_paths(
    paths: Sequence[Path], *, exclude: Collection[Path] = ()
) -> Iterator[Document | IngestProblem]:
    """Documents from files and folders, in a stable order, with a problem for each bad input.

    Folders are walked recursively in sorted order, skipping hidden entries, anything in
    `exclude` and files of unsupported types. A file named explicitly must be of a supported
    type. Ids are stable across re-ingests (see `document_id_for`); an id seen twice in one
    call is reported and the later document skipped.
    """
    excluded = {_resolved(Path(path)) for path in exclude}
    seen_ids: dict[str, str] = {}
    for given in paths:
        path = Path(given)
        if not path.exists():
            yield IngestProblem(str(given), "no such file or folder")
            continue
        if _resolved(path) in excluded:
            continue
        if path.is_dir():
            files = _walk_folder(path, excluded)
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
            yield from _load_jsonl(path, shown)
        elif suffix in XML_SUFFIXES:
            yield from _load_xml(path, shown)
        elif suffix in PDF_SUFFIXES:
            yield _load_pdf(path, shown)
        elif suffix in HTML_SUFFIXES:
            yield _load_html(path, shown)
        elif suffix in MARKDOWN_SUFFIXES or suffix in TEXT_SUFFIXES:
            yield _load_markdown(path, shown, is_markdown=suffix in MARKDOWN_SUFFIXES)
        else:
            raise _Unusable(f"unsupported file type '{path.suffix}'")
    except _Unusable as problem:
        yield IngestProblem(shown, problem.message, problem.line)
    except OSError as error:
        yield IngestProblem(shown, f"cannot read file ({error.strerror or error})")


def display_path(path: Path) -> str:
    """The stable name of a file: relative to the working directory when under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return Path(os.path.abspath(path))


def _walk_folder(folder: Path, excluded: set[Path]) -> Iterator[Path]:
    visited: set[Path] = set()

    def walk(current: Path) -> Iterator[Path]:
        real = _resolved(current)
        if real in visited:  # a symlink loop would otherwise recurse forever
            return
        visited.add(real)
        try:
            entries = sorted(current.iterdir(), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            if entry.name.startswith(".") or _resolved(entry) in excluded:
                continue
            if entry.is_dir():
                yield from walk(entry)
            elif entry.is_file() and entry.suffix.lower() in SUPPORTED_SUFFIXES:
                yield entry

    return walk(folder)


# ---------------------------------------------------------------------------------------------
# Reading text


def _read_text(path: Path) -> str:
    """The file as UTF-8 text; empty, binary and non-UTF-8 files are whole-file problems."""
    data = path.read_bytes()
    if not data.strip():
        raise _Unusable("empty file")
    if b"\x00" in data[:8192]:
        raise _Unusable("binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise _Unusable(
            f"not UTF-8 text (byte 0x{data[error.start]:02x}); re-save the file as UTF-8", line
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _year_from(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value or "").strip()
    # Compact dates (PDF "D:20210315...", "20190821") start with the year and no separator.
    leading = _YEAR.match(text[:4]) if text[4:5].isdigit() else None
    match = leading or _YEAR.search(text)
    return int(match.group(1)) if match else None


def _doi_from(value: str | None) -> str | None:
    match = _DOI.search(value or "")
    return match.group(0).rstrip(".,;") if match else None


def _clean(value: str | None) -> str:
    return " ".join((value or "").split())


# ---------------------------------------------------------------------------------------------
# Markdown and plain text


def _load_markdown(path: Path, shown: str, *, is_markdown: bool) -> Document:
    text = _read_text(path)
    metadata, body = _split_front_matter(text)
    if not body.strip():
        raise _Unusable("no text after the front matter")
    title = metadata.get("title", "")
    if not title and is_markdown:
        title = _first_heading(body)
    return Document(
        id=shown,
        title=title or path.stem,
        text=body.strip("\n"),
        source=metadata.get("source", ""),
        year=_year_from(metadata.get("year")),
        url=metadata.get("url") or None,
        doi=_doi_from(metadata.get("doi")),
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
        raise _Unusable("front matter opened with '---' is never closed", 1)
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


def _first_heading(markdown: str) -> str:
    for line in markdown.split("\n"):
        if line.startswith("# "):
            match = _ATX_HEADING.match(line)
            if match:
                return match.group(1).strip()
    return ""


# ---------------------------------------------------------------------------------------------
# HTML


_DROPPED_HTML = frozenset({"script", "style", "nav", "header", "footer", "noscript", "template"})
_BLOCK_HTML = frozenset(
    {
        "p", "div", "section", "article", "main", "aside", "blockquote", "figure", "figcaption",
        "dl", "dt", "dd", "address", "details", "summary", "form", "fieldset", "body",
    }
)  # fmt: skip
_VOID_HTML = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class _HtmlToMarkdown(HTMLParser):
    """Collects <head> metadata and turns the visible body into Markdown-ish blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self.meta: dict[str, str] = {}
        self.canonical_url = ""
        self.blocks: list[str] = []
        self._inline: list[str] = []
        self._in_title = False
        self._dropped_depth = 0
        self._pre_depth = 0
        self._heading_level = 0
        self._list_depth = 0
        self._in_item = False
        self._table_rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._row_is_header = False
        self._header_row_seen = False

    # -- parser callbacks --------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name.lower(): (value or "") for name, value in attrs}
        if tag in _DROPPED_HTML:
            if tag not in _VOID_HTML:
                self._dropped_depth += 1
            return
        if self._dropped_depth:
            return
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            self._take_meta(attributes)
        elif tag == "link" and "canonical" in attributes.get("rel", "").lower().split():
            self.canonical_url = self.canonical_url or attributes.get("href", "").strip()
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._flush()
            self._heading_level = int(tag[1])
        elif tag in {"ul", "ol"}:
            self._flush()
            self._list_depth += 1
        elif tag == "li":
            self._flush()
            self._in_item = True
        elif tag == "table":
            self._flush()
            self._table_rows = []
            self._header_row_seen = False
        elif tag == "tr":
            self._row = []
            self._row_is_header = False
        elif tag in {"td", "th"}:
            self._cell = []
            if tag == "th":
                self._row_is_header = True
        elif tag == "pre":
            self._flush()
            self._pre_depth += 1
        elif tag == "br":
            self._write("\n")
        elif tag in _BLOCK_HTML or tag == "hr":
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED_HTML:
            return  # a self-closed <nav/> opens nothing to drop
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED_HTML:
            self._dropped_depth = max(0, self._dropped_depth - 1)
            return
        if self._dropped_depth:
            return
        if tag == "title":
            self._in_title = False
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self._flush()
            self._heading_level = 0
        elif tag == "li":
            self._flush()
            self._in_item = False
        elif tag in {"ul", "ol"}:
            self._flush()
            self._list_depth = max(0, self._list_depth - 1)
        elif tag in {"td", "th"}:
            if self._cell is not None and self._row is not None:
                self._row.append(_clean("".join(self._cell)).replace("|", "\\|"))
            self._cell = None
        elif tag == "tr":
            if self._row is not None and any(self._row):
                self._table_rows.append(self._row)
            self._row = None
        elif tag == "table":
            self._emit_table()
        elif tag == "pre":
            self._flush()
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in _BLOCK_HTML:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._dropped_depth:
            return
        if self._in_title:
            self.title_parts.append(data)
        elif self._cell is not None:
            self._cell.append(data)
        elif self._row is None:
            self._write(data)

    def close(self) -> None:
        super().close()
        if self._table_rows:
            self._emit_table()
        self._flush()

    # -- helpers -----------------------------------------------------------------------------

    def _take_meta(self, attributes: dict[str, str]) -> None:
        name = (attributes.get("name") or attributes.get("property") or "").strip().lower()
        content = _clean(attributes.get("content"))
        if name and content and name not in self.meta:
            self.meta[name] = content

    def _write(self, data: str) -> None:
        self._inline.append(data)

    def _flush(self) -> None:
        raw = "".join(self._inline)
        self._inline = []
        if self._pre_depth:
            if raw.strip():
                self.blocks.append("```\n" + raw.strip("\n") + "\n```")
            return
        lines = [_clean(line) for line in raw.split("\n")]
        text = "\n".join(line for line in lines if line)
        if not text:
            return
        if self._heading_level:
            self.blocks.append("#" * self._heading_level + " " + text.replace("\n", " "))
        elif self._in_item or self._list_depth:
            indent = "  " * max(0, self._list_depth - 1)
            self.blocks.append(indent + "- " + text.replace("\n", " "))
        else:
            self.blocks.append(text)

    def _emit_table(self) -> None:
        rows = self._table_rows
        self._table_rows = []
        if not rows:
            return
        width = max(len(row) for row in rows)
        lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
        # Markdown needs the separator under the header row; the first row serves as header.
        lines.insert(1, "|" + "---|" * width)
        self.blocks.append("\n".join(lines))

    def markdown(self) -> str:
        """Blocks joined Markdown-style; consecutive list items stay in one list."""
        parts: list[str] = []
        for block in self.blocks:
            is_item = block.lstrip().startswith("- ")
            if parts and is_item and parts[-1].lstrip().startswith("- "):
                parts[-1] += "\n" + block
            else:
                parts.append(block)
        return "\n\n".join(parts)


def _load_html(path: Path, shown: str) -> Document:
    parser = _HtmlToMarkdown()
    parser.feed(_read_text(path))
    parser.close()
    body = parser.markdown()
    if not body.strip():
        raise _Unusable("no visible text in the HTML body")
    meta = parser.meta

    def first(*names: str) -> str:
        return next((meta[name] for name in names if meta.get(name)), "")

    title = first("citation_title", "dc.title", "og:title") or _clean("".join(parser.title_parts))
    title = title or _first_heading(body) or path.stem
    source = first(
        "citation_journal_title", "citation_publisher", "dc.publisher", "og:site_name", "dc.source"
    )
    year = _year_from(
        first(
            "citation_publication_date", "citation_date", "dc.date", "dc.date.issued",
            "citation_online_date", "article:published_time",
        )
    )  # fmt: skip
    doi = _doi_from(first("citation_doi", "dc.identifier", "prism.doi"))
    url = parser.canonical_url or first("og:url", "citation_abstract_html_url") or None
    return Document(
        id=shown,
        title=title,
        text=body,
        source=source,
        year=year,
        url=url,
        doi=doi,
        origin=shown,
    )


# ---------------------------------------------------------------------------------------------
# PDF


def _load_pdf(path: Path, shown: str) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if path.stat().st_size == 0:
        raise _Unusable("empty file")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Unusable("encrypted PDF; save an unencrypted copy")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata or {}
        title = _clean(str(info.get("/Title") or ""))
        author = _clean(str(info.get("/Author") or "")) or _clean(str(info.get("/Subject") or ""))
        created = str(info.get("/CreationDate") or "")
    except _Unusable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        # pypdf signals damage with several exception types depending on where parsing fails.
        reason = _clean(str(error)) or type(error).__name__
        raise _Unusable(f"corrupt or unreadable PDF ({reason})") from None
    text = "\n\n".join(page.strip() for page in pages if page.strip())
    if not text:
        raise _Unusable("no extractable text in the PDF (scanned images need OCR first)")
    return Document(
        id=shown,
        title=title or path.stem,
        text=text,
        source=author,
        year=_year_from(created.removeprefix("D:")),
        origin=shown,
    )


# ---------------------------------------------------------------------------------------------
# JSONL (the corpus shape of shared/data: id, title, text, source, year, url, doi)


def _load_jsonl(path: Path, shown: str) -> Iterator[Document | IngestProblem]:
    text = _read_text(path)
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield _jsonl_document(line, shown)
        except _Unusable as problem:
            yield IngestProblem(shown, problem.message, line_number)


def _jsonl_document(line: str, shown: str) -> Document:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise _Unusable(f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise _Unusable("expected a JSON object with id, title and text")
    for key in ("id", "text"):
        value = record.get(key)
        if isinstance(value, int | float) and key == "id" and not isinstance(value, bool):
            continue
        if not isinstance(value, str) or not value.strip():
            raise _Unusable(f"missing or empty '{key}'")
    for key in ("title", "source", "url", "doi"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise _Unusable(f"'{key}' must be a string or null")
    year = record.get("year")
    if year is not None and (isinstance(year, bool) or _year_from(year) is None):
        raise _Unusable(f"'year' must be a year number or null, got {year!r}")
    return Document(
        id=str(record["id"]),
        title=_clean(record.get("title")) or str(record["id"]),
        text=record["text"],
        source=_clean(record.get("source")),
        year=_year_from(year) if year is not None else None,
        url=record.get("url") or None,
        doi=record.get("doi") or None,
        origin=shown,
    )


# ---------------------------------------------------------------------------------------------
# XML: PubMed (PubmedArticleSet / PubmedArticle) and PMC JATS (<article>)


def _load_xml(path: Path, shown: str) -> Iterator[Document | IngestProblem]:
    text = _read_text(path)
    try:
        root = ElementTree.fromstring(text.encode("utf-8"))
    except ElementTree.ParseError as error:
        line = error.position[0] if error.position else None
        raise _Unusable(f"XML does not parse ({_clean(str(error))})", line) from None
    _strip_namespaces(root)
    if root.tag in {"PubmedArticleSet", "PubmedArticle"}:
        yield from _xml_articles(root, "PubmedArticleSet", "PubmedArticle", _pubmed_document, shown)
    elif root.tag in {"article", "pmc-articleset"}:
        yield from _xml_articles(root, "pmc-articleset", "article", _pmc_document, shown)
    else:
        raise _Unusable(
            f"XML root <{root.tag}> is neither PubMed (PubmedArticleSet) nor PMC JATS (<article>)"
        )


def _xml_articles(
    root: ElementTree.Element,
    set_tag: str,
    article_tag: str,
    to_document: Callable[[ElementTree.Element, str, int], Document],
    shown: str,
) -> Iterator[Document | IngestProblem]:
    """One Document per `article_tag` element of `root` (itself one, or a `set_tag` holding
    them), numbered from 1; an article that cannot be used becomes an IngestProblem and the
    rest still load. _Unusable when a set holds no article."""
    articles = [root] if root.tag == article_tag else root.findall(article_tag)
    if not articles:
        raise _Unusable(f"{set_tag} holds no {article_tag}")
    for number, article in enumerate(articles, start=1):
        try:
            yield to_document(article, shown, number)
        except _Unusable as problem:
            yield IngestProblem(shown, problem.message, problem.line)


def _strip_namespaces(root: ElementTree.Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.rsplit("}", 1)[1]


def _inner_text(element: ElementTree.Element | None) -> str:
    return _clean("".join(element.itertext())) if element is not None else ""


def _pubmed_document(article: ElementTree.Element, shown: str, number: int) -> Document:
    pmid = _inner_text(article.find("MedlineCitation/PMID"))
    label = f"PubmedArticle {number}" + (f" (PMID {pmid})" if pmid else "")
    journal_article = article.find("MedlineCitation/Article")
    if journal_article is None:
        raise _Unusable(f"{label} has no <Article> element")
    title = _inner_text(journal_article.find("ArticleTitle")).rstrip()
    sections: list[str] = []
    for abstract_text in journal_article.findall("Abstract/AbstractText"):
        paragraph = _inner_text(abstract_text)
        if not paragraph:
            continue
        heading = _clean(abstract_text.get("Label"))
        if heading:
            sections.append(f"## {heading.capitalize() if heading.isupper() else heading}")
        sections.append(paragraph)
    if not sections:
        raise _Unusable(f"{label} has no abstract text; skipped")
    pub_date = journal_article.find("Journal/JournalIssue/PubDate")
    year = None
    if pub_date is not None:
        year = _year_from(pub_date.findtext("Year")) or _year_from(pub_date.findtext("MedlineDate"))
    doi = None
    for location in journal_article.findall("ELocationID"):
        if (location.get("EIdType") or "").lower() == "doi":
            doi = _doi_from(location.text)
            break
    if doi is None:
        for article_id in article.findall("PubmedData/ArticleIdList/ArticleId"):
            if (article_id.get("IdType") or "").lower() == "doi":
                doi = _doi_from(article_id.text)
                break
    return Document(
        id=f"pmid:{pmid}" if pmid else f"{shown}#{number}",
        title=title or (f"PubMed {pmid}" if pmid else label),
        text="\n\n".join(sections),
        source=_inner_text(journal_article.find("Journal/Title")),
        year=year,
        url=f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/" if pmid else None,
        doi=doi,
        origin=shown,
    )


def _pmc_document(article: ElementTree.Element, shown: str, number: int) -> Document:
    meta = article.find("front/article-meta")
    if meta is None:
        raise _Unusable(f"article {number} has no <front><article-meta>")
    ids = {
        (article_id.get("pub-id-type") or "").lower(): _clean(article_id.text)
        for article_id in meta.findall("article-id")
    }
    pmcid = ids.get("pmc") or ids.get("pmcid") or ids.get("pmcaid") or ""
    if pmcid and not pmcid.upper().startswith("PMC"):
        pmcid = f"PMC{pmcid}"
    title = _inner_text(meta.find("title-group/article-title"))
    journal = _inner_text(article.find("front/journal-meta/journal-title-group/journal-title"))
    journal = journal or _inner_text(article.find("front/journal-meta/journal-title"))
    year = None
    for pub_date in meta.findall("pub-date"):
        year = _year_from(pub_date.findtext("year"))
        if year:
            break
    blocks: list[str] = []
    for abstract in meta.findall("abstract"):
        if abstract.get("abstract-type") in {"graphical", "teaser"}:
            continue
        blocks.append("## Abstract")
        _jats_blocks(abstract, 3, blocks)
    body = article.find("body")
    if body is not None:
        _jats_blocks(body, 2, blocks)
    text = "\n\n".join(block for block in blocks if block)
    if not any(not block.startswith("#") for block in blocks):
        raise _Unusable(f"article {number}" + (f" ({pmcid})" if pmcid else "") + " has no text")
    doi = _doi_from(ids.get("doi"))
    url = (
        f"https://pmc.ncbi.nlm.nih.gov/articles/{pmcid}/"
        if pmcid
        else (f"https://doi.org/{doi}" if doi else None)
    )
    return Document(
        id=f"pmc:{pmcid}" if pmcid else f"{shown}#{number}",
        title=title or pmcid or f"{shown}#{number}",
        text=text,
        source=journal,
        year=year,
        url=url,
        doi=doi,
        origin=shown,
    )


def _jats_blocks(element: ElementTree.Element, level: int, blocks: list[str]) -> None:
    """Append Markdown blocks for the children of a JATS <abstract>, <body> or <sec>."""
    for child in element:
        tag = child.tag
        if tag == "sec":
            heading = _inner_text(child.find("title"))
            if heading:
                blocks.append("#" * min(level, 6) + " " + heading)
            _jats_blocks(child, level + 1, blocks)
        elif tag == "p":
            paragraph = _inner_text(child)
            if paragraph:
                blocks.append(paragraph)
        elif tag == "list":
            items = [_inner_text(item) for item in child.findall("list-item")]
            if any(items):
                blocks.append("\n".join(f"- {item}" for item in items if item))
        elif tag == "table-wrap":
            caption = _inner_text(child.find("caption"))
            if caption:
                blocks.append(caption)
            for table in child.iter("table"):
                rows = [
                    [
                        _inner_text(cell).replace("|", "\\|")
                        for cell in row
                        if cell.tag in {"td", "th"}
                    ]
                    for row in table.iter("tr")
                ]
                rows = [row for row in rows if any(row)]
                if rows:
                    width = max(len(row) for row in rows)
                    lines = [
                        "| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows
                    ]
                    lines.insert(1, "|" + "---|" * width)
                    blocks.append("\n".join(lines))
        elif tag in {"fig", "boxed-text", "disp-quote"}:
            caption = _inner_text(child.find("caption")) if tag == "fig" else ""
            if caption:
                blocks.append(caption)
            elif tag != "fig":
                _jats_blocks(child, level, blocks)
