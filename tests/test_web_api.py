"""The JSON API of `rag serve`, driven through FastAPI's TestClient with a fake engine.

The fake answers like the real orchestrator (numbered citations, related questions) and records
every call, so the tests can check what the web layer hands the engine, e.g. the history of a
continued conversation.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from fastapi.testclient import TestClient

from rag.errors import InputError, LLMError, SessionError
from rag.types import Answer, Citation, Hit, Turn
from rag.web.app import create_app

API_KEY = "s3cret-key"


def make_hit(rank: int, doc_id: str = "nice-ng136/treatment") -> Hit:
    return Hit(
        chunk_id=f"{doc_id}#{rank}",
        doc_id=doc_id,
        text="Offer a thiazide-like diuretic if a calcium-channel blocker is not suitable.",
        score=1.0 / rank,
        rank=rank,
        title="Hypertension in adults",
        section="Treatment > Step 1",
        source="NICE",
        year=2019,
        url="https://www.nice.org.uk/guidance/ng136",
        doi=None,
    )


class FakeEngine:
    """Stands in for rag.answer.Engine: canned answers, recorded calls."""

    def __init__(self, *, delay_s: float = 0.0, failure: Exception | None = None) -> None:
        self.ask_calls: list[dict] = []
        self.search_calls: list[dict] = []
        self.delay_s = delay_s
        self.failure = failure
        self._lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        audience: str | None = None,
        mode: str | None = None,
        k: int | None = None,
        want_decision: bool = False,
        session: str | None = None,
    ) -> Answer:
        with self._lock:
            self.ask_calls.append(
                {"question": question, "history": list(history), "audience": audience,
                 "mode": mode, "k": k, "session": session}
            )
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.failure is not None:
                raise self.failure
            hit = make_hit(1)
            return Answer(
                question=question,
                standalone_question=f"{question} (standalone)",
                answer="### Treatment\nOffer a thiazide-like diuretic [1].",
                bottom_line="Start a thiazide-like diuretic [1].",
                abstained=False,
                citations=(
                    Citation(
                        n=1, doc_id=hit.doc_id, chunk_id=hit.chunk_id, title=hit.title,
                        source=hit.source, year=hit.year, url=hit.url, doi=hit.doi,
                        section=hit.section, quote=hit.text, support=0.9,
                    ),
                ),
                retrieved=(hit, make_hit(2, "other/doc")),
                related_questions=("What if the patient is Black?",),
                timings_ms={"retrieve": 1.0},
                session=session,
                audience=audience or "clinician",
                mode=mode or "hybrid",
            )
        finally:
            with self._lock:
                self.active -= 1

    def search(
        self,
        query: str,
        *,
        mode: str | None = None,
        k: int | None = None,
        sources: Sequence[str] = (),
        min_year: int | None = None,
    ) -> list[Hit]:
        self.search_calls.append(
            {"query": query, "mode": mode, "k": k, "sources": tuple(sources), "min_year": min_year}
        )
        return [make_hit(rank) for rank in range(1, (k or 3) + 1)]


class FakeSessions:
    """Stands in for rag.converse.SessionStore, in memory."""

    def __init__(self) -> None:
        self.turns: dict[str, list[Turn]] = {}

    def load(self, name: str) -> list[Turn]:
        if name not in self.turns:
            raise SessionError(f"no conversation named '{name}'")
        return list(self.turns[name])

    def append(self, name: str, turn: Turn) -> None:
        self.turns.setdefault(name, []).append(turn)

    def replace_last(self, name: str, turn: Turn) -> None:
        self.turns[name][-1] = turn

    def names(self) -> list[str]:
        return sorted(self.turns)

    def delete(self, name: str) -> None:
        self.turns.pop(name, None)


@pytest.fixture()
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture()
def sessions() -> FakeSessions:
    return FakeSessions()


@pytest.fixture()
def client(engine: FakeEngine, sessions: FakeSessions) -> TestClient:
    return TestClient(create_app(engine, sessions), raise_server_exceptions=False)


def assert_clean_error(response, status: int, *fragments: str) -> None:
    """A JSON {"error": one line} with `status`, mentioning `fragments`, and no internals."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    message = body["error"]
    assert "\n" not in message
    assert "Traceback" not in response.text and 'File "' not in response.text
    assert "pydantic" not in response.text and "errors.pydantic.dev" not in response.text
    for fragment in fragments:
        assert fragment in message, message


# ------------------------------------------------------------------------------------------------
# Asking


