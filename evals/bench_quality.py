"""Section `quality` of evals/bench.py: PubMedQA dev retrieval (nDCG@10 etc., rag.evaluate.retrieval)
over an index of its 1,000 abstracts built with each model. MedQuAD (5,476 pages) is not
embedded twice here."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from bench_common import DATA, MODELS, REPO, load_average, log, timed, verdict

from rag.config import Settings


def bench_quality(model: str, work: Path, quick: bool) -> dict[str, Any] | None:
    from rag.evaluate.gold import read_gold
    from rag.evaluate.retrieval import evaluate_retrieval
    from rag.index.store import Index
    from rag.ingest.loaders import load_paths
    from rag.ingest.pipeline import ingest

    corpus_path = DATA / "pubmedqa" / "corpus.jsonl"
    dev_path = DATA / "pubmedqa" / "dev.jsonl"
    if not corpus_path.is_file() or not dev_path.is_file():
        log(f"quality: {DATA / 'pubmedqa'} is missing; skipped")
        return None
    documents = [item for item in load_paths([corpus_path]) if not hasattr(item, "message")]
    questions = read_gold(dev_path)
    if quick:  # a slice of the corpus, and the dev questions it can answer
        documents = documents[:150]
        kept = {document.id for document in documents}
        questions = [q for q in questions if set(q.relevant_doc_ids) <= kept]
    folder = work / f"pubmedqa-{model}{'-quick' if quick else ''}"
    settings = Settings().merged({"index": str(folder), "embedder": {"model": MODELS[model]}})
    seeded = "" if quick else seed_from_existing(REPO / "indexes" / "pubmedqa", folder, settings)
    with Index.open(folder, settings, create=True) as index:
        building = timed(lambda: ingest(index, documents, progress=False))
        log(
            f"quality {model}: {index.chunk_count} chunks ({building.wall:.0f}s to ingest, "
            f"{building.result.chunks_embedded} embedded now); {len(questions)} dev questions"
        )
        report = evaluate_retrieval(
            index,
            dev_path,
            ("dense", "hybrid"),  # lexical: the same chunks, so the same ranking
            10,
            candidates=settings.retrieval.candidates,
            questions=questions,
        )
        chunks = index.chunk_count
    return {
        "model": model,
        "documents": len(documents),
        "chunks": chunks,
        "seeded_from": seeded,
        "questions": len(questions),
        "metrics": {summary.mode: summary.metrics for summary in report.summaries},
        "load": load_average(),
    }


def seed_from_existing(source: Path, folder: Path, settings: Settings) -> str:
    """Copy the database of an index built elsewhere with the same embedder and chunk
    settings (evals/retrieval.py builds indexes/pubmedqa), so the ingest that follows finds
    every document unchanged instead of embedding the corpus again. Returns the source used,
    or "" when there is none to use."""
    import sqlite3

    from rag.index.embedder import embedder_id
    from rag.index.store import DATABASE_FILE

    database = source / DATABASE_FILE
    if folder.exists() or not database.is_file():
        return ""
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            meta = dict(connection.execute("SELECT key, value FROM meta"))
        finally:
            connection.close()
    except sqlite3.Error:
        return ""
    chunking = json.dumps(dataclasses.asdict(settings.chunking), sort_keys=True)
    if (
        meta.get("embedder_id") != embedder_id(settings.embedder)
        or meta.get("chunking") != chunking
    ):
        return ""
    folder.mkdir(parents=True)
    # The backup API copies a consistent snapshot even while another process writes.
    reader = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    writer = sqlite3.connect(folder / DATABASE_FILE)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()
    log(f"quality: seeded {folder} from {source} (same embedder and chunk settings)")
    return str(source.relative_to(REPO)) if source.is_relative_to(REPO) else str(source)


def render(quality: list[dict[str, Any]]) -> list[str]:
    """The int8 against fp32 table, one row per mode."""
    lines: list[str] = []
    fp32 = next((row for row in quality if row["model"] == "fp32"), None)
    int8 = next((row for row in quality if row["model"] == "int8"), None)
    lines += [
        "## Retrieval quality: int8 against fp32 (PubMedQA dev)",
        "",
        (
            f"{quality[0]['documents']} PubMedQA abstracts ({quality[0]['chunks']} chunks with "
            f"fp32), {quality[0]['questions']} dev questions, document-level metrics from "
            "`rag.evaluate.retrieval.evaluate_retrieval`. Target: int8 within 0.5 points of fp32 nDCG@10. "
            "MedQuAD (5,476 pages) is not embedded twice on this machine; the PubMedQA figures "
            "stand for both. Lexical search does not use the embedder and both models cut "
            "the same chunks, so it is not repeated."
            + "".join(
                f" The {row['model']} index was seeded from `{row['seeded_from']}` (built "
                "by evals/retrieval.py with the same embedder and chunk settings), so only "
                "documents missing there were embedded."
                for row in quality
                if row.get("seeded_from")
            )
        ),
        "",
        (
            "| mode | fp32 nDCG@10 | int8 nDCG@10 | difference (points) | fp32 recall@10 "
            "| int8 recall@10 | target |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    if fp32 and int8:
        for mode in fp32["metrics"]:
            a, b = fp32["metrics"][mode], int8["metrics"][mode]
            difference = (b["ndcg@10"] - a["ndcg@10"]) * 100
            lines.append(
                f"| {mode} | {a['ndcg@10'] * 100:.2f} | {b['ndcg@10'] * 100:.2f} "
                f"| {difference:+.2f} | {a['recall@10'] * 100:.1f} | {b['recall@10'] * 100:.1f} "
                f"| {verdict(abs(difference) <= 0.5)} |"
            )
    lines.append("")
    return lines
