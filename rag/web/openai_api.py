"""rag as an OpenAI-compatible model: the chat-completions protocol over `Engine.ask`.

Chat front ends and scripts that speak the OpenAI protocol (the `openai` SDK, Open WebUI,
LibreChat) can use rag as a model named `rag`. This module only translates; `rag.web.app`
mounts the routes:

    GET  /v1/models               {"object": "list", "data": [the model `rag`]}
    GET  /v1/models/rag           the model
    POST /v1/chat/completions     {model, messages, stream?} -> a chat completion, or with
                                  `stream: true` server-sent chunks ending in `data: [DONE]`

The request, in the direction data flows:

- `messages` is the conversation. The last message must be the user's question; the user and
  assistant messages before it are the history the follow-up is read against (each user
  message with the assistant reply after it is one turn). `system` and `developer` messages
  are accepted and play no part in retrieval.
- The reply's `content` is the Markdown `rag ask` prints for the same answer (bottom line,
  body with [n] markers, references, related questions, disclaimer), so any chat UI shows
  the citations. The structured answer rides along in the extra top-level field `rag`: the
  `rag ask --json` object (citations with title, source, year, url, doi, section, quote,
  support; abstained; related questions; ...) plus `nearest_sources` and `disclaimer`.
  Clients that do not know the field ignore it.
- With `stream: true` the answer is produced first, with the citation contract enforced, and
  then sent one line per chunk (a line never splits a [n] marker): role, content deltas, a
  last chunk with `finish_reason: "stop"` and the `rag` field, then `data: [DONE]`. Every
  number the stream shows is final and resolves to a listed reference. The first byte
  therefore comes when the answer is ready, not earlier.
- What rag cannot do is refused with HTTP 400 and the protocol's error object naming the
  parameter: tools and function calls, `n` > 1, image, audio or file content,
  a `response_format` other than text, log-probabilities, audio output. Sampling knobs
  (`temperature`, `top_p`, `seed`, penalties, `max_tokens`, `stop`, ...) and fields this
  module does not know are accepted and ignored: the answer is quoted and cited by the
  pipeline, and cutting it short could drop the references its markers point to.
  `usage` is not reported (null): the default backend runs no language model.

Follow-ups: a session saved by `/api/ask` remembers which documents each answer cited, and
retrieval prefers the guideline the previous answer cited. An OpenAI client sends back only the
text of earlier replies, so `RecentReplies` remembers, for the replies this server process gave,
the turn behind each reply text; a follow-up to one of them is then answered exactly as the
same follow-up in an `/api/ask` session. An earlier reply the server does not recognise (given
before a restart, or written elsewhere) still counts as history: its text is the answer and
the follow-up is condensed from the questions, without the cited-guideline preference.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rag.errors import InputError
from rag.types import Turn

MODEL_ID = "rag"
OWNER = "rag"
EXTRA_FIELD = "rag"  # the top-level field of a completion that carries the structured answer
INSTRUCTION_ROLES = frozenset({"system", "developer"})  # accepted, not used for retrieval
RECENT_REPLIES = 4096  # reply texts remembered for follow-ups (a few MB at most)


class ProtocolError(InputError):
    """A request the protocol allows but rag cannot serve, or a malformed conversation.

    `status` is the HTTP status, `param` the request field at fault (the protocol's error
    object names it) and `code` the protocol's error code."""

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.status = status


# ---------------------------------------------------------------------------------------------
# The request


class ChatMessage(BaseModel):
    """One message of the conversation; fields other than role and content are ignored."""

    model_config = ConfigDict(extra="allow")

    role: str = Field(description="system, developer, user or assistant.")
    content: str | list[dict[str, Any]] | None = Field(
        default=None, description="Text, or a list of parts of which only text parts are read."
    )


