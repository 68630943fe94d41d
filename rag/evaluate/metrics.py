"""Metrics: pure functions from one question's outcome to numbers, grouped by what they score.

Retrieval (document level: the system's ranking is the document ranking of
`rag.retrieve.retrieve_documents`, a document ranking where its best passage ranks; a
question's relevant documents are its `relevant_doc_ids`; relevance is binary). For one
question with relevant set G and document ranking r (1-based), cutoff k:

- Recall@k = |{g in G : rank(g) <= k}| / |G|: the share of the question's relevant documents
  found in the top k (not "at least one found"; the two agree when |G| = 1, as in both bundled
  sets).
- MRR@10 = 1 / rank of the first relevant document when that rank is <= 10, else 0.
- nDCG@10 = DCG@10 / IDCG@10 with DCG@10 = sum over relevant documents ranked r <= 10 of
  1 / log2(r + 1), and IDCG@10 the same sum for the ideal ranking (all of G first), i.e.
  sum over i = 1..min(|G|, 10) of 1 / log2(i + 1).

Answer text, against a reference answer (both score the bottom line plus the answer body,
citation markers removed):

- ROUGE-L F: for answer tokens X and reference tokens Y (lower-cased runs of letters and
  digits), with LCS the length of their longest common subsequence, P = LCS/|X|,
  R = LCS/|Y|, F = 2PR/(P+R); 0 when LCS is 0.
- token F1: SQuAD's answer F1: both texts normalised (lower case, punctuation and the
  articles a/an/the removed, whitespace collapsed), then F1 of the multiset overlap of their
  tokens.

Citations and decisions: markers shown and markers that resolve to a listed citation,
sentences shown and sentences carrying a marker, yes/no/maybe accuracy (how
`rag.evaluate.answers` pools them into per-mode rates is described there).

What a clinician reading an answer would check (evals/clinical_answers.py):

- key-fact recall: is each gold key fact ("2.5 mg BID if at least two criteria") in the answer,
  and in its bottom line? A fact is found when every number in it appears in the text and at
  least KEY_FACT_WORD_SHARE of its other content words do (stemmed; >= and ≥, dashes
  and Unicode minus compared alike), so a fact written in other word order or with the
  source's abbreviations still counts, and a fact whose number differs never does;
- the share of citations from a guideline other than the gold ones;
- answer length in words, readability grade (Flesch-Kincaid);
- support separation: the support score of each real (sentence, cited passage) pair against
  the same sentence paired with another retrieved passage (shuffled), as an AUC.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

from rag.text import content_stems, split_sentences
from rag.types import Answer

RECALL_CUTOFFS = (1, 5, 10)
METRIC_NAMES = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
KEY_FACT_WORD_SHARE = 0.6

_MARKER = re.compile(r"\[(\d+)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*\[\d+\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z0-9]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


# ---- retrieval, on one question: `gold_ranks` holds the 1-based rank of each relevant document,
# ---- None where it was not retrieved (within the ranking's depth) or is not in the index.


def recall_at(gold_ranks: Sequence[int | None], k: int) -> float:
    """Share of the relevant documents ranked within the top `k`."""
    if not gold_ranks:
        return 0.0
    return sum(1 for rank in gold_ranks if rank is not None and rank <= k) / len(gold_ranks)


def reciprocal_rank_at(gold_ranks: Sequence[int | None], k: int = 10) -> float:
    """1 / the best rank of a relevant document if it is within `k`, else 0."""
    found = [rank for rank in gold_ranks if rank is not None and rank <= k]
    return 1.0 / min(found) if found else 0.0


def ndcg_at(gold_ranks: Sequence[int | None], k: int = 10) -> float:
    """Binary-relevance nDCG with a log2(rank + 1) discount, cut at `k`."""
    dcg = sum(1.0 / math.log2(rank + 1) for rank in gold_ranks if rank is not None and rank <= k)
    ideal = sum(1.0 / math.log2(position + 1) for position in range(1, min(len(gold_ranks), k) + 1))
    return dcg / ideal if ideal else 0.0


def question_metrics(gold_ranks: Sequence[int | None]) -> dict[str, float]:
    """All report metrics for one question, keyed by METRIC_NAMES."""
    metrics = {f"recall@{cutoff}": recall_at(gold_ranks, cutoff) for cutoff in RECALL_CUTOFFS}
    metrics["mrr@10"] = reciprocal_rank_at(gold_ranks, 10)
    metrics["ndcg@10"] = ndcg_at(gold_ranks, 10)
    return metrics


def gold_ranks(ranked_doc_ids: Sequence[str], relevant_doc_ids: Sequence[str]) -> list[int | None]:
    """The 1-based rank of each relevant document in `ranked_doc_ids`, None when absent."""
    position = {}
    for rank, doc_id in enumerate(ranked_doc_ids, start=1):
        position.setdefault(doc_id, rank)
    return [position.get(doc_id) for doc_id in relevant_doc_ids]


# ---- text metrics --------------------------------------------------------------------------


def rouge_tokens(text: str) -> list[str]:
    """Lower-cased runs of ASCII letters and digits, in order (ROUGE's default tokens)."""
    return _WORD.findall(text.lower())


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists (O(len*len) time,
    O(len) memory: one previous row of the dynamic-programming table is kept)."""
    if len(first) < len(second):
        first, second = second, first
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second, start=1):
            current.append(
                previous[j - 1] + 1 if token == other else max(previous[j], current[j - 1])
            )
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of `prediction` against `reference` (0.0 when either has no tokens)."""
    predicted, expected = rouge_tokens(prediction), rouge_tokens(reference)
    common = lcs_length(predicted, expected) if predicted and expected else 0
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def normalise_answer(text: str) -> str:
    """SQuAD normalisation: lower case, punctuation removed, a/an/the removed, single spaces."""
    text = text.lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 of the normalised texts; 1.0 when both normalise to nothing."""
    predicted, expected = normalise_answer(prediction).split(), normalise_answer(reference).split()
    if not predicted or not expected:
        return float(predicted == expected)
    overlap = sum((Counter(predicted) & Counter(expected)).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(expected)
    return 2 * precision * recall / (precision + recall)


# ---- citation metrics ----------------------------------------------------------------------


def shown_text(answer: Answer) -> str:
    """The bottom line and the answer body as the user reads them, markers included.

    The bottom line is left out when the body already opens with it (the contract takes the
    body's first sentence as the bottom line when the model wrote none), so no sentence
    counts twice."""
    body = answer.answer.strip()
    bottom_line = answer.bottom_line.strip()
    if not bottom_line or " ".join(body.split()).startswith(" ".join(bottom_line.split())):
        return body
    return f"{bottom_line}\n\n{body}"


def without_markers(text: str) -> str:
    """`text` with its [n] markers removed (for the text metrics)."""
    return " ".join(_MARKER.sub(" ", text).split())


def citation_marker_counts(answer: Answer) -> tuple[int, int]:
    """(markers shown, markers that name a listed citation) in bottom line + answer."""
    listed = {citation.n for citation in answer.citations}
    numbers = [int(n) for n in _MARKER.findall(f"{answer.bottom_line}\n{answer.answer}")]
    return len(numbers), sum(1 for n in numbers if n in listed)


def cited_sentence_counts(answer: Answer) -> tuple[int, int]:
    """(sentences shown, sentences carrying at least one [n] marker)."""
    sentences = split_sentences(shown_text(answer))
    return len(sentences), sum(1 for sentence in sentences if _MARKER.search(sentence))


def decision_accuracy(decisions: Sequence[str | None], labels: Sequence[str]) -> float:
    """Share of `labels` matched by the decision at the same position; None is wrong."""
    if len(decisions) != len(labels):
        raise ValueError("decisions and labels differ in length")
    if not labels:
        return 0.0
    return sum(1 for decision, label in zip(decisions, labels) if decision == label) / len(labels)


# ---- what a clinician checks ---------------------------------------------------------------


def normalised(text: str) -> str:
    """`text` with Markdown, comparison signs, dashes and spacing written one way."""
    text = _MARKER_WITH_SPACE.sub("", text)
    for written, same in (
        (">=", "≥"),
        ("<=", "≤"),
        ("−", "-"),
        ("–", "-"),
        ("—", "-"),
        ("--", "-"),
    ):
        text = text.replace(written, same)
    text = re.sub(r"[*_`|#]+", " ", text)
    return " ".join(text.split()).lower()


def _numbers(text: str) -> list[str]:
    return [
        number.rstrip("0").rstrip(".") if "." in number else number
        for number in _NUMBER.findall(text)
    ]


def has_fact(text: str, fact: str) -> bool:
    """Whether the key `fact` is stated in `text` (see the module docstring)."""
    text, fact = normalised(text), normalised(fact)
    text_numbers = set(_numbers(text))
    if any(number not in text_numbers for number in _numbers(fact)):
        return False
    words = {word for word in content_stems(fact) if not word[:1].isdigit()}
    if not words:
        return True
    found = words & content_stems(text)
    return len(found) / len(words) >= KEY_FACT_WORD_SHARE


def answer_text(answer: Answer) -> str:
    """What the reader sees of the answer itself: bottom line and body, no references."""
    return f"{answer.bottom_line}\n\n{answer.answer}"


def word_count(text: str) -> int:
    return len(_MARKER_WITH_SPACE.sub("", text).split())


def guideline_of(doc_id: str) -> str:
    """The guideline a section belongs to: "acc_aha_af_2023/anticoagulation" -> "acc_aha_af_2023"."""
    return doc_id.split("/", 1)[0]


def off_guideline_share(answer: Answer, gold_doc_ids: Sequence[str]) -> tuple[int, int]:
    """(citations from a guideline other than the gold sections', citations)."""
    gold = {guideline_of(doc_id) for doc_id in gold_doc_ids}
    other = sum(1 for citation in answer.citations if guideline_of(citation.doc_id) not in gold)
    return other, len(answer.citations)


def syllables(word: str) -> int:
    """Syllables of an English word by vowel groups (a silent final "e" not counted), at
    least one: the usual approximation behind Flesch-Kincaid."""
    word = word.lower()
    groups = len(re.findall(r"[aeiouy]+", word))
    if word.endswith("e") and not word.endswith(("le", "ee")) and groups > 1:
        groups -= 1
    return max(1, groups)


def readability_grade(text: str) -> float | None:
    """Flesch-Kincaid grade of `text` without markers, headings and bullets (None if empty):
    0.39 words/sentence + 11.8 syllables/word - 15.59. (textstat computes the same but
    fetches a pronunciation dictionary at run time, which fails offline.)"""
    lines = [
        re.sub(r"^\s*(?:[-*]|\d+[.)]|#+)\s*", "", line).replace("|", " ")
        for line in _MARKER_WITH_SPACE.sub("", text).splitlines()
        if line.strip() and not line.lstrip().startswith("|---")
    ]
    sentences = [s for line in lines for s in split_sentences(line)]
    words = re.findall(r"[A-Za-z]+", " ".join(lines))
    if not sentences or not words:
        return None
    return round(
        0.39 * len(words) / len(sentences)
        + 11.8 * sum(syllables(word) for word in words) / len(words)
        - 15.59,
        2,
    )


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """P(a random positive scores above a random negative), ties half (None without both)."""
    if not positives or not negatives:
        return None
    wins = 0.0
    for positive in positives:
        for negative in negatives:
            wins += 1.0 if positive > negative else 0.5 if positive == negative else 0.0
    return wins / (len(positives) * len(negatives))
