"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (no mocks of the SDK)."""

from __future__ import annotations

import socket
import threading

import pytest

from rag.config import LLMSettings
from rag.errors import LLMError
from rag.generate.citations import enforce_citations
from rag.generate.openai_backend import OpenAIGenerator, endpoint_url
from rag.generate.prompts import REFUSAL_SENTENCE
from rag.types import Hit

HITS = [
    Hit(
        chunk_id="gout#0",
        doc_id="gout",
        text="Colchicine is first-line therapy for a gout flare.",
        score=0.9,
        rank=1,
        title="Management of Gout Flares",
        section="Acute flare treatment",
    ),
    Hit(
        chunk_id="htn#0",
        doc_id="htn",
        text="A target below 130/80 mmHg is recommended.",
        score=0.5,
        rank=2,
        title="Hypertension in Adults",
        section="Treatment thresholds",
    ),
]
QUESTION = "How should a gout flare be treated?"


def generator_for(url: str, **overrides) -> OpenAIGenerator:
    values = {
        "base_url": url,
        "model": "test-model",
        "timeout_s": 5.0,
        "retries": 2,
        **overrides,
    }
    return OpenAIGenerator(LLMSettings(**values))


def test_a_server_error_is_retried_and_the_answer_returned(openai_server):
    openai_server.enqueue("status", 500)
    openai_server.enqueue("reply", "Bottom line: Colchicine is first-line [1].")
    draft = generator_for(openai_server.url).generate(QUESTION, HITS)
    assert draft.text == "Bottom line: Colchicine is first-line [1]."
    assert not draft.refused
    assert len(openai_server.requests) == 2


def test_rate_limit_is_retried(openai_server):
    openai_server.enqueue("status", 429)
    openai_server.enqueue("reply", "Bottom line: Colchicine [1].")
    assert generator_for(openai_server.url).generate(QUESTION, HITS).text == "Bottom line: Colchicine [1]."


def test_a_timeout_ends_in_one_line_llm_error_naming_the_endpoint(openai_server):
    for _ in range(2):
        openai_server.enqueue("sleep", 1.5)
    generator = generator_for(openai_server.url, timeout_s=0.3, retries=1)
    with pytest.raises(LLMError) as raised:
        generator.generate(QUESTION, HITS)
    message = str(raised.value)
    assert openai_server.url in message
    assert "2 attempts" in message and "0.3 s" in message
    assert "\n" not in message
    assert len(openai_server.requests) == 2


def test_a_server_that_keeps_failing_ends_in_one_line_after_the_retries(openai_server):
    for _ in range(3):
        openai_server.enqueue("status", 503)
    openai_server.enqueue("reply", "Bottom line: never reached [1].")
    with pytest.raises(LLMError) as raised:
        generator_for(openai_server.url, retries=2).generate(QUESTION, HITS)
    message = str(raised.value)
    assert message == (
        f"LLM endpoint {openai_server.url} failed after 3 attempts: HTTP 503 (scripted 503)"
    )
    assert len(openai_server.requests) == 3  # the first try and the two retries, no more


def test_a_rejected_key_fails_at_once_without_retrying(openai_server):
    openai_server.enqueue("status", 401)
    with pytest.raises(LLMError, match="HTTP 401"):
        generator_for(openai_server.url).generate(QUESTION, HITS)
    assert len(openai_server.requests) == 1


def test_connection_refused_is_an_llm_error_not_a_traceback():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMError) as raised:
        generator_for(url, retries=1).generate(QUESTION, HITS)
    message = str(raised.value)
    assert url in message and "2 attempts" in message and "connect" in message


def test_an_invented_citation_number_is_gone_after_enforcement(openai_server):
    openai_server.enqueue("reply", "Bottom line: Colchicine is first-line [1].\n\nBleach cures gout [7].")
    draft = generator_for(openai_server.url).generate(QUESTION, HITS)
    cited = enforce_citations(draft.text, HITS)
    assert "[7]" not in cited.answer
    assert cited.answer == "Bleach cures gout."
    assert [c.doc_id for c in cited.citations] == ["gout"]


