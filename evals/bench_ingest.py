"""Section `ingest` of evals/bench.py: ingest throughput of a fresh index over the demo corpus
against the raw throughput of the embedding model on the very same passages and batch size, for
the fp32 model and the int8 ONNX build. The pipeline adds chunking, SQLite, FAISS, BM25."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench_common import MODELS, load_average, log, timed, verdict

from rag.config import Settings


def bench_ingest(model: str, documents: list, work: Path) -> dict[str, Any]:
    """Pipeline (fresh ingest) against raw (embed_passages) throughput for one model.

    After an untimed warm-up pass, raw runs before and after the pipeline and the two are
    averaged, so a change in the machine's load during the section weighs on both sides alike.
    """
    from rag.index.embedder import load_embedder
    from rag.index.store import Index
    from rag.ingest.chunking import chunk_document, passage_for_embedding
    from rag.ingest.pipeline import ingest

    setting = MODELS[model]
    folder = work / f"demo-{model}"
    settings = Settings().merged({"index": str(folder), "embedder": {"model": setting}})
    loading = timed(lambda: load_embedder(settings.embedder))
    embedder = loading.result
    embedder.embed_passages(["Warm-up passage about asthma."] * 4)
    passages = [
        passage_for_embedding(document.title, chunk.section, chunk.text)
        for document in documents
        for chunk in chunk_document(document, settings.chunking, embedder.count_tokens)
    ]
    log(f"ingest {model}: {len(documents)} documents, {len(passages)} passages")
    # One untimed pass first: PyTorch prepares kernels for each new input shape (batch x
    # padded length), which would otherwise be charged to whichever run met the shape first.
    embedder.embed_passages(passages)
    raw_before = timed(lambda: embedder.embed_passages(passages))
    shutil.rmtree(folder, ignore_errors=True)

    def pipeline_run() -> Any:
        with Index.open(folder, settings, create=True) as index:
            return ingest(index, documents, progress=False)

    pipeline = timed(pipeline_run)
    raw_after = timed(lambda: embedder.embed_passages(passages))
    report = pipeline.result
    if report.chunks_embedded != len(passages):
        raise RuntimeError(
            f"the pipeline embedded {report.chunks_embedded} chunks, raw {len(passages)}"
        )
    raw_wall = (raw_before.wall + raw_after.wall) / 2
    raw_cpu = (raw_before.cpu + raw_after.cpu) / 2
    result = {
        "model": model,
        "embedder_id": embedder.id,
        "load_seconds": loading.wall,
        "documents": len(documents),
        "chunks": len(passages),
        "batch_size": settings.embedder.batch_size,
        "raw_chunks_per_s": len(passages) / raw_wall,
        "raw_runs_s": [raw_before.wall, raw_after.wall],
        "pipeline_chunks_per_s": len(passages) / pipeline.wall,
        "ratio_wall": raw_wall / pipeline.wall,
        "ratio_cpu": raw_cpu / pipeline.cpu,
        "raw_cpu_s_per_chunk": raw_cpu / len(passages),
        "load": load_average(),
        "index": str(folder),
    }
    log(
        f"ingest {model}: raw {result['raw_chunks_per_s']:.1f}/s, pipeline "
        f"{result['pipeline_chunks_per_s']:.1f}/s, ratio {result['ratio_wall']:.2f} "
        f"(by CPU time {result['ratio_cpu']:.2f})"
    )
    return result


def render(ingest: list[dict[str, Any]]) -> list[str]:
    """The section's Markdown: one table row per model, then int8 / fp32."""
    lines = [
        "## Ingest throughput against the raw embedding model",
        "",
        (
            f"Demo corpus (open-medicine guidelines), the first {ingest[0]['documents']} of "
            "145 documents. Raw: `embed_passages` over the very "
            "passages the index embeds, same batch size, after an untimed warm-up pass, "
            "averaged over a run before and one after the pipeline. Pipeline: a fresh `Index.ingest` (chunking, embedding, SQLite, "
            "FAISS, BM25, manifest). Target: pipeline / raw >= 0.9."
        ),
        "",
        (
            "| model | chunks | raw chunks/s | pipeline chunks/s | ratio (wall) | ratio (CPU s) "
            "| target | model load | load avg |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ingest:
        lines.append(
            f"| {row['model']} ({row['embedder_id']}) | {row['chunks']} "
            f"| {row['raw_chunks_per_s']:.1f} | {row['pipeline_chunks_per_s']:.1f} "
            f"| {row['ratio_wall']:.2f} | {row['ratio_cpu']:.2f} "
            f"| {verdict(row['ratio_wall'] >= 0.9)} | {row['load_seconds']:.1f} s "
            f"| {row['load']} |"
        )
    if len(ingest) == 2:
        fp32, int8 = ingest
        lines += [
            "",
            (
                f"int8 / fp32 raw embedding speed: {int8['raw_chunks_per_s'] / fp32['raw_chunks_per_s']:.2f}x "
                f"by wall time, {fp32['raw_cpu_s_per_chunk'] / int8['raw_cpu_s_per_chunk']:.2f}x by CPU "
                "time per chunk."
            ),
        ]
    lines.append("")
    return lines
