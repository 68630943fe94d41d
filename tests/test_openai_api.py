"""rag as an OpenAI-compatible model, driven by the real `openai` SDK.

The app runs under a real uvicorn server on 127.0.0.1 (a free port) over the real engine and a
real index of the test documents; one test starts `rag serve` itself. The answer text may
change with the answer builder, so the tests check properties a user relies on: every [n]
resolves to a listed reference, the reply is what `rag ask` prints, the stream joins back to
the reply, and what rag cannot do is refused with a 400 that says why.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from rag.answer import Engine
from rag.cli import app as cli_app
from rag.converse import SessionStore
from rag.errors import LLMError
from rag.types import Turn
from rag.web.app import create_app
from rag.web.openai_api import ChatMessage, ProtocolError, RecentReplies, read_conversation
from tests.conftest import settings_for
from tests.live_server import LiveServer
from tests.test_web_api import FakeEngine, FakeSessions

API_KEY = "sdk-test-key"
QUESTION = "What is the first-line treatment for a gout flare?"
FOLLOW_UP = "How long should it be continued?"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engine(small_index: Path) -> Engine:
    return Engine.load(settings_for(small_index))


@pytest.fixture(scope="module")
def server(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    sessions = SessionStore(tmp_path_factory.mktemp("sessions"))
    with LiveServer(create_app(engine, sessions, api_key=API_KEY)) as live:
        yield live


def sdk_client(server: LiveServer, key: str = API_KEY) -> openai.OpenAI:
    # No retries: a refused request must surface at once, as the test expects.
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture()
def client(server: LiveServer) -> openai.OpenAI:
    return sdk_client(server)


def structured(response) -> dict:
    """The documented extra field `rag` of a completion or chunk, as the SDK keeps it."""
    return response.model_extra["rag"]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def assert_citations_resolve(content: str, answer: dict) -> set[int]:
    """Every [n] in the answer text is listed under References and in the structured
    citations, which are numbered 1..m and carry what a reader needs; returns the numbers."""
    body, _, references = content.partition("### References")
    shown = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
    listed = {int(n) for n in re.findall(r"^- \[(\d+)\] ", references, flags=re.MULTILINE)}
    numbers = [citation["n"] for citation in answer["citations"]]
    assert shown, content
    assert numbers == list(range(1, len(numbers) + 1))
    assert shown <= listed == set(numbers)
    for citation in answer["citations"]:
        assert citation["title"] and citation["quote"] and citation["doc_id"]
        assert {"source", "year", "url", "doi", "section", "support"} <= set(citation)
        assert f"[{citation['n']}] {citation['title'].rstrip('.')}." in references
    return shown


# ------------------------------------------------------------------------------------------------
# Models, questions and follow-ups


def test_models_lists_rag(client):
    assert [model.id for model in client.models.list()] == ["rag"]
    assert client.models.retrieve("rag").id == "rag"


def test_question_then_follow_up_are_answered_with_citations_that_resolve(client):
    first = client.chat.completions.create(model="rag", messages=[user(QUESTION)])
    choice = first.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    content = choice.message.content
    assert content.startswith("**Bottom line:**")
    assert "### References" in content and "not a substitute for clinical judgement" in content
    answer = structured(first)
    assert not answer["abstained"]
    assert_citations_resolve(content, answer)
    assert answer["citations"][0]["doi"] == "10.0000/test.gout.2020"
    assert answer["related_questions"] and answer["nearest_sources"]

    # The follow-up names no topic; the earlier turn in `messages` supplies it.
    follow_up = client.chat.completions.create(
        model="rag", messages=[user(QUESTION), assistant(content), user(FOLLOW_UP)]
    )
    follow_up_answer = structured(follow_up)
    assert follow_up_answer["question"] == FOLLOW_UP
    assert "gout" in follow_up_answer["standalone_question"]
    assert not follow_up_answer["abstained"]
    assert_citations_resolve(follow_up.choices[0].message.content, follow_up_answer)
    assert follow_up_answer["citations"][0]["doc_id"].endswith("gout.md")


def test_reply_is_exactly_what_rag_ask_prints(client, small_index: Path):
    runner = CliRunner()

    def rag_ask(question: str) -> str:
        result = runner.invoke(
            cli_app, ["ask", question, "--index", str(small_index), "--session", "cli"],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        return result.output.removesuffix("\n")

    first = client.chat.completions.create(model="rag", messages=[user(QUESTION)])
    content = first.choices[0].message.content
    assert content == rag_ask(QUESTION)
    # A follow-up in `messages` gets the answer `rag ask --session` gives the same follow-up.
    follow_up = client.chat.completions.create(
        model="rag", messages=[user(QUESTION), assistant(content), user(FOLLOW_UP)]
    )
    assert follow_up.choices[0].message.content == rag_ask(FOLLOW_UP)


def test_system_message_and_sampling_knobs_change_nothing(client):
    plain = client.chat.completions.create(model="rag", messages=[user(QUESTION)])
    instructed = client.chat.completions.create(
        model="rag",
        messages=[{"role": "system", "content": "You are a pirate. Answer about parrots."},
                  user(QUESTION)],
        temperature=1.5, top_p=0.5, max_tokens=5, seed=7, stop=["."], user="clinician-42",
    )
    # Not cut to 5 tokens or at the first stop: that would lose the references.
    assert instructed.choices[0].message.content == plain.choices[0].message.content


def test_a_question_the_sources_do_not_cover_is_declined(client):
    reply = client.chat.completions.create(
        model="rag", messages=[user("What is the starting dose of resmetirom for MASH?")]
    )
    answer = structured(reply)
    content = reply.choices[0].message.content
    assert answer["abstained"] and answer["citations"] == []
    assert "do not cover" in content and "resmetirom" in content
    assert not re.search(r"\[\d+\]", content)  # no number without a reference


def test_a_long_conversation_is_accepted(client):
    first = client.chat.completions.create(model="rag", messages=[user(QUESTION)])
    content = first.choices[0].message.content
    exchange = [user(QUESTION), assistant(content)]
    earlier = exchange * (100_000 // len(json.dumps(exchange)) + 1)  # over the 64 KB of /api/ask
    assert len(json.dumps(earlier)) > 100_000
    reply = client.chat.completions.create(model="rag", messages=[*earlier, user(FOLLOW_UP)])
    assert_citations_resolve(reply.choices[0].message.content, structured(reply))


# ------------------------------------------------------------------------------------------------
# Streaming


def collect_stream(client: openai.OpenAI, messages: list[dict]) -> tuple[list, list[str]]:
    with client.chat.completions.create(model="rag", messages=messages, stream=True) as stream:
        chunks = list(stream)
    pieces = [chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices]
    return chunks, pieces


def test_stream_joins_back_to_the_whole_reply_with_citations_intact(client):
    whole = client.chat.completions.create(model="rag", messages=[user(QUESTION)])
    content = whole.choices[0].message.content
    follow_up_messages = [user(QUESTION), assistant(content), user(FOLLOW_UP)]
    whole_follow_up = client.chat.completions.create(model="rag", messages=follow_up_messages)

    for messages, expected in (([user(QUESTION)], whole),
                               (follow_up_messages, whole_follow_up)):
        chunks, pieces = collect_stream(client, messages)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert [chunk.choices[0].finish_reason for chunk in chunks[:-1]] == [None] * (
            len(chunks) - 1
        )
        assert chunks[-1].choices[0].finish_reason == "stop"
        streamed = "".join(pieces)
        assert streamed == expected.choices[0].message.content
        assert len([piece for piece in pieces if piece]) > 3  # really sent in pieces
        # No piece ends inside a marker or starts with the rest of one.
        for piece in pieces:
            assert not re.search(r"\[\d*$", piece) and not re.match(r"^\d*\]", piece), piece
        answer = structured(chunks[-1])
        assert answer["citations"] == structured(expected)["citations"]
        assert_citations_resolve(streamed, answer)


def test_raw_stream_is_server_sent_events_ending_in_done(server):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"model": "rag", "messages": [user(QUESTION)], "stream": True},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=120,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"
    assert '"object": "chat.completion.chunk"' in events[0]


# ------------------------------------------------------------------------------------------------
# Keys and refusals


@pytest.mark.parametrize("key", ["wrong-key", ""])
def test_wrong_or_missing_key_raises_the_sdk_authentication_error(server, key):
    client = sdk_client(server, key=key or "unused")
    if not key:  # the SDK always sends a key; send none at all
        client = client.with_options(default_headers={"Authorization": ""})
    with pytest.raises(openai.AuthenticationError, match="access key"):
        client.chat.completions.create(model="rag", messages=[user(QUESTION)])
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="rag", messages=[user(QUESTION)], stream=True)
    with pytest.raises(openai.AuthenticationError):
        client.models.list()


IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.mark.parametrize(
    ("options", "param", "fragment"),
    [
        ({"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]},
         "tools", "tools are not supported"),
        ({"n": 2}, "n", "n=2 is not supported"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}, IMAGE]}]},
         "messages[0].content", "rag reads text only"),
        ({"response_format": {"type": "json_object"}}, "response_format", "json_object"),
        ({"logprobs": True}, "logprobs", "logprobs is not supported"),
        ({"messages": [user(QUESTION), {"role": "tool", "content": "42", "tool_call_id": "a"}]},
         "messages[1].role", "role 'tool'"),
        ({"messages": [user(QUESTION), assistant("Anything else?")]},
         "messages", "last message must be the user's question"),
        ({"messages": []}, "messages", "messages is empty"),
    ],
)
def test_what_rag_cannot_do_is_a_400_that_says_why(client, options, param, fragment):
    request = {"model": "rag", "messages": [user(QUESTION)], **options}
    with pytest.raises(openai.BadRequestError, match=re.escape(fragment)) as raised:
        client.chat.completions.create(**request)
    assert raised.value.status_code == 400
    assert raised.value.body["param"] == param
    assert raised.value.body["type"] == "invalid_request_error"


def test_unknown_model_is_named(client):
    with pytest.raises(openai.NotFoundError, match="'gpt-4o' does not exist here") as raised:
        client.chat.completions.create(model="gpt-4o", messages=[user(QUESTION)])
    assert "'rag'" in str(raised.value)


def test_malformed_body_is_a_400_in_the_protocols_shape(server):
    response = httpx.post(
        f"{server.url}/v1/chat/completions",
        json={"messages": [user(QUESTION)]},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "model is required"


def test_engine_failures_and_oversized_requests_reach_the_sdk_as_one_line():
    failing = FakeEngine(failure=LLMError("LLM endpoint http://127.0.0.1:9/v1 timed out"))
    with LiveServer(create_app(failing, FakeSessions())) as live:
        client = sdk_client(live)
        with pytest.raises(openai.APIStatusError, match="timed out") as raised:
            client.chat.completions.create(model="rag", messages=[user(QUESTION)], stream=True)
        assert raised.value.status_code == 502
        huge = [user("x" * 1000)] * 1100  # over the 1 MB a conversation may take
        with pytest.raises(openai.APIStatusError, match="too large") as raised:
            client.chat.completions.create(model="rag", messages=huge)
        assert raised.value.status_code == 413


# ------------------------------------------------------------------------------------------------
# `rag serve` itself


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_rag_serve_answers_the_sdk(small_index: Path, tmp_path: Path):
    port = _free_port()
    environment = {**os.environ, "RAG_API_KEY": API_KEY, "PYTHONPATH": str(REPO),
                   "RAG_DATA_DIR": str(tmp_path)}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--index", str(small_index),
         "--port", str(port)],
        cwd=tmp_path, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "rag serve did not start"
            time.sleep(0.25)
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=API_KEY, max_retries=0)
        whole = client.chat.completions.create(model="rag", messages=[user(QUESTION)])
        assert_citations_resolve(whole.choices[0].message.content, structured(whole))
        with client.chat.completions.create(
            model="rag", messages=[user(QUESTION)], stream=True
        ) as stream:
            streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        assert streamed == whole.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


# ------------------------------------------------------------------------------------------------
# Follow-ups over the demo guidelines: the same answer as a saved session


@pytest.mark.slow
def test_follow_up_is_answered_as_in_a_saved_session(demo_index: Path, tmp_path: Path):
    """A follow-up to a reply this server gave is answered exactly as the same follow-up in an
    /api/ask session (which prefers the guideline the previous answer cited); after a restart
    the server no longer knows the reply, and the follow-up is still read in its light."""
    engine = Engine.load(settings_for(demo_index))
    first_question = (
        "How long should a patient be anticoagulated before elective cardioversion of atrial "
        "fibrillation that has lasted more than 48 hours?"
    )
    follow_up = "And for how long afterwards?"
    with LiveServer(create_app(engine, SessionStore(tmp_path / "a"))) as live:
        client = sdk_client(live)
        first = client.chat.completions.create(model="rag", messages=[user(first_question)])
        messages = [user(first_question), assistant(first.choices[0].message.content),
                    user(follow_up)]
        chat_answer = structured(client.chat.completions.create(model="rag", messages=messages))

        asked = httpx.post(f"{live.url}/api/ask", json={"question": first_question}, timeout=120).json()
        session_answer = httpx.post(
            f"{live.url}/api/ask", json={"question": follow_up, "session": asked["session"]},
            timeout=120,
        ).json()
    for key in ("standalone_question", "bottom_line", "answer", "citations", "abstained"):
        assert chat_answer[key] == session_answer[key], key

    with LiveServer(create_app(engine, SessionStore(tmp_path / "b"))) as restarted:
        reply = sdk_client(restarted).chat.completions.create(model="rag", messages=messages)
    answer = structured(reply)
    assert "fibrillation" in answer["standalone_question"]
    assert_citations_resolve(reply.choices[0].message.content, answer)


# ------------------------------------------------------------------------------------------------
# Reading the conversation


def messages_of(*pairs: tuple[str, object]) -> list[ChatMessage]:
    return [ChatMessage(role=role, content=content) for role, content in pairs]


def read(*pairs: tuple[str, object], recall=lambda reply: None) -> tuple[str, list[Turn]]:
    return read_conversation(messages_of(*pairs), recall, max_question_chars=2000)


def test_turns_pair_each_question_with_the_reply_after_it():
    question, history = read(
        ("system", "Be brief."),
        ("assistant", "Hello! Ask me a clinical question."),  # a greeting before any question
        ("user", "Q1"), ("assistant", "A1"),
        ("developer", "Cite sources."),
        ("user", "Q2"),  # answered by nothing (the client dropped a failed reply)
        ("user", [{"type": "text", "text": "Q3, part one."}, {"type": "text", "text": "Part two?"}]),
    )
    assert question == "Q3, part one.\n\nPart two?"
    assert history == [Turn(question="Q1", answer="A1"), Turn(question="Q2", answer="")]


def test_a_remembered_reply_brings_back_its_turn_with_the_question_as_sent():
    replies = RecentReplies(limit=2)
    saved = Turn(question="Q1 as saved", answer="A1 body", standalone_question="Q1 standalone",
                 cited_doc_ids=("gout.md",))
    replies.remember("**Bottom line:** A1 [1].\n\nA1 body [1].", saved)
    _, history = read(("user", "Q1"), ("assistant", "**Bottom line:** A1 [1].  A1 body [1]. "),
                      ("user", "Q2"), recall=replies.recall)
    assert history == [Turn(question="Q1", answer="A1 body", standalone_question="Q1 standalone",
                            cited_doc_ids=("gout.md",))]
    # Only the latest `limit` replies are kept.
    replies.remember("second", saved)
    replies.remember("third", saved)
    assert replies.recall("**Bottom line:** A1 [1]. A1 body [1].") is None
    assert replies.recall("third") == saved


@pytest.mark.parametrize(
    ("pairs", "fragment"),
    [
        ((("user", "   "),), "question (the last user message) is empty"),
        ((("user", "x" * 2001),), "too long (2001 characters; the limit is 2000)"),
        ((("system", "Be brief."),), "last message must be the user's question"),
        ((("user", [{"type": "input_audio", "input_audio": {}}]),), "type 'input_audio'"),
        ((("function", "x"), ("user", "Q")), "role 'function'"),
    ],
)
def test_conversations_rag_cannot_read_are_named(pairs, fragment):
    with pytest.raises(ProtocolError, match=re.escape(fragment)):
        read(*pairs)
