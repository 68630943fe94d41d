"""Answer evaluation: gold questions + an engine -> per-question rows and per-mode answer metrics.

Each gold question is asked twice: with retrieval (the engine's normal path: passages, cited
answer) and without it (the same LLM given the bare question: `use_retrieval=False`), so the
report shows what the passages add. A question with a gold `label` is asked for a
yes/no/maybe decision too.

Metrics, per mode, over the questions of the set:

- accuracy: share of questions with a gold `label` whose parsed decision equals it. An
  unparsed decision and a failed question (error row) both count as wrong, so the
  denominator is always every labelled question (comparable with published figures).
- decision parse rate: share of labelled questions for which a decision was parsed at all.
- ROUGE-L F: for answer tokens X and reference tokens Y (lower-cased runs of letters and
  digits), with LCS the length of their longest common subsequence, P = LCS/|X|,
  R = LCS/|Y|, F = 2PR/(P+R); 0 when LCS is 0. Mean over questions with a reference
  `answer` (error rows score 0).
- token F1: SQuAD's answer F1: both texts normalised (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), then F1 of the multiset overlap of their
  tokens. Mean over questions with a reference (error rows score 0).
  Both text metrics score the bottom line plus the answer body, citation markers removed.
- citation validity: share of the [n] markers shown in bottom line + answer that name a
  citation the answer lists (pooled over all answers of the mode). The citation contract
  makes this 100%; anything less is a bug. n/a when the mode produced no markers.
- cited sentences: share of the sentences of non-abstained answers (bottom line + body)
  that carry at least one [n] marker, pooled. n/a without retrieval (nothing to cite).
- citation support: mean of `Citation.support` (how well the citing sentences are backed by
  the passage, 0..1) over every citation whose support is known; n/a when none is.
- abstention rate: share of answered questions (error rows excluded) where the engine
  abstained, for whatever reason (its coverage check found the index does not answer, the
  model refused, or no supported citation was left). When the coverage check abstains the
  model is never asked, so there is no decision: it counts as unparsed and wrong.
- gold passage retrieved (retrieval mode only): share of answered questions for which a
  relevant document was among the retrieved passages; it bounds what retrieval can add.

`evaluate_answers` does the asking and scoring; `AnswerReport` renders the Markdown table,
the JSON summary, the per-question JSONL rows and a PNG chart; `run_answer_evaluation` is
the one-call entry point used by `rag eval GOLD --answers`.
"""

from __future__ import annotations

import json
import re
import string
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import InputError, RagError
from rag.evaluate import GoldQuestion, read_gold, summary_for
from rag.retrieve import check_mode
from rag.text import split_sentences
from rag.types import Answer

if TYPE_CHECKING:
    from rag.config import Settings

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
# The ones the chart compares.
CHART_METRICS = (
    "accuracy",
    "decision_parse_rate",
    "rouge_l",
    "token_f1",
    "citation_validity",
    "cited_sentences",
    "abstention_rate",
)

# A run of failures this long means the endpoint is gone, not that one question is odd.
MAX_CONSECUTIVE_ERRORS = 10

_MARKER = re.compile(r"\[(\d+)\]")
_WORD = re.compile(r"[a-z0-9]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


# ---- text metrics --------------------------------------------------------------------------


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased runs of ASCII letters and digits, in order (ROUGE's default tokens)."""
    return _WORD.findall(text.lower())


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len*len) time,
    O(len) memory: one previous row of the dynamic-programming table is kept)."""
    if len(first) < len(second):
        first, second = second, first
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second, start=1):
            current.append(
                previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1])
            )
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of `prediction` against `reference` (0.0 when either has no tokens)."""
    predicted, expected = rouge_tokens(prediction), rouge_tokens(reference)
    common = lcs_length(predicted, expected) if predicted and expected else 0
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def normalise_answer(text: str) -> str:
    """SQuAD normalisation: lower case, punctuation removed, a/an/the removed, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of the normalised texts; 1.0 when both normalise to nothing."""
    predicted, expected = normalise_answer(prediction).split(), normalise_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


# ---- citation metrics ----------------------------------------------------------------------


