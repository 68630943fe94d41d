"""Section `query` of evals/bench.py: query embedding latency of both models, one question
at a time, warm."""

from __future__ import annotations

from typing import Any

from bench_common import MODELS, load_average, percentile, timed

from rag.config import Settings

QUESTIONS = [
    "What is the first-line treatment for an acute gout flare?",
    "When should anticoagulation be started in atrial fibrillation?",
    "Which inhaled therapy controls persistent asthma in children?",
    "How is community-acquired pneumonia treated in adults?",
    "What blood pressure target is recommended for adults with diabetes?",
    "How should hyperkalaemia be managed in the emergency department?",
    "Which antibiotics treat uncomplicated urinary tract infection in women?",
    "When is a CT head scan needed after minor head injury?",
    "How is iron deficiency anaemia investigated?",
    "What are the criteria for diagnosing sepsis?",
    "How should a first unprovoked seizure be followed up?",
    "What is the management of diabetic ketoacidosis?",
    "Which patients with chest pain need an urgent ECG?",
    "How is bronchiolitis in infants managed?",
    "What dose of aspirin is used for secondary prevention of stroke?",
    "How should depression in adults be treated first?",
    "What screening is recommended for colorectal cancer?",
    "How is heart failure with reduced ejection fraction treated?",
    "When should statins be offered for primary prevention?",
    "How is acute kidney injury staged?",
]


def bench_query_embedding(model: str, repeats: int) -> dict[str, Any]:
    from rag.index.embedder import load_embedder

    embedder = load_embedder(Settings().merged({"embedder": {"model": MODELS[model]}}).embedder)
    embedder.embed_query(QUESTIONS[0])
    times = []
    for _ in range(repeats):
        for question in QUESTIONS:
            times.append(timed(lambda q=question: embedder.embed_query(q)).wall * 1000)
    return {
        "model": model,
        "p50_ms": percentile(times, 50),
        "p95_ms": percentile(times, 95),
        "queries": len(times),
        "load": load_average(),
    }


def render(query: list[dict[str, Any]]) -> list[str]:
    """The section's Markdown table, one row per model."""
    lines = [
        "## Query embedding (one question, warm)",
        "",
        "| model | p50 | p95 | queries | load avg |",
        "|---|---|---|---|---|",
    ]
    for row in query:
        lines.append(
            f"| {row['model']} | {row['p50_ms']:.1f} ms | {row['p95_ms']:.1f} ms "
            f"| {row['queries']} | {row['load']} |"
        )
    lines.append("")
    return lines
