"""Files on disk -> Documents: Markdown, plain text, HTML, PDF, PubMed/PMC XML and corpus JSONL.

`load_paths` walks files and folders and yields one `Document` per source document, or an
`IngestProblem` for each input it cannot use, so one bad file never stops an ingest. Every
loader keeps what a citation needs (title, source, year, DOI, URL) and turns structure into
Markdown ("## " headings, "- " list items, "| a | b |" table rows) for the chunker.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
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
            yield IngestProblem(str(given), _broken_link(path) or "no such file or folder")
            continue
        if _resolved(path) in excluded:
            continue
        files: Iterator[Path | IngestProblem]
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
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python before 3.13)
        return Path(os.path.abspath(path))


def _broken_link(path: Path) -> str | None:
    """What is wrong with `path` when it is a symlink that leads nowhere, else None."""
    if not path.is_symlink():
        return None
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "symbolic link loop (the link leads back to itself); skipped"
        return "symbolic link to a missing file or folder; skipped"
    return None


def _walk_folder(folder: Path, excluded: set[Path]) -> Iterator[Path | IngestProblem]:
    visited: set[Path] = set()

    def walk(current: Path) -> Iterator[Path | IngestProblem]:
        real = _resolved(current)
        if real in visited:  # a folder linked from inside itself would recurse forever
            return
        visited.add(real)
        try:
            entries = sorted(current.iterdir(), key=lambda entry: entry.name)
        except OSError as error:
            yield IngestProblem(display_path(current), f"cannot read folder ({error.strerror})")
            return
        for entry in entries:
            if entry.name.startswith(".") or _resolved(entry) in excluded:
                continue
            broken = _broken_link(entry)
            if broken:
                yield IngestProblem(display_path(entry), broken)
            elif entry.is_dir():
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
    if not title:
        # Markdown: the first "# " heading; plain text: a "# " heading on its first line.
        title = _first_heading(body if is_markdown else body.lstrip().split("\n", 1)[0])
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


# Always dropped with everything inside them.
_DROPPED_HTML = frozenset({"script", "style", "noscript", "template", "nav", "aside", "form"})
# Page furniture when outside the article: a <header> inside <article> holds its title.
_FURNITURE_HTML = frozenset({"header", "footer"})
_BLOCK_HTML = frozenset(
    {
        "p", "div", "section", "article", "main", "blockquote", "figure", "figcaption",
        "dl", "dt", "dd", "address", "details", "summary", "fieldset", "body",
    }
)  # fmt: skip
_VOID_HTML = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
# Landmark roles and class/id words that mark clutter around the article: cookie and consent
# banners, sidebars, "related" boxes, sharing and newsletter widgets.
_CLUTTER_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "dialog", "alertdialog", "search"}
)
_CLUTTER_WORDS = frozenset(
    {
        "cookie", "cookies", "cookieconsent", "consent", "gdpr", "sidebar", "related",
        "newsletter", "breadcrumb", "breadcrumbs", "share", "sharing", "social", "advert",
        "advertisement", "promo", "popup", "modal", "navbar", "topbar", "masthead", "subscribe",
    }
)  # fmt: skip
_FURNITURE_WORDS = frozenset({"header", "footer"})
_HEADINGS_HTML = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


class _HtmlToMarkdown(HTMLParser):
    """Collects <head> metadata and turns the page's main content into Markdown blocks.

    With `scope` "main" or "article", only text inside <main> (or role="main") or <article>
    elements is kept. Navigation, asides, forms, scripts, and elements that are cookie
    banners, sidebars or "related" boxes by their role, class or id are dropped; headers and
    footers too unless they sit inside the article. Ordered lists keep their numbers.
    """

    def __init__(self, scope: str = "") -> None:
        super().__init__(convert_charrefs=True)
        self.title_parts: list[str] = []
        self.meta: dict[str, str] = {}
        self.canonical_url = ""
        self.blocks: list[str] = []
        self._scope = scope
        self._scope_depth = 0
        self._open: list[tuple[str, bool, bool]] = []  # (tag, drops, opens scope)
        self._inline: list[str] = []
        self._in_title = False
        self._dropped_depth = 0
        self._pre_depth = 0
        self._heading_level = 0
        self._lists: list[list[int]] = []  # per open list: [next number] for <ol>, [] for <ul>
        self._item_markers: list[str] = []  # the marker of each open <li>, outermost first
        self._item_started = False  # the current <li>'s first line is not yet written
        self._table_rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    # -- parser callbacks --------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name.lower(): (value or "") for name, value in attrs}
        if tag in _VOID_HTML:
            self._void_tag(tag, attributes)
            return
        drops = self._dropped_depth > 0 or self._is_clutter(tag, attributes)
        opens_scope = self._opens_scope(tag, attributes)
        self._open.append((tag, drops and not self._dropped_depth, opens_scope))
        if drops:
            self._dropped_depth += 1
            return
        if opens_scope:
            self._flush()
            self._scope_depth += 1
        if tag == "title":
            self._in_title = True
        elif tag in _HEADINGS_HTML:
            self._flush()
            self._heading_level = int(tag[1])
        elif tag in {"ul", "ol"}:
            self._flush()
            start = attributes.get("start", "1").strip()
            self._lists.append([int(start) if start.isdigit() else 1] if tag == "ol" else [])
        elif tag == "li":
            self._flush()
            numbering = self._lists[-1] if self._lists else []
            if numbering:
                marker = f"{numbering[0]}."
                numbering[0] += 1
            else:
                marker = "-"
            self._item_markers.append(marker)
            self._item_started = True
        elif tag == "table":
            self._flush()
            self._table_rows = []
        elif tag == "tr":
            self._row = []
        elif tag in {"td", "th"}:
            self._cell = []
        elif tag == "pre":
            self._flush()
            self._pre_depth += 1
        elif tag in _BLOCK_HTML:
            self._flush()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID_HTML:
            self._void_tag(tag, {name.lower(): (value or "") for name, value in attrs})
        # a self-closed non-void element (<div/>) opens nothing

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_HTML:
            return
        # Close up to the matching open tag; unclosed children (<p>, <li>) close with it.
        if not any(open_tag == tag for open_tag, _, _ in self._open):
            return
        while self._open:
            open_tag, dropped_here, opened_scope = self._open.pop()
            self._close(open_tag, dropped_here, opened_scope)
            if open_tag == tag:
                break

    def _close(self, tag: str, dropped_here: bool, opened_scope: bool) -> None:
        if self._dropped_depth:
            self._dropped_depth -= 1
            return
        if tag == "title":
            self._in_title = False
        elif tag in _HEADINGS_HTML:
            self._flush()
            self._heading_level = 0
        elif tag == "li":
            self._flush()
            if self._item_markers:
                self._item_markers.pop()
            self._item_started = False
        elif tag in {"ul", "ol"}:
            self._flush()
            if self._lists:
                self._lists.pop()
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
        if opened_scope:
            self._flush()
            self._scope_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._dropped_depth:
            return
        if self._in_title:
            self.title_parts.append(data)
        elif self._scope and not self._scope_depth:
            return
        elif self._cell is not None:
            self._cell.append(data)
        elif self._row is None:
            # Line breaks in the HTML source are spaces; only <br> breaks a line.
            self._write(data if self._pre_depth else re.sub(r"\s+", " ", data))

    def close(self) -> None:
        super().close()
        while self._open:
            self._close(*self._open.pop())
        if self._table_rows:
            self._emit_table()
        self._flush()

    # -- helpers -----------------------------------------------------------------------------

    def _void_tag(self, tag: str, attributes: dict[str, str]) -> None:
        if self._dropped_depth:
            return
        if tag == "meta":
            self._take_meta(attributes)
        elif tag == "link" and "canonical" in attributes.get("rel", "").lower().split():
            self.canonical_url = self.canonical_url or attributes.get("href", "").strip()
        elif tag == "br":
            self._write("\n")
        elif tag == "hr":
            self._flush()

    def _inside(self, tags: set[str]) -> bool:
        return any(open_tag in tags for open_tag, _, _ in self._open)

    def _is_clutter(self, tag: str, attributes: dict[str, str]) -> bool:
        if tag in _DROPPED_HTML:
            return True
        in_article = self._inside({"article", "main"}) or self._scope_depth > 0
        if tag in _FURNITURE_HTML and not in_article:
            return True
        if attributes.get("role", "").strip().lower() in _CLUTTER_ROLES:
            return True
        if attributes.get("aria-hidden", "").lower() == "true" or "hidden" in attributes:
            return True
        words = {
            word
            for name in ("class", "id")
            for token in attributes.get(name, "").lower().split()
            for word in re.split(r"[-_]+", token)
        }
        return bool(words & _CLUTTER_WORDS) or (not in_article and bool(words & _FURNITURE_WORDS))

    def _opens_scope(self, tag: str, attributes: dict[str, str]) -> bool:
        if self._scope == "main":
            return tag == "main" or attributes.get("role", "").lower() == "main"
        return self._scope == "article" and tag == "article"

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
        elif self._item_markers:
            # Nested items are indented by the width of their parents' markers.
            indent = "".join(" " * (len(marker) + 1) for marker in self._item_markers[:-1])
            marker = self._item_markers[-1] if self._item_started else " " * len(
                self._item_markers[-1]
            )
            self.blocks.append(f"{indent}{marker} " + text.replace("\n", " "))
            self._item_started = False
        else:
            self.blocks.append(text)

    def _emit_table(self) -> None:
        rows = self._table_rows
        self._table_rows = []
        if rows:
            self.blocks.append(_pipe_table(rows))

    def markdown(self) -> str:
        """Blocks joined Markdown-style; consecutive list items stay in one list."""
        parts: list[str] = []
        for block in self.blocks:
            is_item = bool(_LIST_LINE.match(block))
            if parts and is_item and _LIST_LINE.match(parts[-1].split("\n")[-1]):
                parts[-1] += "\n" + block
            else:
                parts.append(block)
        return "\n\n".join(parts)


_LIST_LINE = re.compile(r"^\s*(-|\d+\.)\s")


def _html_scope(html: str) -> str:
    """"main" when the page marks its main content, else "article" when it has an article
    element, else "" (the whole body)."""
    lowered = html.lower()
    if re.search(r"<main[\s>]|role\s*=\s*[\"']?main\b", lowered):
        return "main"
    if re.search(r"<article[\s>]", lowered):
        return "article"
    return ""


def _load_html(path: Path, shown: str) -> Document:
    html = _read_text(path)
    parser = _HtmlToMarkdown(_html_scope(html))
    parser.feed(html)
    parser.close()
    body = parser.markdown()
    if not body.strip() and parser._scope:
        # A <main> or <article> that holds no text (a placeholder filled by script): the body.
        whole = _HtmlToMarkdown()
        whole.feed(html)
        whole.close()
        body = whole.markdown()
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
    """A PDF as Markdown: sections from its outline (bookmarks) or, without one, from heading
    typography; ruled tables as pipe tables; running headers, footers and page numbers dropped.

    pypdf opens the file (damage, encryption, metadata, outline); pdfplumber reads the layout.
    Should pdfplumber fail on a file pypdf can read, the plain page text is used instead.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if path.stat().st_size == 0:
        raise _Unusable("empty file")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Unusable("encrypted PDF; save an unencrypted copy")
        info = reader.metadata or {}
        title = _pdf_title(str(info.get("/Title") or ""))
        author = _clean(str(info.get("/Author") or "")) or _clean(str(info.get("/Subject") or ""))
        created = str(info.get("/CreationDate") or "")
        outline = _pdf_outline(reader)
        try:
            text, first_heading = _pdf_markdown(path, outline)
        except Exception:  # noqa: BLE001 - any layout failure falls back to the plain text
            pages = [page.extract_text() or "" for page in reader.pages]
            text = "\n\n".join(page.strip() for page in pages if page.strip())
            first_heading = ""
    except _Unusable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        # pypdf signals damage with several exception types depending on where parsing fails.
        reason = _clean(str(error)) or type(error).__name__
        raise _Unusable(f"corrupt or unreadable PDF ({reason})") from None
    if not text.strip():
        raise _Unusable("no extractable text in the PDF (scanned images need OCR first)")
    return Document(
        id=shown,
        title=title or first_heading or path.stem,
        text=text,
        source=author,
        year=_year_from(created.removeprefix("D:")),
        origin=shown,
    )