def shown_text(answer: Answer) -> str:
    """The bottom line and the answer body as the user reads them, markers included.

    The bottom line is left out when the body already opens with it (the contract takes the
    body's first sentence as the bottom line when the model wrote none), so no sentence
    counts twice."""
    body = answer.answer.strip()
    bottom_line = answer.bottom_line.strip()
    if not bottom_line or " ".join(body.split()).startswith(" ".join(bottom_line.split())):
        return body
    return f"{bottom_line}\n\n{body}"


def without_markers(text: str) -> str:
    """`text` with its [n] markers removed (for the text metrics)."""
    return " ".join(_MARKER.sub(" ", text).split())


def citation_marker_counts(answer: Answer) -> tuple[int, int]:
    """(markers shown, markers that name a listed citation) in bottom line + answer."""
    listed = {citation.n for citation in answer.citations}
    numbers = [int(n) for n in _MARKER.findall(f"{answer.bottom_line}\n{answer.answer}")]
    return len(numbers), sum(1 for n in numbers if n in listed)


def cited_sentence_counts(answer: Answer) -> tuple[int, int]:
    """(sentences shown, sentences carrying at least one [n] marker)."""
    sentences = split_sentences(shown_text(answer))
    return len(sentences), sum(1 for sentence in sentences if _MARKER.search(sentence))


def decision_accuracy(decisions: Sequence[str | None], labels: Sequence[str]) -> float:
    """Share of `labels` matched by the decision at the same position; None is wrong."""
    if len(decisions) != len(labels):
        raise ValueError("decisions and labels differ in length")
    if not labels:
        return 0.0
    return sum(1 for decision, label in zip(decisions, labels) if decision == label) / len(labels)


# ---- per-question rows and per-mode summaries -----------------------------------------------