class ChatCompletionRequest(BaseModel):
    """The fields rag reads or refuses; other fields are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(description=f"The model id: '{MODEL_ID}' (see GET /v1/models).")
    messages: list[ChatMessage] = Field(
        description="The conversation; the last message is the user's question."
    )
    stream: bool | None = Field(default=False, description="Send server-sent chunks.")
    n: int | None = Field(default=None, description="Only 1 is supported.")
    tools: list[Any] | None = Field(default=None, description="Not supported.")
    tool_choice: Any = Field(default=None, description="Only 'none' or 'auto' without tools.")
    functions: list[Any] | None = Field(default=None, description="Not supported.")
    function_call: Any = Field(default=None, description="Only 'none' or 'auto'.")
    response_format: dict[str, Any] | None = Field(
        default=None, description="Only {'type': 'text'}."
    )
    logprobs: bool | None = Field(default=None, description="Not supported.")
    top_logprobs: int | None = Field(default=None, description="Not supported.")
    modalities: list[str] | None = Field(default=None, description="Only ['text'].")
    audio: Any = Field(default=None, description="Not supported.")


def check_model(model: str) -> None:
    """Raises ProtocolError (404, as the protocol answers an unknown model) unless `model` is
    the one this server serves."""
    if model != MODEL_ID:
        raise ProtocolError(
            f"the model '{model[:100]}' does not exist here; this server answers as "
            f"'{MODEL_ID}' (GET /v1/models lists it)",
            param="model",
            code="model_not_found",
            status=404,
        )


def check_supported(request: ChatCompletionRequest) -> None:
    """Raises ProtocolError naming the first parameter that asks for something rag cannot do."""
    check_model(request.model)
    if request.tools or request.functions:
        param = "tools" if request.tools else "functions"
        raise ProtocolError(
            f"{param} are not supported: rag answers from its indexed sources and calls no tools",
            param=param, code="unsupported_parameter",
        )
    for param, choice in (("tool_choice", request.tool_choice),
                          ("function_call", request.function_call)):
        if choice not in (None, "none", "auto"):
            raise ProtocolError(
                f"{param} is not supported: rag calls no tools", param=param,
                code="unsupported_parameter",
            )
    if request.n is not None and request.n != 1:
        raise ProtocolError(
            f"n={request.n} is not supported: rag gives one cited answer per question (n=1)",
            param="n", code="unsupported_parameter",
        )
    answer_format = (request.response_format or {}).get("type", "text")
    if answer_format != "text":
        raise ProtocolError(
            f"response_format '{answer_format}' is not supported: the answer is cited Markdown "
            f"text; the structured answer is in the reply's '{EXTRA_FIELD}' field",
            param="response_format", code="unsupported_parameter",
        )
    if request.logprobs or request.top_logprobs:
        param = "logprobs" if request.logprobs else "top_logprobs"
        raise ProtocolError(
            f"{param} is not supported: the answer is not sampled token by token",
            param=param, code="unsupported_parameter",
        )
    if request.audio is not None or any(kind != "text" for kind in request.modalities or ()):
        raise ProtocolError(
            "audio output is not supported: rag answers in text",
            param="modalities" if request.modalities else "audio",
            code="unsupported_parameter",
        )


def _text_of(message: ChatMessage, position: int) -> str:
    """The message's text: its string content, or its text parts joined by blank lines."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part_number, part in enumerate(content):
        kind = part.get("type")
        if kind != "text" or not isinstance(part.get("text"), str):
            shown = f"a part of type '{kind}'" if isinstance(kind, str) else "a part without a type"
            raise ProtocolError(
                f"messages[{position}].content[{part_number}] is {shown}: rag reads text only "
                "(no images, audio or files)",
                param=f"messages[{position}].content", code="unsupported_content",
            )
        texts.append(part["text"])
    return "\n\n".join(texts)


