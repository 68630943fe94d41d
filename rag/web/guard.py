"""The web app's guards: one JSON error shape for every failure, the access key, and the
request size limit and security headers. `install_guards(app, api_key)` puts them in place;
rag.web.app builds the routes behind them.

Every error is a JSON object {"error": "<one line>"} with a 4xx or 5xx status; under /v1/ it is
the OpenAI protocol's {"error": {"message", "type", "param", "code"}}, so the SDKs show the
message. Tracebacks go to the server log, never to the client.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    IndexMismatchError,
    IndexMissingError,
    InputError,
    LLMError,
    RagError,
    SessionError,
)
from rag.sessions import TurnNotSaved
from rag.web import openai_api

logger = logging.getLogger("rag.web")

MAX_BODY_BYTES = 64 * 1024  # a question, a few options: anything larger is not a real request
# A chat-completions request carries the whole conversation, earlier answers included.
MAX_CHAT_BODY_BYTES = 1024 * 1024
OPENAI_PREFIX = "/v1/"
KEY_COOKIE = "rag_api_key"
# The page ships everything itself; this policy makes the browser refuse anything else,
# including inline script, so a rendering bug cannot turn document text into code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def install_guards(app: FastAPI, api_key: str | None) -> None:
    """The error handlers, the access key (when `api_key` is given) and, outermost, the size
    limit and the security headers. Middleware added last runs first."""
    _install_error_handlers(app)
    if api_key:
        _install_access_key(app, api_key)
    _install_limits_and_headers(app)


# ---------------------------------------------------------------------------------------------
# Errors: one JSON shape for all of them.


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _error_for(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    """The error in the shape the route's clients read: the OpenAI protocol's under /v1/."""
    if request.url.path.startswith(OPENAI_PREFIX):
        body = openai_api.error_body(message, status=status, param=param, code=code)
        return JSONResponse(body, status_code=status, headers=headers)
    return _error(status, message, headers)


def _describe_validation_errors(errors: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """Turn pydantic's error list into (status, one readable line) without internals."""
    messages: list[str] = []
    for error in errors:
        kind = error.get("type", "")
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        if kind == "json_invalid":
            return 400, "request body is not valid JSON"
        if not location and kind in {"model_attributes_type", "dict_type", "model_type"}:
            return 400, "request body must be a JSON object"
        if not location and kind == "missing":
            return 400, "request body is missing; send a JSON object"
        field_name = ".".join(location) or "request"
        if kind == "missing":
            messages.append(f"{field_name} is required")
        elif kind == "extra_forbidden":
            messages.append(f"{field_name} is not a known field")
        else:
            message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
            if message.startswith(field_name):
                messages.append(message)
                continue
            given = error.get("input")
            if isinstance(given, (str, int, float)) and len(repr(given)) <= 40:
                message = f"{message} (got {given!r})"
            messages.append(f"{field_name}: {message}")
    return 422, "; ".join(messages) or "request is not valid"


def _status_for(error: RagError) -> int:
    if isinstance(error, TurnNotSaved):
        return 503  # answered, but the session database could not take the turn
    if isinstance(error, SessionError):
        return 404
    if isinstance(error, (IndexMissingError, IndexMismatchError)):
        return 503
    if isinstance(error, LLMError):
        return 502
    if isinstance(error, InputError):
        return 400
    return 400


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        status, message = _describe_validation_errors(error.errors())
        if request.url.path.startswith(OPENAI_PREFIX):
            status = 400  # the protocol answers every malformed request with 400
        return _error_for(request, status, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        messages = {404: f"not found: {request.url.path}", 405: "method not allowed"}
        message = messages.get(error.status_code) or str(error.detail)
        return _error_for(request, error.status_code, message, getattr(error, "headers", None))

    @app.exception_handler(RagError)
    async def _rag_error(request: Request, error: RagError) -> JSONResponse:
        if isinstance(error, openai_api.ProtocolError):
            return _error_for(request, error.status, str(error), param=error.param, code=error.code)
        return _error_for(request, _status_for(error), str(error))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
        return _error_for(request, 500, "internal error")


# ---------------------------------------------------------------------------------------------
# The access key.


def _key_matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _presented_key(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get("x-api-key") or request.cookies.get(KEY_COOKIE)


def _key_form(message: str) -> HTMLResponse:
    """A minimal page asking for the key; it submits back to /?key=..."""
    body = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>Access key needed</title><link rel='stylesheet' href='/static/style.css'></head>"
        "<body><main class='key-page'><h1>Access key needed</h1>"
        f"<p>{message}</p>"
        "<form method='get' action='/'><label for='key'>Access key</label> "
        "<input id='key' name='key' type='password' autocomplete='current-password' required> "
        "<button type='submit'>Open</button></form></main></body></html>"
    )
    return HTMLResponse(body, status_code=401)


def _install_access_key(app: FastAPI, api_key: str) -> None:
    open_prefixes = ("/static/", "/api/health")

    @app.middleware("http")
    async def _require_key(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith(open_prefixes):
            return await call_next(request)
        if path == "/":
            query_key = request.query_params.get("key")
            if _key_matches(query_key, api_key):
                response = await call_next(request)
                # The cookie lets a reload work once the page has dropped ?key= from the URL.
                response.set_cookie(KEY_COOKIE, api_key, httponly=True, samesite="strict", path="/")
                return response
            if _key_matches(_presented_key(request), api_key):
                return await call_next(request)
            message = (
                "That key is not right; try again."
                if query_key
                else "This server is protected. Enter the access key you were given."
            )
            return _key_form(message)
        if _key_matches(_presented_key(request), api_key):
            return await call_next(request)
        return _error_for(
            request,
            401,
            "missing or wrong access key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )


def _install_limits_and_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _limit_and_harden(request: Request, call_next: Any) -> Response:
        declared = request.headers.get("content-length")
        limit = (
            MAX_CHAT_BODY_BYTES if request.url.path == "/v1/chat/completions" else MAX_BODY_BYTES
        )
        if declared is not None:
            if not declared.isdigit():
                return _error_for(request, 400, "Content-Length header is not a number")
            if int(declared) > limit:
                return _error_for(request, 413, f"request body is too large (limit {limit} bytes)")
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response
