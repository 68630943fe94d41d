"""Lexical index: BM25 (bm25s) over the same title + section + text a chunk is embedded as.

Dense vectors miss exact strings a clinician types: drug names, scores ("chads2"), gene
symbols. BM25 catches them. Tokens are lowercased runs of letters and digits (so "CHADS2"
stays one token and "CHA2DS2-VASc" becomes "cha2ds2", "vasc"), English stopwords dropped,
respelled in American ("haemorrhage" meets "hemorrhage", "noradrenaline" "norepinephrine":
guidelines and clinicians write both) and Snowball-stemmed (rag.text.stem) so "treatments"
meets "treatment". These tokens are stored in every index: they are not the answerer's words
(rag.text.content_words), and changing them means a new TOKENIZER_VERSION.
Position i of the BM25 corpus is chunk row id `row_ids[i]`.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN_PLUS

from rag.text import stem, without_emphasis

# Recorded in the stamp: an index built by another tokenizer is rebuilt, not misread.
TOKENIZER_VERSION = "words-v3+snowball+medical-adjectives"

_WORD = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(STOPWORDS_EN_PLUS)
_STAMP_FILE = "stamp.json"
FAMILY_PREFIX = 5  # letters two tokens of one word family share at least (has_family)
_ROWS_FILE = "row_ids.npy"

# British spellings and drug names, as (pattern, American), applied to every lowercased word
# of passages and queries alike: a rule that also catches an ordinary word ("exercise" ->
# "exercize", "four" -> "for") changes it the same way on both sides, so matching is unharmed.
_AMERICAN_SPELLINGS = (
    (re.compile(r"noradrenalin(e)?"), "norepinephrine"),
    (re.compile(r"adrenalin(e)?"), "epinephrine"),
    (re.compile(r"paracetamol"), "acetaminophen"),
    (re.compile(r"salbutamol"), "albuterol"),
    (re.compile(r"frusemide"), "furosemide"),
    (re.compile(r"lignocaine"), "lidocaine"),
    (re.compile(r"oe(?=[a-z])"), "e"),  # oedema, oesophagus, diarrhoea, foetal, coeliac
    (re.compile(r"ae(?=[a-z])"), "e"),  # haemorrhage, anaemia, paediatric, bacteraemia
    (re.compile(r"(?<=[a-z])is(e|es|ed|ing|ation|ations)$"), r"iz\1"),  # hospitalised
    (re.compile(r"(?<=[a-z])our(s)?$"), r"or\1"),  # tumour, tumours
    (re.compile(r"(?<=[a-z])tre(s)?$"), r"ter\1"),  # litre, centres
)


def american_spelling(word: str) -> str:
    """`word`, lowercased, in American spelling: "haemorrhage" -> "hemorrhage", "oedema" ->
    "edema", "hospitalised" -> "hospitalized", "noradrenaline" -> "norepinephrine". A word
    with no British spelling in it comes back lowercased, otherwise unchanged."""
    american = word.lower()
    for pattern, replacement in _AMERICAN_SPELLINGS:
        american = pattern.sub(replacement, american)
    return american


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens of `text` (`_word_token` of each word; emphasis inside a word,
    "**C**onfusion", read through), stopwords removed."""
    tokens = (_word_token(word) for word in _WORD.findall(without_emphasis(text).lower()))
    return [token for token in tokens if token is not None]


def _word_token(word: str) -> str | None:
    """The index token of one lowercased word: None for a stopword, else the word respelled in
    American (after the stopword test: "does" is a stopword, not "des") and stemmed. Queries
    and passages both go through it."""
    if word in _STOPWORDS:
        return None
    return stem(american_spelling(word))


def _token_ids(passages: Sequence[str]) -> tuple[list[list[int]], dict[str, int]]:
    """(token ids of each passage, vocabulary token -> id), tokenized exactly as `tokenize`.

    Each distinct word is lowercased and given its `_word_token` once, and every occurrence
    then shares one int object: a million passages hold a hundred million words, and a list
    of fresh strings per passage (what bm25s builds from) would not fit in memory on a small
    machine.
    """
    vocabulary: dict[str, int] = {}
    token_id_of_word: dict[str, int | None] = {}  # None: a stopword
    corpus_token_ids: list[list[int]] = []
    for passage in passages:
        token_ids: list[int] = []
        for word in _WORD.findall(passage.lower()):
            token_id = token_id_of_word.get(word, -1)
            if token_id == -1:
                token = _word_token(word)
                token_id = None if token is None else vocabulary.setdefault(token, len(vocabulary))
                token_id_of_word[word] = token_id
            if token_id is not None:
                token_ids.append(token_id)
        corpus_token_ids.append(token_ids)
    return corpus_token_ids, vocabulary


