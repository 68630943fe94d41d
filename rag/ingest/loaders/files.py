"""Which files an ingest reads: the supported suffixes, folder walks (sorted, hidden entries and
exclusions skipped, symlink loops and broken links reported) and the stable name of a file."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

from rag.ingest.loaders.common import IngestProblem

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
XML_SUFFIXES = frozenset({".xml"})
JSONL_SUFFIXES = frozenset({".jsonl"})
SUPPORTED_SUFFIXES = (
    MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES | XML_SUFFIXES | JSONL_SUFFIXES
)


def display_path(path: Path) -> str:
    """The stable name of a file: relative to the working directory when under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix()


def resolved(path: Path) -> Path:
    """`path` with symlinks followed, or made absolute when it cannot be resolved."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python before 3.13)
        return Path(os.path.abspath(path))


def broken_link(path: Path) -> str | None:
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


def walk_folder(folder: Path, excluded: set[Path]) -> Iterator[Path | IngestProblem]:
    """The supported files under `folder` in sorted order, hidden and `excluded` entries
    skipped, with a problem for each broken link or folder that cannot be read."""
    visited: set[Path] = set()

    def walk(current: Path) -> Iterator[Path | IngestProblem]:
        real = resolved(current)
        if real in visited:  # a folder linked from inside itself would recurse forever
            return
        visited.add(real)
        try:
            entries = sorted(current.iterdir(), key=lambda entry: entry.name)
        except OSError as error:
            yield IngestProblem(display_path(current), f"cannot read folder ({error.strerror})")
            return
        for entry in entries:
            if entry.name.startswith(".") or resolved(entry) in excluded:
                continue
            broken = broken_link(entry)
            if broken:
                yield IngestProblem(display_path(entry), broken)
            elif entry.is_dir():
                yield from walk(entry)
            elif entry.is_file() and entry.suffix.lower() in SUPPORTED_SUFFIXES:
                yield entry

    return walk(folder)
