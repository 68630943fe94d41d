"""Measure the evidence grade (direct / partial / none) against the old yes/no gate.

    .venv/bin/python evals/evidence.py --split dev        # while tuning
    .venv/bin/python evals/evidence.py --split heldout    # report (once per change)
    .venv/bin/python evals/evidence.py --split dev --show partial   # print graded answers
    .venv/bin/python evals/evidence.py --split dev --pairs-only        # the recency pairs
                                                # (evals/results/evidence-pairs-<split>.md)

Two sets over the demo index (indexes/default, built by `rag ingest --demo`):

- evals/abstention.jsonl: the abstention rounds (answerable / unanswerable questions);
- evals/evidence.jsonl: a round written blind for the grade (answerable, unanswerable and near
  misses: the topic is covered but a facet asked about is not; each near miss names the facet
  and the words a statement of it would use).

Every question goes through `Engine.ask` (extractive backend, default settings). Per set and
kind it counts the grades, and beside them the old binary gate (answer when
`Coverage.covered(answer.min_coverage_score)`): false answers and false abstentions. Targets
(issue 14): `direct` on unanswerable <= 5%; `none` on answerable <= 10%; on near misses graded
`partial`, the missing facet named (one of its words in the statement) in >= 80%. Writes
evals/results/evidence-<split>.md and prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.answer import Engine
from rag.config import Settings
from rag.jsonl import read_jsonl

PAIRS = REPO / "evals" / "recency_pairs.jsonl"
SETS = {
    "abstention": REPO / "evals" / "abstention.jsonl",
    "evidence": REPO / "evals" / "evidence.jsonl",
}


def kind_of(row: dict) -> str:
    if "kind" in row:
        return row["kind"]
    return "answerable" if row["answerable"] else "unanswerable"


def facet_named(row: dict, statement: str) -> bool:
    lowered = statement.lower()
    terms = row.get("missing_terms") or [row.get("missing_facet", "")]
    return any(term and term.lower() in lowered for term in terms)


def measure(engine: Engine, rows: list[dict], show: str | None) -> list[dict]:
    results = []
    min_score = engine.settings.answer.min_coverage_score
    for row in rows:
        answer = engine.ask(row["question"], suggest_related=False)
        hits = list(answer.retrieved)  # the same hits the answer was graded on
        coverage = engine.coverage(row["question"], hits) if hits else None
        grade = answer.evidence.grade if answer.evidence is not None else "none"
        statement = answer.evidence.statement() if answer.evidence is not None else ""
        result = {
            "id": row["id"],
            "kind": kind_of(row),
            "grade": "none" if answer.abstained else grade,
            "statement": statement,
            "old_answered": bool(coverage is not None and coverage.covered(min_score)),
            "named": facet_named(row, statement) if kind_of(row) == "near_miss" else None,
        }
        results.append(result)
        if show and (show == result["grade"] or show == result["kind"]):
            print(f"## {row['id']} [{result['kind']} -> {result['grade']}] {row['question']}")
            print(f"   bottom line: {answer.bottom_line}\n")
    return results


def table(name: str, results: list[dict]) -> list[str]:
    lines = [
        f"### {name}",
        "",
        "| kind | n | direct | partial | none | old gate answered | facet named (partial) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("answerable", "near_miss", "unanswerable"):
        rows = [r for r in results if r["kind"] == kind]
        if not rows:
            continue
        grades = Counter(r["grade"] for r in rows)
        n = len(rows)

        def share(count: int, total: int = n) -> str:
            return f"{count}/{total} ({100 * count / total:.1f}%)" if total else "-"

        partial = [r for r in rows if r["grade"] == "partial"]
        named = share(sum(bool(r["named"]) for r in partial), len(partial)) if kind == "near_miss" else ""
        lines.append(
            f"| {kind} | {n} | {share(grades['direct'])} | {share(grades['partial'])} | "
            f"{share(grades['none'])} | {share(sum(r['old_answered'] for r in rows))} | {named} |"
        )
    return lines + [""]


def pairs_table(engine: Engine, split: str, show: bool = False) -> list[str]:
    """Each recency pair's question (of `split`): are both guidelines cited, each shown with
    its year, and is a disagreement reported where the writer marked one? `show` prints the
    answers that miss."""
    from rag.render import answer_markdown

    rows = [record for _, record in read_jsonl(PAIRS) if record.get("split") == split]
    both = shown = flagged = disagreeing = 0
    for row in rows:
        answer = engine.ask(row["question"], suggest_related=False)
        cited = {citation.doc_id for citation in answer.citations}
        folders = {doc_id.split("/")[0] for doc_id in cited}
        older, newer = row["older"].split("/")[0], row["newer"].split("/")[0]
        if {older, newer} <= folders:
            both += 1
            text = answer_markdown(answer)
            if str(row["older_year"]) in text and str(row["newer_year"]) in text:
                shown += 1
        if not row["agree"]:
            disagreeing += 1
            flagged += bool(answer.disagreements)
        missed = not {older, newer} <= folders or (not row["agree"] and not answer.disagreements)
        if show and missed:
            print(f"--- {row['question']}\n    cited {sorted(folders)}; pair {older} / {newer}; "
                  f"agree {row['agree']}\n{answer_markdown(answer)[:1500]}\n")
    n = len(rows)
    return [
        (f"### Recency pairs, {split} ({n} points two guidelines address; {disagreeing} where "
         "they disagree)"),
        "",
        "| | count |",
        "|---|---:|",
        f"| both guidelines cited | {both}/{n} |",
        f"| both cited and both years in the answer | {shown}/{n} |",
        f"| disagreement reported, of the pairs that disagree | {flagged}/{disagreeing} |",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    splits = sorted({record.get("split") for path in SETS.values() for _, record in read_jsonl(path)})
    parser.add_argument("--split", default="dev", choices=splits)
    parser.add_argument("--show", help="print answers of this grade or kind")
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set")
    parser.add_argument("--pairs", action="store_true", help="also ask the recency pairs' questions")
    parser.add_argument("--pairs-only", action="store_true", help="only the recency pairs")
    args = parser.parse_args()
    if args.pairs_only:
        args.pairs, args.limit = True, -1

    settings = Settings.from_env()
    engine = Engine.load(settings)
    report = [
        f"# Evidence grade, {args.split} split (extractive backend, demo index)",
        "",
        (f"min_partial_score {settings.answer.min_partial_score}, min_coverage_score "
        f"{settings.answer.min_coverage_score}, min_direct_score {settings.answer.min_direct_score}. Targets: direct on unanswerable <= 5%; none on "
        "answerable <= 10%; near misses graded partial name the facet >= 80%. 'old gate "
        "answered': the yes/no gate before the grade (answered when covered)."),
        "",
    ]
    every = []
    for name, path in SETS.items():
        if not path.exists() or args.pairs_only:
            continue
        rows = [record for _, record in read_jsonl(path)]
        rows = [row for row in rows if row.get("split") == args.split]
        if args.limit:
            rows = rows[: args.limit]
        results = measure(engine, rows, args.show)
        every += [{**result, "set": name} for result in results]
        report += table(f"{name}.jsonl ({len(rows)} questions)", results)
    results = REPO / "evals" / "results"
    if not args.limit:  # a trial run on a few questions never overwrites the measurement
        out = results / f"evidence-{args.split}"
        out.with_suffix(".md").write_text("\n".join(report))
        out.with_suffix(".jsonl").write_text("".join(json.dumps(row) + "\n" for row in every))
    if not args.pairs_only:
        print("\n".join(report))
    if args.pairs:
        pairs = pairs_table(engine, args.split, show=bool(args.show))
        (results / f"evidence-pairs-{args.split}.md").write_text("\n".join(pairs))
        print("\n".join(pairs))


if __name__ == "__main__":
    main()
