"""The `rag` command: a thin typer app over the library.

Over 500 lines because it holds every command's options and help text; each command body stays
a few lines that call one library function.

Each command parses its options, loads settings, calls one library function and renders the
result. Errors the user can fix (RagError) become one line on stderr and exit status 1.
"""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable
from functools import wraps
from itertools import chain
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core

from rag.config import DEFAULT_INDEX, Settings, SettingsError
from rag.errors import RagError


class _OneLineUsageErrors(typer.core.TyperGroup):
    """A bad option or argument (`--since abc`, `-k 0`) as one line on stderr and exit status
    2, like every other user error, instead of a boxed usage message."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        except Exception as error:
            # Usage errors are click's, or typer's own copy of them in typer >= 0.24: known
            # here by their shape (a message and an exit code), not by their class.
            if not (hasattr(error, "format_message") and hasattr(error, "exit_code")):
                raise
            context = getattr(error, "ctx", None)
            if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
                typer.echo(context.get_help(), err=True)  # `rag` alone: the help
            else:
                message = " ".join(error.format_message().split())
                hint = f" (see `{context.command_path} --help`)" if context is not None else ""
                typer.echo(f"error: {message}{hint}", err=True)
            sys.exit(error.exit_code)
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    cls=_OneLineUsageErrors,
    help="Cited answers from clinical guidelines and articles, offline.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOption = Annotated[
    str,
    typer.Option("--index", envvar="RAG_INDEX", help="Index folder.", show_default=True),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
ModeOption = Annotated[
    str | None,
    typer.Option(
        "--mode", envvar="RAG_RETRIEVAL_MODE", help="dense, lexical or hybrid (default: hybrid)."
    ),
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", help="Only sources whose organisation or journal contains this."),
]
SinceOption = Annotated[int | None, typer.Option("--since", help="Only sources from this year on.")]

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(command: F) -> F:
    """Turn the errors a user can fix into one line on stderr and exit status 1."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (RagError, SettingsError) as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def load_settings(index: str | None = None, **overrides: Any) -> Settings:
    settings = Settings.from_env()
    changes: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
    if index:
        changes["index"] = index
    return settings.merged(changes)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def print_markdown(text: str) -> None:
    """Rich Markdown on a terminal, the plain Markdown otherwise (pipes, files, tests)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        typer.echo(text)


@app.command()
@user_errors
def ingest(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Files or folders to ingest (default: corpus/).", show_default=False),
    ] = None,
    index: IndexOption = DEFAULT_INDEX,
    demo: Annotated[
        bool, typer.Option("--demo", help="Ingest the open-medicine guideline corpus.")
    ] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove indexed documents this run did not produce.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            envvar="RAG_INGEST_ENGINE",
            help="local (this process) or ray (Ray Data; RAY_ADDRESS names a cluster).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            envvar="RAG_INGEST_BATCH_SIZE",
            help="With --engine ray: passages per embedding call.",
        ),
    ] = None,
) -> None:
    """Read documents (Markdown, text, HTML, PDF, PubMed/PMC XML, PubMed baseline .xml.gz,
    JSONL) into the index."""
    from rag.index.backend import index_location, open_index
    from rag.index.store import Index
    from rag.ingest.baseline import is_baseline, read_baselines
    from rag.ingest.loaders import IngestProblem, load_paths
    from rag.ingest.pipeline import ingest as ingest_documents

    ingest_overrides = {"engine": engine, "batch_size": batch_size}
    settings = load_settings(
        index, ingest={key: value for key, value in ingest_overrides.items() if value is not None}
    )
    problems: list[IngestProblem] = []
    roots = list(paths or [Path("corpus")]) if (paths or not demo) else []
    exclude = [Path("corpus/README.md")]

    def report_problem(problem: IngestProblem) -> None:
        problems.append(problem)
        typer.echo(f"error: {problem}", err=True)

    def documents():
        if demo:
            from rag.ingest.demo import load_demo_corpus

            yield from load_demo_corpus()
        plain_roots = [root for root in roots if not is_baseline(root)]
        for item in chain(load_paths(plain_roots, exclude=exclude), read_baselines(roots)):
            if isinstance(item, IngestProblem):
                report_problem(item)
            else:
                yield item

    if settings.ingest.engine == "ray":
        from rag.ingest.ray_engine import ingest_on_ray

        store = open_index(settings, create=True)
        report = ingest_on_ray(
            store,
            settings,
            roots,
            demo=demo,
            exclude=exclude,
            prune=prune,
            progress=progress,
            on_problem=report_problem,
        )
    else:
        # A local index folder is created only once there is something to put in it.
        incoming = documents()
        first = next(incoming, None)
        if (
            first is None
            and settings.index_store.backend == "local"
            and not Index.exists(settings.index)
        ):
            typer.echo(f"error: nothing to ingest; no index created at {settings.index}", err=True)
            raise typer.Exit(1)
        store = open_index(settings, create=True)
        items = incoming if first is None else itertools.chain([first], incoming)
        report = ingest_documents(store, items, prune=prune, progress=progress)
    typer.echo(
        f"{index_location(settings)}: {report.added} added, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.removed} removed; "
        f"{report.chunks_embedded} chunks embedded in {report.seconds:.1f}s; "
        f"{store.document_count} documents, {store.chunk_count} chunks"
    )
    if problems:
        typer.echo(f"{len(problems)} input problem(s); the rest was ingested", err=True)
        raise typer.Exit(1)


@app.command("check-index")
@user_errors
def check_index(index: IndexOption = DEFAULT_INDEX) -> None:
    """Check the whole index: database integrity, every vector, FAISS and BM25 against it."""
    from rag.index.store import Index

    settings = load_settings(index)
    store = Index.open(settings.index, settings)
    problems = store.verify()
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        typer.echo(f"{index}: {len(problems)} problem(s) found", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"{index}: ok ({store.document_count} documents, {store.chunk_count} chunks; database, "
        "vectors, FAISS and BM25 agree)"
    )


@app.command()
@user_errors
def ask(
    question: Annotated[str, typer.Argument(help="The clinical question.")],
    index: IndexOption = DEFAULT_INDEX,
    as_json: JsonOption = False,
    mode: ModeOption = None,
    k: Annotated[
        int | None,
        typer.Option(
            "-k",
            min=1,
            envvar="RAG_RETRIEVAL_K",
            help="Passages given to the generator (one more for a vignette's asking sentence).",
        ),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option("--audience", envvar="RAG_AUDIENCE", help="clinician (default) or patient."),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", help="Continue (or start) this saved conversation."),
    ] = None,
    source: SourceOption = None,
    since: SinceOption = None,
) -> None:
    """Answer a question with numbered citations and a reference list."""
    from rag.answer import Engine
    from rag.render import answer_markdown

    settings = load_settings(index)
    engine = Engine.load(settings)
    options: dict[str, Any] = {
        "audience": audience, "mode": mode, "k": k, "sources": source or (), "min_year": since
    }
    unsaved = None
    if session:
        from rag.sessions import SessionStore, TurnNotSaved, answer_in_session, default_data_dir

        store = SessionStore(default_data_dir(settings))
        try:
            answer = answer_in_session(engine, store, session, question, **options)
        except TurnNotSaved as error:
            answer, unsaved = error.answer, error  # show the answer, then say it was not saved
    else:
        answer = engine.ask(question, **options)
    if as_json:
        print_json(answer.to_json())
    else:
        print_markdown(answer_markdown(answer))
    if unsaved is not None:
        raise unsaved


@app.command()
@user_errors
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    index: IndexOption = DEFAULT_INDEX,
    as_json: JsonOption = False,
    k: Annotated[int, typer.Option("-k", min=1, help="Passages to show.")] = 10,
    mode: ModeOption = None,
    source: SourceOption = None,
    since: SinceOption = None,
) -> None:
    """Print the ranked passages for a query, without generating an answer."""
    from rag.answer import Engine
    from rag.render import hits_markdown

    engine = Engine.load(load_settings(index))
    hits = engine.search(query, mode=mode, k=k, sources=source or (), min_year=since)
    if as_json:
        print_json(
            [
                {
                    key: value
                    for key, value in hit.to_json().items()
                    if key in ("chunk_id", "doc_id", "title", "section", "text", "score", "rank",
                               "source", "year", "url", "doi")
                }
                for hit in hits
            ]
        )
    else:
        typer.echo(hits_markdown(hits))


@app.command()
@user_errors
def chat(
    index: IndexOption = DEFAULT_INDEX,
    session: Annotated[
        str | None, typer.Option("--session", help="Conversation to continue (default: a new one).")
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option("--audience", envvar="RAG_AUDIENCE", help="clinician (default) or patient."),
    ] = None,
) -> None:
    """Ask questions and follow-ups interactively; related questions are numbered shortcuts."""
    import time

    from rag.answer import Engine
    from rag.chat import chat_loop
    from rag.sessions import SessionStore, default_data_dir

    settings = load_settings(index)
    store = SessionStore(default_data_dir(settings))
    name = session or time.strftime("chat-%Y%m%d-%H%M%S")
    store.load_or_empty(name)  # a bad name or a damaged file fails now, not after the slow load
    typer.echo(f"Loading the index {settings.index} ...", err=True)  # takes seconds: say why
    engine = Engine.load(settings)
    chat_loop(engine, store, name, audience=audience)


sessions_app = typer.Typer(help="List, show and delete saved conversations.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")


def _session_store():
    from rag.sessions import SessionStore, default_data_dir

    return SessionStore(default_data_dir(load_settings()))


@sessions_app.command("list")
@user_errors
def sessions_list(as_json: JsonOption = False) -> None:
    """Saved conversations, most recent first."""
    infos = _session_store().names()
    if as_json:
        print_json([{"name": info.name, "turns": info.turns, "updated": info.updated} for info in infos])
        return
    if not infos:
        typer.echo("No saved conversations.")
    for info in infos:
        typer.echo(f"{info.name}\t{info.turns} turns\t{info.updated}")


@sessions_app.command("show")
@user_errors
def sessions_show(
    name: Annotated[str, typer.Argument(help="Session name.")], as_json: JsonOption = False
) -> None:
    """The questions and answers of one conversation."""
    from dataclasses import asdict

    turns = _session_store().load(name)
    if as_json:
        print_json([asdict(turn) for turn in turns])
        return
    for number, turn in enumerate(turns, start=1):
        typer.echo(f"## {number}. {turn.question}")
        if turn.standalone_question and turn.standalone_question != turn.question:
            typer.echo(f"_Understood as: {turn.standalone_question}_")
        typer.echo(f"\n{turn.answer}\n")


@sessions_app.command("delete")
@user_errors
def sessions_delete(name: Annotated[str, typer.Argument(help="Session name.")]) -> None:
    """Delete one conversation."""
    _session_store().delete(name)
    typer.echo(f"deleted {name}")


@app.command()
@user_errors
def serve(
    index: IndexOption = DEFAULT_INDEX,
    host: Annotated[str, typer.Option(help="Address to bind; localhost unless told otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the clinician web page and the JSON API (set RAG_API_KEY to require a key)."""
    from rag.web.app import serve as serve_web

    settings = load_settings(index)
    serve_web(settings, host=host, port=port, api_key=settings.api_key or None)


