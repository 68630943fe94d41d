"""Reproduce the retrieval figures on PubMedQA and MedQuAD (document level).

    .venv/bin/python evals/retrieval.py                      # build indexes, evaluate dev + heldout
    .venv/bin/python evals/retrieval.py --sets medquad --build-only
    .venv/bin/python evals/retrieval.py --tune               # fusion grid on the dev splits

For each set under ../shared/data/<set>/ (corpus.jsonl, dev.jsonl, heldout.jsonl) this builds
(or reuses: unchanged documents are not re-embedded) an index under indexes/<set> with the
default settings and the real embedder, runs the dense, lexical and hybrid modes, and writes
evals/results/<set>-<split>.md (the table) and .jsonl (one row per question and mode).

Settings are tuned on dev only (`--tune` writes evals/results/<set>-tuning.md); heldout is
run once per change to report. MedQuAD dev has 13,116 questions: a fixed random sample
(`--dev-sample`, seed `--seed`) stands in for it, and the table says so.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.config import Settings
from rag.evaluate.gold import GoldQuestion, read_gold
from rag.evaluate.metrics import METRIC_NAMES, gold_ranks, question_metrics
from rag.evaluate.retrieval import evaluate_retrieval
from rag.retrieve import DEFAULT_FUSION, Fusion

DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
SETS = ("pubmedqa", "medquad")
SPLITS = ("dev", "heldout")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def open_index(set_name: str, *, build: bool = True):
    """The index of `set_name` under indexes/<set>, built from its corpus when `build`."""
    from rag.index.store import Index
    from rag.ingest.loaders import load_paths
    from rag.ingest.pipeline import ingest

    path = REPO / "indexes" / set_name
    settings = Settings().merged({"index": str(path)})
    if not build:
        return Index.open(path, settings)
    index = Index.open(path, settings, create=True)
    documents, problems = [], []
    for item in load_paths([DATA / set_name / "corpus.jsonl"]):
        (problems if hasattr(item, "message") else documents).append(item)
    for problem in problems[:10]:
        log(f"ingest problem: {problem}")
    started = time.perf_counter()
    ingest(index, documents, progress=True)
    log(
        f"{set_name}: {len(documents)} documents, {index.chunk_count} chunks "
        f"({time.perf_counter() - started:.0f}s to ingest)"
    )
    return index


def questions_for(
    set_name: str, split: str, dev_sample: int, seed: int
) -> tuple[list[GoldQuestion], str]:
    """The gold questions to run, and a note saying whether they are a sample."""
    questions = read_gold(DATA / set_name / f"{split}.jsonl")
    if split == "dev" and 0 < dev_sample < len(questions):
        sampled = random.Random(seed).sample(questions, dev_sample)
        return sampled, (
            f"Dev is a fixed random sample of {dev_sample} of {len(questions)} "
            f"questions (random.Random({seed}).sample)."
        )
    return questions, f"All {len(questions)} questions of the split."


def evaluate_split(index, set_name: str, split: str, args: argparse.Namespace) -> None:
    questions, sample_note = questions_for(set_name, split, args.dev_sample, args.seed)
    log(f"{set_name}/{split}: {len(questions)} questions x {', '.join(args.modes)}")

    def progress(mode: str, done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            log(f"  {mode}: {done}/{total}")

    settings = Settings()
    report = evaluate_retrieval(
        index,
        DATA / set_name / f"{split}.jsonl",
        args.modes,
        10,
        candidates=settings.retrieval.candidates,
        fusion=Fusion.from_settings(settings.retrieval),
        questions=questions,
        index_path=f"indexes/{set_name}",
        progress=progress,
    )
    command = "evals/retrieval.py " + " ".join(sys.argv[1:])
    notes = (
        "",
        sample_note,
        (
            f"Hybrid fusion: {Fusion.from_settings(settings.retrieval).describe()}; {settings.retrieval.candidates} "
            f"candidates per retriever; chunks of at most {settings.chunking.max_tokens} "
            f"embedder tokens; embedder {settings.embedder.model}."
        ),
        f"Command: `.venv/bin/python {command.strip()}`",
    )
    report = replace(report, gold_path=f"shared/data/{set_name}/{split}.jsonl", notes=notes)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{set_name}-{split}.md").write_text(report.to_markdown(), encoding="utf-8")
    report.write_rows(args.results / f"{set_name}-{split}.jsonl")
    print(report.to_markdown())


# ---- tuning: candidate lists are fetched once per question, then every fusion is scored on them


@dataclass
class Candidates:
    question: GoldQuestion
    dense: list[tuple[int, float]]
    lexical: list[tuple[int, float]]
    doc_of_row: dict[int, str]


def fetch_candidates(index, questions: Sequence[GoldQuestion], depth: int) -> list[Candidates]:
    fetched = []
    for done, question in enumerate(questions, start=1):
        vector = index.embedder.embed_query(question.question)
        dense = index.search_dense(vector, depth)
        lexical = index.search_lexical(question.question, depth)
        rows = list(dict.fromkeys([row for row, _ in dense] + [row for row, _ in lexical]))
        hits = index.hits([(row, 0.0) for row in rows])
        doc_of_row = {row: hit.doc_id for row, hit in zip(rows, hits, strict=True)}
        fetched.append(Candidates(question, dense, lexical, doc_of_row))
        if done % 500 == 0:
            log(f"  candidates: {done}/{len(questions)}")
    return fetched


def document_ranking(
    scored: Sequence[tuple[int, float]], doc_of_row: dict[int, str], k: int = 10
) -> list[str]:
    """Distinct documents in order of their best passage (as retrieve_documents ranks them)."""
    ranking: list[str] = []
    for row, _score in scored:
        doc_id = doc_of_row[row]
        if doc_id not in ranking:
            ranking.append(doc_id)
            if len(ranking) == k:
                break
    return ranking


def best_passage_per_document(
    scored: Sequence[tuple[int, float]], doc_of_row: dict[int, str]
) -> list[tuple[str, float]]:
    """(doc id, score of its best passage), in order of that passage."""
    best: dict[str, float] = {}
    for row, score in scored:
        best.setdefault(doc_of_row[row], score)
    return list(best.items())


def score_configuration(
    fetched: Sequence[Candidates], mode: str, fusion: Fusion, candidates: int
) -> dict[str, float]:
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    for item in fetched:
        dense, lexical = item.dense[:candidates], item.lexical[:candidates]
        if mode == "hybrid-doc":
            # Exploratory, not what retrieve_documents does: fuse the two document rankings
            # (each document scored by its best passage) instead of the passage rankings.
            fused = fusion.fuse(
                best_passage_per_document(dense, item.doc_of_row),
                best_passage_per_document(lexical, item.doc_of_row),
            )
            ranking = [doc_id for doc_id, _score in fused[:10]]
        else:
            if mode == "dense":
                scored = dense
            elif mode == "lexical":
                scored = lexical
            else:
                scored = fusion.fuse(dense, lexical)
            ranking = document_ranking(scored, item.doc_of_row)
        ranks = gold_ranks(ranking, item.question.relevant_doc_ids)
        for name, value in question_metrics(ranks).items():
            totals[name] += value
    return {name: total / len(fetched) for name, total in totals.items()}


def tune(index, set_name: str, args: argparse.Namespace) -> list[tuple[str, int, dict[str, float]]]:
    questions, sample_note = questions_for(set_name, "dev", args.dev_sample, args.seed)
    depth = max(args.candidate_grid)
    log(
        f"{set_name}/dev tuning: fetching top {depth} dense + lexical for {len(questions)} questions"
    )
    fetched = fetch_candidates(index, questions, depth)
    configurations: list[tuple[str, Fusion | None, int]] = [
        ("dense", None, 50),
        ("lexical", None, 50),
    ]
    for candidates in args.candidate_grid:
        for rrf_k in (5, 10, 20, 40, 60, 100):
            for dense_weight in (0.5, 0.75, 1.0, 1.5, 2.0):
                configurations.append(
                    ("hybrid", Fusion("rrf", rrf_k=rrf_k, dense_weight=dense_weight), candidates)
                )
        for normalisation in ("minmax", "zscore"):
            for alpha in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
                configurations.append(
                    (
                        "hybrid",
                        Fusion("blend", alpha=alpha, normalisation=normalisation),
                        candidates,
                    )
                )
    for candidates in (50, 100, 200):
        for rrf_k in (5, 10, 20, 60):
            configurations.append(("hybrid-doc", Fusion("rrf", rrf_k=rrf_k), candidates))
        for alpha in (0.3, 0.4, 0.5, 0.6, 0.7):
            configurations.append(
                ("hybrid-doc", Fusion("blend", alpha=alpha, normalisation="zscore"), candidates)
            )
    results = []
    for mode, fusion, candidates in configurations:
        label = mode if fusion is None else fusion.describe()
        if mode == "hybrid-doc":
            label = f"document-level {label}"
        metrics = score_configuration(fetched, mode, fusion or DEFAULT_FUSION, candidates)
        results.append((label, candidates, metrics))
    results.sort(key=lambda item: -item[2]["ndcg@10"])
    lines = [
        f"# Fusion tuning on {set_name} dev (document level)",
        "",
        sample_note,
        f"Command: `.venv/bin/python evals/retrieval.py {' '.join(sys.argv[1:])}`",
        "",
        "| configuration | candidates | " + " | ".join(METRIC_NAMES) + " |",
        "|---|---:|" + "---:|" * len(METRIC_NAMES),
    ]
    for label, candidates, metrics in results:
        values = " | ".join(f"{metrics[name]:.4f}" for name in METRIC_NAMES)
        lines.append(f"| {label} | {candidates} | {values} |")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{set_name}-tuning.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for label, candidates, metrics in results[:8]:
        log(
            f"  {label} @{candidates}: nDCG@10 {metrics['ndcg@10']:.4f} MRR {metrics['mrr@10']:.4f}"
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: pubmedqa,medquad")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated: dev,heldout")
    parser.add_argument("--modes", default="dense,lexical,hybrid")
    parser.add_argument(
        "--dev-sample",
        type=int,
        default=2000,
        help="evaluate this many dev questions, a fixed random sample (0: all)",
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--build-only", action="store_true", help="build the indexes and stop")
    parser.add_argument("--no-build", action="store_true", help="open existing indexes as they are")
    parser.add_argument("--tune", action="store_true", help="run the fusion grid on dev instead")
    parser.add_argument("--candidate-grid", default="20,50,100,200")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where tables are written")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch threads for query embedding (0: torch's default)",
    )
    args = parser.parse_args(argv)
    if args.torch_threads > 0 and not args.build_only:
        # One query is a tiny batch: a second thread gains little, and on a busy machine the
        # threads wait on each other (measured here under load: 3.7 s per query with 2
        # threads, 0.3 s with 1).
        import torch

        torch.set_num_threads(args.torch_threads)
    args.modes = tuple(mode.strip() for mode in args.modes.split(",") if mode.strip())
    args.candidate_grid = tuple(int(value) for value in args.candidate_grid.split(","))
    for set_name in [name.strip() for name in args.sets.split(",") if name.strip()]:
        if not (DATA / set_name / "corpus.jsonl").exists():
            log(f"{DATA / set_name}/corpus.jsonl not found; skipping {set_name}")
            continue
        index = open_index(set_name, build=not args.no_build)
        if args.build_only:
            continue
        if args.tune:
            tune(index, set_name, args)
            continue
        for split in [name.strip() for name in args.splits.split(",") if name.strip()]:
            evaluate_split(index, set_name, split, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
