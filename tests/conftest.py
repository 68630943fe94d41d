"""Shared fixtures: the test documents, and real indexes built once per test session.

The tests never reach a configured LLM endpoint by accident: OPENAI_* variables are cleared
here, so every test that wants an endpoint starts its own server on 127.0.0.1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

for variable in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "RAG_INDEX", "RAG_SETTINGS", "RAG_LLM_MODEL"):
    os.environ.pop(variable, None)
os.environ["HF_HUB_OFFLINE"] = "1"

TESTS = Path(__file__).parent
TEST_DOCS = TESTS / "data" / "docs"
SHARED_DATA = TESTS.parent.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Saved conversations go to a fresh folder per test, never the user's data directory."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def test_docs() -> Path:
    """Five short guideline-like Markdown documents written for the tests (one is hostile)."""
    return TEST_DOCS


def build_index(path: Path, documents) -> Path:
    from rag.config import Settings
    from rag.index.store import Index
    from rag.ingest.pipeline import ingest

    settings = Settings().merged({"index": str(path)})
    ingest(Index.open(path, settings, create=True), documents, progress=False)
    return path


@pytest.fixture(scope="session")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real FAISS + lexical index over tests/data/docs, built once with the real embedder.

    Tests must not modify it: copy it (shutil.copytree) first if they ingest into it.
    """
    from rag.ingest.loaders import load_paths

    documents = [item for item in load_paths([TEST_DOCS]) if not hasattr(item, "message")]
    return build_index(tmp_path_factory.mktemp("small") / "index", documents)


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The open-medicine guideline corpus, indexed once per session (about half a minute)."""
    from rag.ingest.demo import load_demo_corpus

    return build_index(tmp_path_factory.mktemp("demo") / "index", load_demo_corpus())


def settings_for(index: Path, **overrides):
    """Settings pointing at `index`, with nested overrides."""
    from rag.config import Settings

    return Settings.from_env().merged({"index": str(index), **overrides})


@pytest.fixture()
def openai_server():
    """A fake OpenAI-compatible endpoint on 127.0.0.1 (tests/fakes.py), stopped afterwards."""
    from tests.fakes import FakeOpenAIServer

    fake = FakeOpenAIServer()
    yield fake
    fake.stop()
