"""Fakes shared by the tests: an OpenAI-compatible chat-completions server on 127.0.0.1.

A real HTTP server, so the `openai` SDK, its retries and its timeouts run as they do
against a real endpoint; only the replies are scripted. Tests use it through the
`openai_server` fixture in conftest.py.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    """Speaks POST /v1/chat/completions; replies come from a queue of scripted steps and every
    request body is recorded.

    The answerability check (a one-token request) is kept apart: it is recorded in `checks`
    and answered from `check_replies`, P(yes) values (0.9 when none is queued), so the
    scripted answers meet only the requests that want an answer. With `rejects_logprobs` the
    server answers a request for log-probabilities with HTTP 400, as endpoints without them
    do, and a check without them gets the likelier word alone."""

    def __init__(self) -> None:
        self.steps: deque[tuple[str, object]] = deque()
        self.requests: list[dict] = []
        self.paths: list[str] = []
        self.checks: list[dict] = []
        self.check_replies: deque[float] = deque()
        self.rejects_logprobs = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if body.get("logprobs") and server.rejects_logprobs:
                    server.checks.append(body)
                    self._send(400, {"error": {"message": "logprobs is not supported"}})
                    return
                if body.get("max_tokens") == 1:
                    server.checks.append(body)
                    reply = server.check_replies.popleft() if server.check_replies else 0.9
                    payload = check_completion(reply)
                    if not body.get("logprobs"):
                        del payload["choices"][0]["logprobs"]
                    self._send(200, payload)
                    return
                server.requests.append(body)
                server.paths.append(self.path)
                kind, value = server.steps.popleft() if server.steps else ("reply", "")
                try:
                    if kind == "sleep":
                        time.sleep(float(value))
                        self._send(200, completion("too late"))
                    elif kind == "status":
                        self._send(int(value), {"error": {"message": f"scripted {value}"}})
                    elif self.path != "/v1/chat/completions":
                        self._send(404, {"error": {"message": "not found"}})
                    elif kind == "cut":  # the reply the token limit stopped
                        self._send(200, completion(str(value), finish_reason="length"))
                    else:
                        self._send(200, completion(str(value), model=body.get("model", "")))
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to answer

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def enqueue(self, kind: str, value: object) -> None:
        self.steps.append((kind, value))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(content: str, model: str = "test-model", finish_reason: str = "stop") -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


def check_completion(p_yes: float) -> dict:
    """A one-token reply to the answerability check, as llama.cpp's server sends it: the word
    the model chose and the log-probabilities of its top candidates."""
    candidates = [("Yes", p_yes), ("No", 1.0 - p_yes)]
    payload = completion(max(candidates, key=lambda pair: pair[1])[0], finish_reason="length")
    payload["choices"][0]["logprobs"] = {
        "content": [
            {
                "token": payload["choices"][0]["message"]["content"],
                "logprob": math.log(max(p_yes, 1.0 - p_yes)),
                "top_logprobs": [
                    {"token": token, "logprob": math.log(max(p, 1e-9))} for token, p in candidates
                ],
            }
        ]
    }
    return payload