def test_a_reply_without_citations_leaves_no_citations(openai_server):
    openai_server.enqueue("reply", "Bottom line: Rest the joint.\n\nIce helps.")
    draft = generator_for(openai_server.url).generate(QUESTION, HITS)
    cited = enforce_citations(draft.text, HITS)
    assert not draft.refused
    assert cited.citations == ()
    assert cited.bottom_line == "Rest the joint."


def test_a_refusal_or_empty_reply_is_refused(openai_server):
    openai_server.enqueue("reply", REFUSAL_SENTENCE)
    openai_server.enqueue("reply", "")
    generator = generator_for(openai_server.url)
    assert generator.generate(QUESTION, HITS).refused
    assert generator.generate(QUESTION, HITS).refused


def test_decision_line_is_parsed_when_asked(openai_server):
    openai_server.enqueue("reply", "Bottom line: Yes, colchicine works [1].\n\n**Decision:** Yes.")
    draft = generator_for(openai_server.url).generate(QUESTION, HITS, want_decision=True)
    assert draft.decision == "yes"
    assert "Decision" not in draft.text
    # The model is asked to put its answer into words first, then decide: asked for the
    # decision before anything else, a small model said "yes" to nearly every question.
    system, user = (message["content"] for message in openai_server.requests[-1]["messages"])
    assert "Right after the bottom line" in system
    assert user.rstrip().endswith('Start with "Bottom line:", then "Decision:".')


def test_the_request_carries_the_system_prompt_and_numbered_passages(openai_server):
    openai_server.enqueue("reply", "Bottom line: Colchicine [1].")
    generator_for(openai_server.url).generate(QUESTION, HITS, audience="patient", want_decision=True)
    (request,) = openai_server.requests
    assert openai_server.paths == ["/v1/chat/completions"]
    assert request["model"] == "test-model"
    system, user = request["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert REFUSAL_SENTENCE in system["content"]
    assert "ignore" in system["content"].lower() and "plain" in system["content"].lower()
    assert "Decision: yes" in system["content"]
    assert QUESTION in user["content"]
    first = user["content"].index('<passage n="1"')
    second = user["content"].index('<passage n="2"')
    assert (
        first < user["content"].index(HITS[0].text) < second < user["content"].index(HITS[1].text)
    )


def test_passages_beyond_the_token_budget_are_not_sent_and_cannot_be_cited(openai_server):
    long_hits = [
        Hit(
            chunk_id=f"d{i}#0",
            doc_id=f"d{i}",
            text=f"Passage {i} about gout. " * 60,
            score=1.0,
            rank=i,
        )
        for i in range(1, 4)
    ]
    openai_server.enqueue("reply", "Bottom line: Gout [1][3].")
    draft = generator_for(openai_server.url, context_tokens=500).generate(QUESTION, long_hits)
    user = openai_server.requests[0]["messages"][1]["content"]
    assert '<passage n="1"' in user and '<passage n="3"' not in user
    assert "[3]" not in draft.text


def test_a_host_only_url_gets_the_v1_path():
    assert endpoint_url("http://localhost:8080/") == "http://localhost:8080/v1"
    assert endpoint_url("http://localhost:8080/v1/") == "http://localhost:8080/v1"
    with pytest.raises(LLMError, match="not an http"):
        endpoint_url("localhost:8080")


def test_one_generator_serves_several_threads(openai_server):
    for _ in range(6):
        openai_server.enqueue("reply", "Bottom line: Colchicine [1].")
    generator = generator_for(openai_server.url)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(generator.generate(QUESTION, HITS).text))
        for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["Bottom line: Colchicine [1]."] * 6


def test_a_reply_cut_by_the_token_limit_loses_its_unfinished_sentence(openai_server):
    cut = (
        "Bottom line: Colchicine is first-line therapy [1].\nDecision: yes\n\n"
        "### Dosing\nLow-dose colchicine is preferred [1]. It causes fewer side eff"
    )
    openai_server.enqueue("cut", cut)
    openai_server.enqueue("reply", cut)  # the same text, finished by the model: left alone
    generator = generator_for(openai_server.url)
    draft = generator.generate(QUESTION, HITS, want_decision=True)
    assert draft.decision == "yes"
    assert draft.text.endswith("Low-dose colchicine is preferred [1].")
    assert "side eff" not in draft.text
    assert generator.generate(QUESTION, HITS, want_decision=True).text.endswith("side eff")