class LexicalIndex:
    """BM25 scores over chunk passages, keyed by chunk row id; searches are thread-safe."""

    def __init__(self, retriever: bm25s.BM25 | None, row_ids: np.ndarray) -> None:
        self._retriever = retriever  # None for an empty corpus: bm25s cannot index nothing
        self.row_ids = row_ids  # sorted ascending, so a row id finds its position by bisection
        self._sorted_vocabulary: list[str] | None = None  # for has_family, made on first use

    @classmethod
    def build(cls, row_ids: np.ndarray, passages: Sequence[str]) -> LexicalIndex:
        """Index `passages[i]` as chunk row `row_ids[i]`; `row_ids` must be ascending."""
        ids = np.asarray(row_ids, dtype=np.int64)
        if len(ids) != len(passages):
            raise ValueError(f"{len(ids)} row ids for {len(passages)} passages")
        if np.any(np.diff(ids) <= 0):
            raise ValueError("row ids must be strictly ascending")
        if len(ids) == 0:
            return cls(None, ids)
        retriever = bm25s.BM25()
        retriever.index(_token_ids(passages), show_progress=False)
        return cls(retriever, ids)

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Memory-map an index written by `save`."""
        row_ids = np.load(folder / _ROWS_FILE, mmap_mode="r")
        if len(row_ids) == 0:
            return cls(None, np.asarray(row_ids, dtype=np.int64))
        retriever = bm25s.BM25.load(str(folder), mmap=True, show_progress=False)
        return cls(retriever, row_ids)

    @staticmethod
    def read_stamp(folder: Path) -> dict[str, Any] | None:
        """The stamp `save` wrote into `folder`, or None when missing or unreadable."""
        try:
            stamp = json.loads((folder / _STAMP_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(stamp, dict) or stamp.get("tokenizer") != TOKENIZER_VERSION:
            return None
        return stamp

    def save(self, folder: Path, stamp: dict[str, Any]) -> None:
        """Write the index into `folder` with `stamp`, replacing any previous one.

        Built beside the target and swapped in by renames, so `folder` holds either a complete
        index or nothing (a reader then rebuilds it); never a half-written one.
        """
        partial = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        if self._retriever is not None:
            self._retriever.save(str(partial), show_progress=False)
        np.save(partial / _ROWS_FILE, np.asarray(self.row_ids, dtype=np.int64))
        (partial / _STAMP_FILE).write_text(
            json.dumps({**stamp, "tokenizer": TOKENIZER_VERSION}), encoding="utf-8"
        )
        retired = folder.with_name(f"{folder.name}.{os.getpid()}.old")
        shutil.rmtree(retired, ignore_errors=True)
        if folder.exists():
            # A directory cannot be renamed over a non-empty one: move the old one aside first.
            os.replace(folder, retired)
        os.replace(partial, folder)
        shutil.rmtree(retired, ignore_errors=True)

    @property
    def size(self) -> int:
        return len(self.row_ids)

    def has_family(self, word: str) -> bool:
        """Whether the vocabulary holds `word`'s token or one of its family: a token sharing a
        prefix of at least FAMILY_PREFIX letters and 75% of the longer ("dyspneic" finds
        "dyspnea"; "plasmapheresis" does not find "plasma", nor "hypertensive" "hyperthyroid")."""
        token = _word_token(word.lower())
        if token is None or self._retriever is None:
            return False
        if self._sorted_vocabulary is None:
            self._sorted_vocabulary = sorted(str(t) for t in self._retriever.vocab_dict)
        vocabulary, prefix = self._sorted_vocabulary, token[:FAMILY_PREFIX]
        start = bisect.bisect_left(vocabulary, prefix)
        for other in itertools.islice(vocabulary, start, None):
            if not other.startswith(prefix):
                return False
            if len(os.path.commonprefix([token, other])) >= 0.75 * max(len(token), len(other)):
                return True
        return False

    def search(self, query: str, k: int, rows: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The `k` best (row id, BM25 score) pairs for `query`, best first; only passages
        sharing a term with the query, and only among `rows` when given."""
        if k <= 0 or self._retriever is None:
            return []
        token_ids = self._retriever.get_tokens_ids(tokenize(query))
        if not token_ids:
            return []
        scores = np.asarray(self._retriever.get_scores_from_ids(token_ids), dtype=np.float32)
        if rows is not None:
            allowed = np.zeros(len(scores), dtype=bool)
            allowed[self._positions(np.asarray(rows, dtype=np.int64))] = True
            scores = np.where(allowed, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        best = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(int(self.row_ids[position]), float(scores[position])) for position in best]

    def _positions(self, rows: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(self.row_ids, rows)
        inside = positions < len(self.row_ids)
        positions = positions[inside]
        return positions[np.asarray(self.row_ids)[positions] == rows[inside]]
