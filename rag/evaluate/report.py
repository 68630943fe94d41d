"""Reports: the per-question rows and per-mode summaries an evaluation produces, how they
are saved (JSONL rows, read back by `read_rows`) and presented (Markdown tables, JSON).

Measuring lives in `rag.evaluate.retrieval` and `rag.evaluate.answers`; the numbers they put
here are defined in `rag.evaluate.metrics`. The answers chart is drawn by evals/chart.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, TypeVar

from rag.errors import InputError
from rag.evaluate.metrics import METRIC_NAMES
from rag.jsonl import read_jsonl, write_jsonl

WITH_RETRIEVAL = "retrieval"
WITHOUT_RETRIEVAL = "no retrieval"
ANSWER_MODES = (WITH_RETRIEVAL, WITHOUT_RETRIEVAL)

# (key, label) of every summary metric, in table order; all are shares or means in 0..1.
METRICS: tuple[tuple[str, str], ...] = (
    ("accuracy", "yes/no/maybe accuracy"),
    ("decision_parse_rate", "decision parsed"),
    ("rouge_l", "ROUGE-L F"),
    ("token_f1", "token F1"),
    ("citation_validity", "citation validity"),
    ("cited_sentences", "sentences with a citation"),
    ("citation_support", "citation support"),
    ("abstention_rate", "abstention rate"),
    ("gold_retrieved", "gold passage retrieved"),
)


# ---- retrieval ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionResult:
    """One question under one mode: where its relevant documents ranked, and its metrics."""

    question_id: str
    mode: str
    relevant_doc_ids: tuple[str, ...]
    gold_ranks: tuple[int | None, ...]
    retrieved_doc_ids: tuple[str, ...]
    metrics: dict[str, float]
    missing_from_index: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.question_id,
            "mode": self.mode,
            "relevant_doc_ids": list(self.relevant_doc_ids),
            "gold_ranks": list(self.gold_ranks),
            "missing_from_index": list(self.missing_from_index),
            "retrieved_doc_ids": list(self.retrieved_doc_ids),
            **self.metrics,
        }


@dataclass(frozen=True)
class ModeSummary:
    """Mean metrics of one mode over every question of the set."""

    mode: str
    questions: int
    metrics: dict[str, float]
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "questions": self.questions,
            "seconds": round(self.seconds, 2),
            **self.metrics,
        }


_Summary = TypeVar("_Summary", bound="_HasMode")


class _HasMode(Protocol):
    mode: str


def summary_for(summaries: Sequence[_Summary], mode: str) -> _Summary:
    """The summary of `mode` among a report's `summaries`; KeyError when it was not run."""
    for summary in summaries:
        if summary.mode == mode:
            return summary
    raise KeyError(mode)


