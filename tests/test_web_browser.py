"""The question page in a real browser: Debian's headless Chromium driven by Playwright.

A real uvicorn server runs the app on 127.0.0.1 (a free port) in a thread. The engine is a
scripted fake whose answers contain the things the page must handle: numbered citations,
related questions, follow-ups that depend on the history, abstentions, failures, and document
text full of HTML that must never run. Install the browser with scripts/install_browser.sh.
Screenshots go to tests/artifacts/ (ignored by git). The README's docs/screenshot.png is the
real engine answering over the demo guidelines; it is rewritten only when asked:
`RAG_UPDATE_SCREENSHOT=1 .venv/bin/python -m pytest tests/test_web_browser.py -k readme`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from rag.errors import LLMError, SessionError
from rag.generate.abstention import Abstention
from rag.generate.evidence import Evidence
from rag.render import abstention_text
from rag.types import Answer, Citation, Hit, Turn
from rag.web.app import create_app
from tests.live_server import LiveServer

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
README_SCREENSHOT = REPO / "docs" / "screenshot.png"
API_KEY = "browser-test-key"

XSS_TEXT = '<script>window.__xss = "script"</script><img src=x onerror="window.__xss = \'img\'">'

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def _skip_reason() -> str | None:
    if sync_playwright is None:
        return "Python Playwright is not installed (run scripts/install_browser.sh)"
    if not CHROMIUM.exists():
        return (
            "Debian's chromium is not installed at /usr/bin/chromium "
            "(run scripts/install_browser.sh)"
        )
    return None


# ------------------------------------------------------------------------------------------------
# The scripted engine


def _hit(doc_id: str, rank: int, *, title: str, source: str, year: int | None, text: str,
         section: str = "", url: str | None = None, doi: str | None = None) -> Hit:
    return Hit(chunk_id=f"{doc_id}#{rank}", doc_id=doc_id, text=text, score=1.0 / rank,
               rank=rank, title=title, section=section, source=source, year=year, url=url, doi=doi)


def _citations(hits: Sequence[Hit]) -> tuple[Citation, ...]:
    return tuple(
        Citation(n=number, doc_id=hit.doc_id, chunk_id=hit.chunk_id, title=hit.title,
                 source=hit.source, year=hit.year, url=hit.url, doi=hit.doi, section=hit.section,
                 quote=hit.text, support=0.8)
        for number, hit in enumerate(hits, start=1)
    )


HYPERTENSION_HITS = (
    _hit("nice-ng136/step-1", 1, title="Hypertension in adults: diagnosis and management",
         source="NICE", year=2019, section="Treatment > Step 1",
         url="https://www.nice.org.uk/guidance/ng136",
         text="Offer an ACE inhibitor or an ARB to adults starting step 1 treatment who have "
              "type 2 diabetes or are under 55 and not of Black African or African-Caribbean "
              "family origin."),
    _hit("esc-2018/ccb", 2, title="2018 ESC/ESH Guidelines for the management of arterial "
         "hypertension", source="European Heart Journal", year=2018, section="Drug therapy",
         doi="10.1093/eurheartj/ehy339",
         text="Initial therapy should combine an ACE inhibitor or ARB with a calcium-channel "
              "blocker or a thiazide-like diuretic for most patients."),
)


class ScriptedEngine:
    """Answers by keyword in the question; records every call for the assertions."""

    def __init__(self, delay_s: float = 0.4) -> None:
        self.delay_s = delay_s  # long enough for the page's spinner to be seen
        self.calls: list[dict] = []

    def ask(self, question: str, *, history: Sequence[Turn] = (), audience: str | None = None,
            mode: str | None = None, k: int | None = None, want_decision: bool = False,
            session: str | None = None) -> Answer:
        self.calls.append({"question": question, "history": list(history),
                           "audience": audience, "session": session})
        time.sleep(self.delay_s)
        audience = audience or "clinician"
        lowered = question.lower()
        if "fail" in lowered:
            raise LLMError("LLM endpoint http://127.0.0.1:9/v1 did not answer after 3 retries")
        if "xss" in lowered:
            return self._xss_answer(question, session, audience)
        if "snakebite" in lowered:
            # Worded as the engine words an abstention, with its reason.
            text, bottom_line = abstention_text(Abstention("unknown_words", ("antivenom",)))
            return Answer(question=question, answer=text, bottom_line=bottom_line,
                          abstained=True, citations=(), retrieved=HYPERTENSION_HITS,
                          session=session, audience=audience)
        if "child" in lowered:
            # A partial grade: the answer text opens with what the sources lack, as the engine
            # writes it for readers of the JSON.
            evidence = Evidence("partial", ("a dose for children",))
            statement = evidence.statement()
            return Answer(
                question=question, answer=f"{statement}\n\n### Step 1\nOffer an ACE inhibitor [1].",
                bottom_line=f"{statement[:-1]}; what they state: adults take an ACE inhibitor [1].",
                abstained=False, citations=_citations(HYPERTENSION_HITS[:1]),
                retrieved=HYPERTENSION_HITS, session=session, audience=audience, evidence=evidence,
            )
        earlier = f" (after {len(history)} earlier turn{'s' if len(history) != 1 else ''})"
        if audience == "patient":
            bottom_line = "Most people start with one blood pressure tablet [1]."
            body = ("Your doctor will usually start **one medicine** [1], and add a second "
                    "if needed [2]." + earlier)
        else:
            bottom_line = "Start an ACE inhibitor or ARB if under 55 or diabetic [1]."
            body = (
                "### Step 1\n"
                "Offer an **ACE inhibitor or ARB** to adults under 55 or with type 2 "
                "diabetes [1].\n\n"
                "### Combination therapy\n"
                "- Most patients need two drugs [2]\n"
                "- Review response after 4 weeks [1, 2]\n\n"
                "A bracketed year such as [2019] is not a citation." + earlier
            )
        return Answer(
            question=question, answer=body, bottom_line=bottom_line, abstained=False,
            citations=_citations(HYPERTENSION_HITS), retrieved=HYPERTENSION_HITS,
            related_questions=("What if blood pressure stays high on two drugs?",
                               "Which drugs are safe in pregnancy?"),
            standalone_question=question if not history else f"{question} (hypertension)",
            session=session, audience=audience, mode=mode or "hybrid",
        )

    def _xss_answer(self, question: str, session: str | None, audience: str) -> Answer:
        hostile = _hit("hostile/doc", 1, title=f"Title {XSS_TEXT}", source=f"Org {XSS_TEXT}",
                       year=2020, section=XSS_TEXT, url="javascript:window.__xss='href'",
                       text=f"Quoted passage {XSS_TEXT}")
        return Answer(
            question=question,
            answer=f"### Heading {XSS_TEXT}\nParagraph {XSS_TEXT} [1].\n\n- item {XSS_TEXT} [1]",
            bottom_line=f"Bottom {XSS_TEXT} [1]", abstained=False,
            citations=_citations((hostile,)), retrieved=(hostile,),
            related_questions=(f"Related {XSS_TEXT}",), session=session, audience=audience,
        )

    def search(self, query: str, *, mode: str | None = None, k: int | None = None,
               sources: Sequence[str] = (), min_year: int | None = None) -> list[Hit]:
        return list(HYPERTENSION_HITS)


class MemorySessions:
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


# ------------------------------------------------------------------------------------------------
# Server and browser


@pytest.fixture(scope="module")
def browser():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def engine() -> ScriptedEngine:
    return ScriptedEngine()


@pytest.fixture(scope="module")
def sessions() -> MemorySessions:
    return MemorySessions()


@pytest.fixture(scope="module")
def server(engine, sessions) -> Iterator[LiveServer]:
    with LiveServer(create_app(engine, sessions)) as live:
        yield live


class RequestLog:
    """Every URL the page asked for, to prove nothing left the machine."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def record(self, request) -> None:
        self.urls.append(request.url)

    def outside_loopback(self) -> list[str]:
        return [url for url in self.urls
                if urlsplit(url).scheme not in {"data", "blob", "about"}
                and urlsplit(url).hostname != "127.0.0.1"]


