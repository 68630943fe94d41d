"""What a clinician reading an answer would check, as numbers (evals/clinical_answers.py).

- key-fact recall: is each gold key fact ("2.5 mg BID if at least two criteria") in the answer,
  and in its bottom line? A fact is found when every number in it appears in the text and at
  least KEY_FACT_WORD_SHARE of its other content words do (stemmed; ≥ and >=, dashes and
  Unicode minus compared alike), so a fact written in other word order or with the source's
  abbreviations still counts, and a fact whose number differs never does;
- whether the bottom line is a sentence (rag.generate.wording.is_sentence);
- the share of citations from a guideline other than the gold ones;
- answer length in words, readability grade (Flesch-Kincaid);
- support separation: the support score of each real (sentence, cited passage) pair against
  the same sentence paired with another retrieved passage (shuffled), as an AUC.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.text import content_stems, split_sentences
from rag.types import Answer

KEY_FACT_WORD_SHARE = 0.6
_MARKER = re.compile(r"\s*\[\d+\]")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def normalised(text: str) -> str:
    """`text` with Markdown, comparison signs, dashes and spacing written one way."""
    text = _MARKER.sub("", text)
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
    return len(_MARKER.sub("", text).split())


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
        for line in _MARKER.sub("", text).splitlines()
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
