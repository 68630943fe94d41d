"""The scale path: `rag ingest --engine ray` on a real local Ray and `index.backend = milvus` on
real Milvus Lite (a file, and its gRPC server on 127.0.0.1), with the real embedding model.

Ray runs with 2 CPUs, started once for this module; corpora are a handful of documents. The
extra `rag[scale]` is installed by `make test`; without it these tests skip, except in CI.
"""

from __future__ import annotations

import gzip
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import chdir
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.config import Settings
from rag.errors import RagError
from rag.ingest.pipeline import ingest as ingest_documents
from tests.conftest import TEST_DOCS

if not os.environ.get("CI"):
    pytest.importorskip("ray", reason="the rag[scale] extra is not installed")
    pytest.importorskip("pymilvus", reason="the rag[scale] extra is not installed")
    pytest.importorskip("milvus_lite", reason="the rag[scale] extra is not installed")

pytestmark = pytest.mark.slow

QUERIES = (
    "first-line treatment of a gout flare",
    "when to admit a patient with pneumonia",
    "anticoagulation in atrial fibrillation CHA2DS2-VASc",
    "febuxostat cardiovascular safety",
)
REPO = Path(__file__).resolve().parent.parent

BASELINE_XML = """<?xml version="1.0"?>
<PubmedArticleSet>
 <PubmedArticle>
  <MedlineCitation><PMID Version="1">31234567</PMID>
   <Article>
    <Journal><JournalIssue><PubDate><Year>2019</Year></PubDate></JournalIssue>
     <Title>The Lancet</Title></Journal>
    <ArticleTitle>Febuxostat versus allopurinol in gout.</ArticleTitle>
    <ELocationID EIdType="doi">10.1016/S0140-6736(19)31234-5</ELocationID>
    <Abstract>
     <AbstractText Label="BACKGROUND">Cardiovascular safety of febuxostat is debated.</AbstractText>
     <AbstractText Label="FINDINGS">No excess cardiovascular deaths were seen.</AbstractText>
    </Abstract>
   </Article>
  </MedlineCitation>
 </PubmedArticle>
 <PubmedArticle>
  <MedlineCitation><PMID>30000001</PMID>
   <Article>
    <Journal><JournalIssue><PubDate><Year>2020</Year></PubDate></JournalIssue>
     <Title>Chest</Title></Journal>
    <ArticleTitle>A letter without an abstract.</ArticleTitle>
   </Article>
  </MedlineCitation>
 </PubmedArticle>
 <PubmedArticle>
  <MedlineCitation><PMID>29999999</PMID>
   <Article>
    <Journal><JournalIssue><PubDate><MedlineDate>2018 Nov-Dec</MedlineDate></PubDate>
     </JournalIssue><Title>Chest</Title></Journal>
    <ArticleTitle>Asthma outcomes.</ArticleTitle>
    <Abstract><AbstractText>Inhaled steroids reduce asthma exacerbations.</AbstractText></Abstract>
   </Article>
  </MedlineCitation>
  <PubmedData><ArticleIdList><ArticleId IdType="doi">10.1016/j.chest.2018.01.001</ArticleId>
  </ArticleIdList></PubmedData>
 </PubmedArticle>
</PubmedArticleSet>
"""

runner = CliRunner()


