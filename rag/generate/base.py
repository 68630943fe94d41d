"""The generator contract: question + numbered passages -> a draft answer citing them as [n].

A generator sees the hits in the order given and numbers them 1..len(hits); its draft cites
passage n as "[n]". Drafts are raw: whatever the backend wrote. The citation contract
(numbers that match no passage removed, renumbering by first use, the bottom line, the
reference list) is enforced afterwards by `rag.generate.citations.enforce_citations`, so
every backend is held to the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# Who an answer is written for (rag.config defines the choices). The web API validates
# requests against the Literal, the generators and the engine against the tuple.
from rag.config import AUDIENCES, Audience  # noqa: F401  (re-exported)
from rag.errors import InputError
from rag.types import Hit


@dataclass(frozen=True)
class Draft:
    """A backend's answer before the citation contract is enforced.

    `text` is Markdown citing passages as [n] (n = position in the hits handed in, from 1).
    `decision` is "yes", "no" or "maybe" when the caller asked for one and the backend gave it.
    `refused` is True when the backend found that the passages do not answer the question;
    `text` is then empty or the backend's refusal sentence.
    """

    text: str
    decision: str | None = None
    refused: bool = False


class Generator(Protocol):
    """Writes a draft answer to `question` from `hits` (numbered 1..len(hits) in that order).
    `cited_before`: the titles of the sources the conversation's previous answer cited (a
    follow-up usually stays in the guideline being read)."""

    name: str

    def generate(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        audience: str = "clinician",
        want_decision: bool = False,
        cited_before: Sequence[str] = (),
    ) -> Draft: ...


def check_audience(audience: str) -> str:
    """`audience` if it is one the generators know, else InputError naming it."""
    if audience not in AUDIENCES:
        raise InputError(f"audience '{audience}' is not one of: {', '.join(AUDIENCES)}")
    return audience
