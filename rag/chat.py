"""`rag chat`: an interactive conversation in the terminal.

Each question is answered in the light of the earlier turns (the engine condenses the follow-up
into a standalone question), the answer is rendered as Markdown with its references, and the
related questions are offered as numbered shortcuts: typing "2" asks the second one. The
conversation is saved as a session after every answer, so `rag chat --session NAME` or
`rag ask --session NAME` can continue it later.

On a terminal the prompt is prompt_toolkit (line editing, history with the arrow keys), answers
are rendered by rich, and a spinner shows while the engine works; with a pipe or a file the
same loop reads lines with input() and prints plain Markdown, so it can be scripted.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager

from rag.answer import Engine
from rag.errors import RagError
from rag.render import answer_markdown
from rag.sessions import SessionStore, TurnNotSaved, answer_in_session
from rag.types import Answer, Turn

PROMPT = "\nquestion> "  # the blank line sets each question apart from the answer above
HELP = (
    "Ask a clinical question; follow-ups are read in the light of the conversation. "
    "A number asks that related question; /new starts over; /help; /quit (or Ctrl-D) leaves."
)
QUIT_COMMANDS = frozenset({"/quit", "/exit", "/q", "quit", "exit"})


def _is_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def read_line_function() -> Callable[[str], str]:
    """prompt_toolkit with history and line editing on a terminal; plain input() otherwise.

    The returned function takes the prompt text and returns the line typed; it raises EOFError
    on Ctrl-D (or end of input) and KeyboardInterrupt on Ctrl-C, like input().
    """
    if _is_terminal():
        from prompt_toolkit import PromptSession

        session: PromptSession[str] = PromptSession()
        return lambda prompt: session.prompt(prompt)
    return input


def print_markdown_to_terminal(text: str) -> None:
    """An answer (Markdown): rendered by rich on a terminal, printed as it is otherwise."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        print(text, flush=True)


def print_notice(text: str) -> None:
    """A one-line message (help, errors, status), printed literally: never read as Markdown or
    rich markup, so a path with underscores or brackets in an error shows as it is."""
    if sys.stdout.isatty():
        from rich.console import Console

        style = "bold red" if text.startswith("error:") else "dim"
        Console(highlight=False).print(text, markup=False, style=style, soft_wrap=True)
    else:
        print(text, flush=True)


def working_indicator(message: str) -> ContextManager[object]:
    """A spinner on stderr while the engine works, when stderr is a terminal; nothing otherwise."""
    if sys.stderr.isatty():
        from rich.console import Console

        return Console(stderr=True).status(message, spinner="dots")
    return contextlib.nullcontext()


def chat_loop(
    engine: Engine,
    store: SessionStore,
    session: str,
    *,
    audience: str | None = None,
    read_line: Callable[[str], str] | None = None,
    show: Callable[[str], None] = print_markdown_to_terminal,
    notify: Callable[[str], None] = print_notice,
    working: Callable[[str], ContextManager[object]] = working_indicator,
) -> int:
    """Run the conversation until /quit, Ctrl-D or end of input; returns the questions answered.

    `engine` answers, `store` loads and saves session `session` (an unknown name starts an
    empty one; a damaged file raises SessionError before the first prompt). `read_line` reads
    one line given the prompt, `show` prints an answer's Markdown, `notify` prints one-line
    messages ("error: ..." for failures), and `working(message)` is held while the engine works.
    A failed question (RagError) or Ctrl-C during an answer is reported and the loop goes on.
    """
    read_line = read_line or read_line_function()
    history: list[Turn] = list(store.load_or_empty(session))
    related: list[str] = []
    answered = unsaved = 0
    earlier = f"{len(history)} earlier turn{'' if len(history) == 1 else 's'}"
    notify(f"Session '{session}' ({earlier}). {HELP}")
    for line in _lines(read_line):
        command = line.lower()
        if command in QUIT_COMMANDS:
            break
        if command in {"/help", "?"}:
            notify(HELP)
            continue
        if command == "/new":
            history, related = [], []
            notify("Started a new conversation (the saved session keeps its earlier turns).")
            continue
        if line.startswith("/"):
            notify(f"error: unknown command '{line}'; commands: /new, /help, /quit")
            continue
        if line.isdigit():
            if not related:
                notify("error: there are no related questions to choose from yet; type a question")
                continue
            choice = int(line)
            if not 1 <= choice <= len(related):
                notify(f"error: choose a related question between 1 and {len(related)}")
                continue
            line = related[choice - 1]
            notify(f"> {line}")
        answer, not_saved = _ask(engine, store, session, line, history, audience=audience,
                                 notify=notify, working=working)
        if answer is None:
            continue
        show(answer_markdown(answer, numbered_related=True))
        related = list(answer.related_questions)
        answered += 1
        history.append(answer.as_turn())
        if not_saved is not None:
            # The conversation goes on in memory; only the saved copy is behind.
            unsaved += 1
            notify(f"error: {not_saved}")
    if answered and not unsaved:
        notify(f"Saved as session '{session}'; continue it with: rag chat --session {session}")
    return answered


def _lines(read_line: Callable[[str], str]) -> Iterator[str]:
    """The non-blank lines typed, stripped, until Ctrl-D / end of input or Ctrl-C at the prompt."""
    while True:
        try:
            line = read_line(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            return
        if line:
            yield line


def _ask(
    engine: Engine,
    store: SessionStore,
    session: str,
    question: str,
    history: list[Turn],
    *,
    audience: str | None,
    notify: Callable[[str], None],
    working: Callable[[str], ContextManager[object]],
) -> tuple[Answer | None, TurnNotSaved | None]:
    """The engine's answer, saved as the session's next turn, and the error that kept it from
    being saved (None when it was); (None, None) after telling the user why there is none.
    The history is this loop's own: after /new it is shorter than the saved session."""
    try:
        with working("Searching the sources and writing a cited answer…"):
            answer = answer_in_session(
                engine, store, session, question, history=history, audience=audience
            )
        return answer, None
    except TurnNotSaved as error:
        return error.answer, error
    except RagError as error:
        notify(f"error: {error}")
    except KeyboardInterrupt:
        # Ctrl-C while waiting cancels this question, not the whole conversation.
        notify("Cancelled; ask another question or /quit.")
    return None, None