def _new_page(browser, *, viewport=None, bypass_csp=False) -> tuple[Page, RequestLog, list[str]]:
    context = browser.new_context(viewport=viewport or {"width": 1100, "height": 900},
                                  bypass_csp=bypass_csp)
    page = context.new_page()
    requests = RequestLog()
    page.on("request", requests.record)
    console_errors: list[str] = []
    page.on("console",
            lambda message: message.type == "error" and console_errors.append(message.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    return page, requests, console_errors


@pytest.fixture()
def page(browser):
    page, requests, console_errors = _new_page(browser)
    page.requests = requests
    page.console_errors = console_errors
    yield page
    page.context.close()


def _artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    return ARTIFACTS / name


def _wait_for_turns(page: Page, count: int, timeout_ms: float = 60_000) -> None:
    """Waits until `count` answers are shown; fails at once with the page's error message."""
    page.wait_for_function(
        "count => document.querySelectorAll('#conversation > li').length >= count"
        " || !document.getElementById('error').hidden",
        arg=count,
        timeout=timeout_ms,
    )
    error = page.locator("#error")
    assert error.is_hidden(), f"the page shows an error: {error.text_content()}"
    expect(page.locator("#conversation > li")).to_have_count(count)


def _ask(page: Page, question: str) -> None:
    page.get_by_label("question").fill(question)
    page.get_by_label("question").press("Enter")


# ------------------------------------------------------------------------------------------------
# Tests


def test_question_citation_follow_up_related_and_audience(server, engine, sessions, page):
    page.goto(server.url)
    expect(page).to_have_title("rag · cited answers from clinical guidelines")
    expect(page.locator("#disclaimer")).to_contain_text("not a substitute for clinical judgement")

    # Ask with the keyboard; the spinner shows while the engine works.
    _ask(page, "First-line treatment for hypertension in a 45 year old?")
    expect(page.locator("#status")).to_be_visible()
    turns = page.locator("#conversation > li")
    expect(turns).to_have_count(1)
    expect(page.locator("#status")).to_be_hidden()
    first = turns.nth(0)
    expect(first.locator(".bottom-line")).to_contain_text(
        "Start an ACE inhibitor or ARB if under 55 or diabetic")
    expect(first.locator(".answer-body h4")).to_have_text(["Step 1", "Combination therapy"])
    expect(first.locator(".answer-body strong").first).to_have_text("ACE inhibitor or ARB")
    expect(first.locator(".answer-body li")).to_have_count(2)
    expect(first.locator(".answer-body")).to_contain_text("[2019] is not a citation")
    references = first.locator(".reference-list > li")
    expect(references).to_have_count(2)
    expect(references.nth(0)).to_contain_text("Hypertension in adults")
    expect(references.nth(0)).to_contain_text("NICE · 2019 · Treatment > Step 1")
    expect(references.nth(1).locator("a.reference-title")).to_have_attribute(
        "href", "https://doi.org/10.1093/eurheartj/ehy339")
    expect(first.locator(".turn-disclaimer")).to_contain_text("not a substitute")
    page.screenshot(path=str(_artifact("answer.png")), full_page=True)

    # Citation [2] (in the first list item) jumps to reference 2, highlights it, shows the quote.
    citation = first.locator(".answer-body li").nth(0).locator("a.cite-link")
    expect(citation).to_have_text("[2]")
    citation.click()
    reference = page.locator("#ref-1-2")
    expect(reference).to_have_class("reference highlight")
    expect(reference).to_be_in_viewport()
    expect(reference.locator("blockquote")).to_be_visible()
    expect(reference.locator("blockquote")).to_contain_text("Initial therapy should combine")
    expect(page.locator("#ref-1-1")).not_to_have_class("reference highlight")
    page.screenshot(path=str(_artifact("citation.png")))

    # A follow-up continues the same conversation; the first turn stays above it.
    expect(page.get_by_label("Ask a follow-up question")).to_be_visible()
    _ask(page, "And if she is 60?")
    expect(turns).to_have_count(2)
    expect(turns.nth(0).locator(".turn-question")).to_have_text(
        "First-line treatment for hypertension in a 45 year old?")
    expect(turns.nth(1).locator(".turn-question")).to_have_text("And if she is 60?")
    expect(turns.nth(1)).to_contain_text("after 1 earlier turn")
    expect(turns.nth(1).locator(".standalone")).to_contain_text("(hypertension)")
    session = engine.calls[-1]["session"]
    assert engine.calls[-2]["session"] == session
    assert [turn.question for turn in engine.calls[-1]["history"]] == [
        "First-line treatment for hypertension in a 45 year old?"]

    # A related question is asked in the same conversation by clicking it.
    turns.nth(1).get_by_role("button", name="Which drugs are safe in pregnancy?").click()
    expect(turns).to_have_count(3)
    expect(turns.nth(2).locator(".turn-question")).to_have_text(
        "Which drugs are safe in pregnancy?")
    expect(turns.nth(2)).to_contain_text("after 2 earlier turns")
    assert engine.calls[-1]["session"] == session

    # The audience switch rewrites the latest answer for patients.
    page.get_by_label("Patient").check()
    expect(turns.nth(2).locator(".bottom-line")).to_contain_text("Most people start with one")
    expect(turns).to_have_count(3)
    expect(turns.nth(2).locator(".turn-meta")).to_contain_text("Written for patients")
    assert engine.calls[-1]["audience"] == "patient"
    assert engine.calls[-1]["question"] == "Which drugs are safe in pregnancy?"
    # Rewritten in the light of the two turns before it, and saved in place of the clinician's
    # answer: the conversation still has three turns, not a repeated fourth.
    assert len(engine.calls[-1]["history"]) == 2
    expect(turns.nth(2)).to_contain_text("after 2 earlier turns")
    assert [turn.question for turn in sessions.turns[session]] == [
        "First-line treatment for hypertension in a 45 year old?",
        "And if she is 60?",
        "Which drugs are safe in pregnancy?",
    ]
    page.screenshot(path=str(_artifact("conversation.png")), full_page=True)

    # "New conversation" starts afresh: the next question has no history.
    page.get_by_role("button", name="New conversation").click()
    expect(turns).to_have_count(0)
    _ask(page, "Target blood pressure?")
    expect(turns).to_have_count(1)
    assert engine.calls[-1]["history"] == [] and engine.calls[-1]["session"] != session

    assert page.requests.outside_loopback() == []
    assert page.console_errors == []


def test_document_text_never_runs_as_script(server, browser):
    # The page's Content-Security-Policy would block inline script on its own; bypass it so
    # the test proves the renderer itself never turns text into markup.
    page, requests, console_errors = _new_page(browser, bypass_csp=True)
    try:
        page.goto(server.url)
        _ask(page, "xss please")
        turn = page.locator("#conversation > li").nth(0)
        expect(turn.locator(".bottom-line")).to_contain_text("<script>")
        expect(turn.locator(".answer-body")).to_contain_text('<img src=x onerror="window.__xss')
        expect(turn.locator(".answer-body h4")).to_contain_text("Heading <script>")
        expect(turn.locator(".reference")).to_contain_text("Title <script>")
        turn.locator("a.cite-link").first.click()
        expect(turn.locator(".reference blockquote")).to_contain_text("Quoted passage <script>")
        related = turn.get_by_role("button", name="Related <script>", exact=False)
        expect(related).to_have_count(1)
        # Nothing from the answer became an element: no script, no image, no javascript: link.
        conversation = page.locator("#conversation")
        expect(conversation.locator("script")).to_have_count(0)
        expect(conversation.locator("img")).to_have_count(0)
        expect(conversation.locator("a[href^='javascript']")).to_have_count(0)
        # The hostile URL is shown as plain text, not as a link.
        expect(turn.locator(".reference span.reference-title")).to_contain_text("Title")
        page.wait_for_timeout(200)  # give any injected handler the chance to fire
        assert page.evaluate("() => window.__xss") is None
        page.screenshot(path=str(_artifact("xss.png")), full_page=True)
        assert requests.outside_loopback() == []
        assert console_errors == []
    finally:
        page.context.close()


def test_abstention_shows_the_notice_and_nearest_sources(server, page):
    page.goto(server.url)
    _ask(page, "Antivenom dose for a snakebite?")
    turn = page.locator("#conversation > li").nth(0)
    notice = turn.locator(".abstained")
    expect(notice).to_contain_text("The sources do not cover this")
    # Why: the reason the engine gave, not a fixed sentence.
    expect(notice.locator(".abstention-reason")).to_contain_text(
        "No indexed passage mentions 'antivenom'.")
    expect(notice.locator(".nearest-sources > li")).to_have_count(2)
    expect(notice).to_contain_text("Hypertension in adults")
    expect(turn.locator(".bottom-line")).to_have_count(0)
    page.screenshot(path=str(_artifact("abstained.png")), full_page=True)


def test_a_partial_answer_says_what_is_missing_once_above_the_answer(server, page):
    page.goto(server.url)
    _ask(page, "Blood pressure tablet dose for a child?")
    turn = page.locator("#conversation > li").nth(0)
    expect(turn.locator(".evidence")).to_contain_text(
        "The cited sources do not address a dose for children.")
    expect(turn.locator(".answer-body")).to_contain_text("Offer an ACE inhibitor")
    expect(turn.locator(".answer-body")).not_to_contain_text("The cited sources do not address")


def test_errors_are_shown_to_the_user(server, page):
    page.goto(server.url)
    page.get_by_role("button", name="Ask").click()
    expect(page.get_by_role("alert")).to_have_text("Type a question first.")
    _ask(page, "please fail")
    expect(page.get_by_role("alert")).to_contain_text("did not answer after 3 retries")
    expect(page.locator("#conversation > li")).to_have_count(0)
    # The form is usable again after the failure.
    expect(page.get_by_role("button", name="Ask")).to_be_enabled()
    # A conversation the server no longer has: the message says how to go on.
    page.evaluate("() => { window.ragPage.state.session = 'web-forgotten' }")
    _ask(page, "And then?")
    expect(page.get_by_role("alert")).to_contain_text("web-forgotten")
    expect(page.get_by_role("alert")).to_contain_text("New conversation")


def test_page_fits_a_phone_screen(server, browser):
    page, requests, _ = _new_page(browser, viewport={"width": 375, "height": 740})
    try:
        page.goto(server.url)
        _ask(page, "First-line treatment for hypertension?")
        expect(page.locator("#conversation > li")).to_have_count(1)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px on a phone"
        font_size = page.evaluate(
            "() => parseFloat(getComputedStyle(document.querySelector('.answer-body p, "
            ".answer-body li')).fontSize)")
        assert font_size >= 15
        page.screenshot(path=str(_artifact("phone.png")), full_page=True)
        assert requests.outside_loopback() == []
    finally:
        page.context.close()


def test_access_key_from_the_address_is_kept_for_the_tab(browser):
    engine = ScriptedEngine(delay_s=0.0)
    with LiveServer(create_app(engine, MemorySessions(), api_key=API_KEY)) as live:
        page, _, _ = _new_page(browser)
        try:
            response = page.goto(live.url)
            assert response.status == 401
            expect(page.get_by_label("Access key")).to_be_visible()
            page.goto(f"{live.url}/?key={API_KEY}")
            # The key leaves the address bar but stays usable for the API calls.
            expect(page).to_have_url(f"{live.url}/")
            _ask(page, "First-line treatment for hypertension?")
            expect(page.locator("#conversation > li")).to_have_count(1)
            assert page.evaluate("() => sessionStorage.getItem('rag-api-key')") == API_KEY
            assert len(engine.calls) == 1
            # A reload without ?key= still opens the page (the server set a same-site cookie).
            assert page.reload().status == 200
        finally:
            page.context.close()


# ------------------------------------------------------------------------------------------------
# End to end: the real engine (extractive backend) over a tiny real index


REAL_CORPUS = [
    {
        "id": "nice-hypertension",
        "title": "Hypertension in adults: diagnosis and management",
        "source": "NICE",
        "year": 2019,
        "url": "https://www.nice.org.uk/guidance/ng136",
        "text": (
            "## Step 1 treatment\n"
            "Offer an ACE inhibitor or an angiotensin II receptor blocker to adults starting "
            "step 1 antihypertensive treatment who have type 2 diabetes or are aged under 55.\n\n"
            "## Step 2 treatment\n"
            "If hypertension is not controlled with step 1 treatment, add a calcium-channel "
            "blocker or a thiazide-like diuretic to the ACE inhibitor."
        ),
    },
    {
        # A hostile document: its title, organisation, link and text all carry markup.
        "id": "hostile-gout",
        "title": f"Gout flares {XSS_TEXT}",
        "source": f"Rheumatology {XSS_TEXT}",
        "year": 2020,
        "url": "javascript:window.__xss='href'",
        "text": (
            "## Acute gout flares\n"
            f"Treat acute gout flares with colchicine {XSS_TEXT} or a nonsteroidal "
            "anti-inflammatory drug, started as soon as possible after the flare begins."
        ),
    },
    {
        "id": "gina-asthma",
        "title": "Global Strategy for Asthma Management and Prevention",
        "source": "GINA",
        "year": 2024,
        "doi": "10.1183/13993003.01216-2024",
        "text": (
            "## Reliever therapy\n"
            "As-needed low-dose inhaled corticosteroid with formoterol is the preferred "
            "reliever for adults and adolescents with asthma."
        ),
    },
]


@pytest.fixture(scope="module")
def real_server(tmp_path_factory) -> Iterator[tuple[LiveServer, object]]:
    if _skip_reason():
        pytest.skip(_skip_reason())
    from rag.answer import Engine
    from rag.config import Settings
    from rag.converse import SessionStore
    from rag.index.store import Index
    from rag.ingest.pipeline import ingest
    from rag.types import Document

    folder = tmp_path_factory.mktemp("web-e2e")
    settings = Settings().merged(
        {"index": str(folder / "index"), "data_dir": str(folder / "data"), "llm": {"base_url": ""}}
    )
    with Index.open(settings.index, settings, create=True) as index:
        ingest(index, [Document(**document) for document in REAL_CORPUS], progress=False)
    engine = Engine.load(settings)
    sessions = SessionStore(folder / "data")
    with LiveServer(create_app(engine, sessions)) as live:
        yield live, sessions


def test_real_engine_answer_citation_and_follow_up(real_server, page):
    live, sessions = real_server
    page.goto(live.url)
    _ask(page, "What is the first-line treatment for hypertension in adults under 55?")
    turns = page.locator("#conversation > li")
    _wait_for_turns(page, 1)
    first = turns.nth(0)
    expect(first.locator(".bottom-line")).to_contain_text("ACE inhibitor")
    # The evidence grade sits above the bottom line (direct or partial, never missing).
    expect(first.locator(".evidence .evidence-grade")).to_contain_text("Evidence:")
    expect(first.locator(".reference-list")).to_contain_text("Hypertension in adults")
    citation = first.locator(".answer-body a.cite-link").first
    target = citation.get_attribute("href")
    citation.click()
    expect(page.locator(target)).to_have_class("reference highlight")
    expect(page.locator(target)).to_be_in_viewport()
    expect(page.locator(f"{target} blockquote")).to_be_visible()
    page.screenshot(path=str(_artifact("real-answer.png")), full_page=True)

    _ask(page, "And if that does not control it?")
    _wait_for_turns(page, 2)
    expect(turns.nth(0).locator(".turn-question")).to_contain_text("first-line treatment")
    session = page.evaluate("() => window.ragPage.state.session")
    saved = sessions.load(session)
    assert [turn.question for turn in saved] == [
        "What is the first-line treatment for hypertension in adults under 55?",
        "And if that does not control it?",
    ]
    # The follow-up was read in the light of the first question.
    assert "hypertension" in saved[1].standalone_question.lower()
    assert page.requests.outside_loopback() == []
    assert page.console_errors == []


def test_real_engine_hostile_document_shows_as_text(real_server, browser):
    live, _ = real_server
    page, requests, console_errors = _new_page(browser, bypass_csp=True)
    try:
        page.goto(live.url)
        _ask(page, "How should acute gout flares be treated?")
        _wait_for_turns(page, 1)
        turn = page.locator("#conversation > li").nth(0)
        expect(turn.locator(".reference-list")).to_contain_text("Gout flares <script>")
        expect(turn.locator(".reference-list")).to_contain_text("Rheumatology <script>")
        conversation = page.locator("#conversation")
        expect(conversation.locator("script")).to_have_count(0)
        expect(conversation.locator("img")).to_have_count(0)
        expect(conversation.locator("a[href^='javascript']")).to_have_count(0)
        page.wait_for_timeout(200)
        assert page.evaluate("() => window.__xss") is None
        assert requests.outside_loopback() == []
        assert console_errors == []
    finally:
        page.context.close()


@pytest.mark.slow
def test_readme_screenshot_real_engine_over_the_demo_guidelines(demo_index, browser, tmp_path):
    """The README's picture: the real engine answering over the open-medicine guidelines."""
    from rag.answer import Engine
    from rag.config import Settings
    from rag.converse import SessionStore

    settings = Settings().merged({"index": str(demo_index), "llm": {"base_url": ""}})
    engine = Engine.load(settings)
    page, requests, console_errors = _new_page(browser)
    try:
        with LiveServer(create_app(engine, SessionStore(tmp_path))) as live:
            page.goto(live.url)
            _ask(page, "What is the first-line treatment of an acute gout flare?")
            _wait_for_turns(page, 1)
            turn = page.locator("#conversation > li").nth(0)
            bottom_line = turn.locator(".bottom-line")
            for agent in ("Colchicine", "NSAIDs", "glucocorticoids"):
                expect(bottom_line).to_contain_text(agent)
            references = turn.locator(".reference-list > li")
            expect(references.first).to_contain_text(
                "2020 American College of Rheumatology Guideline for Management of Gout")
            expect(references.first).to_contain_text("First-Line Therapies")
            # Open the quoted passage of the bottom line's citation, as a reader checking it would.
            citation = bottom_line.locator("a.cite-link").first
            target = citation.get_attribute("href")
            citation.click()
            expect(page.locator(f"{target} blockquote")).to_be_visible()
            expect(page.locator(f"{target} blockquote")).to_contain_text("first-line therapy")
            # The guideline's own **bold** is shown as bold, not as asterisks.
            expect(page.locator(f"{target} blockquote strong")).to_have_text("strongly recommended")
            expect(page.locator(f"{target} blockquote")).not_to_contain_text("**")
            page.mouse.move(0, 0)  # no hover styling in the picture
            page.screenshot(path=str(_artifact("demo-answer.png")), full_page=True)
        assert requests.outside_loopback() == []
        assert console_errors == []
    finally:
        page.context.close()
    if os.environ.get("RAG_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_artifact("demo-answer.png"), README_SCREENSHOT)