class AnswerEngine(Protocol):
    """What the evaluation needs of `rag.answer.Engine`."""

    def ask(
        self,
        question: str,
        *,
        want_decision: bool = ...,
        use_retrieval: bool = ...,
        mode: str | None = ...,
        k: int | None = ...,
    ) -> Answer: ...


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
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise InputError(f"{path}: cannot read the answer rows ({error})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(AnswerRow.from_json(json.loads(line)))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(f"{path}:{number}: not an answer row ({error!r})") from None
    return rows


def score_answer(gold: GoldQuestion, mode: str, answer: Answer, seconds: float) -> AnswerRow:
    """The row of one answered question: decision, text and citation scores."""
    prose = without_markers(shown_text(answer))
    markers, valid = citation_marker_counts(answer)
    sentences, cited = cited_sentence_counts(answer)
    retrieved = tuple(dict.fromkeys(hit.doc_id for hit in answer.retrieved))
    return AnswerRow(
        question_id=gold.id,
        mode=mode,
        question=gold.question,
        label=gold.label,
        has_reference=gold.answer is not None,
        decision=answer.decision,
        correct=None if gold.label is None else answer.decision == gold.label,
        rouge_l=None if gold.answer is None else rouge_l(prose, gold.answer),
        token_f1=None if gold.answer is None else token_f1(prose, gold.answer),
        markers=markers,
        valid_markers=valid,
        # An abstention's text is the engine's fixed notice, not a cited answer: not counted.
        sentences=0 if answer.abstained else sentences,
        cited_sentences=0 if answer.abstained else cited,
        supports=tuple(c.support for c in answer.citations if c.support is not None),
        abstained=answer.abstained,
        gold_retrieved=(
            bool(set(gold.relevant_doc_ids) & set(retrieved)) if mode == WITH_RETRIEVAL else None
        ),
        bottom_line=answer.bottom_line,
        answer=answer.answer,
        cited_doc_ids=tuple(dict.fromkeys(c.doc_id for c in answer.citations)),
        retrieved_doc_ids=retrieved,
        seconds=seconds,
        timings_ms=dict(answer.timings_ms),
    )


def error_row(gold: GoldQuestion, mode: str, error: str, seconds: float) -> AnswerRow:
    """The row of a question the engine failed on: wrong decision, text scores 0."""
    return AnswerRow(
        question_id=gold.id,
        mode=mode,
        question=gold.question,
        label=gold.label,
        has_reference=gold.answer is not None,
        correct=None if gold.label is None else False,
        rouge_l=None if gold.answer is None else 0.0,
        token_f1=None if gold.answer is None else 0.0,
        seconds=seconds,
        error=error,
    )


@dataclass(frozen=True)
class ModeAnswerSummary:
    """The metrics of one mode (see the module docstring); None where not applicable."""

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


def summarise(mode: str, rows: Sequence[AnswerRow]) -> ModeAnswerSummary:
    """Aggregate the rows of one mode into its summary metrics."""
    answered = [row for row in rows if row.error is None]
    labelled = [row for row in rows if row.label is not None]
    referenced = [row for row in rows if row.has_reference]
    markers = sum(row.markers for row in answered)
    sentences = sum(row.sentences for row in answered)
    supports = [value for row in answered for value in row.supports]
    gold_flags = [row.gold_retrieved for row in answered if row.gold_retrieved is not None]
    metrics: dict[str, float | None] = {
        "accuracy": (
            decision_accuracy(
                [row.decision for row in labelled], [row.label or "" for row in labelled]
            )
            if labelled
            else None
        ),
        "decision_parse_rate": _share(
            sum(1 for row in labelled if row.decision is not None), len(labelled)
        ),
        "rouge_l": _mean([row.rouge_l or 0.0 for row in referenced]),
        "token_f1": _mean([row.token_f1 or 0.0 for row in referenced]),
        "citation_validity": _share(sum(row.valid_markers for row in answered), markers),
        "cited_sentences": (
            None
            if mode == WITHOUT_RETRIEVAL
            else _share(sum(row.cited_sentences for row in answered), sentences)
        ),
        "citation_support": _mean(supports),
        "abstention_rate": _share(sum(1 for row in answered if row.abstained), len(answered)),
        "gold_retrieved": _share(sum(gold_flags), len(gold_flags)),
    }
    return ModeAnswerSummary(
        mode=mode,
        questions=len(rows),
        errors=len(rows) - len(answered),
        labelled=len(labelled),
        with_reference=len(referenced),
        metrics=metrics,
        mean_seconds=_mean([row.seconds for row in answered]) or 0.0,
    )


def _share(part: float, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


# ---- the report ----------------------------------------------------------------------------


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
            "`rag/evaluate_answers.py`)."
        )
        if self.stopped_early:
            lines += ["", f"**Stopped early:** {self.stopped_early}"]
        if chart_name:
            lines += ["", f"![answer metrics by mode]({chart_name})"]
        lines.extend(self.notes)
        return "\n".join(lines) + "\n"

    def write_rows(self, path: str | Path) -> None:
        """Per-question rows as JSONL, one line per question and mode."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as handle:
            for row in self.rows:
                handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")

    def write_chart(self, path: str | Path) -> None:
        """A PNG of grouped bars: the main metrics, one bar per mode (n/a bars left out)."""
        write_grouped_bar_chart(
            Path(path),
            groups=[label for key, label in METRICS if key in CHART_METRICS],
            series={
                summary.mode: [summary.metrics.get(key) for key in CHART_METRICS]
                for summary in self.summaries
            },
            title=f"Answer quality, {Path(self.gold_path).name or 'gold set'}: "
            f"{self.questions} questions, {self.backend}",
        )

    def write(self, prefix: str | Path) -> list[Path]:
        """Write prefix.jsonl (rows), prefix.md (report) and prefix.png (chart); returns them."""
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        rows_path = prefix.with_name(prefix.name + ".jsonl")
        report_path = prefix.with_name(prefix.name + ".md")
        chart_path = prefix.with_name(prefix.name + ".png")
        self.write_rows(rows_path)
        self.write_chart(chart_path)
        report_path.write_text(self.to_markdown(chart_name=chart_path.name), encoding="utf-8")
        return [rows_path, report_path, chart_path]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def write_grouped_bar_chart(
    path: Path, *, groups: Sequence[str], series: dict[str, Sequence[float | None]], title: str
) -> None:
    """Grouped bars (0-100%) with matplotlib's Agg backend: one group per metric, one bar per
    series; a None value gets no bar and an "n/a" label. RagError when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: render straight to the file
        import matplotlib.pyplot as plt
    except ImportError:
        raise RagError("the answer chart needs matplotlib: pip install matplotlib") from None

    width = 0.8 / max(1, len(series))
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(groups)), 4.2), dpi=110)
    for position, (name, values) in enumerate(series.items()):
        offsets = [g + (position - (len(series) - 1) / 2) * width for g in range(len(groups))]
        heights = [0.0 if value is None else 100 * value for value in values]
        bars = axes.bar(offsets, heights, width, label=name)
        for bar, value in zip(bars, values):
            text = "n/a" if value is None else f"{100 * value:.0f}"
            axes.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                fontsize=7,
            )
    axes.set_xticks(range(len(groups)))
    axes.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    axes.set_ylim(0, 110)
    axes.set_ylabel("%")
    axes.set_title(title, fontsize=9)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    plt.close(figure)