def test_ask_returns_the_answer_json_with_a_new_session(client, engine, sessions):
    response = client.post("/api/ask", json={"question": "First-line drug for hypertension?"})
    assert response.status_code == 200
    body = response.json()
    for key in ("question", "standalone_question", "session", "bottom_line", "answer",
                "abstained", "citations", "retrieved", "related_questions", "timings_ms",
                "audience", "mode", "nearest_sources", "disclaimer"):
        assert key in body, key
    assert body["session"]
    assert body["bottom_line"] == "Start a thiazide-like diuretic [1]."
    citation = body["citations"][0]
    assert citation["n"] == 1 and citation["title"] == "Hypertension in adults"
    assert citation["quote"].startswith("Offer a thiazide-like")
    assert [source["doc_id"] for source in body["nearest_sources"]] == [
        "nice-ng136/treatment", "other/doc"
    ]
    assert "not a substitute for clinical judgement" in body["disclaimer"]
    # The engine saw no history and the id the web layer created; the turn was saved.
    assert engine.ask_calls[0]["history"] == []
    assert engine.ask_calls[0]["session"] == body["session"]
    saved = sessions.turns[body["session"]]
    assert [turn.question for turn in saved] == ["First-line drug for hypertension?"]
    assert saved[0].cited_doc_ids == ("nice-ng136/treatment",)


def test_follow_up_in_the_same_session_passes_the_history(client, engine):
    first = client.post("/api/ask", json={"question": "First-line drug for hypertension?"}).json()
    second = client.post(
        "/api/ask", json={"question": "And if over 55?", "session": first["session"]}
    )
    assert second.status_code == 200
    assert second.json()["session"] == first["session"]
    history = engine.ask_calls[1]["history"]
    assert [turn.question for turn in history] == ["First-line drug for hypertension?"]
    assert history[0].answer == "### Treatment\nOffer a thiazide-like diuretic [1]."
    assert history[0].standalone_question == "First-line drug for hypertension? (standalone)"


def test_switching_audience_rewrites_the_latest_turn_instead_of_adding_one(
    client, engine, sessions
):
    # The page's audience switch sends the latest question again for the new reader.
    first = client.post("/api/ask", json={"question": "First-line drug for hypertension?"}).json()
    session = first["session"]
    client.post("/api/ask", json={"question": "And if over 55?", "session": session})

    again = client.post(
        "/api/ask",
        json={"question": "And if over 55?", "session": session, "audience": "patient",
              "replace_last": True},
    )

    assert again.status_code == 200, again.text
    assert again.json()["audience"] == "patient" and again.json()["session"] == session
    # Answered in the light of the turns before it, not of its own earlier answer...
    assert [turn.question for turn in engine.ask_calls[-1]["history"]] == [
        "First-line drug for hypertension?"
    ]
    # ...and saved in its place: the conversation still has two turns.
    assert [turn.question for turn in sessions.turns[session]] == [
        "First-line drug for hypertension?",
        "And if over 55?",
    ]


def test_replacing_needs_a_session(client, engine):
    response = client.post(
        "/api/ask", json={"question": "And if over 55?", "replace_last": True}
    )
    assert_clean_error(response, 422, "replace_last needs the session")
    assert engine.ask_calls == []


def test_separate_questions_get_separate_sessions(client):
    first = client.post("/api/ask", json={"question": "Question one?"}).json()
    second = client.post("/api/ask", json={"question": "Question two?"}).json()
    assert first["session"] != second["session"]


def test_audience_mode_and_k_reach_the_engine(client, engine):
    response = client.post(
        "/api/ask",
        json={"question": "Is it safe?", "audience": "patient", "mode": "lexical", "k": 4},
    )
    assert response.status_code == 200
    assert response.json()["audience"] == "patient"
    call = engine.ask_calls[0]
    assert (call["audience"], call["mode"], call["k"]) == ("patient", "lexical", 4)


def test_question_is_trimmed_before_it_reaches_the_engine(client, engine):
    client.post("/api/ask", json={"question": "   What dose?  \n"})
    assert engine.ask_calls[0]["question"] == "What dose?"


# ------------------------------------------------------------------------------------------------
# Bad requests


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_refused(client, engine, question):
    response = client.post("/api/ask", json={"question": question})
    assert_clean_error(response, 422, "question is empty")
    assert engine.ask_calls == []


def test_oversized_question_refused_by_the_engine_is_a_clean_400(sessions):
    # The limit is the library's (answer.max_question_chars, tested with the real engine in
    # test_cli.py); the web layer passes its refusal on as one line.
    refusing = FakeEngine(
        failure=InputError("the question is too long (2001 characters; the limit is 2000)")
    )
    client = TestClient(create_app(refusing, sessions), raise_server_exceptions=False)
    response = client.post("/api/ask", json={"question": "x" * 2001})
    assert_clean_error(response, 400, "question is too long", "2001", "2000")