def _pdf_title(value: str) -> str:
    """The metadata title, unless it is a word processor's placeholder ("untitled", a file name)."""
    title = _clean(value)
    if title.lower() in {"untitled", "title", "document"} or re.search(
        r"\.(docx?|pdf|indd|rtf|odt|pptx?)$", title, re.IGNORECASE
    ):
        return ""
    return title


@dataclass(frozen=True)
class _OutlineEntry:
    level: int  # 1 for a top-level bookmark
    title: str
    page: int  # 0-based
    top: float | None  # distance from the top of the page, when the bookmark gives one


def _pdf_outline(reader: Any) -> list[_OutlineEntry]:
    """The PDF's bookmarks in order; empty when it has none or they cannot be read."""
    entries: list[_OutlineEntry] = []

    def walk(items: list[Any], level: int) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item, level + 1)
                continue
            title = _clean(str(getattr(item, "title", "") or ""))
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # noqa: BLE001, S112 - a broken bookmark is skipped, not fatal
                continue
            if not title or page is None or page < 0:
                continue
            top = getattr(item, "top", None)
            height = float(reader.pages[page].mediabox.height)
            distance = height - float(top) if isinstance(top, int | float) else None
            entries.append(_OutlineEntry(min(level, 5), title, page, distance))

    try:
        walk(list(reader.outline), 1)
    except Exception:  # noqa: BLE001 - an unreadable outline leaves typography to find headings
        return []
    return entries


