"""The index folder: real MiniLM, real FAISS, real BM25, SQLite on disk."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.errors import IndexMismatchError, IndexMissingError, RagError
from rag.index.embedder import Embedder, load_embedder
from rag.index.passage import passage_for_embedding
from rag.index.store import Index
from rag.ingest.chunking import CHUNKER_VERSION, chunk_document
from rag.ingest.pipeline import ingest, ingest_vectors
from rag.types import Document

pytestmark = pytest.mark.slow

REPOSITORY = Path(__file__).resolve().parent.parent

DOCUMENTS = [
    Document(
        id="afib",
        title="Atrial fibrillation",
        source="NICE",
        year=2021,
        url="https://example.org/afib",
        origin="afib.md",
        text="## Stroke prevention\n\nOffer anticoagulation with a DOAC such as apixaban to "
        "people whose CHA2DS2-VASc score is 2 or more, weighing the risk of hemorrhage.",
    ),
    Document(
        id="asthma",
        title="Asthma",
        source="Global Initiative for Asthma",
        year=2019,
        text="## Controller therapy\n\nInhaled corticosteroids are the first-line controller "
        "for persistent asthma in adults. Paediatric doses are lower.",
    ),
    Document(
        id="gout",
        title="Gout",
        source="American College of Rheumatology",
        year=2020,
        doi="10.1000/gout",
        text="## Acute flares\n\nColchicine, NSAIDs or oral glucocorticoids treat an acute gout "
        "flare.\n\n## Urate lowering\n\nAllopurinol is the first-line urate-lowering drug.",
    ),
    Document(
        id="hypertension",
        title="Hypertension in adults",
        source="NICE",
        year=2019,
        text="## Step 1\n\nOffer an ACE inhibitor such as ramipril to adults under 55 with "
        "high blood pressure.",
    ),
    Document(
        id="uti",
        title="Urinary tract infection",
        source="IDSA",
        year=2011,
        text="## Cystitis\n\nNitrofurantoin for five days treats uncomplicated cystitis in women.",
    ),
]


class CountingEmbedder:
    """The real embedder, recording every passage it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self.id = inner.id
        self.dimension = inner.dimension
        self.max_tokens = inner.max_tokens
        self.passages: list[str] = []
        self.calls = 0

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        self.passages.extend(texts)
        return self._inner.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._inner.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)


@pytest.fixture(scope="session")
def minilm() -> Embedder:
    return load_embedder(Settings().embedder)


def open_counting(path: Path, settings: Settings | None = None, create: bool = True) -> Index:
    index = Index.open(path, settings or Settings(), create=create)
    index.embedder = CountingEmbedder(index.embedder)
    return index


def built(
    path: Path, documents: Sequence[Document] = DOCUMENTS, settings: Settings | None = None
) -> Index:
    index = Index.open(path, settings or Settings(), create=True)
    ingest(index, documents, progress=False)
    return index


def top_doc_dense(index: Index, question: str, rows: np.ndarray | None = None) -> str:
    scored = index.search_dense(index.embedder.embed_query(question), 3, rows)
    return index.hits(scored)[0].doc_id


def top_doc_lexical(index: Index, query: str, rows: np.ndarray | None = None) -> str:
    return index.hits(index.search_lexical(query, 3, rows))[0].doc_id


# ---- opening -----------------------------------------------------------------------------


