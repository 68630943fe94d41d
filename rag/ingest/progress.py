"""Progress of an ingest on stderr: a bar on a terminal, a line every 30 s in a log.

Used by rag.ingest.pipeline.ingest (either backend); quiet when progress is off.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Self


class IngestProgress:
    """A rich progress bar on stderr when it is a terminal; otherwise (a log file, a pipe)
    a plain line every `line_interval_s` seconds, so a long ingest shows it is alive."""

    line_interval_s = 30.0

    def __init__(self, enabled: bool, total: int | None) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._total = total
        self._enabled = enabled and sys.stderr.isatty()
        self._lines = enabled and not self._enabled
        self._documents = self._passages = 0
        self._started = self._last_line = time.monotonic()

    def __enter__(self) -> Self:
        if self._enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]ingesting"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("documents, {task.fields[passages]} passages embedded"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("ingest", total=self._total, passages=0)
        return self

    def advance(self, documents: int, passages: int = 0, note: str = "") -> None:
        """Count `documents` more as done and `passages` more as embedded; `note` says where
        a large document stands."""
        self._documents += documents
        self._passages += passages
        now = time.monotonic()
        if self._lines and now - self._last_line >= self.line_interval_s:
            self._last_line = now
            done = f"{self._documents}/{self._total}" if self._total else str(self._documents)
            minutes, seconds = divmod(int(now - self._started), 60)
            print(
                f"ingest: {done} documents, {self._passages} passages embedded, "
                f"{minutes}m{seconds:02d}s" + (f"; {note} passages" if note else ""),
                file=sys.stderr,
                flush=True,
            )
        if self._progress is None:
            return
        task = self._progress.tasks[0]
        self._progress.update(
            self._task, advance=documents, passages=task.fields["passages"] + passages
        )

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.stop()
