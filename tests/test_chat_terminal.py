"""`rag chat` as a person uses it: typed into a real terminal, read off the screen.

The slow tests run `.venv/bin/rag chat` over the demo index (the open-medicine guidelines) in a
pane of a private tmux server, so stdin and stdout are a real pseudo-terminal: prompt_toolkit
reads the keys and rich draws the answers. Keys go in with `tmux send-keys`; the screen,
scrollback included, comes back with `tmux capture-pane`. Install tmux with
scripts/install_terminal_tools.sh; without it those tests skip.

The fast tests drive `chat_loop` directly with a scripted engine, for the failures a real
index cannot produce on demand (an endpoint that fails, Ctrl-C while waiting, a full disk).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.chat import chat_loop
from rag.converse import SessionStore
from rag.errors import LLMError, SessionError
from rag.types import DISCLAIMER, Answer, Citation, Hit, Turn

REPO = Path(__file__).resolve().parents[1]
RAG = REPO / ".venv" / "bin" / "rag"
TMUX = shutil.which("tmux")
WIDTH, HEIGHT = 110, 50
PROMPT = "question>"
ANSWER_TIMEOUT_S = 240  # the first answer also loads the embedding model on a busy 2-core box

GOUT_TITLE = "2020 American College of Rheumatology Guideline for Management of Gout"
GOUT_ORIGIN = "ACR, 2020."
GOUT_DOI = "https://doi.org/10.1002/art.41247"
FLARE_SECTIONS = "Flare Management in Gout — ACR 2020 > Acute Gout Flare Treatment > "

FIRST_QUESTION = "What is the first-line treatment for an acute gout flare?"
FOLLOW_UP = "And what if those are contraindicated?"

needs_tmux = pytest.mark.skipif(
    TMUX is None, reason="tmux is not installed (run scripts/install_terminal_tools.sh)"
)


# ------------------------------------------------------------------------------------------------
# A terminal driven through tmux


class TerminalSession:
    """One command running in a WIDTH x HEIGHT pane of a tmux server of its own.

    The command runs under `sh -c` so its exit status is written to a file when it ends; the
    pane stays (remain-on-exit) so its last screen can still be read.
    """

    def __init__(self, command: Sequence[str], env: dict[str, str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rag-tty-"))  # short: socket paths are limited
        self.socket = self.folder / "tmux.sock"
        self.status_file = self.folder / "status"
        config = self.folder / "tmux.conf"
        config.write_text("set -g history-limit 20000\nset -g remain-on-exit on\n", encoding="utf-8")
        # Only what the program needs: COLUMNS/LINES left over from pytest would override the
        # pane size that rich and prompt_toolkit read from the terminal.
        exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
        script = (
            f"env -u COLUMNS -u LINES {exports} {shlex.join(command)}; "
            f"echo $? > {shlex.quote(str(self.status_file))}"
        )
        self._tmux("-f", str(config), "new-session", "-d", "-s", "chat",
                   "-x", str(WIDTH), "-y", str(HEIGHT), script)

    def _tmux(self, *arguments: str) -> str:
        result = subprocess.run(
            [TMUX, "-u", "-S", str(self.socket), *arguments], check=False,
            capture_output=True, text=True, timeout=30,
            env={**os.environ, "LANG": "C.UTF-8"},
        )
        if result.returncode != 0:
            raise AssertionError(f"tmux {arguments[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def screen(self) -> str:
        """Everything the terminal has shown (scrollback and visible part), right-trimmed, with
        lines the terminal wrapped joined again (-J); rich's own line breaks stay."""
        text = self._tmux("capture-pane", "-p", "-J", "-t", "chat", "-S", "-", "-E", "-")
        lines = [line.rstrip() for line in text.splitlines()
                 if not line.startswith("Pane is dead (")]  # tmux's own remain-on-exit notice
        return "\n".join(lines).strip("\n")

    def type_line(self, text: str) -> None:
        self._tmux("send-keys", "-t", "chat", "-l", text)
        self._tmux("send-keys", "-t", "chat", "Enter")

    def press(self, key: str) -> None:
        self._tmux("send-keys", "-t", "chat", key)

    def exit_status(self) -> int | None:
        text = self.status_file.read_text().strip() if self.status_file.exists() else ""
        return int(text) if text else None

    def wait_until(self, condition: Callable[[str], bool], what: str,
                   timeout_s: float = ANSWER_TIMEOUT_S) -> str:
        """Polls the screen until `condition(screen)`; fails with the screen if the program
        exits first or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if self.exit_status() is not None:
                time.sleep(0.2)  # the last lines may still be on their way
                screen = self.screen()
                if condition(screen):
                    return screen
                raise AssertionError(f"rag chat exited ({self.exit_status()}) before {what}:\n{screen}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s}s waiting for {what}:\n{screen}")
            time.sleep(0.25)

    def wait_for_prompt(self, count: int) -> str:
        """Waits until the `count`-th prompt is shown and is the last thing on the screen."""
        def ready(screen: str) -> bool:
            lines = screen.splitlines()
            return prompt_count(screen) >= count and lines[-1].strip() == PROMPT

        return self.wait_until(ready, f"prompt number {count}")

    def wait_for_exit(self, timeout_s: float = 60) -> int:
        deadline = time.monotonic() + timeout_s
        while self.exit_status() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"rag chat did not exit:\n{self.screen()}")
            time.sleep(0.2)
        return self.exit_status()  # type: ignore[return-value]

    def close(self) -> None:
        subprocess.run([TMUX, "-S", str(self.socket), "kill-server"],
                       check=False, capture_output=True, timeout=30)
        shutil.rmtree(self.folder, ignore_errors=True)


def prompt_count(screen: str) -> int:
    return sum(1 for line in screen.splitlines() if line.startswith(PROMPT))


@pytest.fixture()
def terminal_for(tmp_path: Path) -> Iterator[Callable[..., TerminalSession]]:
    """Starts `rag chat` with the given arguments in a terminal; closes every one at the end."""
    if not RAG.exists():
        pytest.skip(f"{RAG} is not installed (make install)")
    sessions: list[TerminalSession] = []

    def start(*arguments: str) -> TerminalSession:
        env = {
            "RAG_DATA_DIR": os.environ["RAG_DATA_DIR"],  # the per-test folder from conftest
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "LANG": "C.UTF-8",
        }
        session = TerminalSession([str(RAG), "chat", *arguments], env)
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


def saved_turns(name: str) -> list[dict]:
    """`rag sessions show NAME --json`, as a user would check it."""
    result = subprocess.run(
        [str(RAG), "sessions", "show", name, "--json"], check=False,
        capture_output=True, text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ------------------------------------------------------------------------------------------------
# Reading an answer off the screen


@dataclass
class ShownAnswer:
    """One answer as drawn by rich, with wrapped lines joined back together."""

    lines: list[str]
    understood_as: str
    bottom_line: str
    text: str  # the whole block, whitespace collapsed
    references: dict[int, str]  # [n] -> the reference line
    related: list[str]  # in the order numbered on screen

    def cited_by_bottom_line(self) -> list[str]:
        numbers = [int(n) for n in re.findall(r"\[(\d+)\]", self.bottom_line)]
        assert numbers, f"the bottom line cites nothing: {self.bottom_line}"
        return [self.references[n] for n in numbers]


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _paragraph_after(lines: list[str], start: str) -> str:
    for index, line in enumerate(lines):
        if line.startswith(start):
            paragraph = [line]
            for following in lines[index + 1:]:
                if not following.strip():
                    break
                paragraph.append(following)
            return _collapse(" ".join(paragraph))
    return ""


def _items(lines: list[str], starts_item: re.Pattern[str]) -> list[str]:
    """List items of a rich-rendered list: a marker line plus its indented continuations."""
    items: list[str] = []
    for line in lines:
        if starts_item.match(line):
            items.append(line.strip())
        elif line.strip() and items:
            items[-1] += " " + line.strip()
    return [_collapse(item) for item in items]


def answer_after(screen: str, question_line: str) -> ShownAnswer:
    """The answer printed after the prompt line `question> {question_line}`."""
    lines = screen.splitlines()
    typed = f"{PROMPT} {question_line}"
    starts = [index for index, line in enumerate(lines) if line == typed]
    assert len(starts) == 1, f"expected the prompt line {typed!r} once on:\n{screen}"
    block: list[str] = []
    for line in lines[starts[0] + 1:]:
        if line.startswith(PROMPT):
            break
        block.append(line)

    def section(title: str, stop: str) -> list[str]:
        heading = [i for i, line in enumerate(block) if line.strip() == title]
        if not heading:
            return []
        rest = block[heading[0] + 1:]
        end = next((i for i, line in enumerate(rest) if line.strip().startswith(stop)), len(rest))
        return rest[:end]

    reference_items = _items(section("References", "Related questions"), re.compile(r"^ • \[\d+\] "))
    references = {}
    for item in reference_items:
        number, line = re.match(r"• \[(\d+)\] (.*)", item).groups()  # type: ignore[union-attr]
        references[int(number)] = line
    related = [
        re.sub(r"^\d+ ", "", item)
        for item in _items(section("Related questions", "Decision support only"),
                           re.compile(r"^ +\d+ \S"))
    ]
    numbers_shown = [int(m.group(1)) for line in section("Related questions", "Decision support")
                     if (m := re.match(r"^ +(\d+) \S", line))]
    assert numbers_shown == list(range(1, len(numbers_shown) + 1)), block
    return ShownAnswer(
        lines=block,
        understood_as=_paragraph_after(block, "Understood as:"),
        bottom_line=_paragraph_after(block, "Bottom line:"),
        text=_collapse(" ".join(block)),
        references=references,
        related=related,
    )


def assert_complete_gout_answer(shown: ShownAnswer) -> None:
    """Bottom line, resolvable markers, ACR 2020 gout references, numbered related questions
    and the disclaimer: what every answer in the gout conversation must show."""
    assert shown.bottom_line.startswith("Bottom line: "), shown.lines
    assert shown.references, f"no references shown:\n{shown.lines}"
    assert sorted(shown.references) == list(range(1, len(shown.references) + 1))
    markers = {int(n) for n in re.findall(r"\[(\d+)\]", shown.text.split(" References ")[0])}
    assert markers and markers <= set(shown.references), (markers, sorted(shown.references))
    for number, reference in shown.references.items():
        assert reference.startswith(f"{GOUT_TITLE}. {GOUT_ORIGIN} Section: "), (number, reference)
        assert reference.endswith(GOUT_DOI), (number, reference)
    assert shown.related, "no related questions offered"
    assert all(question.endswith("?") for question in shown.related), shown.related
    assert DISCLAIMER in shown.text


def section_of(reference: str) -> str:
    """'Title. ACR, 2020. Section: A > B > C. https://...' -> 'A > B > C'"""
    match = re.search(r" Section: (.*)\. https://", reference)
    assert match, reference
    return match.group(1)


# ------------------------------------------------------------------------------------------------
# The conversation in a real terminal


@pytest.mark.slow
@needs_tmux
def test_gout_conversation_with_follow_up_and_related_shortcut(demo_index: Path, terminal_for):
    terminal = terminal_for("--index", str(demo_index), "--session", "t1")
    screen = terminal.wait_for_prompt(1)
    assert "Session 't1' (0 earlier turns)" in screen
    assert "Traceback" not in screen

    # 1. The question.
    terminal.type_line(FIRST_QUESTION)
    screen = terminal.wait_for_prompt(2)
    first = answer_after(screen, FIRST_QUESTION)
    assert_complete_gout_answer(first)
    assert not first.understood_as  # a self-contained question is not rewritten
    for agent in ("colchicine", "nsaids", "glucocorticoids"):
        assert agent in first.bottom_line.lower(), first.bottom_line
    # The bottom line rests on the first-line recommendation (a second statement it adds,
    # such as which NSAIDs, comes after it).
    assert section_of(first.cited_by_bottom_line()[0]) == FLARE_SECTIONS + "First-Line Therapies"

    # 2. An elliptical follow-up: "those" are the first-line drugs of the previous answer.
    terminal.type_line(FOLLOW_UP)
    screen = terminal.wait_for_prompt(3)
    follow_up = answer_after(screen, FOLLOW_UP)
    assert_complete_gout_answer(follow_up)
    assert "gout" in follow_up.understood_as.lower(), follow_up.understood_as
    assert "il-1 inhibitor" in follow_up.bottom_line.lower(), follow_up.bottom_line
    assert [section_of(reference) for reference in follow_up.cited_by_bottom_line()] == [
        FLARE_SECTIONS + "Second-Line: IL-1 Inhibitors"
    ]

    # 3. Typing "1" asks the first related question, echoed so the reader sees what was asked.
    chosen = follow_up.related[0]
    terminal.type_line("1")
    screen = terminal.wait_for_prompt(4)
    related = answer_after(screen, "1")
    assert related.lines[0] == f"> {chosen}"
    assert_complete_gout_answer(related)
    # The related questions name a guideline section; answering one cites that section.
    cited_topics = [section_of(reference).rsplit(" > ", 1)[-1].lower()
                    for reference in related.cited_by_bottom_line()]
    assert any(topic in chosen.lower() for topic in cited_topics), (chosen, cited_topics)
    assert chosen not in related.related  # what was just asked is not offered again

    # A number with no such related question is one line of error, and the chat goes on.
    terminal.type_line("9")
    screen = terminal.wait_for_prompt(5)
    after_nine = screen.splitlines()[screen.splitlines().index(f"{PROMPT} 9") + 1:]
    assert [line for line in after_nine if line.strip()] == [
        f"error: choose a related question between 1 and {len(related.related)}", PROMPT
    ]

    terminal.type_line("/quit")
    assert terminal.wait_for_exit() == 0
    screen = terminal.screen()
    assert "Saved as session 't1'; continue it with: rag chat --session t1" in screen
    assert "Traceback" not in screen

    turns = saved_turns("t1")
    assert [turn["question"] for turn in turns] == [FIRST_QUESTION, FOLLOW_UP, chosen]
    assert turns[0]["standalone_question"] == FIRST_QUESTION
    assert "gout" in turns[1]["standalone_question"].lower()
    assert turns[1]["standalone_question"] != FOLLOW_UP
    for turn in turns:
        assert turn["cited_doc_ids"]
        assert all(doc_id.startswith("acr_gout_2020/") for doc_id in turn["cited_doc_ids"])


@pytest.mark.slow
@needs_tmux
def test_saved_conversation_resumes_and_ctrl_d_leaves(demo_index: Path, terminal_for):
    store = SessionStore(Path(os.environ["RAG_DATA_DIR"]))
    store.append("resume", Turn(
        question=FIRST_QUESTION,
        answer="Colchicine, NSAIDs or glucocorticoids are first-line for gout flares [1].",
        standalone_question=FIRST_QUESTION,
        cited_doc_ids=("acr_gout_2020/flare_management",),
    ))
    terminal = terminal_for("--index", str(demo_index), "--session", "resume")
    screen = terminal.wait_for_prompt(1)
    assert "Session 'resume' (1 earlier turn)" in screen

    # The follow-up is read in the light of the saved turn, not of this process's memory.
    terminal.type_line(FOLLOW_UP)
    screen = terminal.wait_for_prompt(2)
    follow_up = answer_after(screen, FOLLOW_UP)
    assert_complete_gout_answer(follow_up)
    assert "gout" in follow_up.understood_as.lower()

    terminal.press("C-d")
    assert terminal.wait_for_exit() == 0
    assert "Traceback" not in terminal.screen()
    assert [turn["question"] for turn in saved_turns("resume")] == [FIRST_QUESTION, FOLLOW_UP]


@pytest.mark.slow
@needs_tmux
def test_damaged_session_is_one_line_before_the_index_loads(tmp_path: Path, terminal_for):
    sessions = Path(os.environ["RAG_DATA_DIR"]) / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "broken.json").write_text('{"format": 1, "turns": [', encoding="utf-8")
    terminal = terminal_for("--index", str(tmp_path / "no-index"), "--session", "broken")
    assert terminal.wait_for_exit() == 1
    shown = [line for line in terminal.screen().splitlines() if line.strip()]
    assert len(shown) == 1, shown
    assert shown[0].startswith("error: session file ") and "broken.json is damaged" in shown[0]
    assert "rag sessions delete broken" in shown[0]


# ------------------------------------------------------------------------------------------------
# The loop itself, with a scripted engine


GOUT_HIT = Hit(chunk_id="gout#1", doc_id="gout", text="Colchicine treats gout flares.", score=1.0,
               rank=1, title="Gout flares", section="Treatment", source="Test Society", year=2020)


class ScriptedEngine:
    """Answers every question about gout, except those containing 'fail' or 'interrupt'."""

    def __init__(self) -> None:
        self.histories: list[list[Turn]] = []

    def ask(self, question: str, *, history: Sequence[Turn] = (), audience: str | None = None,
            session: str | None = None, **_: object) -> Answer:
        self.histories.append(list(history))
        if "fail" in question:
            raise LLMError("LLM endpoint http://127.0.0.1:9/v1 did not answer after 3 retries")
        if "interrupt" in question:
            raise KeyboardInterrupt
        citation = Citation(n=1, doc_id="gout", chunk_id="gout#1", title="Gout flares",
                            source="Test Society", year=2020, url=None, doi=None,
                            section="Treatment", quote=GOUT_HIT.text, support=1.0)
        return Answer(question=question, answer="Colchicine works [1].",
                      bottom_line="Use colchicine [1].", abstained=False, citations=(citation,),
                      retrieved=(GOUT_HIT,), related_questions=("How long does a flare last?",),
                      standalone_question=question, session=session)


def run_chat(lines: list[str], store: SessionStore, engine: ScriptedEngine | None = None,
             session: str = "s") -> tuple[int, list[str], list[str]]:
    """Feeds `lines` to chat_loop (then end of input); returns (answered, answers, notices)."""
    pending = iter(lines)

    def read_line(prompt: str) -> str:
        assert prompt.strip() == PROMPT
        try:
            return next(pending)
        except StopIteration:
            raise EOFError from None

    answers: list[str] = []
    notices: list[str] = []
    answered = chat_loop(engine or ScriptedEngine(), store, session, read_line=read_line,
                         show=answers.append, notify=notices.append)
    return answered, answers, notices


def test_failed_question_is_one_error_line_and_the_chat_goes_on(tmp_path: Path):
    store = SessionStore(tmp_path)
    answered, _, notices = run_chat(["please fail", "gout?"], store)
    assert answered == 1
    errors = [notice for notice in notices if notice.startswith("error:")]
    assert errors == ["error: LLM endpoint http://127.0.0.1:9/v1 did not answer after 3 retries"]
    assert "\n" not in errors[0]
    assert [turn.question for turn in store.load("s")] == ["gout?"]  # the failure is not saved


def test_ctrl_c_while_waiting_cancels_only_that_question(tmp_path: Path):
    store = SessionStore(tmp_path)
    answered, _, notices = run_chat(["interrupt me", "gout?"], store)
    assert answered == 1
    assert "Cancelled; ask another question or /quit." in notices


def test_numbers_commands_and_new_conversation(tmp_path: Path):
    store = SessionStore(tmp_path)
    engine = ScriptedEngine()
    answered, answers, notices = run_chat(
        ["2", "gout?", "1", "3", "/new", "/frobnicate", "gout again?", "/quit", "never read"],
        store, engine,
    )
    assert answered == 3
    assert "error: there are no related questions to choose from yet; type a question" in notices
    assert "> How long does a flare last?" in notices
    assert "error: choose a related question between 1 and 1" in notices
    assert "error: unknown command '/frobnicate'; commands: /new, /help, /quit" in notices
    # The related question was asked with the first turn as history; /new forgot both.
    assert [len(history) for history in engine.histories] == [0, 1, 0]
    assert "1. How long does a flare last?" in answers[0]
    assert "### References\n- [1] Gout flares. Test Society, 2020. Section: Treatment." in answers[0]
    saved = [turn.question for turn in store.load("s")]
    assert saved == ["gout?", "How long does a flare last?", "gout again?"]
    assert notices[-1] == "Saved as session 's'; continue it with: rag chat --session s"


def test_an_answer_that_cannot_be_saved_is_still_shown(tmp_path: Path):
    class FullDisk(SessionStore):
        def append(self, name: str, turn: Turn) -> None:
            raise SessionError("session file /data/sessions/s.json cannot be written (No space left)")

    answered, answers, notices = run_chat(["gout?"], FullDisk(tmp_path))
    assert answered == 1 and "Use colchicine [1]." in answers[0]
    assert "error: session file /data/sessions/s.json cannot be written (No space left)" in notices
    assert not any(notice.startswith("Saved as session") for notice in notices)


def test_damaged_session_stops_before_the_first_prompt(tmp_path: Path):
    store = SessionStore(tmp_path)
    store.legacy_directory.mkdir(parents=True)  # a conversation saved by an earlier version
    (store.legacy_directory / "s.json").write_text("not json", encoding="utf-8")
    with pytest.raises(SessionError, match="is damaged"):
        run_chat(["gout?"], store)


def test_plain_input_when_not_a_terminal(tmp_path: Path):
    """Piped into `rag chat`, the loop reads lines with input() and prints plain Markdown."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.test_chat_terminal import ScriptedEngine; "
        "from rag.chat import chat_loop; from rag.converse import SessionStore; "
        "chat_loop(ScriptedEngine(), SessionStore(sys.argv[2]), 'piped')"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(REPO), str(tmp_path)],
        input="gout?\n1\n", check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "**Bottom line:** Use colchicine [1]." in result.stdout
    assert "> How long does a flare last?" in result.stdout
    assert "Saved as session 'piped'" in result.stdout
    assert "\x1b[" not in result.stdout  # no terminal escapes in a pipe