def test_question_at_the_limit_is_accepted(client):
    assert client.post("/api/ask", json={"question": "x" * 2000}).status_code == 200


def test_missing_question_is_named(client):
    assert_clean_error(client.post("/api/ask", json={"session": None}), 422, "question is required")


def test_question_of_the_wrong_type_is_named(client):
    assert_clean_error(client.post("/api/ask", json={"question": 42}), 422, "question")


def test_malformed_json_is_a_400(client):
    response = client.post(
        "/api/ask", content=b'{"question": "unclosed', headers={"Content-Type": "application/json"}
    )
    assert_clean_error(response, 400, "not valid JSON")


def test_json_that_is_not_an_object_is_a_400(client):
    assert_clean_error(client.post("/api/ask", json=["a", "list"]), 400, "JSON object")


def test_missing_body_is_a_400(client):
    response = client.post("/api/ask", headers={"Content-Type": "application/json"})
    assert_clean_error(response, 400, "body")


def test_huge_body_is_refused_before_parsing(client, engine):
    response = client.post("/api/ask", json={"question": "x" * 100_000})
    assert_clean_error(response, 413, "too large")
    assert engine.ask_calls == []


@pytest.mark.parametrize(
    ("field", "value"), [("audience", "surgeon"), ("mode", "semantic"), ("k", 0), ("k", 500)]
)
def test_bad_option_values_are_named(client, engine, field, value):
    response = client.post("/api/ask", json={"question": "Dose?", field: value})
    assert_clean_error(response, 422, field)
    assert engine.ask_calls == []


def test_bad_audience_lists_the_choices(client):
    response = client.post("/api/ask", json={"question": "Dose?", "audience": "surgeon"})
    assert_clean_error(response, 422, "clinician", "patient")


def test_unknown_field_is_named(client):
    response = client.post("/api/ask", json={"question": "Dose?", "audiense": "patient"})
    assert_clean_error(response, 422, "audiense is not a known field")


def test_unknown_session_is_a_404(client, engine):
    response = client.post("/api/ask", json={"question": "And then?", "session": "web-nope"})
    assert_clean_error(response, 404, "web-nope")
    assert engine.ask_calls == []


@pytest.mark.parametrize("session", ["../../etc/passwd", "a/b", "", "x" * 101, "a.b"])
def test_session_ids_that_are_not_ids_are_refused(client, engine, session):
    response = client.post("/api/ask", json={"question": "And then?", "session": session})
    assert_clean_error(response, 422, "session")
    assert engine.ask_calls == []


def test_engine_errors_become_their_one_line_message(sessions):
    failing = FakeEngine(
        failure=LLMError("LLM endpoint http://127.0.0.1:9/v1 timed out after 3 retries")
    )
    client = TestClient(create_app(failing, sessions), raise_server_exceptions=False)
    response = client.post("/api/ask", json={"question": "Dose?"})
    assert_clean_error(response, 502, "timed out after 3 retries")


def test_unexpected_errors_are_a_generic_500_and_logged(sessions, caplog):
    broken = FakeEngine(failure=ZeroDivisionError("secret internal detail"))
    client = TestClient(create_app(broken, sessions), raise_server_exceptions=False)
    with caplog.at_level("ERROR", logger="rag.web"):
        response = client.post("/api/ask", json={"question": "Dose?"})
    assert_clean_error(response, 500)
    assert response.json() == {"error": "internal error"}
    assert "secret internal detail" not in response.text
    assert any("secret internal detail" in str(record.exc_info) for record in caplog.records)


def test_unknown_route_and_wrong_method_are_json(client):
    assert_clean_error(client.get("/api/nothing-here"), 404, "/api/nothing-here")
    assert_clean_error(client.get("/api/ask"), 405, "method not allowed")


# ------------------------------------------------------------------------------------------------
# Sessions and search


def test_session_endpoint_lists_the_turns(client):
    first = client.post("/api/ask", json={"question": "First?"}).json()
    client.post("/api/ask", json={"question": "Second?", "session": first["session"]})
    response = client.get(f"/api/sessions/{first['session']}")
    assert response.status_code == 200
    body = response.json()
    assert body["session"] == first["session"]
    assert [turn["question"] for turn in body["turns"]] == ["First?", "Second?"]
    assert body["turns"][0]["cited_doc_ids"] == ["nice-ng136/treatment"]


def test_unknown_session_endpoint_is_a_404(client):
    assert_clean_error(client.get("/api/sessions/web-unknown"), 404, "web-unknown")
    assert_clean_error(client.get("/api/sessions/..%2F..%2Fsecrets"), 404)


