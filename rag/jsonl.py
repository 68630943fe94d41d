"""JSONL read one way everywhere: gold sets, saved evaluation rows, batch input, eval scripts.

Only "\\n" ends a JSONL line. `str.splitlines()` also breaks at U+2028, U+2029, U+0085 and
other separators that JSON allows raw inside strings (PubMedQA abstracts carry U+2028), and
would cut such a record in two.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.errors import InputError


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """Each non-blank line of JSONL `text` with its 1-based line number (a trailing "\\r" of
    a Windows line ending stays; json.loads ignores it)."""
    for line_number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield line_number, line


def read_jsonl(path: str | Path, what: str = "JSONL file") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ("file:line", record) for every JSON object line of the file at `path`.

    Raises InputError naming the file (and `what` it should be) when it is missing or not
    UTF-8, and naming `file:line` for a line that is not valid JSON or not a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read the {what} ({error})") from None
    for line_number, line in jsonl_lines(text):
        where = f"{path}:{line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
        yield where, record


def write_jsonl(path: str | Path, records: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> None:
    """Write `records` to `path`, one JSON object a line (UTF-8, not ASCII-escaped), creating
    the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
