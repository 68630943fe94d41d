"""The LLM backend: any OpenAI-compatible chat-completions endpoint (OpenAI, llama.cpp's
server, vLLM, Ollama's /v1, LM Studio...).

`OpenAIGenerator(settings.llm)` sends the prompt from `rag.generate.prompts` and returns the
reply as a `Draft`. Retries are the openai SDK's own (`llm.retries`, `llm.timeout_s`):
connection errors, timeouts, HTTP 408/409/429 and 5xx are retried with exponential backoff
(honouring Retry-After); any other HTTP error (a wrong key, an unknown model) fails at once.
Failure is one `LLMError` line naming the endpoint, the reason and the attempts made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import openai

from rag.config import LLMSettings
from rag.errors import LLMError
from rag.generate.base import Draft, check_audience
from rag.generate.citations import is_refusal, parse_decision, remove_unknown_markers
from rag.generate.prompts import (
    build_check_messages,
    build_messages,
    passages_within_budget,
)
from rag.types import Hit

# How the SDK opens a status error's message ("Error code: 503 - ...").
_SDK_PREFIX = re.compile(r"^Error code: \d+ - ")
# The statuses the SDK retries (besides connection errors and timeouts).
_RETRIED_STATUS = {408, 409, 429}
# What an endpoint answers to a request option it does not support (OpenAI: 400; some
# OpenAI-compatible servers validate the body and answer 422).
_UNSUPPORTED_STATUS = {400, 422}
# Reasoning models served locally often prefix their answer with their thinking.
_THINKING = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
# A sentence end: a full stop, question or exclamation mark (and any [n] markers after it)
# followed by white space or the end of the text.
_SENTENCE_END = re.compile(r"[.!?](?:\s*\[\d+\])*(?=\s|$)")
_EMPTY_OPENING = re.compile(r"^\s*(?:#{1,6}\s.*|\d{1,3}[.)]|[-*+•])\s*$")


def endpoint_url(base_url: str) -> str:
    """`base_url` without a trailing slash, with "/v1" added when it names only a host
    ("http://localhost:8080" -> "http://localhost:8080/v1"), as OpenAI-compatible servers
    serve the API there. LLMError when it is not an http(s) URL."""
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LLMError(f"LLM endpoint '{base_url}' is not an http(s) URL (set OPENAI_BASE_URL)")
    return url if parts.path else url + "/v1"


class _Rejected(LLMError):
    """The endpoint refused the request (a 4xx status that retrying cannot change)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class OpenAIGenerator:
    """Drafts answers with a chat-completions endpoint; safe to share between threads (one
    SDK client, which pools connections; the only other state is whether the endpoint has
    refused log-probabilities, set once)."""

    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self.endpoint = endpoint_url(settings.base_url)
        self.name = f"openai:{settings.model}"
        self._client = openai.OpenAI(
            base_url=self.endpoint,
            api_key=settings.api_key or "not-needed",  # local servers accept any key
            timeout=settings.timeout_s,
            max_retries=settings.retries,
        )
        self._sends_logprobs = True  # until the endpoint refuses them

    def generate(
        self,
        question: str,
        hits: Sequence[Hit],
        *,
        audience: str = "clinician",
        want_decision: bool = False,
        cited_before: Sequence[str] = (),
    ) -> Draft:
        """The model's answer to `question` from `hits` (numbered 1..len(hits)) as a Draft.

        Numbers beyond the passages that fitted the prompt's budget are dropped here (the
        model never saw those passages); the rest of the contract is `enforce_citations`'.
        An empty reply or the refusal sentence gives `refused=True`; with `want_decision`
        the "Decision:" line is parsed into `decision` and removed from the text.
        Raises LLMError when the endpoint fails after the retries. `cited_before` is not
        needed: the condensed question carries the conversation.
        """
        check_audience(audience)
        messages = build_messages(
            question,
            hits,
            audience=audience,
            want_decision=want_decision,
            context_tokens=self.settings.context_tokens,
        )
        text = _THINKING.sub("", self.complete(messages)).strip()
        decision = None
        if want_decision:
            text, decision = parse_decision(text)
        if hits:
            shown = len(passages_within_budget(hits, self.settings.context_tokens))
            text = remove_unknown_markers(text, shown)
        if is_refusal(text):
            return Draft(text=text, decision=decision, refused=True)
        return Draft(text=text, decision=decision, refused=False)

    def complete(self, messages: list[dict[str, str]]) -> str:
        """The text of the first choice for `messages` ("" when the model sent none),
        retrying transient failures; LLMError naming the endpoint after the last attempt."""
        choice = self._first_choice(messages, max_tokens=self.settings.max_tokens)
        if choice is None:
            return ""
        text = choice.message.content or ""
        if getattr(choice, "finish_reason", None) == "length":
            text = without_unfinished_sentence(text)
        return text

    def answerable(self, question: str, hits: Sequence[Hit]) -> float | None:
        """The model's probability (0..1) that `hits` state the answer to `question`.

        The model is asked for one word, yes or no (`build_check_messages`); the probability
        is P(yes) / (P(yes) + P(no)) from the first token's log-probabilities, or 1.0 / 0.0
        from the word itself when the endpoint sends none. An endpoint that refuses the
        log-probability options (HTTP 400 or 422) is asked again without them, and from then
        on never with them. None when the reply is neither word: the check cannot be read and
        decides nothing. LLMError as `complete`."""
        messages = build_check_messages(question, hits, context_tokens=self.settings.context_tokens)
        if self._sends_logprobs:
            try:
                choice = self._first_choice(messages, max_tokens=1, logprobs=True, top_logprobs=10)
                return None if choice is None else yes_probability(choice)
            except _Rejected as error:
                if error.status not in _UNSUPPORTED_STATUS:
                    raise
                self._sends_logprobs = False
        choice = self._first_choice(messages, max_tokens=1)
        return None if choice is None else yes_probability(choice)

    def _first_choice(self, messages: list[dict[str, str]], **options: Any) -> Any:
        """The first choice of a chat completion for `messages` (None when the reply has
        none); the SDK retries transient failures. LLMError after the last attempt, or at
        once (`_Rejected`) for a status that retrying cannot change."""
        try:
            response = self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.settings.temperature,
                **options,
            )
        except openai.APITimeoutError:
            reason = f"no reply within {self.settings.timeout_s:g} s"
        except openai.APIConnectionError as error:
            reason = f"cannot connect ({_root_cause(error)})"
        except openai.APIStatusError as error:
            detail = _SDK_PREFIX.sub("", error.message)  # the status is named already
            reason = f"HTTP {error.status_code} ({_one_line(detail)})"
            if error.status_code not in _RETRIED_STATUS and error.status_code < 500:
                raise _Rejected(
                    f"LLM endpoint {self.endpoint} rejected the request: {reason}",
                    error.status_code,
                ) from None
        except openai.OpenAIError as error:  # a reply that is not a chat completion
            raise LLMError(
                f"LLM endpoint {self.endpoint} sent an unusable reply: {_one_line(str(error))}"
            ) from None
        else:
            choices = getattr(response, "choices", None) or []
            return choices[0] if choices else None
        attempts = 1 + self.settings.retries
        plural = "attempt" if attempts == 1 else "attempts"
        raise LLMError(f"LLM endpoint {self.endpoint} failed after {attempts} {plural}: {reason}")

    def close(self) -> None:
        """Release the pooled connections."""
        self._client.close()