# ---- the runner ----------------------------------------------------------------------------


def evaluate_answers(
    engine: AnswerEngine,
    gold_rows: Sequence[GoldQuestion],
    *,
    with_retrieval: bool = True,
    without_retrieval: bool = True,
    mode: str = "hybrid",
    k: int = 3,
    limit: int | None = None,
    progress: bool = True,
    block_size: int = 25,
    done: Sequence[AnswerRow] = (),
    on_row: Callable[[AnswerRow], None] | None = None,
    gold_path: str = "",
    index_path: str = "",
    backend: str = "",
) -> AnswerReport:
    """Ask every gold question (the first `limit`) under each requested mode and score it.

    Questions are taken in blocks of `block_size`: the block is asked with retrieval, then
    without. (An LLM server reuses the prompt prefix of its previous request; the two modes
    have different system prompts, so alternating them per question would re-read the system
    prompt every time, while blocks keep both modes covering the same questions if the run is
    cut short.) `done` holds rows of an earlier, interrupted run: a (question id, mode) it
    covers is not asked again. A failed question becomes an error row and the run goes on; after
    MAX_CONSECUTIVE_ERRORS failures in a row it stops and the report says so. `on_row` sees
    each row as it is made (to save partial results); `progress` prints one line per answer
    to stderr. Returns the report, rows ordered by question then mode.
    """
    modes = [
        m
        for m, wanted in ((WITH_RETRIEVAL, with_retrieval), (WITHOUT_RETRIEVAL, without_retrieval))
        if wanted
    ]
    if not modes:
        raise InputError("nothing to evaluate: both with and without retrieval are switched off")
    check_mode(mode)
    if k < 1:
        raise InputError(f"k must be 1 or more, got {k}")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be 1 or more, got {limit}")
    questions = list(gold_rows)[:limit] if limit else list(gold_rows)
    if not questions:
        raise InputError("there are no gold questions to evaluate")

    started = time.perf_counter()
    earlier = {(row.question_id, row.mode): row for row in done}
    rows: dict[tuple[int, str], AnswerRow] = {
        (position, answer_mode): earlier[(gold.id, answer_mode)]
        for position, gold in enumerate(questions)
        for answer_mode in modes
        if (gold.id, answer_mode) in earlier
    }
    consecutive_errors = 0
    stopped_early: str | None = None
    total = len(questions) * len(modes)
    numbered = list(enumerate(questions))
    block_size = max(1, block_size)
    for block_start in range(0, len(questions), block_size):
        block = numbered[block_start : block_start + block_size]
        for answer_mode in modes:
            for position, gold in block:
                if (position, answer_mode) in rows:
                    continue
                row = _ask_one(engine, gold, answer_mode, mode=mode, k=k)
                rows[(position, answer_mode)] = row
                consecutive_errors = consecutive_errors + 1 if row.error else 0
                if on_row is not None:
                    on_row(row)
                if progress:
                    _print_progress(len(rows), total, row)
                if consecutive_errors >= MAX_CONSECUTIVE_ERRORS:
                    stopped_early = (
                        f"{consecutive_errors} questions failed in a row, the last with: "
                        f"{row.error}; {total - len(rows)} of {total} answers were not asked."
                    )
                    break
            if stopped_early:
                break
        if stopped_early:
            break

    # Rows were made block by block; order them by question, then mode.
    ordered = [rows[key] for key in sorted(rows, key=lambda key: (key[0], modes.index(key[1])))]
    return report_from_rows(
        ordered,
        modes,
        gold_path=gold_path,
        index_path=index_path,
        backend=backend
        or getattr(getattr(engine, "generator", None), "name", "")
        or type(engine).__name__,
        retrieval_mode=mode,
        k=k,
        seconds=time.perf_counter() - started + sum(row.seconds for row in earlier.values()),
        stopped_early=stopped_early,
    )