@dataclass
class _PdfLine:
    page: int
    top: float
    bottom: float
    x0: float
    text: str
    size: float  # the font size most of its characters have
    bold: bool  # every character is set in a bold face
    heading: int = 0  # Markdown heading level once found to be one


@dataclass
class _PdfTable:
    page: int
    top: float
    rows: list[list[str]]


_BULLET = re.compile(r"^([•●▪■◦○‣∙·*\-–]|\(?\d{1,3}[.)]|\(?[a-z][.)])\s+")
_BOLD_FONT = re.compile(r"bold|black|heavy|semibold|demi", re.IGNORECASE)
_MARGIN = 0.08  # share of the page height at top and bottom where running headers sit


def _pdf_markdown(path: Path, outline: list[_OutlineEntry]) -> tuple[str, str]:
    """(the PDF's text as Markdown, its first level-1 heading) read with pdfplumber."""
    import pdfplumber

    items: list[_PdfLine | _PdfTable] = []
    heights: list[float] = []
    with pdfplumber.open(str(path)) as pdf:
        for number, page in enumerate(pdf.pages):
            heights.append(float(page.height))
            tables = [
                table
                for table in page.find_tables()
                if len(table.rows) >= 2 and len(table.rows[0].cells) >= 2
            ]
            boxes = [table.bbox for table in tables]

            def outside_tables(obj: dict[str, Any], boxes: list[Any] = boxes) -> bool:
                if obj.get("object_type") != "char":
                    return True
                middle_x = (obj["x0"] + obj["x1"]) / 2
                middle_y = (obj["top"] + obj["bottom"]) / 2
                return not any(
                    x0 <= middle_x <= x1 and top <= middle_y <= bottom
                    for x0, top, x1, bottom in boxes
                )

            page_items: list[_PdfLine | _PdfTable] = []
            for table in tables:
                rows = [
                    [_clean(cell).replace("|", "\\|") for cell in row]
                    for row in table.extract()
                    if any(cell and cell.strip() for cell in row)
                ]
                if len(rows) >= 2:
                    page_items.append(_PdfTable(number, float(table.bbox[1]), rows))
            for line in page.filter(outside_tables).extract_text_lines():
                text = _clean(line["text"])
                if not text:
                    continue
                chars = [char for char in line["chars"] if char["text"].strip()]
                sizes = Counter(round(float(char["size"]) * 2) / 2 for char in chars)
                page_items.append(
                    _PdfLine(
                        page=number,
                        top=float(line["top"]),
                        bottom=float(line["bottom"]),
                        x0=float(line["x0"]),
                        text=text,
                        size=sizes.most_common(1)[0][0] if sizes else 0.0,
                        bold=bool(chars)
                        and all(_BOLD_FONT.search(char.get("fontname", "")) for char in chars),
                    )
                )
            page_items.sort(key=lambda item: item.top)
            items.extend(page_items)
    lines = [item for item in items if isinstance(item, _PdfLine)]
    running = _running_lines(lines, heights)
    items = [item for item in items if not (isinstance(item, _PdfLine) and id(item) in running)]
    lines = [item for item in items if isinstance(item, _PdfLine)]
    if outline:
        items = _headings_from_outline(items, outline)
    else:
        _headings_from_typography(lines)
    return _pdf_blocks_to_markdown(items)


