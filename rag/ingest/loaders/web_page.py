"""HTML pages (saved web pages): the article turned into Markdown, page clutter dropped, and the
citation fields from the page's <head> (citation_*, Dublin Core and Open Graph meta tags)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from rag.ingest.loaders.common import (
    Unusable,
    clean,
    doi_from,
    first_heading,
    pipe_table,
    read_text,
    year_from,
)
from rag.types import Document

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
                self._row.append(clean("".join(self._cell)).replace("|", "\\|"))
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
        content = clean(attributes.get("content"))
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
        lines = [clean(line) for line in raw.split("\n")]
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
            self.blocks.append(pipe_table(rows))

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


def load_html(path: Path, shown: str) -> Document:
    html = read_text(path)
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
        raise Unusable("no visible text in the HTML body")
    meta = parser.meta

    def first(*names: str) -> str:
        return next((meta[name] for name in names if meta.get(name)), "")

    title = first("citation_title", "dc.title", "og:title") or clean("".join(parser.title_parts))
    title = title or first_heading(body) or path.stem
    source = first(
        "citation_journal_title", "citation_publisher", "dc.publisher", "og:site_name", "dc.source"
    )
    year = year_from(
        first(
            "citation_publication_date", "citation_date", "dc.date", "dc.date.issued",
            "citation_online_date", "article:published_time",
        )
    )  # fmt: skip
    doi = doi_from(first("citation_doi", "dc.identifier", "prism.doi"))
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
