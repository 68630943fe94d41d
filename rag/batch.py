"""Batch answering: a file of questions -> one JSON line per question id, resumable.

Input is JSONL (`{"id", "question", "history"?: [{"question", "answer"}]}` per line) or CSV
with `id` and `question` columns, chosen by extension. Output is JSONL: `Answer.to_json()`
plus `"id"` for each answered question, `{"id", "error"}` for a question that could not be
answered (a bad input line, or an exception from the answer callable).

The output file doubles as the progress record. Each line is written with one write call, so
a killed run leaves at most one partial last line; the next run cuts it off, drops earlier
error lines so those ids are tried again, and skips every id that already has an answer.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from rag.errors import InputError, RagError
from rag.jsonl import jsonl_lines
from rag.types import Answer, Turn

AnswerFn = Callable[[str, list[Turn]], Answer]

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class BatchItem:
    """One input line: the id to report under, and either a question or why it is unusable.

    `key` is the id as text: it decides duplicates and resumption, so `3` and `"3"` are the
    same question. `line` is the 1-based line number in the input file.
    """

    id: Any
    line: int
    question: str = ""
    history: tuple[Turn, ...] = ()
    problem: str | None = None

    @property
    def key(self) -> str:
        return str(self.id)


@dataclass
class BatchSummary:
    """What one run did. `failed` counts every error line written in this run, bad input
    lines included (`bad_input` of them); `skipped` counts ids answered by an earlier run;
    `duplicates` maps an id seen more than once in the input to all its line numbers."""

    answered: int = 0
    abstained: int = 0
    failed: int = 0
    skipped: int = 0
    bad_input: int = 0
    duplicates: dict[str, list[int]] = field(default_factory=dict)

    def line(self) -> str:
        """One human line, e.g. `12 answered (2 abstained), 1 failed, 5 skipped (already done)`."""
        parts = [f"{self.answered} answered ({self.abstained} abstained)"]
        failed = f"{self.failed} failed"
        if self.bad_input:
            failed += f" ({self.bad_input} bad input line{'s' if self.bad_input != 1 else ''})"
        parts.append(failed)
        parts.append(f"{self.skipped} skipped (already done)")
        if self.duplicates:
            count = len(self.duplicates)
            parts.append(f"{count} duplicate id{'s' if count != 1 else ''}")
        return ", ".join(parts)


# --- reading questions --------------------------------------------------------------------


def read_items(input_path: Path) -> list[BatchItem]:
    """Every question line of `input_path`, in file order; unusable lines carry a `problem`.

    Raises InputError when the file as a whole cannot be read (missing, unknown extension,
    not UTF-8, a CSV without `id` and `question` columns).
    """
    if not input_path.is_file():
        raise InputError(f"{input_path}: no such file")
    suffix = input_path.suffix.lower()
    if suffix not in JSONL_SUFFIXES + CSV_SUFFIXES:
        raise InputError(
            f"{input_path}: unknown input format {suffix or '(no extension)'}; "
            "use .jsonl (one JSON object per line) or .csv (id,question columns)"
        )
    try:
        # utf-8-sig: spreadsheets often save CSV with a byte-order mark
        text = input_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            f"{input_path}: not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    if suffix in CSV_SUFFIXES:
        return list(_csv_items(text, input_path))
    return list(_jsonl_items(text))


def _jsonl_items(text: str) -> Iterator[BatchItem]:
    for line_number, line in jsonl_lines(text):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            yield BatchItem(f"line {line_number}", line_number, problem=f"not JSON ({error.msg})")
            continue
        if not isinstance(record, dict):
            yield BatchItem(
                f"line {line_number}", line_number, problem="not a JSON object with id and question"
            )
            continue
        yield _item_from_record(record, line_number)


def _item_from_record(record: dict[str, Any], line_number: int) -> BatchItem:
    record_id = record.get("id")
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)) or record_id == "":
        return BatchItem(f"line {line_number}", line_number, problem="no id (a string or integer)")
    question = record.get("question")
    if not isinstance(question, str):
        return BatchItem(record_id, line_number, problem="no question")
    if not question.strip():
        return BatchItem(record_id, line_number, problem="empty question")
    history_field = record.get("history") or []
    history: list[Turn] = []
    if not isinstance(history_field, list):
        return BatchItem(record_id, line_number, problem="history is not a list")
    for position, turn in enumerate(history_field, start=1):
        if not (
            isinstance(turn, dict)
            and isinstance(turn.get("question"), str)
            and isinstance(turn.get("answer"), str)
        ):
            return BatchItem(
                record_id,
                line_number,
                problem=f"history turn {position} needs string question and answer",
            )
        history.append(Turn(question=turn["question"], answer=turn["answer"]))
    return BatchItem(record_id, line_number, question=question.strip(), history=tuple(history))


def _csv_items(text: str, input_path: Path) -> Iterator[BatchItem]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = [name.strip().lower() for name in reader.fieldnames or []]
    if "id" not in columns or "question" not in columns:
        raise InputError(
            f"{input_path}: a CSV batch needs a header row with id and question columns "
            f"(found: {', '.join(reader.fieldnames or []) or 'no header'})"
        )
    # Header names are matched case- and space-insensitively ("ID", " Question").
    reader.fieldnames = columns
    for row in reader:
        line_number = reader.line_num
        record_id = (row.get("id") or "").strip()
        question = (row.get("question") or "").strip()
        if not record_id:
            yield BatchItem(f"line {line_number}", line_number, problem="no id")
        elif not question:
            yield BatchItem(record_id, line_number, problem="empty question")
        else:
            yield BatchItem(record_id, line_number, question=question)


def find_duplicates(items: list[BatchItem]) -> tuple[list[BatchItem], dict[str, list[int]]]:
    """The first item for each id, in order, and {id: line numbers} for ids seen twice or more."""
    first_by_key: dict[str, BatchItem] = {}
    lines_by_key: dict[str, list[int]] = {}
    for item in items:
        lines_by_key.setdefault(item.key, []).append(item.line)
        first_by_key.setdefault(item.key, item)
    duplicates = {key: lines for key, lines in lines_by_key.items() if len(lines) > 1}
    return list(first_by_key.values()), duplicates


# --- the output file as a progress record --------------------------------------------------


def recover_output(output_path: Path) -> set[str]:
    """Ids (as text) already answered in `output_path`, after repairing the file in place.

    Kept: the first answer line per id. Dropped: a partial last line (a killed run), lines
    that are not JSON objects with an id, error lines (so those ids are retried) and repeated
    ids. When anything is dropped the file is rewritten through a temporary file and
    os.replace, so a kill during the repair leaves either the old or the new file.
    """
    if not output_path.exists():
        return set()
    raw = output_path.read_bytes()
    # Everything after the last newline is a line whose write never finished.
    complete, _, partial_tail = raw.rpartition(b"\n")
    must_rewrite = bool(partial_tail)
    kept_lines: list[bytes] = []
    answered: set[str] = set()
    for line in complete.split(b"\n") if complete else []:
        record = _parse_output_line(line)
        if record is None or "error" in record or str(record["id"]) in answered:
            must_rewrite = True
            continue
        answered.add(str(record["id"]))
        kept_lines.append(line)
    if must_rewrite:
        temporary_path = output_path.with_name(output_path.name + ".tmp")
        with open(temporary_path, "wb") as temporary:
            temporary.write(b"".join(line + b"\n" for line in kept_lines))
            temporary.flush()
            os.fsync(temporary.fileno())
        os.replace(temporary_path, output_path)
    return answered


def _parse_output_line(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or "id" not in record:
        return None
    return record


class _LineWriter:
    """Appends whole JSON lines: one os.write per line, serialised by a lock.

    O_APPEND plus a single write means a line is either fully in the file or (if the process
    dies inside the call) a tail that `recover_output` cuts off; never interleaved with another
    thread's line.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append `record` as one line and return what was written: an error record in its
        place when it cannot be encoded as JSON, so one odd answer cannot stop the batch."""
        try:
            data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
            record = {"id": record["id"], "error": f"answer could not be written as JSON: {error}"}
            data = (json.dumps(record) + "\n").encode("utf-8")
        with self.lock:
            written = os.write(self._fd, data)
            # A regular file takes the whole buffer at once; loop only for the odd short write.
            while written < len(data):
                written += os.write(self._fd, data[written:])
        return record

    def close(self) -> None:
        os.close(self._fd)


# --- the run ----------------------------------------------------------------------------


def run_batch(
    input_path: Path,
    output_path: Path,
    answer: AnswerFn,
    *,
    workers: int = 1,
    progress: bool = True,
) -> BatchSummary:
    """Answer every question in `input_path` not yet answered in `output_path`.

    `answer(question, history)` is called once per pending id, from up to `workers` threads at
    once (so it must be thread-safe; rag's Engine is). Its exceptions become error lines and
    the run goes on. Returns the counts; duplicate ids are also reported on stderr.
    """
    if workers < 1:
        raise InputError(f"--workers must be 1 or more (got {workers})")
    items, duplicates = find_duplicates(read_items(input_path))
    summary = BatchSummary(duplicates=duplicates)
    for key, lines in duplicates.items():
        print(
            f"{input_path}: id {key!r} appears on lines {', '.join(map(str, lines))}; "
            f"answered once (line {lines[0]})",
            file=sys.stderr,
        )

    already_answered = recover_output(output_path)
    pending = [item for item in items if item.key not in already_answered]
    summary.skipped = len(items) - len(pending)

    writer = _LineWriter(output_path)
    try:
        with _ProgressBar(len(pending), enabled=progress) as advance:

            def answer_and_record(item: BatchItem) -> None:
                record, abstained = _answer_item(item, answer)
                record = writer.write(record)
                with writer.lock:
                    if "error" in record:
                        summary.failed += 1
                        summary.bad_input += item.problem is not None
                    else:
                        summary.answered += 1
                        summary.abstained += abstained
                advance()

            if workers == 1:
                for item in pending:
                    answer_and_record(item)
            else:
                with ThreadPoolExecutor(max_workers=workers) as executor:
                    futures = [executor.submit(answer_and_record, item) for item in pending]
                    try:
                        wait(futures)
                    except BaseException:
                        # Ctrl-C: start nothing new; answers in flight still get written.
                        for future in futures:
                            future.cancel()
                        raise
                    for future in futures:
                        future.result()  # re-raise a bug in the recording itself
    finally:
        writer.close()
    return summary


def _answer_item(item: BatchItem, answer: AnswerFn) -> tuple[dict[str, Any], bool]:
    """The output record for one item and whether the answer abstained."""
    if item.problem is not None:
        return {"id": item.id, "error": f"input line {item.line}: {item.problem}"}, False
    try:
        result = answer(item.question, list(item.history))
    except RagError as error:
        return {"id": item.id, "error": str(error)}, False
    except Exception as error:  # noqa: BLE001 - one broken item must not end the batch
        return {"id": item.id, "error": f"{type(error).__name__}: {error}"}, False
    return {"id": item.id, **result.to_json()}, bool(result.abstained)


class _ProgressBar:
    """A rich progress bar on stderr with count, rate and ETA; silent when stderr is not a
    terminal or `enabled` is False. Entering yields a thread-safe `advance()`."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        console = Console(stderr=True)
        self._progress = Progress(
            TextColumn("answering"),
            BarColumn(),
            MofNCompleteColumn(),
            _RateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not (enabled and console.is_terminal),
        )
        self._task = self._progress.add_task("answering", total=total)

    def __enter__(self) -> Callable[[], None]:
        self._progress.start()
        return lambda: self._progress.advance(self._task)

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


class _RateColumn(ProgressColumn):
    """Questions per second (or seconds per question when slower than one a second)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if not speed:
            return Text("-/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.1f}/s", style="progress.data.speed")
        return Text(f"{1 / speed:.1f}s each", style="progress.data.speed")