def _running_lines(lines: list[_PdfLine], heights: list[float]) -> set[int]:
    """ids of the lines in the top or bottom margin that repeat on most pages (digits aside),
    and lone page numbers there: running headers and footers, not content."""
    if not heights:
        return set()

    def in_margin(line: _PdfLine) -> bool:
        height = heights[line.page]
        return line.top < height * _MARGIN or line.bottom > height * (1 - _MARGIN)

    def key(line: _PdfLine) -> str:
        return re.sub(r"\d+", "#", line.text.lower())

    pages_with: dict[str, set[int]] = {}
    for line in lines:
        if in_margin(line):
            pages_with.setdefault(key(line), set()).add(line.page)
    repeated = {
        text
        for text, pages in pages_with.items()
        if len(heights) >= 2 and len(pages) >= max(2, len(heights) // 2)
    }
    return {
        id(line)
        for line in lines
        if in_margin(line)
        and (key(line) in repeated or re.fullmatch(r"(page )?\d+( of \d+)?", line.text.lower()))
    }


def _comparable_text(text: str) -> str:
    return "".join(character for character in text.casefold() if character.isalnum())


def _headings_from_outline(
    items: list[_PdfLine | _PdfTable], outline: list[_OutlineEntry]
) -> list[_PdfLine | _PdfTable]:
    """Mark the line each bookmark names as a heading (level + 1: the outline's top level is
    the document's sections); a bookmark whose text is not on its page becomes a heading
    line of its own at the bookmark's position."""
    result = list(items)
    for entry in outline:
        wanted = _comparable_text(entry.title)
        match = None
        for position, item in enumerate(result):
            if not isinstance(item, _PdfLine) or item.heading or item.page < entry.page:
                continue
            if item.page > entry.page + 1:
                break
            text = _comparable_text(item.text)
            if text == wanted:
                match = (position, 1)
            elif text and wanted.startswith(text) and position + 1 < len(result):
                following = result[position + 1]
                if isinstance(following, _PdfLine) and _comparable_text(
                    item.text + following.text
                ) == wanted:
                    match = (position, 2)  # a bookmarked heading wrapped over two lines
            if match:
                break
        level = min(entry.level + 1, 6)
        if match:
            position, count = match
            heading = result[position]
            assert isinstance(heading, _PdfLine)
            if count == 2:
                following = result.pop(position + 1)
                assert isinstance(following, _PdfLine)
                heading.text = f"{heading.text} {following.text}"
            heading.heading = level
            continue
        top = entry.top if entry.top is not None else -1.0
        insert_at = next(
            (
                position
                for position, item in enumerate(result)
                if item.page > entry.page or (item.page == entry.page and item.top >= top)
            ),
            len(result),
        )
        result.insert(
            insert_at,
            _PdfLine(entry.page, top, top, 0.0, entry.title, 0.0, False, heading=level),
        )
    return result


def _headings_from_typography(lines: list[_PdfLine]) -> None:
    """Mark as headings the short lines set larger than the body text, or in bold at body
    size; bigger type is a higher level (the largest is "#")."""
    weights: Counter[float] = Counter()
    for line in lines:
        weights[line.size] += len(line.text)
    if not weights:
        return
    body = weights.most_common(1)[0][0]

    def looks_like_heading(line: _PdfLine) -> bool:
        words = line.text.split()
        if not 0 < len(words) <= 15 or line.text.endswith((".", ",", ";")):
            return False
        if not any(character.isalpha() for character in line.text) or _BULLET.match(line.text):
            return False
        return line.size >= body * 1.15 or (line.bold and line.size >= body * 0.95)

    candidates = [line for line in lines if looks_like_heading(line)]
    larger = sorted({line.size for line in candidates if line.size >= body * 1.15}, reverse=True)
    for line in candidates:
        if line.size in larger:
            line.heading = min(larger.index(line.size) + 1, 6)
        else:
            line.heading = min(len(larger) + 1, 6)
    # A heading wrapped over two lines: same level, the second right under the first.
    for previous, line in itertools.pairwise(lines):
        if (
            previous.heading
            and line.heading == previous.heading
            and line.page == previous.page
            and line.top - previous.bottom < line.size * 0.35
        ):
            line.text = f"{previous.text} {line.text}"
            previous.text = ""


def _pdf_blocks_to_markdown(items: list[_PdfLine | _PdfTable]) -> tuple[str, str]:
    """Markdown blocks from lines and tables in reading order: headings, paragraphs (lines
    joined while the spacing stays that of one paragraph), list items, pipe tables (a table
    continued on the next page, its header repeated or not, stays one table)."""
    blocks: list[str] = []
    first_heading = ""
    paragraph: list[str] = []
    kind = ""  # "paragraph" or "item" while lines are being collected
    previous: _PdfLine | None = None
    item_x0 = 0.0  # where the current list item's marker stands
    last_table: list[list[str]] | None = None

    def flush() -> None:
        nonlocal paragraph, kind
        if paragraph:
            text = paragraph[0]
            for line in paragraph[1:]:
                # A line broken after a hyphen ("beta-" / "blocker") joins without a space.
                text += line if re.search(r"[A-Za-z]-$", text) else " " + line
            blocks.append(text)
        paragraph, kind = [], ""

    for item in items:
        if isinstance(item, _PdfTable):
            flush()
            rows = item.rows
            if last_table is not None and len(rows[0]) == len(last_table[0]):
                last_table.extend(rows[1:] if rows[0] == last_table[0] else rows)
                blocks[-1] = _pipe_table(last_table)
            else:
                last_table = [list(row) for row in rows]
                blocks.append(_pipe_table(last_table))
            previous = None
            continue
        if not item.text:
            continue
        if item.heading:
            flush()
            last_table = None
            blocks.append("#" * item.heading + " " + item.text)
            if item.heading == 1 and not first_heading:
                first_heading = item.text
            previous = None
            continue
        last_table = None
        bullet = _BULLET.match(item.text)
        close = previous is not None and (
            (item.page == previous.page and item.top - previous.bottom <= item.size * 0.6)
            or (item.page == previous.page + 1 and not paragraph[-1].endswith((".", ":", "!", "?")))
        )
        if bullet:
            flush()
            marker = bullet.group(1).strip("()")
            marker = marker if marker[0].isdigit() else "-"
            if marker[-1] == ")":
                marker = marker[:-1] + "."
            paragraph, kind, item_x0 = [f"{marker} {item.text[bullet.end():]}"], "item", item.x0
        elif paragraph and close and (kind == "paragraph" or item.x0 > item_x0 + 2):
            paragraph.append(item.text)
        else:
            flush()
            paragraph, kind = [item.text], "paragraph"
        previous = item
    flush()
    # Consecutive list items form one list (one block for the chunker).
    merged: list[str] = []
    for block in blocks:
        if merged and _BULLET.match(block) and _BULLET.match(merged[-1].split("\n")[-1]):
            merged[-1] += "\n" + block
        else:
            merged.append(block)
    return "\n\n".join(merged), first_heading


def _pipe_table(rows: list[list[str]]) -> str:
    """A Markdown pipe table, the first row as its header."""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * width)
    return "\n".join(lines)


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
                    blocks.append(_pipe_table(rows))
        elif tag in {"fig", "boxed-text", "disp-quote"}:
            caption = _inner_text(child.find("caption")) if tag == "fig" else ""
            if caption:
                blocks.append(caption)
            elif tag != "fig":
                _jats_blocks(child, level, blocks)
