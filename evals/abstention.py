"""Calibrate and report abstention and citation support.

    .venv/bin/python evals/abstention.py                 # calibrate on dev, report dev + heldout
    .venv/bin/python evals/abstention.py --skip-answers  # coverage gate only (no Engine.ask runs)
    .venv/bin/python evals/abstention.py --index DIR     # another copy of the demo index
    .venv/bin/python evals/abstention.py --llm           # + the LLM check (local Qwen2.5-Coder)
    .venv/bin/python evals/abstention.py --llm --llm-answers  # + heldout answered by the LLM
    .venv/bin/python evals/abstention.py --splits dev    # while tuning: heldout stays unseen

Abstention (evals/abstention.jsonl: answerable and unanswerable questions over the demo
guideline corpus, each with a dev/heldout split). For every question the script retrieves with
the default settings and measures the coverage score (rag.generate.abstention). The threshold
is chosen on dev only: the cut between two adjacent dev scores with the fewest errors (false
answers + false abstentions), the middle of the widest such gap. It then reports, per split,
the false answer rate (answering an unanswerable question) and the false abstention rate
(abstaining on an answerable one) of the gate alone and, unless --skip-answers, of the whole
`Engine.ask` with the extractive backend and the calibrated threshold.

With `--llm` (the local Qwen2.5-Coder-1.5B served by llama.cpp here) or `--llm-url`, every
question the coverage gate lets through is also put to the model's answerability check
(`Engine.answerable`: P(yes) that the top 3 passages state the answer); its threshold
(`answer.min_answerable_probability`) is calibrated on the dev questions the gate passed, the
same way, and the table gains the gate-plus-check rows. `--llm-answers` then answers the
heldout questions with `Engine.ask` and the LLM, so the model's own refusal counts too.

Citation support (rag.generate.support). Positive pairs: the first sentence of a PubMedQA
conclusion (written by the authors, absent from the corpus) with its own abstract: a real,
paraphrased claim its passage backs. Negative pairs: the same sentence with another random
abstract, and demo-corpus sentences cited to another section of the same guideline (hard) or
to another guideline. The removal threshold is the 5th percentile of the positive scores on
PubMedQA dev (so about 5% of supported claims would lose their citation); heldout reports how
many positives would be wrongly removed and how many negatives caught.

The index is indexes/default, built from the demo corpus when missing (`rag ingest --demo`
builds the same). Writes evals/results/abstention.md and prints it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch

from rag.answer import Engine
from rag.config import Settings
from rag.generate.support import support_scores
from rag.index.store import Index
from rag.ingest.demo import load_demo_corpus
from rag.ingest.pipeline import ingest
from rag.jsonl import read_jsonl
from rag.local_llm import fetch_model, start_server
from rag.text import split_sentences

QUESTIONS = REPO / "evals" / "abstention.jsonl"
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "evals" / "results"
SPLITS = ("dev", "heldout")
SUPPORT_FALSE_REMOVAL = 0.05
LOCAL_MODEL = "qwen2.5-coder-1.5b"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Abstention


@dataclass(frozen=True)
class Scored:
    id: str
    split: str
    answerable: bool
    score: float
    nearest_cosine: float
    word_coverage: float
    missing_words: tuple[str, ...]
    unknown_words: tuple[str, ...] = ()
    dose_missing: bool = False
    answerable_probability: float | None = None  # the LLM check's P(yes), when it was asked

    def answered_at(self, threshold: float, check_threshold: float = 0.0) -> bool:
        """Whether the question is answered at coverage `threshold` (Coverage.covered) and,
        when the LLM check was asked, at `check_threshold` (Engine.ask's check)."""
        if self.unknown_words or self.dose_missing or self.score < threshold:
            return False
        probability = self.answerable_probability
        return probability is None or probability >= check_threshold


def read_questions(path: Path) -> list[dict]:
    rows = [record for _, record in read_jsonl(path, "abstention set")]
    for row in rows:
        if row.get("split") not in SPLITS or not isinstance(row.get("answerable"), bool):
            raise SystemExit(
                f"{path}: question {row.get('id')!r} lacks a dev/heldout split or answerable flag"
            )
    return rows


def coverage_scores(engine: Engine, questions: Sequence[dict]) -> list[Scored]:
    scored = []
    for number, row in enumerate(questions, start=1):
        hits = engine.search(row["question"])
        coverage = engine.coverage(row["question"], hits)
        scored.append(
            Scored(
                row["id"],
                row["split"],
                row["answerable"],
                coverage.score,
                coverage.nearest_cosine,
                coverage.word_coverage,
                coverage.missing_words,
                coverage.unknown_words,
                coverage.dose_missing,
            )
        )
        if number % 20 == 0:
            log(f"coverage: {number}/{len(questions)} questions")
    return scored


def calibrate_threshold(points: Sequence[tuple[float, bool]]) -> float:
    """The cut through (value, answerable) dev points with the fewest errors (an answerable
    point below it, an unanswerable one at or above it); among equally good cuts the middle
    of the widest gap. Only the points a threshold can change are passed in: not the
    questions the unknown-term veto or the dose check decides, nor, for the LLM check, the
    ones the coverage gate already stopped."""
    values = sorted({value for value, _ in points})
    cuts = list(itertools.pairwise(values))
    cuts += [(values[0] - 0.1, values[0]), (values[-1], values[-1] + 0.1)]

    def key(cut: tuple[float, float]) -> tuple[int, float]:
        middle = (cut[0] + cut[1]) / 2
        errors = sum(1 for value, answerable in points if (value >= middle) != answerable)
        return errors, -(cut[1] - cut[0])

    low, high = min(cuts, key=key)
    return round((low + high) / 2, 3)


def check_probabilities(
    engine: Engine, questions: Sequence[dict], scored: Sequence[Scored], threshold: float
) -> list[Scored]:
    """`scored` with the LLM check's P(yes) for every question the coverage gate lets through
    at `threshold` (as Engine.ask asks it: the top passages of the same retrieval)."""
    text_of = {row["id"]: row["question"] for row in questions}
    checked = []
    for number, s in enumerate(scored, start=1):
        if s.answered_at(threshold):
            question = text_of[s.id]
            s = replace(
                s, answerable_probability=engine.answerable(question, engine.search(question))
            )
        checked.append(s)
        if number % 20 == 0:
            log(f"LLM check: {number}/{len(scored)} questions")
    return checked


def rates(outcomes: Iterable[tuple[bool, bool]]) -> str:
    """ "false answers | false abstentions" as table cells, from (answerable, answered) pairs."""
    pairs = list(outcomes)
    answerable_abstained = [not answered for answerable, answered in pairs if answerable]
    unanswerable_answered = [answered for answerable, answered in pairs if not answerable]

    def share(flags: Sequence[bool]) -> str:
        return f"{sum(flags)}/{len(flags)} ({100 * sum(flags) / max(len(flags), 1):.0f}%)"

    return f"{share(unanswerable_answered)} | {share(answerable_abstained)}"


def end_to_end(engine: Engine, questions: Sequence[dict]) -> dict[str, bool]:
    """Whether `Engine.ask` abstained, per question id."""
    abstained = {}
    for number, row in enumerate(questions, start=1):
        answer = engine.ask(row["question"], suggest_related=False)
        abstained[row["id"]] = answer.abstained
        if number % 10 == 0:
            log(f"answers: {number}/{len(questions)} questions")
    return abstained


# ---------------------------------------------------------------------------------------------
# Citation support


def first_sentence(text: str) -> str:
    sentences = split_sentences(text)
    return sentences[0] if sentences else text.strip()


def pubmedqa_pairs(
    split: str, limit: int, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(positives, negatives) from PubMedQA `split`: a conclusion's first sentence with its own
    abstract, and with a random other abstract of the same sample."""
    folder = DATA / "pubmedqa"
    corpus = {
        document["id"]: document["text"]
        for _, document in read_jsonl(folder / "corpus.jsonl", "PubMedQA corpus")
    }
    gold = [record for _, record in read_jsonl(folder / f"{split}.jsonl", "gold file")]
    gold = [row for row in gold if row.get("answer") and row["relevant_doc_ids"][0] in corpus]
    random.Random(seed).shuffle(gold)
    gold = gold[:limit]
    positives = [
        (first_sentence(row["answer"]), corpus[row["relevant_doc_ids"][0]]) for row in gold
    ]
    rotated = positives[1:] + positives[:1]
    negatives = [(claim, other) for (claim, _), (_, other) in zip(positives, rotated, strict=True)]
    return positives, negatives


def demo_negative_pairs(
    index: Index, guideline_half: int, limit: int, seed: int
) -> tuple[list, list]:
    """(same-guideline negatives, other-guideline negatives) from the demo index: a sentence of
    one section cited to another section of the same guideline, or to another guideline.
    Guidelines are split in two halves by sorted order (0 for tuning, 1 for reporting)."""
    generator = random.Random(seed)
    documents = sorted(index.documents(), key=lambda document: document.id)
    guidelines = sorted({document.id.split("/")[0] for document in documents})
    chosen = set(guidelines[guideline_half::2])
    by_guideline: dict[str, list] = {}
    for document in documents:
        guideline = document.id.split("/")[0]
        if guideline in chosen:
            by_guideline.setdefault(guideline, []).extend(index.chunks_of(document.id))
    same, other = [], []
    names = sorted(by_guideline)
    for _ in range(limit * 3):
        if len(same) >= limit:
            break
        guideline = generator.choice(names)
        chunks = by_guideline[guideline]
        source = generator.choice(chunks)
        sentences = [s for s in split_sentences(source.text) if len(s.split()) >= 8]
        others = [c for c in chunks if c.doc_id != source.doc_id]
        foreign = by_guideline[generator.choice([n for n in names if n != guideline])]
        if not sentences or not others:
            continue
        sentence = generator.choice(sentences)
        same.append((sentence, generator.choice(others).text))
        other.append((sentence, generator.choice(foreign).text))
    return same, other


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(share * len(ordered))))]


def below(values: Sequence[float], threshold: float) -> str:
    count = sum(1 for value in values if value < threshold)
    return f"{count}/{len(values)} ({100 * count / max(len(values), 1):.0f}%)"


def support_report(index: Index, limit: int, seed: int) -> tuple[list[str], float | None]:
    embedder = index.embedder
    lines = ["## Citation support", ""]
    if not (DATA / "pubmedqa" / "corpus.jsonl").exists():
        lines.append(f"Skipped: {DATA / 'pubmedqa'} is absent.")
        return lines, None
    scores: dict[str, dict[str, list[float]]] = {}
    for part, split, half in (("tune", "dev", 0), ("report", "heldout", 1)):
        log(f"support: scoring the {part} pairs")
        positives, negatives = pubmedqa_pairs(split, limit, seed)
        same, other = demo_negative_pairs(index, half, limit, seed)
        scores[part] = {
            "PubMedQA conclusion -> own abstract (supported)": support_scores(positives, embedder),
            "PubMedQA conclusion -> random abstract": support_scores(negatives, embedder),
            "demo sentence -> own passage (verbatim)": [1.0] * len(same),
            "demo sentence -> other section, same guideline": support_scores(same, embedder),
            "demo sentence -> other guideline": support_scores(other, embedder),
        }
    supported = "PubMedQA conclusion -> own abstract (supported)"
    threshold = round(percentile(scores["tune"][supported], SUPPORT_FALSE_REMOVAL), 2)
    lines += [
        (
            f"Threshold: {threshold} = the {100 * SUPPORT_FALSE_REMOVAL:.0f}th percentile of "
            f"supported PubMedQA dev pairs (tune: PubMedQA dev + even-numbered demo guidelines; "
            f"report: PubMedQA heldout + odd-numbered demo guidelines; {limit} pairs of each kind)."
        ),
        "",
        "| pairs | part | mean support | removed (below threshold) |",
        "|---|---|---|---|",
    ]
    for part in ("tune", "report"):
        for name, values in scores[part].items():
            mean = sum(values) / max(len(values), 1)
            lines.append(f"| {name} | {part} | {mean:.3f} | {below(values, threshold)} |")
    lines.append("")
    return lines, threshold


# ---------------------------------------------------------------------------------------------


def llm_engine(engine: Engine, arguments: argparse.Namespace, stack: ExitStack) -> Engine:
    """`engine` with the OpenAI-compatible backend: the endpoint at --llm-url, or the local
    model served by llama.cpp for as long as `stack` is open. The check is switched on (any
    threshold above 0: only the probability is used here)."""
    base_url, model = arguments.llm_url, arguments.llm_model
    if not base_url:
        server = stack.enter_context(start_server(fetch_model(LOCAL_MODEL, log=log), timeout_s=300))
        base_url, model = server.base_url, Path(server.model_path).stem
    # The llama.cpp server needs both cores; one thread embeds a query quickly enough.
    torch.set_num_threads(1)
    settings = engine.settings.merged(
        {
            "llm": {
                "max_tokens": 160,
                "base_url": base_url,
                "api_key": "local",
                "model": model or "local",
                "timeout_s": 600.0,
                "retries": 1,
            },
            "answer": {"min_answerable_probability": 0.5},
        }
    )
    return Engine.from_index(settings, engine.index)


def open_demo_index(path: Path) -> Settings:
    settings = Settings.from_env().merged({"index": str(path)})
    if not (path / "chunks.sqlite").exists():
        log(f"building the demo index at {path} (a few minutes)")
        with Index.open(path, settings, create=True) as index:
            ingest(index, load_demo_corpus(), progress=False)
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=REPO / "indexes" / "default")
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--skip-answers", action="store_true", help="gate only, no Engine.ask")
    parser.add_argument("--skip-support", action="store_true", help="no citation-support part")
    parser.add_argument("--support-pairs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--output", type=Path, default=RESULTS / "abstention.md")
    parser.add_argument(
        "--splits",
        nargs="+",
        choices=SPLITS,
        default=list(SPLITS),
        help="score only these (`--splits dev` while tuning keeps heldout unseen)",
    )
    parser.add_argument(
        "--llm",
        action="store_true",
        help=f"also calibrate and report the LLM check with the local {LOCAL_MODEL} "
        "(llama.cpp server started here; ~12 s per question on 2 cores)",
    )
    parser.add_argument("--llm-url", default="", help="use this OpenAI-compatible endpoint instead")
    parser.add_argument("--llm-model", default="", help="model name at --llm-url")
    parser.add_argument(
        "--llm-answers",
        action="store_true",
        help="with --llm/--llm-url, also answer every heldout question with Engine.ask and the "
        "LLM (check, generation, the model's own refusal; ~25 s per answer here)",
    )
    arguments = parser.parse_args(argv)
    # `kill PID` of a background run: leave through the `with` block so the server stops too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    settings = open_demo_index(arguments.index)
    questions = [
        row for row in read_questions(arguments.questions) if row["split"] in arguments.splits
    ]
    engine = Engine.load(settings)
    log(f"coverage scores for {len(questions)} questions")
    scored = coverage_scores(engine, questions)
    threshold = calibrate_threshold(
        [
            (s.score, s.answerable)
            for s in scored
            if s.split == "dev"
            if not s.unknown_words and not s.dose_missing
        ]
    )
    check_threshold, check_name = None, ""
    llm_abstained: dict[str, bool] = {}
    if arguments.llm or arguments.llm_url:
        with ExitStack() as stack:
            checker = llm_engine(engine, arguments, stack)
            log(f"LLM check with {checker.generator.name}")
            scored = check_probabilities(checker, questions, scored, threshold)
            check_name = checker.generator.name
            check_threshold = calibrate_threshold(
                [
                    (s.answerable_probability, s.answerable)
                    for s in scored
                    if s.split == "dev"
                    if s.answerable_probability is not None
                ]
            )
            if arguments.llm_answers:
                checker.settings = checker.settings.merged(
                    {
                        "answer": {
                            "min_coverage_score": threshold,
                            "min_answerable_probability": check_threshold,
                        }
                    }
                )
                log(f"end to end on heldout: Engine.ask with {check_name}")
                llm_abstained = end_to_end(
                    checker, [row for row in questions if row["split"] == "heldout"]
                )

    lines = [
        "# Abstention and citation support",
        "",
        (
            f"Made by `.venv/bin/python evals/abstention.py` on {time.strftime('%Y-%m-%d')}; "
            f"index {arguments.index.name} ({engine.index.document_count} documents, "
            f"{engine.index.chunk_count} chunks), questions {arguments.questions.name}."
        ),
        "",
        "## Abstention",
        "",
        (
            f"Coverage score = idf-weighted share of the question's topical words in the top 3 "
            f"passages + cosine of the nearest passage; a question naming a term no passage "
            f"contains and the embedder cannot spell as one token abstains whatever its score "
            f"(vetoed: {sum(1 for s in scored if s.unknown_words)} of {len(scored)}), and so does "
            f"a dose question whose retrieved passages state no dose for its key term "
            f"({sum(1 for s in scored if s.dose_missing and not s.unknown_words)} more). "
            f"Threshold calibrated on dev: "
            f"**{threshold}** (`answer.min_coverage_score`, currently "
            f"{settings.answer.min_coverage_score} in rag/config.py)."
        ),
        "",
        "| split | what | false answers (unanswerable answered) | false abstentions (answerable abstained) |",
        "|---|---|---|---|",
    ]
    for split in arguments.splits:
        part = [s for s in scored if s.split == split]
        gate = rates((s.answerable, s.answered_at(threshold)) for s in part)
        lines.append(f"| {split} | coverage gate | {gate} |")
        if check_threshold is not None:
            checked = rates((s.answerable, s.answered_at(threshold, check_threshold)) for s in part)
            lines.append(f"| {split} | coverage gate + LLM check ({check_name}) | {checked} |")
    if not arguments.skip_answers:
        engine.settings = engine.settings.merged({"answer": {"min_coverage_score": threshold}})
        log("end to end: Engine.ask with the extractive backend")
        abstained = end_to_end(engine, questions)
        for split in arguments.splits:
            asked = rates(
                (row["answerable"], not abstained[row["id"]])
                for row in questions
                if row["split"] == split
            )
            lines.append(f"| {split} | Engine.ask ({engine.generator.name}) | {asked} |")
    if llm_abstained:
        asked = rates(
            (row["answerable"], not llm_abstained[row["id"]])
            for row in questions
            if row["id"] in llm_abstained
        )
        lines.append(f"| heldout | Engine.ask ({check_name}) | {asked} |")
    if check_threshold is not None:
        lines += [
            "",
            (
                f"LLM check: asked for every question the coverage gate lets through, the model "
                f"({check_name}) gives P(yes) that the top 3 passages state the answer; "
                f"threshold calibrated on dev: **{check_threshold}** "
                f"(`answer.min_answerable_probability`, currently "
                f"{settings.answer.min_answerable_probability} in rag/config.py)."
            ),
        ]
    final = check_threshold or 0.0
    lines += ["", "Errors (heldout is never used to choose a threshold):", ""]
    for s in sorted(scored, key=lambda s: (s.split, s.answerable, s.score)):
        if s.answered_at(threshold, final) != s.answerable:
            kind = "answered" if s.answered_at(threshold, final) else "abstained"
            unknown = f", unknown: {', '.join(s.unknown_words)}" if s.unknown_words else ""
            unknown += ", no dose found" if s.dose_missing else ""
            if s.answerable_probability is not None:
                unknown += f", LLM P(yes) {s.answerable_probability:.3f}"
            lines.append(
                f"- {s.split} {s.id}: {kind}, score {s.score:.3f} (cosine {s.nearest_cosine:.3f}, "
                f"words {s.word_coverage:.2f}, missing: {', '.join(s.missing_words) or '-'}"
                f"{unknown})"
            )
    lines.append("")

    if not arguments.skip_support:
        support_lines, _ = support_report(engine.index, arguments.support_pairs, arguments.seed)
        lines += support_lines

    text = "\n".join(lines)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(text, encoding="utf-8")
    with open(arguments.output.with_suffix(".jsonl"), "w", encoding="utf-8") as rows:
        for s in scored:
            rows.write(json.dumps(s.__dict__) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
