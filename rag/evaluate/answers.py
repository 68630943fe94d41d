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

`evaluate_answers` does the asking and scoring (text and citation metrics of one answer:
`rag.evaluate.metrics`); `rag.evaluate.report.AnswerReport` holds the result and renders it;
`run_answer_evaluation` is the one-call entry point used by `rag eval GOLD --answers`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag.errors import InputError, RagError
from rag.evaluate.gold import GoldQuestion, read_gold
from rag.evaluate.metrics import (
    citation_marker_counts,
    cited_sentence_counts,
    decision_accuracy,
    rouge_l,
    shown_text,
    token_f1,
    without_markers,
)
from rag.evaluate.report import (
    ANSWER_MODES,
    WITH_RETRIEVAL,
    WITHOUT_RETRIEVAL,
    AnswerReport,
    AnswerRow,
    ModeAnswerSummary,
)
from rag.retrieve import check_mode
from rag.types import Answer

if TYPE_CHECKING:
    from rag.config import Settings

# A run of failures this long means the endpoint is gone, not that one question is odd.
MAX_CONSECUTIVE_ERRORS = 10


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


def score_answer(gold: GoldQuestion, mode: str, answer: Answer, seconds: float) -> AnswerRow:
    """The row of one answered question: decision, text and citation scores."""
    prose = without_markers(shown_text(answer))
    markers, valid = citation_marker_counts(answer)
    sentences, cited = cited_sentence_counts(answer)
    retrieved = tuple(dict.fromkeys(hit.doc_id for hit in answer.retrieved))
    return _row(
        gold,
        mode,
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
    return _row(
        gold,
        mode,
        correct=None if gold.label is None else False,
        rouge_l=None if gold.answer is None else 0.0,
        token_f1=None if gold.answer is None else 0.0,
        seconds=seconds,
        error=error,
    )


def _row(gold: GoldQuestion, mode: str, **scores: Any) -> AnswerRow:
    """A row of `gold` under `mode`, the question's own fields filled in, with `scores`."""
    return AnswerRow(
        question_id=gold.id,
        mode=mode,
        question=gold.question,
        label=gold.label,
        has_reference=gold.answer is not None,
        **scores,
    )


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
    mode: str | None = None,
    k: int | None = None,
    progress: bool = True,
    notes: Sequence[str] = (),
) -> AnswerReport:
    """`rag eval GOLD --answers`: load the engine from `settings`, evaluate the gold file with
    and without retrieval, and write prefix.{jsonl,md} when `output_prefix` is given.

    mode and k default to the settings' `retrieval.mode` and `retrieval.k`, as `rag ask` uses.

    Raises InputError for a bad gold file (before the slow engine load) and the engine's
    IndexMissingError / IndexMismatchError when the index cannot be opened.
    """
    from rag.answer import Engine

    questions = read_gold(gold_path)
    engine = Engine.load(settings)
    report = evaluate_answers(
        engine,
        questions,
        mode=mode or settings.retrieval.mode,
        k=k or settings.retrieval.k,
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