@dataclass(frozen=True)
class RetrievalReport:
    """What `rag eval` prints: per-mode summaries, per-question rows, and the gold documents
    the index does not hold (those questions are scored as misses, not dropped)."""

    gold_path: str
    index_path: str
    k: int
    summaries: tuple[ModeSummary, ...]
    rows: tuple[QuestionResult, ...]
    missing_gold: dict[str, tuple[str, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    embedding_seconds: float = 0.0

    @property
    def questions(self) -> int:
        return self.summaries[0].questions if self.summaries else 0

    def summary(self, mode: str) -> ModeSummary:
        return summary_for(self.summaries, mode)

    def to_json(self) -> dict[str, Any]:
        """The summary object of `rag eval --json` (per-question rows go to JSONL)."""
        return {
            "gold": self.gold_path,
            "index": self.index_path,
            "k": self.k,
            "questions": self.questions,
            "embedding_seconds": round(self.embedding_seconds, 2),
            "summaries": [summary.to_json() for summary in self.summaries],
            "questions_with_gold_missing_from_index": len(self.missing_gold),
            "missing_gold": {qid: list(doc_ids) for qid, doc_ids in self.missing_gold.items()},
            "notes": list(self.notes),
        }

    def to_markdown(self) -> str:
        """A Markdown table, one line per mode, followed by the missing-gold note."""
        lines = [
            (
                f"Retrieval, document level: `{self.gold_path}` ({self.questions} questions) "
                f"on index `{self.index_path}`."
            ),
            "",
            "| mode | " + " | ".join(METRIC_NAMES) + " | seconds |",
            "|---|" + "---:|" * (len(METRIC_NAMES) + 1),
        ]
        for summary in self.summaries:
            values = " | ".join(f"{summary.metrics[name]:.3f}" for name in METRIC_NAMES)
            lines.append(f"| {summary.mode} | {values} | {summary.seconds:.1f} |")
        lines.append("")
        if self.embedding_seconds:
            lines.append(
                f"Seconds exclude embedding the questions ({self.embedding_seconds:.1f} s, "
                "done once and shared by dense and hybrid)."
            )
        if self.missing_gold:
            shown = ", ".join(sorted(self.missing_gold)[:10])
            more = f" and {len(self.missing_gold) - 10} more" if len(self.missing_gold) > 10 else ""
            lines.append(
                f"{len(self.missing_gold)} question(s) have relevant documents missing from the "
                f"index and count as misses: {shown}{more}."
            )
        else:
            lines.append("Every relevant document is in the index.")
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def write_rows(self, path: str | Path) -> None:
        """Write the per-question rows as JSONL (one line per question and mode)."""
        write_jsonl(path, [row.to_json() for row in self.rows])


# ---- answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerRow:
    """One gold question under one mode: what the engine said and how it scored.

    Scores are None where they do not apply (no label, no reference, nothing to cite);
    `error` is the one-line failure when the question could not be answered.
    """

    question_id: str
    mode: str
    question: str
    label: str | None
    has_reference: bool
    decision: str | None = None
    correct: bool | None = None
    rouge_l: float | None = None
    token_f1: float | None = None
    markers: int = 0
    valid_markers: int = 0
    sentences: int = 0
    cited_sentences: int = 0
    supports: tuple[float, ...] = ()
    abstained: bool = False
    gold_retrieved: bool | None = None
    bottom_line: str = ""
    answer: str = ""
    cited_doc_ids: tuple[str, ...] = ()
    retrieved_doc_ids: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None
    # The engine's stage timings: "generate" near 0 on an abstention means the coverage
    # check abstained before the model was asked.
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The row as JSON: every field by name (`question_id` as "id"), scores rounded to 4
        places and seconds to 2, tuples as lists."""
        record: dict[str, Any] = {}
        for each in fields(self):
            value = getattr(self, each.name)
            if isinstance(value, float):
                value = round(value, 2 if each.name == "seconds" else 4)
            elif isinstance(value, tuple):
                value = [_rounded(item) if isinstance(item, float) else item for item in value]
            elif isinstance(value, dict):
                value = dict(value)
            record[_JSON_NAMES.get(each.name, each.name)] = value
        return record

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> AnswerRow:
        """The row `to_json` wrote (to rebuild a report from a saved or partial JSONL); a
        field an older file lacks takes its default."""
        values: dict[str, Any] = {}
        for each in fields(cls):
            name = _JSON_NAMES.get(each.name, each.name)
            if name in record:
                value = record[name]
                values[each.name] = tuple(value) if isinstance(value, list) else value
        return cls(**values)


# AnswerRow fields written under another name in the JSON rows.
_JSON_NAMES = {"question_id": "id"}


def read_rows(path: str | Path) -> list[AnswerRow]:
    """The rows of an answers JSONL file; InputError naming `file:line` for a bad line."""
    rows = []
    for where, record in read_jsonl(path, "answer rows"):
        try:
            rows.append(AnswerRow.from_json(record))
        except (KeyError, TypeError) as error:
            raise InputError(f"{where}: not an answer row ({error!r})") from None
    return rows


@dataclass(frozen=True)
class ModeAnswerSummary:
    """The metrics of one mode (defined in `rag.evaluate.answers`); None where not applicable."""

    mode: str
    questions: int
    errors: int
    labelled: int
    with_reference: int
    metrics: dict[str, float | None]
    mean_seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "questions": self.questions,
            "errors": self.errors,
            "labelled": self.labelled,
            "with_reference": self.with_reference,
            "mean_seconds": round(self.mean_seconds, 2),
            **{name: _rounded(value) for name, value in self.metrics.items()},
        }


@dataclass(frozen=True)
class AnswerReport:
    """Per-mode summaries and per-question rows of one answer evaluation.

    `notes` are Markdown lines appended to the report as written (the comparison with
    published figures, the command that made it).
    """

    gold_path: str
    index_path: str
    backend: str
    retrieval_mode: str
    k: int
    summaries: tuple[ModeAnswerSummary, ...]
    rows: tuple[AnswerRow, ...]
    seconds: float = 0.0
    notes: tuple[str, ...] = ()
    stopped_early: str | None = None

    @property
    def questions(self) -> int:
        return max((summary.questions for summary in self.summaries), default=0)

    def summary(self, mode: str) -> ModeAnswerSummary:
        return summary_for(self.summaries, mode)

    def to_json(self) -> dict[str, Any]:
        """The summary object (per-question rows go to JSONL)."""
        return {
            "gold": self.gold_path,
            "index": self.index_path,
            "backend": self.backend,
            "retrieval_mode": self.retrieval_mode,
            "k": self.k,
            "questions": self.questions,
            "seconds": round(self.seconds, 1),
            "stopped_early": self.stopped_early,
            "summaries": [summary.to_json() for summary in self.summaries],
        }

    def to_markdown(self, chart_name: str | None = None) -> str:
        """A Markdown report: setup line, one table (metrics x modes), notes; `chart_name`
        embeds the chart image saved beside it."""
        modes = [summary.mode for summary in self.summaries]
        lines = [
            (
                f"Answer quality: `{self.gold_path}` ({self.questions} questions), backend "
                f"`{self.backend}`, index `{self.index_path}`, retrieval {self.retrieval_mode} "
                f"top {self.k}."
            ),
            "",
            "| metric | " + " | ".join(modes) + " |",
            "|---|" + "---:|" * len(modes),
        ]
        for key, label in METRICS:
            values = [summary.metrics.get(key) for summary in self.summaries]
            if all(value is None for value in values):
                continue
            lines.append(f"| {label} | " + " | ".join(_percent(value) for value in values) + " |")
        lines.append(
            "| questions (errors) | "
            + " | ".join(f"{s.questions} ({s.errors})" for s in self.summaries)
            + " |"
        )
        lines.append(
            "| seconds per question | "
            + " | ".join(f"{s.mean_seconds:.1f}" for s in self.summaries)
            + " |"
        )
        lines.append("")
        lines.append(
            "Accuracy counts an unparsed decision or a failed question as wrong; ROUGE-L F and "
            "token F1 compare bottom line + answer with the reference answer; citation validity "
            "is the share of [n] markers that resolve to a listed source (definitions: "
            "`rag/evaluate/metrics.py` and `rag/evaluate/answers.py`)."
        )
        if self.stopped_early:
            lines += ["", f"**Stopped early:** {self.stopped_early}"]
        if chart_name:
            lines += ["", f"![answer metrics by mode]({chart_name})"]
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def write_rows(self, path: str | Path) -> None:
        """Per-question rows as JSONL, one line per question and mode."""
        write_jsonl(path, [row.to_json() for row in self.rows])

    def write(self, prefix: str | Path, chart_name: str | None = None) -> list[Path]:
        """Write prefix.jsonl (rows) and prefix.md (the report, embedding `chart_name` when a
        chart is saved beside it: evals/chart.py); returns the two paths."""
        prefix = Path(prefix)
        rows_path = prefix.with_name(prefix.name + ".jsonl")
        report_path = prefix.with_name(prefix.name + ".md")
        self.write_rows(rows_path)
        report_path.write_text(self.to_markdown(chart_name=chart_name), encoding="utf-8")
        return [rows_path, report_path]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