def test_a_cut_reply_ending_in_an_empty_heading_loses_the_heading_too():
    from rag.generate.openai_backend import without_unfinished_sentence

    assert without_unfinished_sentence("Bottom line: Yes [1].\n\n### Evidence:\n1.") == (
        "Bottom line: Yes [1]."
    )
    assert without_unfinished_sentence("no sentence ends here") == "no sentence ends here"


def test_the_answerability_check_reads_p_yes_from_the_log_probabilities(openai_server):
    openai_server.check_replies.extend([0.8, 0.1])
    generator = generator_for(openai_server.url)
    assert generator.answerable(QUESTION, HITS) == pytest.approx(0.8)
    assert generator.answerable(QUESTION, HITS) == pytest.approx(0.1)
    request = openai_server.checks[0]
    assert request["max_tokens"] == 1 and request["top_logprobs"] >= 2
    system, user = (message["content"] for message in request["messages"])
    assert "yes or no" in system
    assert QUESTION in user and "Colchicine is first-line therapy" in user
    assert openai_server.requests == []  # no answer was asked for


def test_an_endpoint_refusing_log_probabilities_is_asked_for_the_word_instead(openai_server):
    """An OpenAI-compatible server without log-probabilities answers the check's request with
    HTTP 400; the check asks again without them, reads the word, and does not ask for them
    again."""
    openai_server.rejects_logprobs = True
    openai_server.check_replies.extend([0.8, 0.2])
    generator = generator_for(openai_server.url)
    assert generator.answerable(QUESTION, HITS) == 1.0
    assert generator.answerable(QUESTION, HITS) == 0.0
    assert [bool(request.get("logprobs")) for request in openai_server.checks] == [True, False, False]


def test_the_check_falls_back_to_the_word_when_the_endpoint_sends_no_log_probabilities():
    from types import SimpleNamespace

    from rag.generate.openai_backend import yes_probability

    def choice(word: str) -> SimpleNamespace:
        return SimpleNamespace(logprobs=None, message=SimpleNamespace(content=word))

    assert yes_probability(choice("Yes.")) == 1.0
    assert yes_probability(choice(" no")) == 0.0
    # A reply that is neither word decides nothing: the coverage gate alone stands.
    assert yes_probability(choice("The passages discuss gout.")) is None
    assert yes_probability(choice("")) is None


def test_the_model_is_given_the_score_the_questions_values_add_up_to(openai_server):
    """A vignette's CURB-65 values are added up on the passage's criteria table and the total
    is handed to the model with the passage it comes from, so it answers from the score-3 row
    rather than adding up (or not) itself."""
    table = (
        "### Criteria (1 point each)\n\n| Criterion | Definition |\n|---|---|\n"
        "| Confusion | Abbreviated Mental Test Score ≤ 8 |\n| Urea | > 7 mmol/L |\n"
        "| Respiratory rate | ≥ 30 breaths per minute |\n"
        "| Blood pressure | Systolic < 90 mmHg or diastolic ≤ 60 mmHg |\n"
        "| Age ≥ 65 | Patient age 65 or older |\n"
    )
    curb = Hit(chunk_id="cap#0", doc_id="cap", text=table, score=1.0, rank=1, section="CURB-65")
    openai_server.enqueue("reply", "Bottom line: CURB-65 is 3 [1].")
    question = "71F, AMT 9/10, urea 8.2 mmol/L, RR 26, BP 118/58. CURB-65?"
    generator_for(openai_server.url).generate(question, [curb, HITS[0]])
    user = openai_server.requests[0]["messages"][1]["content"]
    assert (
        "Worked out from the question's values on passage [1]: By the values given, CURB-65 is"
        " 3: urea 8.2 (1), blood pressure 118/58 (1), age 71 (1); 0 for confusion (AMT 9/10),"
        " respiratory rate 26." in user
    ), user
    openai_server.enqueue("reply", "Bottom line: Colchicine [1].")
    generator_for(openai_server.url).generate(QUESTION, HITS)
    assert "Worked out" not in openai_server.requests[1]["messages"][1]["content"]