def read_conversation(
    messages: Sequence[ChatMessage],
    recall: Callable[[str], Turn | None] = lambda reply: None,
    *,
    max_question_chars: int,
) -> tuple[str, list[Turn]]:
    """The question (the last message, which must be the user's) and the turns before it.

    Each user message and the assistant reply after it make one turn (a user message without
    a reply makes a turn with an empty answer; an assistant message before any question, such
    as a greeting, is skipped). `recall(reply_text)` gives the turn this server saved for one
    of its own replies, or None; the turn then keeps the question as sent. Raises
    ProtocolError for a role other than system, developer, user and assistant, a tool call,
    non-text content, or a last message that is not a non-empty user question.
    """
    spoken: list[tuple[str, str]] = []  # (role, text) of the user and assistant messages
    for position, message in enumerate(messages):
        if message.role in INSTRUCTION_ROLES:
            continue
        if message.role not in ("user", "assistant"):
            raise ProtocolError(
                f"messages[{position}] has the role '{message.role[:40]}': rag reads system, "
                "developer, user and assistant messages (it calls no tools)",
                param=f"messages[{position}].role", code="unsupported_role",
            )
        if getattr(message, "tool_calls", None) or getattr(message, "function_call", None):
            raise ProtocolError(
                f"messages[{position}] holds a tool call: rag calls no tools",
                param=f"messages[{position}]", code="unsupported_parameter",
            )
        spoken.append((message.role, _text_of(message, position)))
    if not messages:
        raise ProtocolError(
            "messages is empty: send the conversation, ending with the user's question",
            param="messages", code="invalid_conversation",
        )
    if not spoken or spoken[-1][0] != "user":
        raise ProtocolError(
            "the last message must be the user's question (role 'user')",
            param="messages", code="invalid_conversation",
        )
    question = spoken[-1][1].strip()
    if not question:
        raise ProtocolError(
            "the question (the last user message) is empty", param="messages",
            code="invalid_conversation",
        )
    if len(question) > max_question_chars:
        raise ProtocolError(
            f"the question (the last user message) is too long ({len(question)} characters; "
            f"the limit is {max_question_chars})",
            param="messages", code="invalid_conversation",
        )
    history: list[Turn] = []
    asked: str | None = None
    for role, text in spoken[:-1]:
        if role == "user":
            if asked is not None:
                history.append(Turn(question=asked, answer=""))
            asked = text.strip()
        elif asked is not None:
            history.append(_turn(asked, text, recall(text)))
            asked = None
    if asked is not None:
        history.append(Turn(question=asked, answer=""))
    return question, history


def _turn(question: str, reply: str, remembered: Turn | None) -> Turn:
    if remembered is None:
        return Turn(question=question, answer=reply)
    return Turn(
        question=question,
        answer=remembered.answer,
        standalone_question=remembered.standalone_question,
        cited_doc_ids=remembered.cited_doc_ids,
    )


class RecentReplies:
    """The turns behind the last `limit` replies this server gave, found by the reply's text
    (whitespace-insensitive), so a follow-up keeps what a session would keep. Thread-safe."""

    def __init__(self, limit: int = RECENT_REPLIES) -> None:
        self.limit = limit
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(reply: str) -> str:
        return hashlib.sha256(" ".join(reply.split()).encode("utf-8")).hexdigest()

    def remember(self, reply: str, turn: Turn) -> None:
        key = self._key(reply)
        with self._lock:
            self._turns[key] = turn
            self._turns.move_to_end(key)
            while len(self._turns) > self.limit:
                self._turns.popitem(last=False)

    def recall(self, reply: str) -> Turn | None:
        key = self._key(reply)
        with self._lock:
            turn = self._turns.get(key)
            if turn is not None:
                self._turns.move_to_end(key)
            return turn


# ---------------------------------------------------------------------------------------------
# The reply


@dataclass(frozen=True)
class Reply:
    """One answer as the protocol sends it: `content` is the Markdown, `extra` the structured
    answer sent in the `rag` field."""

    content: str
    extra: dict[str, Any]
    id: str
    created: int


def new_reply(content: str, extra: dict[str, Any], created: int) -> Reply:
    return Reply(content=content, extra=extra, id=f"chatcmpl-{uuid.uuid4().hex}", created=created)


def model_card(created: int) -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": created, "owned_by": OWNER}


def model_list(created: int) -> dict[str, Any]:
    return {"object": "list", "data": [model_card(created)]}


def completion(reply: Reply) -> dict[str, Any]:
    """The whole reply as a `chat.completion` object."""
    return {
        "id": reply.id,
        "object": "chat.completion",
        "created": reply.created,
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": None,
        EXTRA_FIELD: reply.extra,
    }


def content_pieces(content: str) -> list[str]:
    """The content cut into the deltas a stream sends: one line each, newline kept, so a
    marker like [12] is never split across chunks and the pieces join back to `content`."""
    return content.splitlines(keepends=True) or [content]


def completion_chunks(reply: Reply) -> Iterator[str]:
    """The reply as server-sent events: the role, one content delta per line, a last chunk
    with the finish reason and the structured answer, then `[DONE]`."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> str:
        body = {
            "id": reply.id,
            "object": "chat.completion.chunk",
            "created": reply.created,
            "model": MODEL_ID,
            "choices": [
                {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
            ],
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for piece in content_pieces(reply.content):
        yield chunk({"content": piece})
    yield chunk({}, "stop", **{EXTRA_FIELD: reply.extra})
    yield "data: [DONE]\n\n"


def error_body(
    message: str, *, status: int, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The protocol's error object; the SDKs show `message` in the exception they raise."""
    if code is None and status == 401:
        code = "invalid_api_key"
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
