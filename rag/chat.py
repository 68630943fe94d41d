"""`rag chat`: an interactive conversation in the terminal.

Each question is answered in the light of the earlier turns (the engine condenses the follow-up
into a standalone question), the answer is rendered as Markdown with its references, and the
related questions are offered as numbered shortcuts: typing "2" asks the second one. The
conversation is saved as a session, so `rag ask --session NAME` can continue it later.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from rag.answer import Engine
from rag.converse import SessionStore
from rag.errors import RagError
from rag.render import answer_markdown
from rag.types import Turn

HELP = "Ask a clinical question. A number asks that related question; /new starts over; /quit leaves."


def read_line_function() -> Callable[[str], str]:
    """prompt_toolkit with history and line editing on a terminal; plain input() otherwise."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        from prompt_toolkit import PromptSession

        session: PromptSession[str] = PromptSession()
        return lambda prompt: session.prompt(prompt)
    return input


def print_markdown_to_terminal(text: str) -> None:
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        print(text, flush=True)


def chat_loop(
    engine: Engine,
    store: SessionStore,
    session: str,
    *,
    audience: str | None = None,
    read_line: Callable[[str], str] | None = None,
    show: Callable[[str], None] = print_markdown_to_terminal,
) -> int:
    """Run the loop until end of input or /quit; returns the number of questions answered."""
    read_line = read_line or read_line_function()
    history: list[Turn] = list(store.load_or_empty(session))
    related: list[str] = []
    answered = 0
    show(f"Session '{session}' ({len(history)} earlier turns). {HELP}")
    while True:
        try:
            line = read_line("\nquestion> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not line:
            continue
        if line in {"/quit", "/exit", "quit", "exit"}:
            break
        if line == "/new":
            history, related = [], []
            show("Started a new conversation (the saved session keeps its earlier turns).")
            continue
        if line.isdigit() and related:
            choice = int(line)
            if not 1 <= choice <= len(related):
                show(f"Choose a related question between 1 and {len(related)}.")
                continue
            line = related[choice - 1]
            show(f"> {line}")
        try:
            answer = engine.ask(line, history=history, audience=audience, session=session)
        except RagError as error:
            show(f"error: {error}")
            continue
        turn = Turn(
            question=answer.question,
            answer=answer.answer,
            standalone_question=answer.standalone_question,
            cited_doc_ids=tuple(citation.doc_id for citation in answer.citations),
        )
        history.append(turn)
        store.append(session, turn)
        related = list(answer.related_questions)
        answered += 1
        show(answer_markdown(answer, numbered_related=True))
    return answered
