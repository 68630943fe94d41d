"""Retrieval: a question -> ranked passages (Hits), by dense, lexical or hybrid search.

Over 500 lines because the fusion methods, their tuning table, the per-document limit, section
expansion and a follow-up's lift are all retrieval; none is large enough to stand alone.

Hybrid search takes `candidates` rows from each retriever and fuses the two ranked lists into
one. Two fusions are implemented as pure functions over `(row, score)` lists:

- reciprocal-rank fusion (RRF): a row scores sum(1 / (c + rank)) over the lists it appears in;
  it ignores the raw scores, so it needs no calibration between cosine and BM25.
- a score blend: each list's scores are normalised (min-max or z-score) and mixed as
  alpha * dense + (1 - alpha) * lexical; a row missing from a list gets that list's lowest
  normalised score, as it scored at most that much there.

After fusion no document may flood the result: at most `per_document` passages per document are
kept (its best ones) and the freed places go to the next documents in line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from rag.config import FUSION_METHODS, RETRIEVAL_MODES
from rag.errors import InputError
from rag.index.passage import passage_for_embedding
from rag.shorthand import named_guidelines
from rag.text import CONTEXT_OPENER, asked_part, asking_sentences
from rag.types import Chunk, Hit, Turn

if TYPE_CHECKING:
    import numpy as np

    from rag.config import RetrievalSettings

MODES = RETRIEVAL_MODES
NORMALISATIONS = ("minmax", "zscore")

ScoredRows = list[tuple[int, float]]

# The c of reciprocal rank fusion's 1 / (c + rank), the usual 60; setting retrieval.rrf_k.
RRF_K = 60.0


class Embedder(Protocol):
    def embed_query(self, text: str) -> np.ndarray: ...


class SearchableIndex(Protocol):
    """What retrieval needs from an index (rag.index.store.Index provides it)."""

    embedder: Embedder

    def search_dense(
        self, query_vector: np.ndarray, k: int, rows: np.ndarray | None = None
    ) -> ScoredRows: ...

    def search_lexical(self, query: str, k: int, rows: np.ndarray | None = None) -> ScoredRows: ...

    def allowed_rows(
        self, sources: Sequence[str] = (), min_year: int | None = None
    ) -> np.ndarray | None: ...

    def hits(self, scored_rows: Sequence[tuple[int, float]]) -> list[Hit]: ...


@dataclass(frozen=True)
class Fusion:
    """How hybrid search merges the dense and the lexical candidate lists.

    method: "rrf" or "blend". rrf_k: the c in 1 / (c + rank); larger c flattens the
    advantage of the very top ranks. dense_weight: RRF weight of the dense list (the lexical
    list weighs 1). alpha: the dense weight of the blend (lexical gets 1 - alpha).
    normalisation: "minmax" or "zscore", applied to each list before blending.
    """

    method: str = "rrf"
    rrf_k: float = RRF_K
    dense_weight: float = 1.0
    alpha: float = 0.5
    normalisation: str = "minmax"

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise InputError(
                f"fusion '{self.method}' is unknown; choose one of {', '.join(FUSION_METHODS)}"
            )
        if self.normalisation not in NORMALISATIONS:
            raise InputError(
                f"normalisation '{self.normalisation}' is unknown; "
                f"choose one of {', '.join(NORMALISATIONS)}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise InputError(f"fusion alpha must be between 0 and 1, got {self.alpha}")
        if self.rrf_k < 0:
            raise InputError(f"fusion rrf_k must be 0 or more, got {self.rrf_k}")
        if self.dense_weight < 0:
            raise InputError(f"fusion dense_weight must be 0 or more, got {self.dense_weight}")

    def describe(self) -> str:
        """A short label for reports, e.g. 'rrf c=60 dense_weight=1'."""
        if self.method == "rrf":
            return f"rrf c={self.rrf_k:g} dense_weight={self.dense_weight:g}"
        return f"blend {self.normalisation} alpha={self.alpha:g}"

    def fuse(
        self, dense: Sequence[tuple[int, float]], lexical: Sequence[tuple[int, float]]
    ) -> ScoredRows:
        """The fused list of `(row, score)`, best first."""
        if self.method == "rrf":
            return reciprocal_rank_fusion(
                [dense, lexical], rrf_k=self.rrf_k, weights=[self.dense_weight, 1.0]
            )
        return blend_scores(dense, lexical, alpha=self.alpha, normalisation=self.normalisation)


    @classmethod
    def from_settings(cls, retrieval: RetrievalSettings) -> Fusion:
        """The fusion the `retrieval` settings name (fusion, fusion_alpha, rrf_k)."""
        return cls(
            method=retrieval.fusion,
            alpha=retrieval.fusion_alpha,
            normalisation="zscore",
            rrf_k=retrieval.rrf_k,
        )


# The default hybrid fusion: a z-score blend with dense weight 0.6, chosen on the dev splits
# only (evals/retrieval.py --tune; full grids in evals/results/<set>-tuning.md). Document-level
# nDCG@10 with 50 candidates per retriever:
#
#   dev set                          dense   BM25    RRF c=60  blend z 0.6  blend min-max 0.6
#   MedQuAD (2,000 sampled of 13k)   0.908   0.894   0.921     0.929        0.929
#   PubMedQA (all 500)               0.989   0.978   0.991     0.992        0.992
#
# On MedQuAD the blend beats RRF c=60 (recall@1 0.828 vs 0.812; per question it ranks better
# on 139 and worse on 98; paired bootstrap of the nDCG@10 gain +0.008, 95% interval
# +0.002..+0.014); the best RRF in the grid
# (c=5, dense weight 1.5, 20 candidates) reached 0.923. On PubMedQA everything is within one
# or two of 500 questions (best RRF, c=5: 0.993). RRF throws the scores away: when dense is
# confident (one passage far ahead) and BM25 lukewarm, ranks cannot tell that from a near tie,
# normalised scores can. Alpha 0.5-0.6 is a flat optimum; z-score and min-max tie on MedQuAD
# and z-score is a hair ahead on PubMedQA.
DEFAULT_FUSION = Fusion(method="blend", alpha=0.6, normalisation="zscore")


def reciprocal_rank_fusion(
    ranked_lists: Sequence[Sequence[tuple[int, float]]],
    *,
    rrf_k: float = RRF_K,
    weights: Sequence[float] | None = None,
) -> ScoredRows:
    """Fuse ranked `(row, score)` lists (best first) by reciprocal rank.

    A row's fused score is sum over lists of weight / (rrf_k + rank), rank counted from 1 in
    each list where the row appears. Returns `(row, fused score)` best first; ties keep the
    order in which rows were first met (earlier lists first), so the result is deterministic.
    """
    if weights is None:
        weights = [1.0] * len(ranked_lists)
    if len(weights) != len(ranked_lists):
        raise ValueError("reciprocal_rank_fusion: one weight per ranked list")
    fused: dict[int, float] = {}
    for ranked, weight in zip(ranked_lists, weights, strict=True):
        for rank, (row, _score) in enumerate(ranked, start=1):
            fused[row] = fused.get(row, 0.0) + weight / (rrf_k + rank)
    # sorted() is stable and dict order is first-seen order, hence deterministic ties.
    return sorted(fused.items(), key=lambda item: -item[1])


def normalise_scores(
    scored_rows: Sequence[tuple[int, float]], normalisation: str = "minmax"
) -> dict[int, float]:
    """Map each row to its score rescaled within its own list.

    "minmax": (s - min) / (max - min), so the list spans 0..1 (all 1.0 when every score is
    equal). "zscore": (s - mean) / standard deviation (all 0.0 when every score is equal).
    """
    if normalisation not in NORMALISATIONS:
        raise InputError(
            f"normalisation '{normalisation}' is unknown; choose one of {', '.join(NORMALISATIONS)}"
        )
    if not scored_rows:
        return {}
    scores = [score for _row, score in scored_rows]
    if normalisation == "minmax":
        low, high = min(scores), max(scores)
        spread = high - low
        if spread <= 0:
            return {row: 1.0 for row, _score in scored_rows}
        return {row: (score - low) / spread for row, score in scored_rows}
    mean = sum(scores) / len(scores)
    deviation = math.sqrt(sum((score - mean) ** 2 for score in scores) / len(scores))
    if deviation <= 0:
        return {row: 0.0 for row, _score in scored_rows}
    return {row: (score - mean) / deviation for row, score in scored_rows}


def blend_scores(
    dense: Sequence[tuple[int, float]],
    lexical: Sequence[tuple[int, float]],
    *,
    alpha: float = 0.5,
    normalisation: str = "minmax",
) -> ScoredRows:
    """Fuse a dense and a lexical `(row, score)` list by a weighted sum of normalised scores.

    fused = alpha * dense_norm + (1 - alpha) * lexical_norm. A row absent from one list takes
    that list's lowest normalised score: it ranked below every candidate the list returned,
    so that is the most it can have scored there. Returns `(row, fused)` best first.
    """
    dense_norm = normalise_scores(dense, normalisation)
    lexical_norm = normalise_scores(lexical, normalisation)
    dense_floor = min(dense_norm.values(), default=0.0)
    lexical_floor = min(lexical_norm.values(), default=0.0)
    fused: dict[int, float] = {}
    for row in list(dense_norm) + [row for row in lexical_norm if row not in dense_norm]:
        fused[row] = alpha * dense_norm.get(row, dense_floor) + (1.0 - alpha) * lexical_norm.get(
            row, lexical_floor
        )
    return sorted(fused.items(), key=lambda item: -item[1])


def limit_per_document(hits: Sequence[Hit], per_document: int, k: int) -> list[Hit]:
    """The first `k` of `hits` (best first) with at most `per_document` from any document.

    A document's best passages are kept because `hits` arrive best first; the places its
    surplus passages would have taken go to the next hits in line. Ranks are renumbered 1..n.
    """
    kept: list[Hit] = []
    per_doc_count: dict[str, int] = {}
    for hit in hits:
        if len(kept) >= k:
            break
        if per_doc_count.get(hit.doc_id, 0) >= per_document:
            continue
        per_doc_count[hit.doc_id] = per_doc_count.get(hit.doc_id, 0) + 1
        kept.append(hit)
    return [replace(hit, rank=rank) for rank, hit in enumerate(kept, start=1)]


def check_mode(mode: str) -> str:
    """`mode` if it is a retrieval mode, else InputError listing the modes."""
    if mode not in MODES:
        raise InputError(f"retrieval mode '{mode}' is unknown; choose one of {', '.join(MODES)}")
    return mode


def candidate_rows(
    index: SearchableIndex,
    query: str,
    *,
    mode: str,
    candidates: int,
    rows: np.ndarray | None = None,
    fusion: Fusion = DEFAULT_FUSION,
    query_vector: np.ndarray | None = None,
) -> ScoredRows:
    """The ranked `(row, score)` candidates of one mode, before the per-document limit.

    Dense and lexical return their own top `candidates`; hybrid fuses the two top-`candidates`
    lists. `query_vector` skips embedding the query when the caller already has it.
    """
    check_mode(mode)
    dense: ScoredRows = []
    lexical: ScoredRows = []
    if mode in ("dense", "hybrid"):
        if query_vector is None:
            query_vector = index.embedder.embed_query(query)
        dense = index.search_dense(query_vector, candidates, rows)
    if mode in ("lexical", "hybrid"):
        lexical = index.search_lexical(query, candidates, rows)
    if mode == "dense":
        return list(dense)
    if mode == "lexical":
        return list(lexical)
    return fusion.fuse(dense, lexical)


# A name meaning more guidelines than this ("AHA") names none of them in particular.
NAMED_AT_MOST = 3
NAMED_DEPTH = 8  # passages searched for a named guideline's best one


def retrieve(
    index: SearchableIndex,
    query: str,
    *,
    mode: str = "hybrid",
    k: int = 8,
    per_document: int = 3,
    candidates: int = 50,
    sources: Sequence[str] = (),
    min_year: int | None = None,
    fusion: Fusion | None = None,
    prefer_newer: float = 0.0,
) -> list[Hit]:
    """Up to `k` passages for `query`, best first, ranks 1..n, at most `per_document` per document.

    mode: "dense" (embedding cosine), "lexical" (BM25) or "hybrid" (both, fused by `fusion`,
    default DEFAULT_FUSION). candidates: rows taken from each retriever; when the per-document
    limit leaves fewer than `k` hits the pool is doubled until `k` fit or the index runs out.
    sources / min_year restrict the search to documents from those sources (organisation or
    journal) and published that year or later; no matching document gives an empty list.
    prefer_newer: a passage from a newer document moves ahead of an older one whose score is
    within this fraction of its own (0, the default: scores alone decide).
    Raises InputError for an unknown mode, an empty query or a k/per_document/candidates below 1.
    """
    check_mode(mode)
    if not query or not query.strip():
        raise InputError("the query is empty; give a question or keywords to search for")
    for name, value in (("k", k), ("per_document", per_document), ("candidates", candidates)):
        if value < 1:
            raise InputError(f"{name} must be 1 or more, got {value}")
    fusion = fusion or DEFAULT_FUSION

    if isinstance(sources, str):  # one source given bare must not become its characters
        sources = (sources,)
    rows = index.allowed_rows(sources=tuple(sources), min_year=min_year)
    if rows is not None and len(rows) == 0:
        return []
    query_vector = index.embedder.embed_query(query) if mode != "lexical" else None

    pool = max(candidates, k)
    while True:
        scored = candidate_rows(
            index,
            query,
            mode=mode,
            candidates=pool,
            rows=rows,
            fusion=fusion,
            query_vector=query_vector,
        )
        hits = limit_per_document(index.hits(scored), per_document, k)
        # Fewer rows than asked (for hybrid: the union of both lists is smaller than one list's
        # quota, so neither filled it): the (filtered) index holds nothing more to find.
        exhausted = len(scored) < pool
        if len(hits) >= k or exhausted or pool >= _pool_ceiling(index, rows):
            return newer_first(hits, prefer_newer) if prefer_newer > 0 else hits
        pool *= 2


def newer_first(hits: Sequence[Hit], margin: float) -> list[Hit]:
    """`hits` with each passage moved ahead of older ones scoring within `margin` (a fraction
    of the higher score) of it; ranks renumbered. Close scores say the two passages fit the
    question about equally: the newer guidance then leads."""
    ordered = list(hits)
    for i in range(1, len(ordered)):
        j = i
        while j > 0:
            before, this = ordered[j - 1], ordered[j]
            close = abs(before.score - this.score) <= margin * max(abs(before.score), abs(this.score))
            if not (close and (this.year or 0) > (before.year or 0)):
                break
            ordered[j - 1], ordered[j] = this, before
            j -= 1
    return [replace(hit, rank=rank) for rank, hit in enumerate(ordered, start=1)]


def retrieve_documents(
    index: SearchableIndex,
    query: str,
    *,
    mode: str = "hybrid",
    k: int = 10,
    candidates: int = 50,
    sources: Sequence[str] = (),
    min_year: int | None = None,
    fusion: Fusion | None = None,
) -> list[Hit]:
    """Document-level ranking: up to `k` documents, one Hit each (its best passage), best first.

    A document's rank is the rank of its best passage in the passage ranking of `mode`,
    so this is `retrieve` with one passage per document. Used by the retrieval evaluation.
    """
    return retrieve(
        index,
        query,
        mode=mode,
        k=k,
        per_document=1,
        candidates=candidates,
        sources=sources,
        min_year=min_year,
        fusion=fusion,
    )


def _pool_ceiling(index: SearchableIndex, rows: np.ndarray | None) -> int:
    if rows is not None:
        return len(rows)
    chunk_count = getattr(index, "chunk_count", None)
    return int(chunk_count) if chunk_count is not None else 1 << 30


def expand_sections(
    hits: Sequence[Hit], chunks_of: Callable[[str], Sequence[Chunk]], *, top: int, per_hit: int
) -> list[Hit]:
    """`hits` with, after each of the first `top`, the other chunks of its section and of the
    sections under it (same document, reading order, at most `per_hit`), unless already there.

    Retrieval ranks chunks, but a clinician's answer is often the chunk beside the one that
    matched: the question names the score ("CURB-65 score of 2"), the section's opening chunk
    ranks first, and the row for score 2 sits in its "Risk Stratification" subsection. The
    added hits carry their document's citation fields and the score of the hit that brought
    them; ranks are renumbered 1..n."""
    if top <= 0 or per_hit <= 0:
        return list(hits)
    present = {hit.chunk_id for hit in hits}
    expanded: list[Hit] = []
    for position, hit in enumerate(hits):
        expanded.append(hit)
        if position >= top:
            # A table the chunker cut into parts is read whole: its other parts (the same
            # header) join a hit ranked just below the top ones holding one ("Severe" under
            # "DKA Severity Classification", fourth); lower, the parts of a table of another
            # guideline are noise (a burn dressing table beside a gout question).
            parts = _other_parts(hit, chunks_of(hit.doc_id), present) if position < 2 * top else []
            for chunk in parts:
                present.add(chunk.id)
                expanded.append(
                    replace(hit, chunk_id=chunk.id, text=chunk.text, section=chunk.section)
                )
            continue
        added = 0
        for chunk in chunks_of(hit.doc_id):
            if added == per_hit:
                break
            inside = chunk.section == hit.section or (
                hit.section and chunk.section.startswith(hit.section + " > ")
            )
            if not inside or chunk.id in present:
                continue
            present.add(chunk.id)
            added += 1
            expanded.append(
                replace(hit, chunk_id=chunk.id, text=chunk.text, section=chunk.section)
            )
    # (The document's chunks are read only for a passage that opens inside a table.)
    return [
        replace(
            hit,
            rank=rank,
            text=headed(hit.chunk_id, hit.text, chunks_of(hit.doc_id))
            if _opens_inside_table(hit.text)
            else hit.text,
        )
        for rank, hit in enumerate(expanded, start=1)
    ]


def with_closest_of_document(
    passages: Sequence[Hit],
    chunks_of: Callable[[str], Sequence[Chunk]],
    similarity: Callable[[Sequence[str]], Sequence[float]],
    *,
    at_most: int,
) -> list[Hit]:
    """`passages` with the `at_most` other chunks of the best passage's document that are
    closest to the question (`similarity`: their cosines with it), after them in reading
    order, carrying the best passage's citation fields and score.

    Retrieval finds the right document, but not always the chunk of it that answers: "T1D,
    DKA resolved yesterday, now eating on basal-bolus. What do I need before she goes home?"
    ranks the DKA document first by its resolution criteria, while its discharge criteria
    ("Stable subcutaneous insulin regimen for at least 12-24 hours") sit in a section no hit
    opened. On two studied answer sets (heldout26 and heldout25), 20 of 266 key facts were in
    the best document but in none of the passages; its two closest chunks, read beside them,
    brought 5 of them into the answers (evals/README.md, README session 35)."""
    if at_most <= 0 or not passages:
        return list(passages)
    best = passages[0]
    present = {passage.chunk_id for passage in passages}
    rest = [chunk for chunk in chunks_of(best.doc_id) if chunk.id not in present]
    if not rest:
        return list(passages)
    closeness = similarity(
        [passage_for_embedding(best.title, chunk.section, chunk.text) for chunk in rest]
    )
    closest = sorted(range(len(rest)), key=lambda n: -closeness[n])[:at_most]
    added = [
        replace(best, chunk_id=rest[n].id, text=rest[n].text, section=rest[n].section, beside=True)
        for n in sorted(closest)
    ]
    return [
        replace(passage, rank=rank) for rank, passage in enumerate([*passages, *added], start=1)
    ]


_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")


def _opens_inside_table(text: str) -> bool:
    """Whether `text` opens on table rows with no header row above them."""
    lines = text.split("\n", 2)
    return lines[0].lstrip().startswith("|") and not (
        len(lines) > 1 and _TABLE_RULE.match(lines[1])
    )


def headed(chunk_id: str, text: str, chunks: Sequence[Chunk]) -> str:
    """`text` (of chunk `chunk_id`, one of `chunks`, its document's) with the header of the
    table it opens inside put back: a chunk that opens on table rows without a header row
    continues a table the chunker cut after the header did not fit again ("| > 3 kg | > 38
    weeks | 3.5-4.0 mm | 9-10 cm |" is read, and shown, under "Weight | Gestational Age | ETT
    Internal Diameter | Insertion Depth (lip)"). The header is the one above the rows the
    chunks before it in the same section end with."""
    if not _opens_inside_table(text):
        return text
    position = next((n for n, chunk in enumerate(chunks) if chunk.id == chunk_id), None)
    if position is None:
        return text
    for previous in reversed(chunks[:position]):
        rows = previous.text.rstrip().split("\n")
        if previous.section != chunks[position].section or not rows[-1].lstrip().startswith("|"):
            return text  # the table does not continue from the chunk before
        for n in range(len(rows) - 1, 0, -1):
            if not rows[n].lstrip().startswith("|"):
                return text
            if _TABLE_RULE.match(rows[n]):
                return f"{rows[n - 1]}\n{rows[n]}\n{text}"
    return text


def _other_parts(hit: Hit, chunks: Sequence[Chunk], present: set[str]) -> list[Chunk]:
    """The chunks of `hit`'s section that open with the table header `hit` opens with (or
    continue its table without one, see `headed`), when the table was cut into a few parts
    (TABLE_PARTS at most): a long reference table cut into seven (IV agents for hypertensive
    emergency) would bury the answer."""
    header = headed(hit.chunk_id, hit.text, chunks).split("\n", 1)[0].strip()
    if not (header.startswith("|") and header.endswith("|")):
        return []
    parts = [
        chunk
        for chunk in chunks
        if chunk.section == hit.section
        and headed(chunk.id, chunk.text, chunks).split("\n", 1)[0].strip() == header
    ]
    if len(parts) > TABLE_PARTS:
        return []
    return [chunk for chunk in parts if chunk.id not in present and chunk.id != hit.chunk_id]


TABLE_PARTS = 3


# ---------------------------------------------------------------------------------------------
# Follow-ups: the ranking keeps the conversation's source.
#
# The condensed query carries the topic in words; the ranking can carry it too: a follow-up
# most often stays within the source the user is reading (the guideline the previous answer
# cited first) but moves between its sections ("Which drugs can be used to treat it?" after a
# question on fibrosis tests). So the documents that share that source's title get a small
# bonus on top of their position, scored as reciprocal rank fusion scores a list:
# 1/(rrf_k + rank). Measured on dev (evals/README.md): a bonus for the cited guideline helped
# slightly (0.938 -> 0.939) and scored the same from 0.002 to 0.02. A bonus for the cited
# documents themselves lost 0.015-0.16 MRR (it pins the previous section), so a source of one
# document (a title no other document has, as in a corpus of papers) gets no bonus. Only the
# first cited source is lifted: lifting every cited guideline of 2+ documents lost 0.012 (it
# lifted the runner-up guidelines over the one-document source cited first, the TIMI score).
CITED_SOURCE_BOOST = 0.002  # about 9 places near the top of the list, at rrf_k 60
CITED_SOURCE_DEPTH = 20  # passages re-ranked: a deeper pool than the k asked for


def cited_source_doc_ids(
    history: Sequence[Turn], siblings: Callable[[str], Sequence[str]]
) -> frozenset[str]:
    """The documents of the source the latest answer with citations cited first:
    `siblings(doc_id)` (every document with its title, itself included) when that is more than
    one document, else none. Empty without history or citations."""
    for turn in reversed(history):
        if turn.cited_doc_ids:
            same_source = frozenset(siblings(turn.cited_doc_ids[0]))
            return same_source if len(same_source) > 1 else frozenset()
    return frozenset()


def lift_cited_source(
    hits: Sequence[Hit],
    preferred_doc_ids: Collection[str],
    *,
    boost: float = CITED_SOURCE_BOOST,
    rrf_k: float = RRF_K,
) -> list[Hit]:
    """`hits` re-ranked so passages of `preferred_doc_ids` move up a few places: each hit scores
    1/(rrf_k + rank) plus `boost` when its document is preferred. Ranks are renumbered from 1;
    the retrieval scores are kept as they were (thresholds elsewhere compare them)."""
    if not preferred_doc_ids:
        return list(hits)
    order = sorted(
        range(len(hits)),
        key=lambda i: (
            1.0 / (rrf_k + i + 1) + (boost if hits[i].doc_id in preferred_doc_ids else 0.0)
        ),
        reverse=True,
    )
    return [replace(hits[i], rank=rank) for rank, i in enumerate(order, start=1)]


@dataclass
class Retriever:
    """Retrieval as the engine uses it: `index` searched as the `settings` say (mode, k,
    per-document limit, candidates, fusion). `siblings(doc_id)` names the documents sharing
    a document's title (the sections of one guideline), for keeping a follow-up in the
    guideline its conversation was reading."""

    index: SearchableIndex
    settings: RetrievalSettings
    siblings: Callable[[str], Sequence[str]] = field(default=lambda doc_id: (doc_id,))
    # Every guideline of the index as (title, source, year): what a question may name.
    guidelines: Callable[[], Collection[tuple[str, str, int | None]]] = field(default=lambda: ())

    def search(
        self,
        query: str,
        *,
        mode: str | None = None,
        k: int | None = None,
        sources: Sequence[str] = (),
        min_year: int | None = None,
        history: Sequence[Turn] = (),
        parts: Sequence[str] = (),
    ) -> list[Hit]:
        """Ranked passages for `query`, best first, ranks from 1. With `history`, passages of
        the source the previous answer cited move up a few places (`lift_cited_source`). A
        question whose story surrounds the sentence that asks gains that sentence's own best
        passage (`_with_asked_focus`); one asking two or three things (`parts`, the questions
        it asks) the best passage of each part. Either joins only from a guideline the hits
        already hold (`_with_best_of`)."""
        k = k or self.settings.k
        fusion = Fusion.from_settings(self.settings)
        preferred = cited_source_doc_ids(history, self.siblings)
        hits = retrieve(
            self.index,
            query,
            mode=mode or self.settings.mode,
            k=max(k, CITED_SOURCE_DEPTH) if preferred else k,
            per_document=self.settings.per_document,
            candidates=self.settings.candidates,
            fusion=fusion,
            sources=sources,
            min_year=min_year,
            prefer_newer=self.settings.prefer_newer,
        )
        if preferred:
            hits = lift_cited_source(hits, preferred, rrf_k=fusion.rrf_k)[:k]
        hits = self._with_asked_focus(
            query, hits, mode=mode or self.settings.mode, fusion=fusion, sources=sources,
            min_year=min_year
        )
        if hits and len(parts) > 1:
            # A question asking two or three things gains the best passage of each part: "Total
            # abx length, and does a 62yo smoker need a repeat CXR?" ranks the antibiotic
            # passages first, and the discharge section's "CXR at 6 weeks" only when its part
            # is searched alone.
            hits = self._with_best_of(
                parts, hits, mode=mode or self.settings.mode, fusion=fusion, sources=sources,
                min_year=min_year,
            )
        return self._with_named_guidelines(
            query, hits, mode=mode or self.settings.mode, fusion=fusion, min_year=min_year
        )

    def _with_named_guidelines(
        self, query: str, hits: list[Hit], *, mode: str, fusion: Fusion, min_year: int | None
    ) -> list[Hit]:
        """`hits` with the best passage of each guideline the question names, when it is not
        among them: "BTS wants temp under 37.5 but I think ATS/IDSA uses a different cut-off"
        is answered from both, though the BTS discharge criteria fill the ranking. A name that
        may mean more than NAMED_AT_MOST guidelines ("AHA") adds nothing; a name of several
        ("IDSA") adds the best passage of those it may mean. The passages follow the hits."""
        if not hits:
            return hits
        present = {hit.chunk_id for hit in hits}
        added: list[Hit] = []
        guidelines = self.guidelines()
        for titles in named_guidelines(asked_part(query), guidelines):
            if len(titles) > NAMED_AT_MOST:
                continue
            found = retrieve(
                self.index, query, mode=mode, k=NAMED_DEPTH, per_document=1,
                candidates=self.settings.candidates, fusion=fusion,
                sources=sorted({source for title, source, _ in guidelines if title in titles}),
                min_year=min_year,
            )
            best = next((hit for hit in found if hit.title in titles), None)
            if best is not None and best.chunk_id not in present:
                added.append(replace(best, rank=len(hits) + len(added) + 1, score=hits[-1].score))
                present.add(best.chunk_id)
        return [*hits, *added]

    def _with_asked_focus(
        self,
        query: str,
        hits: list[Hit],
        *,
        mode: str,
        fusion: Fusion,
        sources: Sequence[str],
        min_year: int | None,
    ) -> list[Hit]:
        """`hits` with the best passage for the sentence that asks, when a story surrounds it.

        "Gout, allopurinol intolerant, febuxostat out because of CVD, normal kidneys.
        Probenecid starting dose?": the story's words fill the ranking with the allopurinol and
        febuxostat passages, the per-document limit keeps three of the dosing section, and the
        probenecid row is not among them. Searched alone, "Probenecid starting dose?" finds it
        first. That passage is added after the hits (none of them is dropped: the answer may hold
        one passage more than `k`), only when it comes from a guideline the hits already hold: a short asking sentence ("Failing resus?") may
        find anything. On the studied sets this brought the probenecid table into that answer
        and changed no other answer's key facts; one heldout11 bottom line moved from the
        fondaparinux dose to what changes at PCI, which that question also asks."""
        asking = asking_sentences(query)
        # A follow-up's context is the conversation's topic, not a story: its own words alone
        # ("What compression ratio and oxygen?") lose the newborn they are about.
        if not hits or asking.strip() == query.strip() or CONTEXT_OPENER in query:
            return hits
        return self._with_best_of(
            [asking], hits, mode=mode, fusion=fusion, sources=sources, min_year=min_year
        )

    def _with_best_of(
        self,
        texts: Sequence[str],
        hits: list[Hit],
        *,
        mode: str,
        fusion: Fusion,
        sources: Sequence[str],
        min_year: int | None,
    ) -> list[Hit]:
        """`hits` with the best passage for each of `texts` searched alone, after them, when it
        is not among them and comes from a guideline they already hold."""
        present = {hit.chunk_id for hit in hits}
        guidelines = {doc for hit in hits for doc in self.siblings(hit.doc_id)}
        added: list[Hit] = []
        for text in texts:
            found = retrieve(
                self.index, text, mode=mode, k=1, per_document=1,
                candidates=self.settings.candidates, fusion=fusion, sources=sources,
                min_year=min_year,
            )
            if found and found[0].chunk_id not in present and found[0].doc_id in guidelines:
                rank = len(hits) + len(added) + 1
                added.append(replace(found[0], rank=rank, score=hits[-1].score))
                present.add(found[0].chunk_id)
        return [*hits, *added]
