"""The clinician web page and its JSON API, as one FastAPI app.

`create_app(engine, sessions)` takes its collaborators as arguments, so tests hand in fakes and
`serve` hands in the real `Engine` and `SessionStore`. Routes:

    GET  /                      the question page (static HTML, CSS and JS; no external requests)
    GET  /static/...            the page's script and style sheet
    POST /api/ask               {question, session?, audience?, mode?, k?, replace_last?} -> the
                                `rag ask --json` object, plus `nearest_sources` and `disclaimer`
    GET  /api/sessions/{id}     {session, turns: [{question, answer, ...}]}
    POST /api/search            {query, k?, mode?, sources?, min_year?} -> {query, mode, hits}
    GET  /api/health            {"status": "ok"} (never guarded: for load balancers and tests)
    GET  /openapi.json          the machine-readable API description
    GET  /v1/models             rag as an OpenAI-compatible model (rag.web.openai_api)
    POST /v1/chat/completions   {model: "rag", messages, stream?} -> a chat completion whose
                                content is the `rag ask` Markdown, the structured answer in `rag`

Every error is one JSON line (rag.web.guard, with the access key, size limit and headers).

Access key: when `api_key` is given, every route except /static and /api/health needs it, as
`Authorization: Bearer KEY` or `X-API-Key: KEY`. A browser opens the page once as `/?key=KEY`;
the page keeps the key in sessionStorage and sends it as a header, and the server also sets a
same-site, HTTP-only cookie so that reloading the page works without the query.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import anyio
from fastapi import FastAPI
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rag.config import RetrievalMode, Settings
from rag.errors import SessionError
from rag.generate.base import Audience
from rag.render import answer_markdown
from rag.sessions import answer_in_session, turn_to_json
from rag.types import DISCLAIMER, Answer, Hit, Turn
from rag.web import openai_api
from rag.web.guard import install_guards, logger

STATIC_DIR = Path(__file__).parent / "static"
# Session ids come back in requests and name saved conversations: only a safe alphabet.
SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")


class AnswerEngine(Protocol):
    """What the app needs from `rag.answer.Engine`."""

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        audience: str | None = None,
        mode: str | None = None,
        k: int | None = None,
        session: str | None = None,
    ) -> Answer: ...

    def search(
        self,
        query: str,
        *,
        mode: str | None = None,
        k: int | None = None,
        sources: Sequence[str] = (),
        min_year: int | None = None,
    ) -> list[Hit]: ...


class Sessions(Protocol):
    """What the app needs from `rag.sessions.SessionStore`."""

    def load(self, name: str) -> list[Turn]: ...

    def append(self, name: str, turn: Turn) -> None: ...

    def replace_last(self, name: str, turn: Turn) -> None: ...


# ---------------------------------------------------------------------------------------------
# Request bodies. Field descriptions end up in /openapi.json.


def _clean_text(value: str, field_name: str) -> str:
    # The length limit is the library's (answer.max_question_chars), checked by the engine
    # for every entry point alike; a too-long question comes back as a 400.
    text = value.strip()
    if not text:
        raise ValueError(f"{field_name} is empty; type a {field_name}")
    return text


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        description="The question: at least 1 character, at most the setting "
        "answer.max_question_chars (2000 by default)."
    )
    session: str | None = Field(
        default=None,
        description="A conversation id returned by an earlier answer; omit to start a new one.",
    )
    audience: Audience | None = Field(
        default=None, description="Who the answer is written for; default from the settings."
    )
    mode: RetrievalMode | None = Field(
        default=None, description="Retrieval mode; default from the settings."
    )
    k: int | None = Field(default=None, ge=1, le=50, description="Passages given to the generator.")
    replace_last: bool = Field(
        default=False,
        description="Answer again in place of the session's latest turn (the page's audience "
        "switch): the turn is replaced, not added, and read in the light of the turns before "
        "it. Needs `session`.",
    )

    @field_validator("question")
    @classmethod
    def _question_fits(cls, value: str) -> str:
        return _clean_text(value, "question")

    @field_validator("session")
    @classmethod
    def _session_is_an_id(cls, value: str | None) -> str | None:
        if value is not None and not SESSION_ID_PATTERN.match(value):
            raise ValueError(
                "session must be an id returned by /api/ask (letters, digits, '-' and '_')"
            )
        return value

    @model_validator(mode="after")
    def _replacing_needs_a_session(self) -> AskRequest:
        if self.replace_last and self.session is None:
            raise ValueError("replace_last needs the session whose latest answer it replaces")
        return self


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        description="Search text: at least 1 character, at most the setting "
        "answer.max_question_chars (2000 by default)."
    )
    k: int | None = Field(default=None, ge=1, le=100, description="How many passages to return.")
    mode: RetrievalMode | None = Field(
        default=None, description="Retrieval mode; default from the settings."
    )
    sources: list[str] = Field(
        default_factory=list, max_length=50, description="Keep only these organisations/journals."
    )
    min_year: int | None = Field(
        default=None, ge=1000, le=9999, description="Keep only documents from this year on."
    )

    @field_validator("query")
    @classmethod
    def _query_fits(cls, value: str) -> str:
        return _clean_text(value, "query")


# ---------------------------------------------------------------------------------------------
# Answers as the page needs them.


def _nearest_sources(answer: Answer, limit: int = 5) -> list[dict[str, Any]]:
    """One entry per retrieved document, best first: what an abstention can point to."""
    seen: set[str] = set()
    sources: list[dict[str, Any]] = []
    for hit in answer.retrieved:
        if hit.doc_id in seen:
            continue
        seen.add(hit.doc_id)
        sources.append(
            {
                "doc_id": hit.doc_id,
                "chunk_id": hit.chunk_id,
                "title": hit.title,
                "source": hit.source,
                "year": hit.year,
                "url": hit.url,
                "doi": hit.doi,
                "section": hit.section,
            }
        )
        if len(sources) == limit:
            break
    return sources


def _answer_payload(answer: Answer) -> dict[str, Any]:
    """The `rag ask --json` object plus what the page and chat clients show beside it."""
    payload = answer.to_json()
    payload["nearest_sources"] = _nearest_sources(answer)
    payload["disclaimer"] = DISCLAIMER
    return payload


def _new_session_id() -> str:
    return f"web-{uuid.uuid4().hex[:16]}"


# ---------------------------------------------------------------------------------------------
# The app.


def create_app(
    engine: AnswerEngine,
    sessions: Sessions,
    *,
    api_key: str | None = None,
    concurrent_answers: int = 2,
) -> FastAPI:
    """The web app over a loaded `engine` and a `sessions` store.

    `api_key`, when given, guards the page and the API (see the module docstring). The engine is
    shared by all requests; its blocking calls run in worker threads, at most
    `concurrent_answers` answers at once (setting `concurrent_answers`), the rest waiting
    their turn without a thread: every thread that runs the model keeps its own malloc arena
    and OpenMP team, so fifty threads answering at once grew the server by 0.8 GB.
    """
    app = FastAPI(
        title="rag: cited answers from clinical guidelines",
        description=(
            "Ask clinical questions and get answers whose every statement cites a numbered "
            "passage from the indexed guidelines and articles. " + DISCLAIMER
        ),
        version="0.1.0",
        # The interactive docs pages load their script from a CDN; the page must work offline,
        # so only the JSON description is served.
        docs_url=None,
        redoc_url=None,
    )
    install_guards(app, api_key)
    # One lock per conversation, so two quick follow-ups in the same session are answered in
    # order and each sees the turn before it.
    session_locks: dict[str, threading.Lock] = {}
    locks_guard = threading.Lock()

    # One limiter per event loop (a server has one; a test client may start several).
    answer_slots: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = (
        weakref.WeakKeyDictionary()
    )

    def slots() -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        if loop not in answer_slots:
            answer_slots[loop] = anyio.CapacityLimiter(max(1, concurrent_answers))
        return answer_slots[loop]

    def lock_for(session_id: str) -> threading.Lock:
        with locks_guard:
            return session_locks.setdefault(session_id, threading.Lock())

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/api/health", summary="Liveness check")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    def answer_question(request: AskRequest) -> dict[str, Any]:
        session_id = request.session or _new_session_id()
        with lock_for(session_id):
            # A given id must exist; a new conversation starts with no history.
            answer = answer_in_session(
                engine,
                sessions,
                session_id,
                request.question,
                history=None if request.session else [],
                must_exist=True,
                replace_last=request.replace_last,
                audience=request.audience,
                mode=request.mode,
                k=request.k,
            )
        payload = _answer_payload(answer)
        payload["session"] = session_id
        return payload

    @app.post(
        "/api/ask",
        summary="Answer a question with numbered citations",
        responses={
            400: {"description": "Malformed request"},
            404: {"description": "Unknown session"},
            422: {"description": "A field has a bad value"},
        },
    )
    async def ask(request: AskRequest) -> dict[str, Any]:
        return await anyio.to_thread.run_sync(answer_question, request, limiter=slots())

    @app.get(
        "/api/sessions/{session_id}",
        summary="The turns of a conversation",
        responses={404: {"description": "Unknown session"}},
    )
    def session_turns(session_id: str) -> dict[str, Any]:
        if not SESSION_ID_PATTERN.match(session_id):
            raise SessionError(f"no conversation named '{session_id[:64]}'")
        turns = sessions.load(session_id)
        return {"session": session_id, "turns": [turn_to_json(turn) for turn in turns]}

    @app.post("/api/search", summary="Ranked passages for a query, best first")
    def search(request: SearchRequest) -> dict[str, Any]:
        hits = engine.search(
            request.query,
            mode=request.mode,
            k=request.k,
            sources=tuple(request.sources),
            min_year=request.min_year,
        )
        return {
            "query": request.query,
            "mode": request.mode,
            "hits": [hit.to_json() for hit in hits],
        }

    _install_openai_routes(app, engine, slots)
    return app


def _install_openai_routes(
    app: FastAPI, engine: AnswerEngine, slots: Callable[[], anyio.CapacityLimiter]
) -> None:
    """GET /v1/models and POST /v1/chat/completions: rag as the model `rag` (openai_api).
    Answers share `slots()`, the bound on questions answered at once, with /api/ask."""
    started = int(time.time())
    recent_replies = openai_api.RecentReplies()

    @app.get("/v1/models", summary="The model this server answers as (OpenAI protocol)")
    def list_models() -> dict[str, Any]:
        return openai_api.model_list(started)

    @app.get("/v1/models/{model_id}", summary="One model (OpenAI protocol)")
    def get_model(model_id: str) -> dict[str, Any]:
        openai_api.check_model(model_id)
        return openai_api.model_card(started)

    # The engine's own limit (answer.max_question_chars), so the refusal comes in the
    # protocol's error shape; an engine without settings (a test's fake) gets the default.
    settings = getattr(engine, "settings", None)
    limit = (settings or Settings()).answer.max_question_chars

    def answer_conversation(request: openai_api.ChatCompletionRequest) -> openai_api.Reply:
        openai_api.check_supported(request)
        question, history = openai_api.read_conversation(
            request.messages, recent_replies.recall, max_question_chars=limit
        )
        # The same call and the same Markdown as `rag ask`.
        answer = engine.ask(question, history=history)
        content = answer_markdown(answer)
        recent_replies.remember(content, answer.as_turn())
        payload = _answer_payload(answer)
        payload.pop("session")  # the client keeps the conversation; no session is saved
        return openai_api.new_reply(content, payload, int(time.time()))

    @app.post(
        "/v1/chat/completions",
        summary="A cited answer to the conversation's last question (OpenAI protocol)",
        response_model=None,
        responses={
            400: {"description": "Malformed request or a parameter rag does not support"},
            401: {"description": "Missing or wrong key (when RAG_API_KEY is set)"},
            404: {"description": "Unknown model"},
        },
    )
    async def chat_completions(
        request: openai_api.ChatCompletionRequest,
    ) -> dict[str, Any] | StreamingResponse:
        # The whole answer, citations enforced, exists before the first byte is sent: a
        # stream never shows a number that does not resolve.
        reply = await anyio.to_thread.run_sync(answer_conversation, request, limiter=slots())
        if request.stream:
            return StreamingResponse(
                openai_api.completion_chunks(reply),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return openai_api.completion(reply)


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    api_key: str | None = None,
) -> None:
    """Load the engine once from `settings` and serve the app on host:port until interrupted.

    Binds to loopback by default. `api_key` (RAG_API_KEY, read by the caller) guards the page and
    the API; when not given, a `settings.api_key` field is used if the settings have one.
    """
    import uvicorn

    from rag.answer import Engine
    from rag.sessions import SessionStore, default_data_dir

    if api_key is None:
        api_key = getattr(settings, "api_key", "") or None
    engine = Engine.load(settings)
    sessions = SessionStore(default_data_dir(settings))
    if host not in {"127.0.0.1", "localhost", "::1"} and not api_key:
        logger.warning(
            "serving on %s without an access key: anyone who can reach this address can use it "
            "(set RAG_API_KEY)",
            host,
        )
    app = create_app(
        engine, sessions, api_key=api_key, concurrent_answers=settings.concurrent_answers
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
