"""Retrieval: fusion arithmetic, the per-document limit, mode checks and filters on a real index."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rag.errors import InputError
from rag.retrieve import (
    Fusion,
    blend_scores,
    limit_per_document,
    normalise_scores,
    reciprocal_rank_fusion,
    retrieve,
    retrieve_documents,
)
from rag.types import Hit

# ---- fusion on hand-made lists


def test_rrf_scores_are_the_hand_computed_sums():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    lexical = [(3, 10.0), (1, 8.0), (4, 5.0)]
    fused = reciprocal_rank_fusion([dense, lexical], rrf_k=60)
    assert [row for row, _ in fused] == [1, 3, 2, 4]
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert scores[4] == pytest.approx(1 / 63)


def test_rrf_weights_and_constant_change_the_order():
    dense = [(1, 0.9), (2, 0.8)]
    lexical = [(2, 5.0), (3, 4.0), (1, 1.0)]
    # With c=0 the top rank dominates: row 1 (ranks 1 and 3) beats row 2 (ranks 2 and 1)? No:
    # 1/1 + 1/3 = 1.333 vs 1/2 + 1/1 = 1.5, so row 2 wins.
    assert reciprocal_rank_fusion([dense, lexical], rrf_k=0)[0][0] == 2
    # Weighting dense four times over lexical puts row 1 first: 4/1 + 1/3 vs 4/2 + 1/1.
    weighted = reciprocal_rank_fusion([dense, lexical], rrf_k=0, weights=[4.0, 1.0])
    assert weighted[0] == (1, pytest.approx(4 + 1 / 3))


def test_blend_uses_min_max_scores_and_the_list_floor_for_missing_rows():
    dense = [(1, 0.9), (2, 0.8), (3, 0.5)]  # min-max: 1 -> 1.0, 2 -> 0.75, 3 -> 0.0
    lexical = [(3, 10.0), (4, 6.0), (1, 2.0)]  # min-max: 3 -> 1.0, 4 -> 0.5, 1 -> 0.0
    dense_heavy = dict(blend_scores(dense, lexical, alpha=0.7))
    assert dense_heavy == pytest.approx({1: 0.7, 2: 0.525, 3: 0.3, 4: 0.15})
    lexical_heavy = blend_scores(dense, lexical, alpha=0.3)
    assert [row for row, _ in lexical_heavy] == [3, 4, 1, 2]
    assert dict(lexical_heavy) == pytest.approx({3: 0.7, 4: 0.35, 1: 0.3, 2: 0.225})


def test_zscore_normalisation_centres_each_list():
    normalised = normalise_scores([(7, 3.0), (8, 1.0), (9, 2.0)], "zscore")
    assert normalised[9] == pytest.approx(0.0)
    assert normalised[7] == pytest.approx(-normalised[8])
    assert normalised[7] == pytest.approx(1 / np.sqrt(2 / 3))
    # A list of equal scores carries no preference rather than dividing by zero.
    assert normalise_scores([(1, 2.0), (2, 2.0)], "zscore") == {1: 0.0, 2: 0.0}
    assert normalise_scores([(1, 2.0), (2, 2.0)], "minmax") == {1: 1.0, 2: 1.0}


def test_fusion_rejects_unknown_settings_with_a_clear_message():
    with pytest.raises(InputError, match="fusion 'sum' is unknown; choose one of rrf, blend"):
        Fusion(method="sum")
    with pytest.raises(InputError, match="alpha must be between 0 and 1"):
        Fusion(method="blend", alpha=1.5)


# ---- per-document limit


def _hit(chunk: str, doc: str, score: float, rank: int = 0) -> Hit:
    return Hit(
        chunk_id=f"{doc}#{chunk}", doc_id=doc, text=f"text of {doc}#{chunk}", score=score, rank=rank
    )


def test_per_document_limit_keeps_the_best_passages_and_fills_k_from_other_documents():
    hits = [
        _hit("0", "a", 0.99),
        _hit("1", "a", 0.98),
        _hit("2", "a", 0.97),
        _hit("0", "b", 0.90),
        _hit("3", "a", 0.89),
        _hit("0", "c", 0.80),
        _hit("1", "b", 0.70),
    ]
    limited = limit_per_document(hits, per_document=2, k=4)
    assert [hit.chunk_id for hit in limited] == ["a#0", "a#1", "b#0", "c#0"]
    assert [hit.rank for hit in limited] == [1, 2, 3, 4]
    # One per document: document ranking by best passage.
    assert [hit.doc_id for hit in limit_per_document(hits, 1, 10)] == ["a", "b", "c"]


class FakeIndex:
    """An index whose searches return fixed lists; rows map to (doc id, chunk) pairs."""

    def __init__(self, rows: Sequence[tuple[str, str]], dense: list, lexical: list):
        self.rows = list(rows)
        self.dense = dense
        self.lexical = lexical
        self.chunk_count = len(rows)
        self.embedded: list[str] = []
        self.requested: list[tuple[str, int]] = []
        self.embedder = self

    def embed_query(self, text: str) -> np.ndarray:
        self.embedded.append(text)
        return np.zeros(4, dtype=np.float32)

    def _take(self, scored: list, k: int, rows) -> list:
        allowed = None if rows is None else {int(row) for row in rows}
        return [item for item in scored if allowed is None or item[0] in allowed][:k]

    def search_dense(self, query_vector, k, rows=None):
        self.requested.append(("dense", k))
        return self._take(self.dense, k, rows)

    def search_lexical(self, query, k, rows=None):
        self.requested.append(("lexical", k))
        return self._take(self.lexical, k, rows)

    def allowed_rows(self, sources=(), min_year=None):
        if not sources:
            return None
        return np.array(
            [i for i, (doc, _c) in enumerate(self.rows) if doc in sources], dtype=np.int64
        )

    def hits(self, scored_rows):
        return [
            _hit(self.rows[row][1], self.rows[row][0], score, rank)
            for rank, (row, score) in enumerate(scored_rows, start=1)
        ]


def _flooding_index() -> FakeIndex:
    # Document "a" owns the six best dense rows; "b" and "c" come after.
    rows = [("a", str(i)) for i in range(6)] + [("b", "0"), ("c", "0"), ("b", "1")]
    dense = [(i, 1.0 - i / 10) for i in range(9)]
    lexical = [(8, 9.0), (7, 8.0), (0, 7.0)]
    return FakeIndex(rows, dense, lexical)


def test_retrieve_grows_the_candidate_pool_until_k_hits_survive_the_limit():
    index = _flooding_index()
    hits = retrieve(index, "query", mode="dense", k=4, per_document=2, candidates=4)
    assert [hit.chunk_id for hit in hits] == ["a#0", "a#1", "b#0", "c#0"]
    assert [request for request in index.requested] == [("dense", 4), ("dense", 8)]


def test_hybrid_fuses_both_lists_and_documents_rank_by_their_best_passage():
    index = _flooding_index()
    documents = retrieve_documents(
        index, "query", mode="hybrid", k=3, candidates=9, fusion=Fusion("rrf", rrf_k=60)
    )
    # RRF: row 0 (a) dense 1 + lexical 3; row 8 (b) dense 9 + lexical 1; row 7 (c) 8 + 2.
    assert [hit.doc_id for hit in documents] == ["a", "b", "c"]
    assert [hit.rank for hit in documents] == [1, 2, 3]
    assert documents[1].score == pytest.approx(1 / 69 + 1 / 61)
    assert index.embedded == ["query"]
    # A dense-only blend ranks by the dense list alone: b's best row (6) comes before c's (7).
    dense_only = retrieve_documents(
        index, "query", mode="hybrid", k=3, candidates=9, fusion=Fusion("blend", alpha=1.0)
    )
    assert [hit.chunk_id for hit in dense_only] == ["a#0", "b#0", "c#0"]


def test_lexical_mode_never_embeds_the_query():
    index = _flooding_index()
    hits = retrieve(index, "query", mode="lexical", k=2)
    assert [hit.chunk_id for hit in hits] == ["b#1", "c#0"]
    assert index.embedded == []


def test_source_filter_reaches_the_index_and_an_empty_filter_gives_no_hits():
    index = _flooding_index()
    hits = retrieve(index, "query", mode="dense", k=5, sources=["b"])
    assert {hit.doc_id for hit in hits} == {"b"}
    assert retrieve(index, "query", mode="dense", sources=["nobody"]) == []
    assert {hit.doc_id for hit in retrieve(index, "query", mode="dense", sources="c")} == {"c"}


def test_invalid_mode_and_arguments_give_one_clear_line():
    index = _flooding_index()
    with pytest.raises(
        InputError, match="retrieval mode 'sparse' is unknown; choose one of dense, lexical, hybrid"
    ):
        retrieve(index, "query", mode="sparse")
    with pytest.raises(InputError, match="query is empty"):
        retrieve(index, "   ")
    with pytest.raises(InputError, match="per_document must be 1 or more, got 0"):
        retrieve(index, "query", per_document=0)


# ---- a real index (tests/data/docs, real embedder, built once per session in conftest.py)


@pytest.fixture(scope="module")
def real_index(small_index):
    from rag.config import Settings
    from rag.index.store import Index

    return Index.open(small_index, Settings().merged({"index": str(small_index)}))


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_finds_the_gout_guideline(real_index, mode):
    hits = retrieve(real_index, "first-line treatment of an acute gout flare", mode=mode, k=4)
    assert hits[0].title == "Management of Gout Flares"
    assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))


@pytest.mark.slow
def test_source_filter_on_a_real_index(real_index):
    hits = retrieve(
        real_index, "first-line treatment of an acute gout flare", sources=["Test Thoracic Society"]
    )
    assert hits, "the pneumonia guideline still has passages to return"
    assert {hit.source for hit in hits} == {"Test Thoracic Society"}


@pytest.mark.slow
def test_min_year_filter_on_a_real_index(real_index):
    hits = retrieve(real_index, "blood pressure diagnosis", mode="hybrid", k=8, min_year=2020)
    assert hits
    assert all(hit.year is not None and hit.year >= 2020 for hit in hits)
    assert "Hypertension in Adults" not in {hit.title for hit in hits}  # 2017
    # The boundary year is included: the gout guideline is from 2020.
    gout = retrieve(real_index, "colchicine for a gout flare", k=3, min_year=2020)
    assert gout[0].title == "Management of Gout Flares"
    assert retrieve(real_index, "gout", min_year=2999) == []


@pytest.mark.slow
def test_one_passage_per_document_on_a_real_index(real_index):
    documents = retrieve_documents(real_index, "score to assess risk", mode="hybrid", k=10)
    doc_ids = [hit.doc_id for hit in documents]
    assert len(doc_ids) == len(set(doc_ids))
    assert len(doc_ids) == 5  # every test document matches something; none is repeated


@pytest.mark.slow
def test_the_fusion_is_a_setting(small_index):
    from rag.answer import Engine
    from rag.config import Settings, SettingsError

    question = "first-line treatment of an acute gout flare"

    def top_hit(**retrieval):
        settings = Settings().merged({"index": str(small_index), "retrieval": retrieval})
        return Engine.load(settings).search(question, k=3)[0]

    blend, rrf = top_hit(fusion="blend"), top_hit(fusion="rrf")
    assert blend.title == rrf.title == "Management of Gout Flares"
    # The passage first in both the dense and the lexical list: RRF scores it 1/(c+1) twice,
    # with c the setting rrf_k; the blend scores it by normalised scores, not ranks.
    assert rrf.score == pytest.approx(2 / 61)
    assert top_hit(fusion="rrf", rrf_k=0).score == pytest.approx(2.0)
    assert blend.score != pytest.approx(rrf.score)
    assert top_hit(fusion="blend", fusion_alpha=1.0).score != pytest.approx(blend.score)
    # An unknown fusion is refused when the settings load, not at the first search.
    with pytest.raises(SettingsError, match="'retrieval.fusion' is 'average'; choose one of"):
        Settings().merged({"retrieval": {"fusion": "average"}})


GUIDELINES = [
    ("BTS Guidelines for the Management of Community Acquired Pneumonia in Adults", "BTS", 2009),
    ("Diagnosis and Treatment of Adults with Community-acquired Pneumonia", "ATS/IDSA", 2019),
    ("IDSA Clinical Practice Guideline for Complicated Urinary Tract Infections", "IDSA", 2022),
    ("Surviving Sepsis Campaign: International Guidelines for Sepsis", "SCCM/ESICM", 2021),
    ("2021 AHA/ACC Guideline for the Evaluation and Diagnosis of Chest Pain", "AHA/ACC", 2021),
    ("2013 ACCF/AHA Guideline for the Management of ST-Elevation Myocardial Infarction", "ACCF/AHA", 2013),
    ("2018 AHA/ACC Guideline on the Management of Blood Cholesterol", "ACC/AHA", 2018),
    ("2023 AHA/ASA Guidelines for Aneurysmal Subarachnoid Hemorrhage", "AHA/ASA", 2023),
    ("2021 American College of Rheumatology Guideline for Rheumatoid Arthritis", "ACR", 2021),
]


def test_a_question_names_guidelines_by_organisation_title_name_or_year_and_topic():
    """What a clinician calls a guideline: its organisation ("BTS", "ATS/IDSA"), the name its
    title opens with ("Surviving Sepsis"), the organisation with a year ("the 2018 ACC/AHA"
    guideline among several ACC/AHA ones), a year and what the title is about ("the 2013 STEMI
    guideline"), or what it is about alone ("the aSAH guideline")."""
    from rag.shorthand import named_guidelines

    def named(question: str) -> list[set[str]]:
        by_title = {title: source for title, source, _ in GUIDELINES}
        return [{by_title[title] for title in titles} for titles in named_guidelines(question, GUIDELINES)]

    assert named("BTS wants temp under 37.5 but I think ATS/IDSA uses a different cut-off?") == [
        {"BTS"}, {"ATS/IDSA"}, {"ATS/IDSA", "IDSA"}
    ]
    assert named("NICE says offer it to everyone, but Surviving Sepsis sounds pickier.") == [
        {"SCCM/ESICM"}
    ]
    assert named("ADA quotes an LDL goal and the 2018 ACC/AHA cholesterol guideline a threshold") == [
        {"ACC/AHA"}, {"ACC/AHA"}
    ]
    assert named("The 2021 chest pain guideline and the 2013 STEMI guideline differ.") == [
        {"AHA/ACC"}, {"ACCF/AHA"}
    ]
    assert named("Why does the aSAH guideline say to avoid phenytoin?") == [{"AHA/ASA"}]
    # A measurement is no organisation: the albumin-to-creatinine ratio, not the ACR.
    assert named("CKD with an ACR of 410 mg/g. Which target?") == []
    assert named("CKD with ACR 410 mg/g and eGFR 38. Which target?") == []
