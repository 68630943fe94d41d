"""Does condensation let follow-up questions find their documents? (evals/conversations.jsonl)

    .venv/bin/python evals/conversations.py indexes/demo                 # dev and heldout
    .venv/bin/python evals/conversations.py indexes/demo --split dev --misses
    .venv/bin/python evals/conversations.py indexes/demo --build         # build the demo index first

For every conversation of the gold set, each turn is searched four ways and scored at document
level against the turn's `relevant_doc_ids`:

- first turns:     the self-contained opening question (the ceiling to aim for);
- follow-ups alone: the elliptical follow-up as typed ("And how long for?");
- concatenated:    every earlier question and the follow-up joined into one query;
- condensed query: `Engine.condense` (the LLM rewrite when an endpoint is configured, else the
                   deterministic method), the history being what a real session holds: earlier
                   questions, their standalone questions, and the documents the previous answer
                   cited (simulated as the top 3 documents retrieved for it); searched alone;
- condensed:       what `Engine.ask` does: the condensed query searched with the history, so
                   the sections of the guideline the previous answer cited move up a little.

Metrics are MRR@10 and Recall@5 over document rankings (one entry per document, best passage
first), the definitions of rag/evaluate/metrics.py. Tune condensation on `--split dev` only; report
heldout. The target: condensed follow-ups reach >= 95% of the first turns' MRR@10 and clearly
beat concatenation.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.answer import Engine
from rag.config import Settings
from rag.errors import InputError, RagError
from rag.evaluate.metrics import gold_ranks, recall_at, reciprocal_rank_at
from rag.jsonl import read_jsonl
from rag.types import Turn

GOLD = REPO / "evals" / "conversations.jsonl"
CONDITIONS = ("first turns", "follow-ups alone", "concatenated", "condensed query", "condensed")
CITED_PER_TURN = 3  # documents the simulated previous answer cites
TARGET_SHARE = 0.95


@dataclass(frozen=True)
class GoldTurn:
    question: str
    relevant_doc_ids: tuple[str, ...]


@dataclass(frozen=True)
class Conversation:
    id: str
    split: str
    turns: tuple[GoldTurn, ...]


@dataclass
class Scores:
    """Per-condition lists of (conversation id, turn number, query, MRR@10, Recall@5)."""

    rows: dict[str, list[tuple[str, int, str, float, float]]] = field(
        default_factory=lambda: {condition: [] for condition in CONDITIONS}
    )

    def add(
        self,
        condition: str,
        conv_id: str,
        turn: int,
        query: str,
        ranked: list[str],
        relevant: tuple[str, ...],
    ) -> None:
        ranks = gold_ranks(ranked, relevant)
        self.rows[condition].append(
            (conv_id, turn, query, reciprocal_rank_at(ranks, 10), recall_at(ranks, 5))
        )

    def mean(self, condition: str, column: int) -> float:
        rows = self.rows[condition]
        return sum(row[column] for row in rows) / len(rows) if rows else 0.0


def read_conversations(path: Path) -> list[Conversation]:
    """The gold conversations; InputError naming file:line for a malformed line."""
    conversations: list[Conversation] = []
    for where, record in read_jsonl(path, "gold file"):
        try:
            turns = tuple(
                GoldTurn(str(turn["question"]), tuple(turn["relevant_doc_ids"]))
                for turn in record["turns"]
            )
            conversations.append(
                Conversation(str(record["id"]), str(record.get("split", "")), turns)
            )
        except (KeyError, TypeError) as error:
            raise InputError(f"{where}: not a conversation ({error})") from None
        if len(turns) < 2 or any(not turn.relevant_doc_ids for turn in turns):
            raise InputError(f"{where}: needs 2+ turns, each with relevant_doc_ids")
    return conversations


def evaluate(engine: Engine, conversations: list[Conversation]) -> Scores:
    """Search every turn under every condition; document rankings of depth 10."""
    scores = Scores()

    def ranked(query: str, history: list[Turn] | None = None) -> list[str]:
        return [hit.doc_id for hit in engine.search(query, k=10, history=history or ())]

    for conversation in conversations:
        first = conversation.turns[0]
        first_ranking = ranked(first.question)
        scores.add(
            "first turns", conversation.id, 1, first.question, first_ranking, first.relevant_doc_ids
        )
        history = [Turn(first.question, "", first.question, tuple(first_ranking[:CITED_PER_TURN]))]
        for number, turn in enumerate(conversation.turns[1:], start=2):
            alone = turn.question
            joined = " ".join(
                [earlier.question for earlier in conversation.turns[: number - 1]] + [turn.question]
            )
            standalone = engine.condense(turn.question, history)
            scores.add(
                "follow-ups alone",
                conversation.id,
                number,
                alone,
                ranked(alone),
                turn.relevant_doc_ids,
            )
            scores.add(
                "concatenated",
                conversation.id,
                number,
                joined,
                ranked(joined),
                turn.relevant_doc_ids,
            )
            scores.add(
                "condensed query",
                conversation.id,
                number,
                standalone,
                ranked(standalone),
                turn.relevant_doc_ids,
            )
            condensed_ranking = ranked(standalone, history)
            scores.add(
                "condensed",
                conversation.id,
                number,
                standalone,
                condensed_ranking,
                turn.relevant_doc_ids,
            )
            history.append(
                Turn(turn.question, "", standalone, tuple(condensed_ranking[:CITED_PER_TURN]))
            )
    return scores


def report(scores: Scores, title: str, turns: int, conversations: int) -> str:
    """A Markdown table of the four conditions, with the condensed/first-turn share."""
    first_mrr = scores.mean("first turns", 3)
    lines = [
        f"### {title}: {conversations} conversations, {turns} follow-ups",
        "",
        "| queries | n | MRR@10 | Recall@5 | MRR vs first turns |",
        "|---|---|---|---|---|",
    ]
    for condition in CONDITIONS:
        mrr = scores.mean(condition, 3)
        share = f"{mrr / first_mrr:.0%}" if first_mrr else "-"
        lines.append(
            f"| {condition} | {len(scores.rows[condition])} | {mrr:.3f} | "
            f"{scores.mean(condition, 4):.3f} | {share} |"
        )
    condensed, joined = scores.mean("condensed", 3), scores.mean("concatenated", 3)
    met = first_mrr and condensed >= TARGET_SHARE * first_mrr and condensed > joined
    verdict = "met" if met else "NOT met"
    target = f"condensed >= {TARGET_SHARE:.0%} of first turns and above concatenated"
    lines += ["", f"Target ({target}): {verdict}."]
    return "\n".join(lines)


def misses(scores: Scores) -> str:
    """Follow-ups whose condensed query ranks no relevant document first."""
    lines = ["", "Condensed follow-ups without a relevant document at rank 1:"]
    for conv_id, turn, query, mrr, _ in scores.rows["condensed"]:
        if mrr < 1.0:
            lines.append(f"- {conv_id} turn {turn} (RR {mrr:.2f}): {query}")
    return "\n".join(lines)


def build_demo_index(path: Path, settings: Settings) -> None:
    from rag.index.store import Index
    from rag.ingest.demo import load_demo_corpus
    from rag.ingest.pipeline import ingest

    with Index.open(path, settings, create=True) as index:
        report_ = ingest(index, load_demo_corpus(), progress=sys.stderr.isatty())
        print(f"built {path}: {report_.to_json()}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("index", type=Path, help="Index folder built from the demo corpus.")
    parser.add_argument("--gold", type=Path, default=GOLD, help="Conversations JSONL.")
    parser.add_argument(
        "--split",
        choices=("dev", "heldout", "all"),
        default=None,
        help="Only this split (default: dev and heldout, then all).",
    )
    parser.add_argument(
        "--mode",
        choices=("dense", "lexical", "hybrid"),
        default=None,
        help="Retrieval mode (default: the settings').",
    )
    parser.add_argument(
        "--build", action="store_true", help="Build (or update) the demo index in INDEX first."
    )
    parser.add_argument(
        "--misses", action="store_true", help="List condensed follow-ups that miss rank 1."
    )
    args = parser.parse_args(argv)

    overrides: dict = {"index": str(args.index), "retrieval": {"per_document": 1}}
    if args.mode:
        overrides["retrieval"]["mode"] = args.mode
    try:
        settings = Settings.from_env().merged(overrides)
        if args.build:
            build_demo_index(args.index, settings)
        conversations = read_conversations(args.gold)
        engine = Engine.load(settings)
    except RagError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    splits = [args.split] if args.split else ["dev", "heldout", "all"]
    started = time.perf_counter()
    for split in splits:
        chosen = [c for c in conversations if split == "all" or c.split == split]
        if not chosen:
            print(f"no conversations in split '{split}'", file=sys.stderr)
            continue
        scores = evaluate(engine, chosen)
        rewrite = "LLM rewrite" if hasattr(engine.generator, "complete") else "deterministic"
        print(
            report(
                scores,
                f"{split} ({settings.retrieval.mode}, {rewrite})",
                len(scores.rows["condensed"]),
                len(chosen),
            )
        )
        if args.misses:
            print(misses(scores))
        print()
    print(f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