def test_opening_a_missing_index_says_how_to_build_one(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    with pytest.raises(IndexMissingError) as raised:
        Index.open(missing, Settings())
    message = str(raised.value)
    assert str(missing) in message and "rag ingest" in message
    assert not missing.exists()  # opening for reading never creates anything


def test_an_index_built_with_another_embedder_is_refused(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    with sqlite3.connect(path / "chunks.sqlite") as connection:
        connection.execute("UPDATE meta SET value = 'acme/bio-embedder' WHERE key = 'embedder_id'")
    with pytest.raises(IndexMismatchError) as raised:
        Index.open(path, Settings())
    message = str(raised.value)
    assert "acme/bio-embedder" in message and minilm.id in message and "rebuild" in message


def test_settings_naming_another_embedder_are_refused_before_loading_it(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    built(path).close()
    other = Settings().merged({"embedder": {"model": "sentence-transformers/all-mpnet-base-v2"}})
    with pytest.raises(IndexMismatchError, match="all-mpnet-base-v2"):
        Index.open(path, other)


def test_a_damaged_database_gives_one_clear_error(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    path.mkdir()
    (path / "chunks.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RagError, match="damaged"):
        Index.open(path, Settings())


# ---- searching ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    """One index over DOCUMENTS for the read-only tests of this module."""
    opened = built(tmp_path_factory.mktemp("search") / "index")
    yield opened
    opened.close()


def test_dense_search_finds_the_document_that_answers(index: Index) -> None:
    assert (
        top_doc_dense(index, "which blood thinner prevents stroke in irregular heartbeat?")
        == "afib"
    )
    assert top_doc_dense(index, "first medicine for high blood pressure") == "hypertension"
    assert top_doc_dense(index, "antibiotic for a bladder infection") == "uti"


def test_lexical_search_matches_exact_terms_and_the_title(index: Index) -> None:
    assert top_doc_lexical(index, "apixaban") == "afib"
    assert top_doc_lexical(index, "NITROFURANTOIN") == "uti"
    # "allopurinol" is in the text of the second gout section; "Gout" only in the title.
    assert top_doc_lexical(index, "allopurinol") == "gout"
    assert {hit.doc_id for hit in index.hits(index.search_lexical("gout", 5))} == {"gout"}
    assert index.search_lexical("zebra xylophone", 5) == []
    # British and American spellings meet, whichever side uses which.
    assert top_doc_lexical(index, "haemorrhage") == "afib"
    assert top_doc_lexical(index, "pediatric") == "asthma"


def test_hits_carry_citation_fields_and_ranks_in_the_given_order(index: Index) -> None:
    scored = index.search_lexical("first-line", 5)
    hits = index.hits(scored)
    assert [hit.rank for hit in hits] == list(range(1, len(hits) + 1))
    assert [hit.score for hit in hits] == [score for _, score in scored]
    gout = next(hit for hit in index.hits(index.search_lexical("allopurinol", 1)))
    assert (gout.title, gout.source, gout.year, gout.doi) == (
        "Gout",
        "American College of Rheumatology",
        2020,
        "10.1000/gout",
    )
    assert gout.section == "Urate lowering" and gout.chunk_id.startswith("gout#")
    assert index.hits([(10**9, 1.0)]) == []  # a row that is not there is left out


def test_filters_by_source_and_year_restrict_both_searches(index: Index) -> None:
    assert index.allowed_rows() is None
    nice = index.allowed_rows(["nice"])
    assert {hit.doc_id for hit in index.hits([(row, 0.0) for row in nice])} == {
        "afib",
        "hypertension",
    }
    recent = index.allowed_rows(min_year=2020)
    assert {hit.doc_id for hit in index.hits([(row, 0.0) for row in recent])} == {"afib", "gout"}
    both = index.allowed_rows(["NICE", "rheumatology"], min_year=2020)
    assert {hit.doc_id for hit in index.hits([(row, 0.0) for row in both])} == {"afib", "gout"}

    # The answering document is filtered out: the search must return something else.
    question = "which blood thinner prevents stroke in irregular heartbeat?"
    asthma_or_idsa = index.allowed_rows(["asthma", "idsa"])
    dense = index.hits(index.search_dense(index.embedder.embed_query(question), 10, asthma_or_idsa))
    assert {hit.doc_id for hit in dense} == {"asthma", "uti"}
    assert top_doc_lexical(index, "first-line", index.allowed_rows(["asthma"])) == "asthma"

    nothing = index.allowed_rows(["no such organisation"])
    assert nothing is not None and len(nothing) == 0
    assert index.search_dense(index.embedder.embed_query(question), 5, nothing) == []
    assert index.search_lexical("apixaban", 5, nothing) == []


def test_documents_chunks_counts_and_manifest(index: Index) -> None:
    assert index.document_count == 5
    assert [document.id for document in index.documents()] == sorted(d.id for d in DOCUMENTS)
    gout_chunks = index.chunks_of("gout")
    assert [chunk.section for chunk in gout_chunks] == ["Acute flares", "Urate lowering"]
    assert [chunk.position for chunk in gout_chunks] == [0, 1]
    assert index.chunks_of("not-indexed") == []
    assert index.chunk_count == sum(len(index.chunks_of(d.id)) for d in DOCUMENTS)

    on_disk = json.loads((index.folder / "manifest.json").read_text())
    for manifest in (index.manifest, on_disk):
        assert manifest["embedder"] == {"id": index.embedder.id, "dimension": 384}
        assert manifest["chunking"] == {
            "max_tokens": 200, "overlap_sentences": 1, "chunker": CHUNKER_VERSION
        }  # fmt: skip
        assert manifest["faiss_kind"] == "flat" and "FlatIP" in manifest["faiss_index"]
        assert manifest["documents"] == 5 and manifest["chunks"] == index.chunk_count
        assert manifest["document_hashes"] == {d.id: d.content_hash() for d in DOCUMENTS}


def test_many_threads_can_search_one_index_at_once(index: Index) -> None:
    questions = ["apixaban", "asthma inhaler", "gout flare", "ramipril", "cystitis"] * 4
    expected = [index.hits(index.search_lexical(q, 3)) for q in questions]
    vectors = [index.embedder.embed_query(q) for q in questions]

    def both(position: int) -> tuple[list, list]:
        lexical = index.hits(index.search_lexical(questions[position], 3))
        dense = index.search_dense(vectors[position], 3, index.allowed_rows(min_year=2000))
        return lexical, dense

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(both, range(len(questions))))
    assert [lexical for lexical, _ in results] == expected
    assert all(len(dense) == 3 for _, dense in results)


# ---- incremental ingest ------------------------------------------------------------------


def test_reingesting_unchanged_documents_embeds_nothing(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    index = open_counting(path)
    report = ingest(index, DOCUMENTS, progress=False)
    assert (report.added, report.updated, report.unchanged, report.chunks_embedded) == (0, 0, 5, 0)
    assert index.embedder.passages == []


def test_a_changed_document_alone_is_reembedded(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    index = open_counting(path)
    changed = [
        replace(
            d,
            text="## Acute flares\n\nAnakinra treats an acute gout flare when colchicine "
            "cannot be used.",
        )
        if d.id == "gout"
        else d
        for d in DOCUMENTS
    ]
    report = ingest(index, changed, progress=False)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 4)
    assert report.chunks_embedded == len(index.embedder.passages) == 1
    assert "Anakinra" in index.embedder.passages[0]
    assert index.embedder.calls == 1  # one batch, not one model call per document
    assert top_doc_lexical(index, "anakinra") == "gout"
    assert index.search_lexical("allopurinol", 5) == []  # the old section is gone
    assert [chunk.section for chunk in index.chunks_of("gout")] == ["Acute flares"]
    assert index.chunk_count == len(index.manifest["document_hashes"]) == 5


def test_new_chunk_settings_rechunk_every_document(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    finer = Settings().merged({"chunking": {"max_tokens": 120}})
    report = ingest(open_counting(path, finer), DOCUMENTS, progress=False)
    assert report.updated == 5 and report.unchanged == 0


def test_prune_removes_documents_the_run_did_not_produce(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    index = open_counting(path)
    kept = [d for d in DOCUMENTS if d.id != "uti"]
    assert ingest(index, kept, progress=False).removed == 0  # no prune: nothing removed
    report = ingest(index, kept, progress=False, prune=True)
    assert (report.removed, report.unchanged, report.chunks_embedded) == (1, 4, 0)
    assert index.document_count == 4 and index.chunks_of("uti") == []
    assert index.search_lexical("nitrofurantoin", 5) == []
    question = index.embedder.embed_query("antibiotic for a bladder infection")
    assert "uti" not in {hit.doc_id for hit in index.hits(index.search_dense(question, 10))}
    reopened = Index.open(path, Settings())
    assert reopened.document_count == 4 and "uti" not in reopened.manifest["document_hashes"]


def test_documents_and_vectors_made_elsewhere_give_the_same_index(
    tmp_path: Path, minilm: Embedder
) -> None:
    """The one ingest pipeline: documents chunked and embedded here, or (as from Ray) chunks
    and vectors made elsewhere, leave the same index, and the same changes (an edit, a
    dropped document with --prune) update both alike."""
    settings = Settings()

    def made_elsewhere(documents: Sequence[Document]) -> Iterator[tuple]:
        for document in documents:
            chunks = chunk_document(document, settings.chunking, minilm.count_tokens)
            passages = [passage_for_embedding(document.title, c.section, c.text) for c in chunks]
            yield document, chunks, minilm.embed_passages(passages)

    here = built(tmp_path / "here")
    elsewhere = open_counting(tmp_path / "elsewhere")
    report = ingest_vectors(elsewhere, made_elsewhere(DOCUMENTS))
    assert (report.added, report.chunks_embedded) == (5, 6)
    assert elsewhere.embedder.passages == []  # the index embedded nothing itself

    def assert_same(one: Index, other: Index) -> None:
        assert one.documents() == other.documents()
        assert all(one.chunks_of(d.id) == other.chunks_of(d.id) for d in DOCUMENTS)
        for question in ("blood thinner for atrial fibrillation", "gout flare treatment"):
            query = minilm.embed_query(question)
            dense = [one.hits(one.search_dense(query, 4)), other.hits(other.search_dense(query, 4))]
            assert [h.chunk_id for h in dense[0]] == [h.chunk_id for h in dense[1]]
            assert [h.score for h in dense[0]] == pytest.approx(
                [h.score for h in dense[1]], abs=1e-4
            )
            assert one.search_lexical(question, 4) == other.search_lexical(question, 4)

    assert_same(here, elsewhere)
    afib = replace(DOCUMENTS[0], text=DOCUMENTS[0].text + " Review the dose yearly.")
    changed = [afib, *DOCUMENTS[1:4]]  # afib edited, uti dropped
    by_documents = ingest(here, changed, progress=False, prune=True)
    by_vectors = ingest_vectors(elsewhere, made_elsewhere(changed), prune=True)
    counts = [(r.added, r.updated, r.unchanged, r.removed) for r in (by_documents, by_vectors)]
    assert counts == [(0, 1, 3, 1)] * 2
    assert_same(here, elsewhere)
    assert elsewhere.document_count == 4 and elsewhere.verify() == []
    reopened = Index.open(tmp_path / "elsewhere", Settings())
    assert reopened.manifest["document_hashes"] == here.manifest["document_hashes"]


# ---- crash safety ------------------------------------------------------------------------


def test_a_failing_input_keeps_committed_documents_and_a_rerun_finishes(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    index = open_counting(path)
    index.passages_per_commit = 1

    def documents_then_failure() -> Iterator[Document]:
        yield from DOCUMENTS[:3]
        raise OSError("disk went away")

    with pytest.raises(OSError):
        ingest(index, documents_then_failure(), progress=False)
    # Still answers in this process, and from a fresh open.
    assert top_doc_lexical(index, "apixaban") == "afib"
    reopened = open_counting(path, create=False)
    assert reopened.document_count == 3
    assert top_doc_dense(reopened, "inhaler for asthma") == "asthma"
    report = ingest(reopened, DOCUMENTS, progress=False)
    assert (report.added, report.unchanged) == (2, 3)
    assert {p.split("\n")[0] for p in reopened.embedder.passages} == {
        "Hypertension in adults — Step 1",
        "Urinary tract infection — Cystitis",
    }
    assert top_doc_lexical(reopened, "nitrofurantoin") == "uti"


_KILLED_INGEST = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {repository!r})
    from rag.config import Settings
    from rag.index.store import Index
    from rag.ingest.pipeline import ingest
    from rag.types import Document
    import json

    documents = [Document(**fields) for fields in json.loads(sys.argv[2])]
    index = Index.open(sys.argv[1], Settings(), create=True)
    index.passages_per_commit = 1

    def documents_then_sudden_death():
        for position, document in enumerate(documents):
            if position == 2:  # the first two documents are committed by now
                os.kill(os.getpid(), signal.SIGKILL)
            yield document

    ingest(index, documents_then_sudden_death(), progress=False)
    """
)


def test_an_ingest_killed_mid_way_leaves_an_index_that_opens_and_a_rerun_completes(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    script = tmp_path / "ingest.py"
    script.write_text(_KILLED_INGEST.format(repository=str(REPOSITORY)))
    payload = json.dumps([vars(d) for d in DOCUMENTS])
    finished = subprocess.run(
        [sys.executable, str(script), str(path), payload],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == -signal.SIGKILL, finished.stderr
    assert not (path / "manifest.json").exists()  # it really died before finishing

    index = open_counting(path, create=False)
    assert index.document_count == 2
    assert top_doc_lexical(index, "apixaban") == "afib"
    assert top_doc_dense(index, "inhaler for asthma") == "asthma"
    report = ingest(index, DOCUMENTS, progress=False)
    assert (report.added, report.unchanged) == (3, 2)
    assert len(index.embedder.passages) == report.chunks_embedded == 4  # gout has two
    assert top_doc_dense(index, "antibiotic for a bladder infection") == "uti"


# ---- derived files -----------------------------------------------------------------------


def test_hnsw_takes_over_above_the_exact_search_limit(tmp_path: Path, minilm: Embedder) -> None:
    settings = Settings().merged({"retrieval": {"exact_search_limit": 2}})
    index = built(tmp_path / "index", settings=settings)
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["faiss_kind"] == "hnsw" and "HNSW" in manifest["faiss_index"]
    assert (
        top_doc_dense(index, "which blood thinner prevents stroke in irregular heartbeat?")
        == "afib"
    )
    recent = index.allowed_rows(min_year=2020)
    assert top_doc_dense(index, "first medicine for high blood pressure", recent) in {
        "afib",
        "gout",
    }
    reopened = Index.open(tmp_path / "index", settings)
    assert reopened.manifest["faiss_kind"] == "hnsw"
    assert top_doc_dense(reopened, "antibiotic for a bladder infection") == "uti"


def test_missing_derived_files_are_rebuilt_on_open(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    (path / "vectors.faiss").unlink()
    shutil.rmtree(path / "lexical")
    index = Index.open(path, Settings())
    assert top_doc_dense(index, "inhaler for asthma") == "asthma"
    assert top_doc_lexical(index, "ramipril") == "hypertension"
    assert (path / "vectors.faiss").is_file() and (path / "lexical").is_dir()


def test_stale_derived_files_are_brought_up_to_date_on_open(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    built(path, DOCUMENTS[:3]).close()
    saved = tmp_path / "saved"
    saved.mkdir()
    for name in ("vectors.faiss", "vectors.faiss.json"):
        shutil.copy(path / name, saved / name)
    shutil.copytree(path / "lexical", saved / "lexical")
    built(path, DOCUMENTS).close()
    # Put back the derived files of the three-document generation, as a crash between the
    # SQLite commit and the derived writes would leave them.
    for name in ("vectors.faiss", "vectors.faiss.json"):
        shutil.copy(saved / name, path / name)
    shutil.rmtree(path / "lexical")
    shutil.copytree(saved / "lexical", path / "lexical")

    index = Index.open(path, Settings())
    assert top_doc_dense(index, "antibiotic for a bladder infection") == "uti"
    assert top_doc_lexical(index, "ramipril") == "hypertension"
    generation = index.manifest["generation"]
    assert json.loads((path / "vectors.faiss.json").read_text())["generation"] == generation
    assert json.loads((path / "lexical" / "stamp.json").read_text())["generation"] == generation


def test_a_damaged_faiss_file_is_rebuilt(tmp_path: Path, minilm: Embedder) -> None:
    path = tmp_path / "index"
    built(path).close()
    (path / "vectors.faiss").write_bytes(b"garbage")
    index = Index.open(path, Settings())
    assert top_doc_dense(index, "inhaler for asthma") == "asthma"
    assert os.path.getsize(path / "vectors.faiss") > 1000


# ---- the index never lies ----------------------------------------------------------------


def test_random_bytes_in_the_faiss_file_fail_its_checksum_and_it_is_rebuilt(
    tmp_path: Path, minilm: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "index"
    built(path).close()
    with open(path / "vectors.faiss", "r+b") as handle:  # the file still loads in FAISS
        handle.seek(200)
        handle.write(random.Random(4).randbytes(4096))
    with caplog.at_level(logging.WARNING, logger="rag.index"):
        index = Index.open(path, Settings())
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "rag.index"]
    assert "vectors.faiss does not match the checksum" in warning and "rebuilt" in warning
    question = index.embedder.embed_query("What is the first-line drug for gout?")
    scored = index.search_dense(question, 5)
    assert index.hits(scored)[0].doc_id == "gout"
    assert all(-1.0001 <= score <= 1.0001 for _, score in scored)  # cosines, not 4e37
    # Rebuilt on disk too: the next open says nothing.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rag.index"):
        Index.open(path, Settings()).close()
    assert [record for record in caplog.records if record.name == "rag.index"] == []


def test_a_damaged_bm25_file_fails_its_checksum_and_is_rebuilt(
    tmp_path: Path, minilm: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "index"
    built(path).close()
    data = next((path / "lexical").glob("data.*"))
    data.write_bytes(data.read_bytes()[:-8] + bytes(8))  # the last scores zeroed
    with caplog.at_level(logging.WARNING, logger="rag.index"):
        index = Index.open(path, Settings())
    assert any("lexical does not match the checksum" in r.getMessage() for r in caplog.records)
    assert top_doc_lexical(index, "nitrofurantoin") == "uti"


def test_the_manifest_records_the_checksums_of_the_derived_files(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    built(path).close()
    manifest = json.loads((path / "manifest.json").read_text())
    recorded = manifest["checksums"]["vectors.faiss"]
    assert recorded == hashlib.sha256((path / "vectors.faiss").read_bytes()).hexdigest()
    assert len(manifest["checksums"]["lexical"]) == 64


def test_random_bytes_in_the_database_are_refused_on_open_ingest_and_check(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    built(path).close()
    with open(path / "chunks.sqlite", "r+b") as handle:  # page 8, which searches never read
        handle.seek(7 * 4096)
        handle.write(random.Random(15).randbytes(4096))
    with pytest.raises(IndexMismatchError, match="the index database is damaged"):
        Index.open(path, Settings())
    # An index too big for the check on open is still checked before an ingest writes to it.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("rag.index.store.QUICK_CHECK_ON_OPEN_BYTES", 0)
        index = Index.open(path, Settings())
        with pytest.raises(IndexMismatchError, match="damaged"):
            ingest(index, DOCUMENTS[:1], progress=False)
        assert top_doc_lexical(index, "ramipril") == "hypertension"  # it would answer, and lie
        problems = index.verify()
        assert problems[0].startswith(f"{path / 'chunks.sqlite'}: ")
        assert "malformed" in problems[0] and "rebuild" in problems[-1]


def test_a_full_check_finds_a_damaged_vector_that_quick_checks_miss(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    index = built(path)
    assert index.verify() == []
    index.close()
    with sqlite3.connect(path / "chunks.sqlite") as connection:
        connection.execute("UPDATE chunks SET vector = randomblob(1536) WHERE chunk_id = 'uti#0'")
    problems = Index.open(path, Settings()).verify()
    assert any("1 chunk vectors are not finite unit vectors" in p for p in problems), problems
    assert any("vectors.faiss: 1 vectors differ from the database" in p for p in problems)


def test_temporary_files_left_by_a_killed_process_are_removed_by_the_next_open(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    built(path).close()
    (path / "vectors.faiss.999999.tmp").write_bytes(b"half a FAISS file")
    (path / "manifest.json.999999.tmp").write_text("{")
    for folder in ("lexical.999999.tmp", "lexical.999999.old"):
        (path / folder).mkdir()
        (path / folder / "vocab.index.json").write_text("{}")
    Index.open(path, Settings()).close()
    assert sorted(entry.name for entry in path.iterdir()) == [
        "chunks.sqlite", "ingest.lock", "lexical", "manifest.json", "vectors.faiss",
        "vectors.faiss.json",
    ]  # fmt: skip


# ---- large documents ---------------------------------------------------------------------

BIG = Document(
    id="big",
    title="Antibiotic handbook",
    source="Formulary",
    text="\n\n".join(
        f"## Drug {number}\n\nDrug {number} is given at {number * 10} mg twice daily for "
        f"infections of kind {number}."
        for number in range(40)
    ),
)

_KILLED_LARGE_INGEST = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {repository!r})
    from rag.config import Settings
    from rag.index.store import Index
    from rag.ingest.pipeline import ingest
    from tests.test_index import BIG

    index = Index.open(sys.argv[1], Settings(), create=True)
    index.passages_per_commit = 8
    embed = index.embedder.embed_passages
    calls = []

    def embed_then_sudden_death(passages):
        calls.append(len(passages))
        if len(calls) == 3:  # two batches of eight are committed by now
            os.kill(os.getpid(), signal.SIGKILL)
        return embed(passages)

    index.embedder.embed_passages = embed_then_sudden_death
    ingest(index, [BIG], progress=False)
    """
)


def test_a_large_document_is_committed_in_batches_and_a_rerun_resumes_inside_it(
    tmp_path: Path, minilm: Embedder
) -> None:
    path = tmp_path / "index"
    script = tmp_path / "ingest.py"
    script.write_text(_KILLED_LARGE_INGEST.format(repository=str(REPOSITORY)))
    finished = subprocess.run(
        [sys.executable, str(script), str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPOSITORY,
    )
    assert finished.returncode == -signal.SIGKILL, finished.stderr

    index = open_counting(path, create=False)
    index.passages_per_commit = 8
    assert index.chunk_count == 16  # what was committed before the kill is kept, and found
    assert top_doc_lexical(index, "drug 3") == "big"
    assert index.verify() == ["big: only partly ingested; re-run `rag ingest` to finish it"]
    report = ingest(index, [BIG], progress=False)
    assert (report.added, report.chunks_embedded) == (1, 24)
    assert len(index.embedder.passages) == 24 and index.embedder.calls == 3
    assert index.chunk_count == 40 and index.verify() == []
    assert index.manifest["document_hashes"]["big"] == BIG.content_hash()
    assert ingest(index, [BIG], progress=False).unchanged == 1


def test_an_ingest_without_a_terminal_prints_progress_lines(
    tmp_path: Path, minilm: Embedder, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr("rag.ingest.progress.IngestProgress.line_interval_s", 0.0)
    try:
        index = Index.open(tmp_path / "index", Settings(), create=True)
        index.passages_per_commit = 16
        ingest(index, [*DOCUMENTS, BIG], progress=True)
    finally:
        monkeypatch.undo()
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("ingest: 5/6 documents, 6 passages embedded, 0m")
    assert lines[-1].startswith("ingest: 6/6 documents, 46 passages embedded")
    assert lines[-1].endswith("; big: 40/40 passages")
    assert any(line.endswith("; big: 16/40 passages") for line in lines)