def report_from_rows(
    rows: Sequence[AnswerRow], modes: Sequence[str] | None = None, **report_fields: Any
) -> AnswerReport:
    """An AnswerReport over `rows` (as made by the runner or read back with `read_rows`).

    Rows are ordered by question (in order of first appearance), then mode. `modes` are the
    modes summarised, each even without rows; by default the ones the rows hold.
    `report_fields` are the other AnswerReport fields (gold_path, backend, k, ...).
    """
    if modes is None:
        modes = [name for name in ANSWER_MODES if any(row.mode == name for row in rows)]
    mode_order = {name: order for order, name in enumerate(modes)}
    first_seen: dict[str, int] = {}
    for row in rows:
        first_seen.setdefault(row.question_id, len(first_seen))
    ordered = tuple(
        sorted(
            (row for row in rows if row.mode in mode_order),
            key=lambda row: (first_seen[row.question_id], mode_order[row.mode]),
        )
    )
    summaries = tuple(
        summarise(name, [row for row in ordered if row.mode == name]) for name in modes
    )
    report_fields.setdefault("gold_path", "")
    report_fields.setdefault("index_path", "")
    report_fields.setdefault("backend", "")
    report_fields.setdefault("retrieval_mode", "hybrid")
    report_fields.setdefault("k", 3)
    return AnswerReport(summaries=summaries, rows=ordered, **report_fields)


def _ask_one(
    engine: AnswerEngine, gold: GoldQuestion, answer_mode: str, *, mode: str, k: int
) -> AnswerRow:
    started = time.perf_counter()
    try:
        answer = engine.ask(
            gold.question,
            want_decision=gold.label is not None,
            use_retrieval=answer_mode == WITH_RETRIEVAL,
            mode=mode,
            k=k,
        )
    except RagError as error:
        return error_row(gold, answer_mode, str(error), time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - one odd reply must not end an hour-long run
        message = f"{type(error).__name__}: {error}"
        return error_row(gold, answer_mode, message, time.perf_counter() - started)
    return score_answer(gold, answer_mode, answer, time.perf_counter() - started)


def _print_progress(done: int, total: int, row: AnswerRow) -> None:
    if row.error:
        outcome = f"error: {row.error}"
    else:
        verdict = "" if row.correct is None else (" right" if row.correct else " wrong")
        outcome = f"decision {row.decision}{verdict}" if row.label else "answered"
        if row.abstained:
            outcome += ", abstained"
    print(
        f"[{time.strftime('%H:%M:%S')}] answers {done}/{total} {row.mode} {row.question_id}: "
        f"{outcome} ({row.seconds:.1f}s)",
        file=sys.stderr,
        flush=True,
    )


def run_answer_evaluation(
    settings: Settings,
    gold_path: str | Path,
    *,
    output_prefix: str | Path | None = None,
    limit: int | None = None,
    mode: str = "hybrid",
    k: int = 3,
    progress: bool = True,
    notes: Sequence[str] = (),
) -> AnswerReport:
    """`rag eval GOLD --answers`: load the engine from `settings`, evaluate the gold file with
    and without retrieval, and write prefix.{jsonl,md,png} when `output_prefix` is given.

    Raises InputError for a bad gold file (before the slow engine load) and the engine's
    IndexMissingError / IndexMismatchError when the index cannot be opened.
    """
    from rag.answer import Engine

    questions = read_gold(gold_path)
    engine = Engine.load(settings)
    report = evaluate_answers(
        engine,
        questions,
        mode=mode,
        k=k,
        limit=limit,
        progress=progress,
        gold_path=str(gold_path),
        index_path=str(settings.index),
        backend=engine.generator.name,
    )
    report = replace(report, notes=tuple(notes))
    if output_prefix is not None:
        report.write(output_prefix)
    return report