@app.command()
@user_errors
def batch(
    questions: Annotated[Path, typer.Argument(help="JSONL (id, question, history?) or CSV (id,question).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Answers, one JSON line per id.")],
    index: IndexOption = DEFAULT_INDEX,
    workers: Annotated[int, typer.Option(help="Questions answered at once.")] = 1,
    mode: ModeOption = None,
    audience: Annotated[
        str | None, typer.Option(envvar="RAG_AUDIENCE", help="clinician (default) or patient.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
) -> None:
    """Answer a file of questions; re-running with the same output resumes where it stopped."""
    from rag.answer import Engine
    from rag.batch import run_batch

    engine = Engine.load(load_settings(index))

    def answer(question, history):
        return engine.ask(question, history=history, mode=mode, audience=audience)

    summary = run_batch(questions, output, answer, workers=workers, progress=progress)
    typer.echo(summary.line(), err=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command("eval")
@user_errors
def evaluate(
    gold: Annotated[Path, typer.Argument(help="Gold questions (JSONL: id, question, relevant_doc_ids, answer?, label?).")],
    index: IndexOption = DEFAULT_INDEX,
    modes: Annotated[str, typer.Option(help="Comma-separated retrieval modes.")] = "dense,lexical,hybrid",
    as_json: JsonOption = False,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Per-question rows (JSONL); the Markdown table is written beside it (.md)."),
    ] = None,
    answers: Annotated[
        bool, typer.Option("--answers", help="Also generate answers, with and without retrieval, and score them.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="With --answers: only the first N questions.")] = None,
) -> None:
    """Retrieval metrics per mode (Recall@1/5/10, MRR@10, nDCG@10); answer quality with --answers."""
    from rag.evaluate.retrieval import run_retrieval_eval

    settings = load_settings(index)
    report = run_retrieval_eval(gold, settings=settings, modes=modes, rows_path=output)
    markdown = report.to_markdown()
    result: dict[str, Any] = {"retrieval": report.to_json()}
    if output is not None:
        output.with_suffix(".md").write_text(markdown + "\n", encoding="utf-8")
    if answers:
        from rag.evaluate.answers import run_answer_evaluation

        prefix = output.with_name(output.stem + "-answers") if output is not None else None
        answer_report = run_answer_evaluation(settings, gold, output_prefix=prefix, limit=limit)
        markdown += "\n\n" + answer_report.to_markdown()
        result["answers"] = answer_report.to_json()
    if as_json:
        print_json(result)
    else:
        typer.echo(markdown)


def _mount_llm_commands() -> None:
    """`rag llm serve|fetch`: the local OpenAI-compatible server (optional extra rag[local])."""
    from rag.local_llm import llm_app

    app.add_typer(llm_app, name="llm")


_mount_llm_commands()


@app.command()
@user_errors
def config() -> None:
    """Show every setting, its current value and what it does."""
    from rag.config import describe

    settings = Settings.from_env()
    typer.echo(json.dumps(settings.to_json(), indent=2))
    typer.echo("")
    for name, default, description in describe():
        typer.echo(f"{name} (default {default}): {description}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
