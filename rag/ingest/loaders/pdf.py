"""PDF files as Markdown: sections from the outline or heading typography, ruled tables as pipe
tables, running headers and footers dropped (pypdf opens the file, pdfplumber reads the layout)."""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.ingest.loaders.common import Unusable, clean, pipe_table, year_from
from rag.types import Document


def load_pdf(path: Path, shown: str) -> Document:
    """A PDF as Markdown: sections from its outline (bookmarks) or, without one, from heading
    typography; ruled tables as pipe tables; running headers, footers and page numbers dropped.

    pypdf opens the file (damage, encryption, metadata, outline); pdfplumber reads the layout.
    Should pdfplumber fail on a file pypdf can read, the plain page text is used instead.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if path.stat().st_size == 0:
        raise Unusable("empty file")
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unusable("encrypted PDF; save an unencrypted copy")
        info = reader.metadata or {}
        title = _pdf_title(str(info.get("/Title") or ""))
        author = clean(str(info.get("/Author") or "")) or clean(str(info.get("/Subject") or ""))
        created = str(info.get("/CreationDate") or "")
        outline = _pdf_outline(reader)
        try:
            text, first_heading = _pdf_markdown(path, outline)
        except Exception:  # noqa: BLE001 - any layout failure falls back to the plain text
            pages = [page.extract_text() or "" for page in reader.pages]
            text = "\n\n".join(page.strip() for page in pages if page.strip())
            first_heading = ""
    except Unusable:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
        # pypdf signals damage with several exception types depending on where parsing fails.
        reason = clean(str(error)) or type(error).__name__
        raise Unusable(f"corrupt or unreadable PDF ({reason})") from None
    if not text.strip():
        raise Unusable("no extractable text in the PDF (scanned images need OCR first)")
    return Document(
        id=shown,
        title=title or first_heading or path.stem,
        text=text,
        source=author,
        year=year_from(created.removeprefix("D:")),
        origin=shown,
    )


def _pdf_title(value: str) -> str:
    """The metadata title, unless it is a word processor's placeholder ("untitled", a file name)."""
    title = clean(value)
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
            title = clean(str(getattr(item, "title", "") or ""))
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
                    [clean(cell).replace("|", "\\|") for cell in row]
                    for row in table.extract()
                    if any(cell and cell.strip() for cell in row)
                ]
                if len(rows) >= 2:
                    page_items.append(_PdfTable(number, float(table.bbox[1]), rows))
            for line in page.filter(outside_tables).extract_text_lines():
                text = clean(line["text"])
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
                blocks[-1] = pipe_table(last_table)
            else:
                last_table = [list(row) for row in rows]
                blocks.append(pipe_table(last_table))
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
