"""Errors a user can cause or fix. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class RagError(Exception):
    """Base class: the message is complete, names the input and says what is wrong."""


class InputError(RagError):
    """A file, line or argument that cannot be used."""


class IndexMissingError(RagError):
    """No index at the given path."""


class IndexMismatchError(RagError):
    """The index was built with another embedder or incompatible settings."""


class LLMError(RagError):
    """The LLM endpoint failed after the retries."""


class SessionError(RagError):
    """A saved conversation that is missing or damaged."""