def test_search_returns_ranked_hits_and_passes_filters(client, engine):
    response = client.post(
        "/api/search",
        json={"query": "thiazide", "k": 2, "mode": "dense", "sources": ["NICE"], "min_year": 2015},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "thiazide"
    assert [hit["rank"] for hit in body["hits"]] == [1, 2]
    assert body["hits"][0]["title"] == "Hypertension in adults"
    assert engine.search_calls == [
        {"query": "thiazide", "mode": "dense", "k": 2, "sources": ("NICE",), "min_year": 2015}
    ]


def test_search_validates_its_input(client, engine):
    assert_clean_error(client.post("/api/search", json={"query": " "}), 422, "query is empty")
    assert_clean_error(client.post("/api/search", json={"query": "x", "k": -1}), 422, "k")
    not_a_list = client.post("/api/search", json={"query": "x", "sources": "NICE"})
    assert_clean_error(not_a_list, 422, "sources")
    assert engine.search_calls == []


# ------------------------------------------------------------------------------------------------
# The page, OpenAPI, the access key


def test_page_and_static_files_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert 'src="/static/app.js"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    # Nothing on the page points outside the server.
    for name in ("/", "/static/app.js", "/static/style.css"):
        text = client.get(name).text
        assert "http://" not in text.replace("https?:\\/\\/", "")
        assert "//cdn" not in text and "fonts.googleapis" not in text


def test_openapi_describes_the_endpoints(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/ask", "/api/search", "/api/sessions/{session_id}"} <= set(paths)
    ask_schema = response.json()["components"]["schemas"]["AskRequest"]
    assert ask_schema["properties"]["audience"]["anyOf"][0]["enum"] == ["clinician", "patient"]


@pytest.fixture()
def guarded(engine, sessions) -> TestClient:
    return TestClient(create_app(engine, sessions, api_key=API_KEY), raise_server_exceptions=False)


def test_api_key_is_required_when_set(guarded, engine):
    response = guarded.post("/api/ask", json={"question": "Dose?"})
    assert_clean_error(response, 401, "access key")
    wrong = guarded.post("/api/ask", json={"question": "Dose?"}, headers={"X-API-Key": "nope"})
    assert_clean_error(wrong, 401)
    assert_clean_error(guarded.get("/openapi.json"), 401)
    assert_clean_error(guarded.post("/api/search", json={"query": "x"}), 401)
    assert engine.ask_calls == [] and engine.search_calls == []


@pytest.mark.parametrize(
    "headers", [{"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}]
)
def test_api_key_is_accepted_in_either_header(guarded, headers):
    assert guarded.post("/api/ask", json={"question": "Dose?"}, headers=headers).status_code == 200


def test_page_asks_for_the_key_and_remembers_it(guarded):
    refused = guarded.get("/")
    assert refused.status_code == 401
    assert "Access key" in refused.text and "app.js" not in refused.text
    assert guarded.get("/?key=wrong").status_code == 401
    opened = guarded.get(f"/?key={API_KEY}")
    assert opened.status_code == 200 and "app.js" in opened.text
    # The cookie set on the first visit lets a reload without ?key= work.
    assert guarded.get("/").status_code == 200
    assert guarded.get("/static/app.js").status_code == 200
    assert guarded.get("/api/health").json() == {"status": "ok"}


def test_concurrent_asks_run_in_parallel(sessions):
    slow = FakeEngine(delay_s=0.3)
    client = TestClient(create_app(slow, sessions), raise_server_exceptions=False)
    statuses: list[int] = []

    def ask_one(index: int) -> None:
        statuses.append(client.post("/api/ask", json={"question": f"Q{index}?"}).status_code)

    threads = [threading.Thread(target=ask_one, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert slow.max_active > 1  # two questions were being answered at the same moment


def test_concurrent_asks_are_bounded_by_concurrent_answers(sessions):
    # Fifty questions at once must not mean fifty threads answering: each keeps its own memory
    # pools (evals/load_web.py measures the server's RSS); the rest wait their turn.
    slow = FakeEngine(delay_s=0.2)
    app = create_app(slow, sessions, concurrent_answers=2)
    statuses: list[int] = []
    # One event loop serves every request, as under uvicorn.
    with TestClient(app, raise_server_exceptions=False) as client:

        def ask_one(index: int) -> None:
            response = client.post("/api/ask", json={"question": f"Q{index}?"})
            statuses.append(response.status_code)

        threads = [threading.Thread(target=ask_one, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 8
    assert slow.max_active == 2
