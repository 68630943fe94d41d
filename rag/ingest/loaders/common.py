"""What the format loaders share: the problem an input reports, reading a file as UTF-8 text,
finding a year or a DOI in a metadata value, and the Markdown they write (pipe tables, the
first "# " heading as a title)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

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


class Unusable(Exception):
    """Raised inside a loader for a whole-file problem; load_paths turns it into IngestProblem."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_text(path: Path) -> str:
    """The file as UTF-8 text; empty, binary and non-UTF-8 files are whole-file problems."""
    data = path.read_bytes()
    if not data.strip():
        raise Unusable("empty file")
    if b"\x00" in data[:8192]:
        raise Unusable("binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise Unusable(
            f"not UTF-8 text (byte 0x{data[error.start]:02x}); re-save the file as UTF-8", line
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def year_from(value: object) -> int | None:
    """The year in a metadata value ("2021-03-04", "D:20210315...", "Dec 1998", 2021), or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value or "").strip()
    # Compact dates (PDF "D:20210315...", "20190821") start with the year and no separator.
    leading = _YEAR.match(text[:4]) if text[4:5].isdigit() else None
    match = leading or _YEAR.search(text)
    return int(match.group(1)) if match else None


def doi_from(value: str | None) -> str | None:
    """The DOI ("10.xxxx/...") in a value such as "doi:10.1000/x." or a doi.org URL, or None."""
    match = _DOI.search(value or "")
    return match.group(0).rstrip(".,;") if match else None


def clean(value: str | None) -> str:
    """`value` with runs of whitespace made one space and the ends trimmed (None gives "")."""
    return " ".join((value or "").split())


def first_heading(markdown: str) -> str:
    """The text of the first "# " heading in `markdown`, or "" when it has none."""
    for line in markdown.split("\n"):
        if line.startswith("# "):
            match = _ATX_HEADING.match(line)
            if match:
                return match.group(1).strip()
    return ""


def pipe_table(rows: list[list[str]]) -> str:
    """A Markdown pipe table, the first row as its header."""
    width = max(len(row) for row in rows)
    lines = ["| " + " | ".join(row + [""] * (width - len(row))) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * width)
    return "\n".join(lines)