def yes_probability(choice: Any) -> float | None:
    """P(yes) / (P(yes) + P(no)) for a one-word yes/no reply: from the first token's top
    log-probabilities ("Yes", " yes" and "YES" all count), else 1.0 or 0.0 from the reply's
    word; None when the reply is neither yes nor no."""
    logprobs = getattr(choice, "logprobs", None)
    tokens = getattr(logprobs, "content", None) or []
    if tokens:
        mass = {"yes": 0.0, "no": 0.0}
        for candidate in getattr(tokens[0], "top_logprobs", None) or []:
            word = str(candidate.token).strip().lower()
            if word in mass:
                mass[word] += math.exp(candidate.logprob)
        if mass["yes"] + mass["no"] > 0.0:
            return mass["yes"] / (mass["yes"] + mass["no"])
    message = getattr(choice, "message", None)
    word = _THINKING.sub("", getattr(message, "content", None) or "").strip().lower()
    word = word.strip(" .!\"'")
    return {"yes": 1.0, "no": 0.0}.get(word)


def without_unfinished_sentence(text: str) -> str:
    """`text` cut back to its last finished sentence or line: what a reply stopped by the
    token limit ends with ("... in patients with se") is not shown. A reply with no
    finished sentence or line break at all is returned as it is."""
    ends = [match.end() for match in _SENTENCE_END.finditer(text)]
    line_break = text.rfind("\n")
    cut = max([*ends, line_break])
    if cut <= 0:
        return text
    lines = text[:cut].rstrip().split("\n")
    # A heading or list number left with nothing after it ("### Evidence:", "1.") goes too.
    while len(lines) > 1 and (not lines[-1].strip() or _EMPTY_OPENING.match(lines[-1])):
        lines.pop()
    return "\n".join(lines).rstrip()


def _root_cause(error: BaseException) -> str:
    """The innermost cause's message ("[Errno 111] Connection refused"), on one line."""
    cause: BaseException = error
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    return _one_line(str(cause) or type(cause).__name__)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