def run(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def ingest(corpus: Path, *args: str, env: dict[str, str] | None = None):
    """`rag ingest corpus ARGS` run beside the corpus folder, so document ids are
    `corpus/<file>` wherever the folder is (ids are paths relative to the working directory)."""
    with chdir(corpus.parent):
        return run("ingest", corpus.name, "--no-progress", *args, env=env)


def milvus_env(uri: Path | str) -> dict[str, str]:
    return {"RAG_INDEX_BACKEND": "milvus", "RAG_INDEX_URI": str(uri)}


# ---- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scale_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test guidelines plus a PubMed baseline file (three articles, one without abstract)."""
    folder = tmp_path_factory.mktemp("scale") / "corpus"
    shutil.copytree(TEST_DOCS, folder)
    (folder / "pubmed").mkdir()
    with gzip.open(folder / "pubmed" / "pubmed26n0001.xml.gz", "wt", encoding="utf-8") as out:
        out.write(BASELINE_XML)
    return folder


@pytest.fixture(scope="module")
def ray_running():
    """One local Ray for these tests (2 CPUs), stopped after them; `rag ingest --engine ray`
    uses it."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_engine_index(scale_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("local-engine") / "index"
    result = ingest(scale_corpus, "--index", str(path))
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def ray_engine_index(
    scale_corpus: Path, ray_running, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("ray-engine") / "index"
    result = ingest(scale_corpus, "--index", str(path), "--engine", "ray")
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def milvus_lite_index(scale_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus in a Milvus Lite file, ingested by the local engine through the CLI."""
    uri = tmp_path_factory.mktemp("milvus") / "rag.db"
    result = ingest(scale_corpus, env=milvus_env(uri))
    assert result.exit_code == 0, result.output
    return uri


def open_settings(index: Path, **store: str) -> Settings:
    overrides: dict = {"index": str(index)}
    if store:
        overrides["index_store"] = store
    return Settings().merged(overrides)


def stored_chunks(index: Path) -> dict[str, tuple[str, str, np.ndarray]]:
    """chunk id -> (section, text, vector) as the local backend's database holds them."""
    with sqlite3.connect(index / "chunks.sqlite") as connection:
        return {
            chunk_id: (section, text, np.frombuffer(vector, dtype=np.float32))
            for chunk_id, section, text, vector in connection.execute(
                "SELECT chunk_id, section, text, vector FROM chunks"
            )
        }


def rankings(index, queries=QUERIES, **filters) -> list[list[tuple[str, float]]]:
    from rag.retrieve import retrieve

    return [
        [(hit.chunk_id, round(hit.score, 4)) for hit in retrieve(index, query, mode=mode, k=6, **filters)]
        for query in queries
        for mode in ("dense", "lexical", "hybrid")
    ]


def same_hits(first: list[dict], second: list[dict]) -> bool:
    """Equal hit lists, scores to 1e-4."""
    return len(first) == len(second) and all(
        {**a, "score": round(a["score"], 4)} == {**b, "score": round(b["score"], 4)}
        for a, b in zip(first, second)
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- PubMed baseline files -----------------------------------------------------------------


def test_baseline_files_stream_the_same_documents_as_the_xml_loader(tmp_path: Path):
    from rag.ingest.baseline import read_baseline
    from rag.ingest.loaders import load_file

    (tmp_path / "set.xml").write_text(BASELINE_XML, encoding="utf-8")
    with gzip.open(tmp_path / "set.xml.gz", "wt", encoding="utf-8") as out:
        out.write(BASELINE_XML)
    from_xml = list(load_file(tmp_path / "set.xml"))
    streamed = list(read_baseline(tmp_path / "set.xml.gz"))
    # The loader of one XML file reports the article without an abstract; a baseline skips it.
    assert [str(item) for item in from_xml if not hasattr(item, "id")] == [
        f"{from_xml[0].origin}: PubmedArticle 2 (PMID 30000001) has no abstract text; skipped"
    ]
    documents = [item for item in from_xml if hasattr(item, "id")]
    assert [item.id for item in streamed] == ["pmid:31234567", "pmid:29999999"]
    for loaded, read in zip(documents, streamed, strict=True):
        assert (read.title, read.text, read.source, read.year, read.doi, read.url) == (
            loaded.title, loaded.text, loaded.source, loaded.year, loaded.doi, loaded.url,
        )


def test_a_truncated_baseline_file_keeps_the_articles_before_the_damage(tmp_path: Path):
    from rag.ingest.baseline import read_baseline

    article = BASELINE_XML.split("<PubmedArticle>")[3].split("</PubmedArticle>")[0]
    articles = "".join(
        f"<PubmedArticle>{article.replace('29999999', str(40_000_000 + n))}</PubmedArticle>"
        for n in range(2_000)
    )
    whole = gzip.compress(f"<PubmedArticleSet>{articles}</PubmedArticleSet>".encode())
    (tmp_path / "cut.xml.gz").write_bytes(whole[: len(whole) // 2])
    items = list(read_baseline(tmp_path / "cut.xml.gz"))
    documents = [item for item in items if hasattr(item, "id")]
    assert 100 < len(documents) < 2_000
    assert [document.id for document in documents] == [
        f"pmid:{40_000_000 + n}" for n in range(len(documents))
    ]
    (problem,) = [item for item in items if not hasattr(item, "id")]
    assert str(problem).startswith(f"{documents[0].origin}: cannot read the gzip file after ")


# ---- Ray: the same index as the local engine ------------------------------------------------


def test_ray_engine_gives_the_local_engines_chunks_vectors_and_search_results(
    local_engine_index: Path, ray_engine_index: Path
):
    from rag.index.store import Index

    local, distributed = stored_chunks(local_engine_index), stored_chunks(ray_engine_index)
    assert "pmid:31234567#0" in local and not any(key.startswith("pmid:30000001") for key in local)
    assert sorted(local) == sorted(distributed)
    for chunk_id, (section, text, vector) in local.items():
        assert distributed[chunk_id][:2] == (section, text)
        np.testing.assert_allclose(distributed[chunk_id][2], vector, atol=1e-5)
    with (
        Index.open(local_engine_index, open_settings(local_engine_index)) as first,
        Index.open(ray_engine_index, open_settings(ray_engine_index)) as second,
    ):
        assert first.documents() == second.documents()
        assert rankings(first) == rankings(second)


def test_ray_reingest_sends_out_only_new_and_changed_documents_and_prunes(
    scale_corpus: Path, ray_engine_index: Path, ray_running, tmp_path: Path
):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    shutil.copytree(scale_corpus, corpus)
    shutil.copytree(ray_engine_index, index)
    again = ingest(corpus, "--index", str(index), "--engine", "ray")
    assert again.exit_code == 0, again.output
    assert "0 added, 0 updated, 7 unchanged, 0 removed; 0 chunks embedded" in again.output

    gout = corpus / "gout.md"
    gout.write_text(gout.read_text() + "\n\nAllopurinol is started after the flare settles.\n")
    (corpus / "pneumonia.md").unlink()
    changed = ingest(corpus, "--index", str(index), "--engine", "ray", "--prune")
    assert changed.exit_code == 0, changed.output
    assert "0 added, 1 updated, 5 unchanged, 1 removed" in changed.output
    hits = json.loads(run("search", "allopurinol after the flare", "--index", str(index), "--json").output)
    assert hits[0]["doc_id"].endswith("gout.md")
    assert "Allopurinol is started after the flare settles." in hits[0]["text"]
    admitted = json.loads(run("search", "admit pneumonia", "--index", str(index), "--json").output)
    assert not any(hit["doc_id"].endswith("pneumonia.md") for hit in admitted)


def test_an_unreachable_ray_address_is_one_line_and_leaves_the_index(
    ray_engine_index: Path, scale_corpus: Path, tmp_path: Path
):
    index = tmp_path / "index"
    shutil.copytree(ray_engine_index, index)
    address = f"127.0.0.1:{free_port()}"
    completed = subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest", str(TEST_DOCS), "--index", str(index),
         "--engine", "ray", "--no-progress"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
        env={**os.environ, "RAY_ADDRESS": address, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stderr.strip().splitlines() == [
        (
            f"error: RAY_ADDRESS {address}: no Ray cluster answers at {address} (Connection "
            "refused); start one (`ray start --head`) or unset RAY_ADDRESS to run on a local Ray"
        )
    ]
    assert "Traceback" not in completed.stdout + completed.stderr
    assert stored_chunks(index).keys() == stored_chunks(ray_engine_index).keys()


def _embedding_actors() -> dict[int, str]:
    """pid -> process title of each process of this test's Ray running the actor that holds
    the model (descendants of this process only: another Ray on the machine is left alone).
    Ray titles a worker `ray::<actor class>` while idle and `ray::<actor class>.<method>` while
    it runs a call: `.submit` is a block of passages being embedded."""
    parents, titles = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            titles[int(entry.name)] = title

    def mine(pid: int) -> bool:
        while pid > 1:
            pid = parents.get(pid, 0)
            if pid == os.getpid():
                return True
        return False

    return {
        pid: title
        for pid, title in titles.items()
        if title.startswith("ray::") and "PassageEmbedder" in title and mine(pid)
    }


def test_a_local_ray_that_times_out_starting_is_started_once_more(monkeypatch: pytest.MonkeyPatch):
    """Ray waits a fixed 30 s for a local raylet to register; a busy machine can miss that
    once. The job starts Ray again instead of failing; a cluster address is never retried."""
    import ray

    from rag.ingest.ray_engine import _ray_session

    calls: list[str] = []

    def init(address: str, **_: object) -> None:
        calls.append(address)
        if len(calls) == 1:
            raise RuntimeError("The current node timed out during startup.")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # another test's Ray may run
    with _ray_session(Settings()) as (_, where):
        assert where == "a local Ray"
    assert calls == ["local", "local"]
    calls.clear()
    cluster = Settings().merged({"ingest": {"ray_address": "auto"}})
    with pytest.raises(RagError, match="timed out"), _ray_session(cluster):
        pass
    assert calls == ["auto"]


def test_a_killed_embedding_worker_is_replaced_and_the_job_still_completes(
    ray_running, tmp_path: Path
):
    """SIGKILL the actor running the model while it embeds: Ray starts a new actor, runs the
    lost call again, and the index ends up exactly as the local engine builds it."""
    from rag.index.backend import open_index
    from rag.ingest.demo import load_demo_corpus
    from rag.ingest.loaders import load_paths
    from rag.ingest.ray_engine import ingest_on_ray

    records = [
        {"id": d.id, "title": d.title, "text": d.text, "source": d.source, "year": d.year,
         "url": d.url, "doi": d.doi}
        for d in load_demo_corpus()[:12]
    ]  # fmt: skip
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(record) + "\n" for record in records))
    settings = open_settings(tmp_path / "ray").merged({"ingest": {"batch_size": 16}})
    index = open_index(settings, create=True)
    outcome: dict = {}

    def ingest() -> None:
        try:
            outcome["report"] = ingest_on_ray(index, settings, [corpus], progress=False)
        except BaseException as error:  # noqa: BLE001 - shown by the assertion below
            outcome["error"] = error

    job = threading.Thread(target=ingest)
    job.start()
    # The 12 documents' chunks reach the actor as one block, embedded by one `.submit` call
    # (16 passages at a time) whose results come back when it ends: a kill during that call
    # loses all of its work, and the job cannot have ended before it.
    killed: dict[int, str] = {}
    deadline = time.monotonic() + 600  # a guard against a hung job, not a measurement
    while not killed and job.is_alive() and time.monotonic() < deadline:
        running = _embedding_actors().items()
        killed = {pid: title for pid, title in running if title.endswith(".submit")}
        time.sleep(0.05)
    assert killed, f"no embedding call was seen running ({outcome})"
    committed = index.chunk_count
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    job.join(timeout=900)
    assert "error" not in outcome, outcome.get("error")
    report = outcome["report"]

    local = open_index(open_settings(tmp_path / "local"), create=True)
    documents = [item for item in load_paths([corpus]) if hasattr(item, "id")]
    expected = ingest_documents(local, documents, progress=False)
    assert committed < expected.chunks_embedded  # the kill landed before the job's end
    assert (report.added, report.chunks_embedded) == (12, expected.chunks_embedded)
    ray_chunks, local_chunks = stored_chunks(tmp_path / "ray"), stored_chunks(tmp_path / "local")
    assert sorted(ray_chunks) == sorted(local_chunks)
    for chunk_id, (_, _, vector) in local_chunks.items():
        np.testing.assert_allclose(ray_chunks[chunk_id][2], vector, atol=1e-5)


# ---- Milvus: the same answers as the local backend ------------------------------------------


def test_milvus_backend_ranks_filters_and_reads_like_the_local_backend(
    local_engine_index: Path, milvus_lite_index: Path
):
    from rag.index.backend import open_index

    local = open_index(open_settings(local_engine_index))
    milvus = open_index(open_settings(local_engine_index, backend="milvus", uri=str(milvus_lite_index)))
    try:
        assert rankings(milvus) == rankings(local)
        for filters in ({"sources": ["lancet"]}, {"min_year": 2021}, {"sources": ["test", "chest"], "min_year": 2019}):
            assert rankings(milvus, **filters) == rankings(local, **filters), filters
        assert rankings(milvus, sources=["no such journal"]) == [[]] * 12
        assert milvus.documents() == local.documents()
        for document in local.documents():
            assert milvus.chunks_of(document.id) == local.chunks_of(document.id)
        assert milvus.manifest["document_hashes"] == local.manifest["document_hashes"]
        assert (milvus.chunk_count, milvus.document_count) == (local.chunk_count, local.document_count)
    finally:
        milvus.close()
        local.close()


def test_every_command_runs_on_milvus_with_the_same_json(
    local_engine_index: Path, milvus_lite_index: Path, tmp_path: Path
):
    env = milvus_env(milvus_lite_index)
    question = "What is the first-line treatment for a gout flare?"
    on_milvus = run("search", question, "--json", "--index", str(local_engine_index), env=env)
    on_local = run("search", question, "--json", "--index", str(local_engine_index))
    assert on_milvus.exit_code == 0, on_milvus.output
    assert same_hits(json.loads(on_milvus.output), json.loads(on_local.output))

    answered = run("ask", question, "--json", env=env)
    assert answered.exit_code == 0, answered.output
    answer = json.loads(answered.output)
    expected = json.loads(run("ask", question, "--json", "--index", str(local_engine_index)).output)
    assert answer["citations"] and not answer["abstained"]
    for field in ("answer", "bottom_line", "citations", "related_questions"):
        assert answer[field] == expected[field], field

    gold = tmp_path / "gold.jsonl"
    gold.write_text(
        json.dumps({"id": "q1", "question": question, "relevant_doc_ids": [answer["citations"][0]["doc_id"]]}) + "\n"
    )
    evaluated = run("eval", str(gold), "--json", env=env)
    assert evaluated.exit_code == 0, evaluated.output
    summaries = json.loads(evaluated.output)["retrieval"]["summaries"]
    assert [summary["mode"] for summary in summaries] == ["dense", "lexical", "hybrid"]
    assert all(summary["recall@10"] == 1.0 for summary in summaries)

    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": question}) + "\n")
    batch = run("batch", str(questions), "-o", str(tmp_path / "answers.jsonl"), "--no-progress", env=env)
    assert batch.exit_code == 0, batch.output
    (line,) = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert json.loads(line)["citations"]


def test_milvus_ingest_is_incremental_and_prunes(
    scale_corpus: Path, milvus_lite_index: Path, tmp_path: Path
):
    corpus, uri = tmp_path / "corpus", tmp_path / "copy.db"
    shutil.copytree(scale_corpus, corpus)
    shutil.copytree(milvus_lite_index, uri)
    env = milvus_env(uri)
    again = ingest(corpus, env=env)
    assert "0 added, 0 updated, 7 unchanged, 0 removed; 0 chunks embedded" in again.output
    (corpus / "hypertension.md").unlink()
    gout = corpus / "gout.md"
    gout.write_text(gout.read_text() + "\n\nAllopurinol is started after the flare settles.\n")
    changed = ingest(corpus, "--prune", env=env)
    assert changed.exit_code == 0, changed.output
    assert "0 added, 1 updated, 5 unchanged, 1 removed" in changed.output
    assert "6 documents" in changed.output
    # Dense: Milvus Lite keeps BM25 statistics per segment, and the changed document now sits
    # in a segment of its own (a Milvus server keeps them per collection).
    hits = json.loads(
        run("search", "allopurinol after the flare", "--json", "--mode", "dense", env=env).output
    )
    assert "Allopurinol is started after the flare settles." in hits[0]["text"]
    assert not any(hit["doc_id"] == "corpus/hypertension.md" for hit in hits)


def test_a_milvus_ingest_stopped_between_its_writes_leaves_a_consistent_index(
    scale_corpus: Path, milvus_lite_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Stopped after a changed document's new chunks are in but before its row names them: the
    half-written version is never shown, and the re-run completes it."""
    from rag.index.backend import open_index
    from rag.index.milvus import MilvusIndex
    from rag.ingest.loaders import load_paths

    uri = tmp_path / "copy.db"
    shutil.copytree(milvus_lite_index, uri)
    settings = open_settings(tmp_path, backend="milvus", uri=str(uri))
    with chdir(scale_corpus.parent):
        documents = [item for item in load_paths([Path("corpus")]) if hasattr(item, "id")]
    changed = [
        document if not document.id.endswith("gout.md")
        else type(document)(**{**document.__dict__, "text": document.text + "\n\nFebuxostat is second line."})
        for document in documents
    ]  # fmt: skip

    class Stop(Exception):
        pass

    def stop_before_document_rows(self, collection, rows, **kwargs):
        raise Stop

    index = open_index(settings)
    with monkeypatch.context() as patch:
        patch.setattr(type(index._client), "upsert", stop_before_document_rows)
        with pytest.raises(Stop):
            ingest_documents(index, changed, progress=False)
    index.close()

    reopened = open_index(settings)
    gout_id = next(document.id for document in documents if document.id.endswith("gout.md"))
    assert reopened.chunks_of(gout_id) == []  # old chunks deleted, new ones not yet named
    for ranking in rankings(reopened, queries=["febuxostat second line gout"]):
        assert all(not chunk_id.startswith(gout_id) for chunk_id, _ in ranking)
    report = ingest_documents(reopened, changed, progress=False)
    assert (report.updated, report.unchanged) == (1, 4)  # the .md files; load_paths reads no .xml.gz
    assert any("Febuxostat is second line." in chunk.text for chunk in reopened.chunks_of(gout_id))
    assert isinstance(reopened, MilvusIndex)
    reopened.close()


class _OtherEmbedder:
    """A stand-in embedder whose id and dimension differ from the configured model's."""

    def __init__(self, embedder_id: str = "test/other-model", dimension: int = 8) -> None:
        self.id, self.dimension, self.max_tokens = embedder_id, dimension, 200

    def embed_passages(self, texts):
        return np.ones((len(texts), self.dimension), dtype=np.float32) / np.sqrt(self.dimension)

    def embed_query(self, text):
        return self.embed_passages([text])[0]

    def count_tokens(self, text):
        return len(text.split())


def test_a_collection_built_with_another_embedder_or_dimension_is_refused(tmp_path: Path):
    from rag.errors import IndexMismatchError
    from rag.index.milvus import MilvusIndex

    uri = tmp_path / "other.db"
    settings = open_settings(tmp_path, backend="milvus", uri=str(uri))
    MilvusIndex.open(settings, create=True, embedder=_OtherEmbedder()).close()

    result = run("search", "gout", env=milvus_env(uri))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        (
            f"error: {uri} (collection rag) was built with embedder test/other-model, but the "
            "settings ask for sentence-transformers/all-MiniLM-L6-v2; rebuild it with that "
            "embedder into another index.collection, or set embedder.model back to "
            "test/other-model"
        )
    ]
    with pytest.raises(IndexMismatchError, match="holds 8-dimensional vectors but embedder"):
        MilvusIndex.open(settings, embedder=_OtherEmbedder(dimension=16))
    # Nothing was changed by the refusals.
    with MilvusIndex.open(settings, embedder=_OtherEmbedder()) as index:
        assert index.document_count == 0


def test_an_unreachable_milvus_uri_is_one_line_for_search_and_ingest(tmp_path: Path):
    uri = f"http://127.0.0.1:{free_port()}"
    for command in (["search", "gout"], ["ingest", str(TEST_DOCS), "--no-progress"]):
        result = run(*command, env=milvus_env(uri))
        assert result.exit_code == 1
        (line,) = result.output.strip().splitlines()
        assert line.startswith(f"error: cannot reach Milvus at {uri} (collection rag): ")


def test_a_milvus_server_endpoint_serves_the_same_results_as_a_lite_file(
    milvus_lite_index: Path, scale_corpus: Path, tmp_path: Path
):
    """`index.uri = http://...` goes through the same client code; here the endpoint is Milvus
    Lite's own gRPC server on 127.0.0.1."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("milvus-lite")), "server", "--data-dir",
         str(tmp_path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.3)
        env = milvus_env(f"http://127.0.0.1:{port}")
        ingested = ingest(scale_corpus, env=env)
        assert ingested.exit_code == 0, ingested.output
        question = "when to admit a patient with pneumonia"
        from_server = json.loads(run("search", question, "--json", env=env).output)
        from_file = json.loads(run("search", question, "--json", env=milvus_env(milvus_lite_index)).output)
        assert same_hits(from_server, from_file)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ray_engine_into_milvus_survives_a_killed_job_and_the_rerun_completes(
    scale_corpus: Path, local_engine_index: Path, ray_running, tmp_path: Path
):
    """The whole ingest process (driver and its local Ray) is killed after its first write;
    the Milvus file still opens, and the same ingest run again completes the index."""
    from rag.index.backend import open_index
    from rag.ingest.ray_engine import ingest_on_ray

    uri = tmp_path / "ray.db"
    script = f"""
import sys
from rag.config import Settings
from rag.errors import RagError
from rag.index.backend import open_index
from rag.index.milvus import MilvusIndex
from rag.ingest.ray_engine import ingest_on_ray
write = MilvusIndex.write_batch
def announced(self, versions, vectors):
    write(self, versions, vectors)
    print("written", flush=True)
MilvusIndex.write_batch = announced
settings = Settings().merged({{"index_store": {{"backend": "milvus", "uri": {str(uri)!r}}},
                               "ingest": {{"cpus": 2, "batch_size": 2}}}})
index = open_index(settings, create=True)
index.passages_per_commit = 2
ingest_on_ray(index, settings, [__import__("pathlib").Path("corpus")], progress=False)
print("finished", flush=True)
"""
    errors = tmp_path / "job.stderr"
    with errors.open("w") as stderr:
        job = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=stderr,
            text=True, cwd=scale_corpus.parent, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    try:
        ready, _, _ = select.select([job.stdout], [], [], 300)
        assert ready, "the ingest wrote nothing within 5 minutes"
        line = job.stdout.readline().strip()
        assert line == "written", errors.read_text()[-3000:]
    finally:
        os.killpg(job.pid, signal.SIGKILL)
        job.wait(timeout=60)

    settings = open_settings(local_engine_index, backend="milvus", uri=str(uri))
    index = open_index(settings)
    assert 0 < index.chunk_count < 12
    with chdir(scale_corpus.parent):
        report = ingest_on_ray(index, settings, [Path("corpus")], progress=False)
    assert report.added + report.unchanged == 7
    local = open_index(open_settings(local_engine_index))
    assert rankings(index) == rankings(local)
    assert index.documents() == local.documents()
    index.close()
    local.close()


def test_rag_serve_answers_from_milvus_over_http(
    milvus_lite_index: Path, local_engine_index: Path, tmp_path: Path
):
    """`rag serve` with index.backend = milvus, a real server on 127.0.0.1, filters included."""
    import httpx

    uri = tmp_path / "served.db"
    shutil.copytree(milvus_lite_index, uri)  # this process keeps the fixture's file open
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
        env={**os.environ, **milvus_env(uri), "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        request = {"query": "when to admit a patient with pneumonia", "k": 5, "sources": ["test"]}
        served = httpx.post(f"http://127.0.0.1:{port}/api/search", json=request, timeout=60)
        assert served.status_code == 200, served.text
        local = run(
            "search", request["query"], "-k", "5", "--source", "test", "--json",
            "--index", str(local_engine_index),
        )  # fmt: skip
        hits = served.json()["hits"]
        assert hits and all(hit["source"].startswith("Test") for hit in hits)
        assert [hit["chunk_id"] for hit in hits] == [hit["chunk_id"] for hit in json.loads(local.output)]
    finally:
        server.terminate()
        server.wait(timeout=30)
