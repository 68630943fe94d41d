"""The answer a clinician reads, measured: key facts, bottom lines, scope, support, readability.

    .venv/bin/python evals/clinical_answers.py                      # heldout, extractive backend
    .venv/bin/python evals/clinical_answers.py --split dev --show 5 # tune on dev; print 5 answers
    .venv/bin/python evals/clinical_answers.py --llm qwen2.5-coder-1.5b --split heldout

The set is evals/clinical_answers.jsonl: 160 questions over the demo corpus written blind (see
evals/README.md): plain questions, vignettes with values, and follow-ups whose `history` holds
the earlier questions of the conversation. Each item has gold sections and 1-3 short key facts.
A follow-up is asked inside a real conversation: the history questions are asked first and
their answers become the turns it is read against.

Per backend it reports (definitions in rag/evaluate/metrics.py): key-fact recall in the whole
answer and in the bottom line; the share of bottom lines that are sentences; the share of
citations from a guideline other than the gold ones; median answer length in words; mean support
of real citations vs the same sentences paired with another retrieved passage, and the AUC
separating them; the Flesch-Kincaid grade per audience; abstentions. Writes
evals/results/clinical-answers-<split>-<backend>.md and .jsonl (one row per question, with the
answer text, so anyone can read what was scored).

Tune on `--split dev` only; `heldout` is for the figures the README reports.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.answer import Engine
from rag.config import Settings
from rag.evaluate.metrics import (
    answer_text,
    auc,
    has_fact,
    off_guideline_share,
    readability_grade,
    word_count,
)
from rag.generate.support import support_scores
from rag.generate.wording import is_sentence
from rag.jsonl import read_jsonl
from rag.text import split_sentences
from rag.types import Answer, Turn

GOLD = REPO / "evals" / "clinical_answers.jsonl"
RESULTS = REPO / "evals" / "results"
TARGETS = (
    ("key facts in the answer", ">= 0.90"),
    ("key facts in the bottom line", ">= 0.60"),
    ("median length (words)", "<= 250"),
    ("bottom lines that are sentences", "100%"),
    ("citations from other guidelines", "<= 10%"),
    ("support AUC, real vs shuffled", ">= 0.90"),
)


@dataclass(frozen=True)
class Item:
    id: str
    kind: str
    split: str
    history: tuple[str, ...]
    question: str
    relevant_doc_ids: tuple[str, ...]
    key_facts: tuple[str, ...]


def read_items(path: Path) -> list[Item]:
    items = []
    for where, data in read_jsonl(path, "clinical answer set"):
        try:
            items.append(
                Item(
                    data["id"], data["kind"], data["split"], tuple(data.get("history") or ()),
                    data["question"], tuple(data["relevant_doc_ids"]), tuple(data["key_facts"]),
                )
            )  # fmt: skip
        except (KeyError, TypeError) as error:
            raise SystemExit(f"{where}: not a clinical answer item ({error})") from None
    return items


def ask(engine: Engine, item: Item, audience: str) -> Answer:
    history: list[Turn] = []
    for earlier in item.history:
        history.append(
            engine.ask(earlier, history=history, audience=audience, suggest_related=False).as_turn()
        )
    return engine.ask(item.question, history=history, audience=audience, suggest_related=False)


def support_pairs(
    engine: Engine, answer: Answer, rng: random.Random
) -> tuple[list[float], list[float]]:
    """Support of each (cited sentence, its passage) and of the same sentence with another
    retrieved passage of a different section."""
    texts: dict[str, str] = {}
    for citation in answer.citations:
        for chunk in engine.index.chunks_of(citation.doc_id):
            if chunk.id == citation.chunk_id:
                texts[citation.chunk_id] = chunk.text
    by_number = {citation.n: citation for citation in answer.citations}
    others = [hit for hit in answer.retrieved if hit.chunk_id not in texts]
    real: list[tuple[str, str]] = []
    shuffled: list[tuple[str, str]] = []
    for sentence in split_sentences(f"{answer.bottom_line}\n\n{answer.answer}"):
        numbers = [int(n) for n in re.findall(r"\[(\d+)\]", sentence)]
        claim = re.sub(r"\s*\[\d+\]", "", sentence).lstrip("- ").strip()
        for number in numbers:
            citation = by_number.get(number)
            if citation is None or citation.chunk_id not in texts:
                continue
            real.append((claim, texts[citation.chunk_id]))
            candidates = [hit for hit in others if hit.section != citation.section]
            if candidates:
                shuffled.append((claim, rng.choice(candidates).text))
    embedder = engine.index.embedder
    return support_scores(real, embedder), support_scores(shuffled, embedder)


def evaluate(
    engine: Engine, items: list[Item], *, patient: bool, show: int
) -> tuple[dict, list[dict]]:
    rng = random.Random(7)
    rows: list[dict] = []
    real_support: list[float] = []
    shuffled_support: list[float] = []
    for position, item in enumerate(items, start=1):
        started = time.perf_counter()
        answer = ask(engine, item, "clinician")
        seconds = time.perf_counter() - started
        text = answer_text(answer)
        other, cited = off_guideline_share(answer, item.relevant_doc_ids)
        real, shuffled = support_pairs(engine, answer, rng) if not answer.abstained else ([], [])
        real_support += real
        shuffled_support += shuffled
        row = {
            "id": item.id, "kind": item.kind, "question": item.question,
            "history": list(item.history), "standalone": answer.standalone_question,
            "abstained": answer.abstained,
            "facts_in_answer": [has_fact(text, fact) for fact in item.key_facts],
            "facts_in_bottom_line": [has_fact(answer.bottom_line, fact) for fact in item.key_facts],
            "bottom_line_is_sentence": is_sentence(answer.bottom_line),
            "other_guideline_citations": other, "citations": cited,
            "words": word_count(text), "grade_clinician": readability_grade(text),
            "gold_cited": any(c.doc_id in item.relevant_doc_ids for c in answer.citations),
            "seconds": round(seconds, 2), "bottom_line": answer.bottom_line,
            "answer": answer.answer, "key_facts": list(item.key_facts),
        }  # fmt: skip
        if patient:
            patient_answer = ask(engine, item, "patient")
            row["grade_patient"] = readability_grade(answer_text(patient_answer))
            row["patient_bottom_line"] = patient_answer.bottom_line
        rows.append(row)
        if position <= show:
            print(f"\n=== {item.id} {item.question}\n{text}\n--- key facts: {item.key_facts}")
        print(f"{position}/{len(items)} {item.id} facts {sum(row['facts_in_answer'])}/{len(item.key_facts)}"
              f" bottom {sum(row['facts_in_bottom_line'])} {seconds:.1f}s", file=sys.stderr)  # fmt: skip
    summary = summarise(rows, real_support, shuffled_support)
    return summary, rows


def summarise(rows: list[dict], real: list[float], shuffled: list[float]) -> dict:
    facts = [hit for row in rows for hit in row["facts_in_answer"]]
    bottom = [hit for row in rows for hit in row["facts_in_bottom_line"]]
    cited = sum(row["citations"] for row in rows)
    grades = [row["grade_clinician"] for row in rows if row["grade_clinician"] is not None]
    patient = [row["grade_patient"] for row in rows if row.get("grade_patient") is not None]
    answered = [row for row in rows if not row["abstained"]]
    return {
        "questions": len(rows),
        "key facts in the answer": sum(facts) / len(facts),
        "key facts in the bottom line": sum(bottom) / len(bottom),
        "median length (words)": statistics.median(row["words"] for row in rows),
        "bottom lines that are sentences": sum(r["bottom_line_is_sentence"] for r in answered) / max(1, len(answered)),
        "citations from other guidelines": sum(r["other_guideline_citations"] for r in rows) / max(1, cited),
        "support AUC, real vs shuffled": auc(real, shuffled),
        "mean support, real": statistics.fmean(real) if real else None,
        "mean support, shuffled": statistics.fmean(shuffled) if shuffled else None,
        "gold section cited": sum(r["gold_cited"] for r in rows) / len(rows),
        "abstained": sum(r["abstained"] for r in rows),
        "grade (clinician)": statistics.fmean(grades) if grades else None,
        "grade (patient)": statistics.fmean(patient) if patient else None,
    }  # fmt: skip


def report(summary: dict, title: str) -> str:
    targets = dict(TARGETS)
    lines = [f"# {title}", "", "| metric | value | target |", "|---|---:|---|"]
    for name, value in summary.items():
        if isinstance(value, float):
            shown = (
                f"{value:.1%}"
                if (
                    "facts" in name
                    or "share" in name
                    or "lines" in name
                    or "citations" in name
                    or "cited" in name
                )
                else f"{value:.3f}"
            )
        else:
            shown = str(value)
        lines.append(f"| {name} | {shown} | {targets.get(name, '')} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    splits = sorted({json.loads(line)["split"] for line in GOLD.read_text().splitlines() if line})
    parser.add_argument("--split", default="heldout", choices=[*splits, "all"])
    parser.add_argument("--index", default=str(REPO / "indexes" / "default"))
    parser.add_argument(
        "--llm", default="", help="a local model name (rag llm list) to answer with"
    )
    parser.add_argument("--no-patient", action="store_true", help="skip the patient-audience pass")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--kind", default="", help="only items of this kind")
    parser.add_argument("--show", type=int, default=0, help="print the first N answers")
    args = parser.parse_args(argv)

    items = [i for i in read_items(GOLD) if args.split in ("all", i.split)]
    if args.kind:
        items = [i for i in items if i.kind == args.kind]
    if args.limit:
        items = items[: args.limit]
    settings = Settings.from_env().merged({"index": args.index, "llm": {"base_url": ""}})
    server = None
    backend = "extractive"
    if args.llm:
        from rag.local_llm import fetch_model, start_server

        server = start_server(fetch_model(args.llm))
        settings = settings.merged({"llm": {"base_url": server.base_url, "model": args.llm}})
        backend = args.llm
    try:
        engine = Engine.load(settings)
        summary, rows = evaluate(engine, items, patient=not args.no_patient, show=args.show)
    finally:
        if server is not None:
            server.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = f"clinical-answers-{args.split}-{backend}" + (
        f"-limit{args.limit}" if args.limit else ""
    )
    title = f"Clinical answers: {args.split} ({len(items)} questions), {backend} backend"
    text = report(summary, title)
    (RESULTS / f"{stem}.md").write_text(text, encoding="utf-8")
    with (RESULTS / f"{stem}.jsonl").open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
