"""Saved conversations: one SQLite file per data folder, and answering inside one.

`SessionStore(data_dir)` keeps every conversation in `data_dir/sessions.sqlite`, so
`rag ask --session NAME`, `rag chat` and the web page (`rag serve`) can continue one later,
from any of those processes at once. The database runs in WAL mode and each appended turn is
one `BEGIN IMMEDIATE` transaction, so two processes appending to the same session queue on
SQLite's write lock and neither loses the other's turn (the JSON files this replaces were
read, changed and rewritten whole: the later writer dropped the earlier writer's turn).

Conversations saved as `data_dir/sessions/NAME.json` by earlier versions are moved into the
database the first time the store is used (each file in one transaction, then renamed to
`NAME.json.migrated`). A file that cannot be read stays where it is and is reported as damaged
by `load`, `append` and `names`, with the command that deletes it.

`answer_in_session` is the one way a question is answered inside a saved conversation: the
CLI, the terminal chat and the web app all call it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from rag.config import Settings
from rag.errors import InputError, SessionError
from rag.types import Answer, Turn

SESSION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
DATABASE_NAME = "sessions.sqlite"
LEGACY_FOLDER = "sessions"  # where the JSON files of earlier versions live
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another process's transaction
WAL_RETRY_S = 0.05

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    name TEXT PRIMARY KEY,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS turns (
    session TEXT NOT NULL REFERENCES sessions(name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    standalone_question TEXT NOT NULL DEFAULT '',
    cited_doc_ids TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (session, position)
);
"""


class TurnNotSaved(SessionError):
    """The question was answered but its turn could not be saved; `answer` holds the answer."""

    def __init__(self, message: str, answer: Answer) -> None:
        super().__init__(message)
        self.answer = answer


@dataclass(frozen=True)
class SessionInfo:
    """One saved conversation as listed by `rag sessions list`; `updated` is ISO 8601 UTC."""

    name: str
    turns: int
    updated: str
    damaged: bool = False


def default_data_dir(settings: Settings) -> Path:
    """Where conversations live: `settings.data_dir` (RAG_DATA_DIR), else the platform's user
    data folder for "rag" (e.g. ~/.local/share/rag)."""
    if settings.data_dir:
        return Path(settings.data_dir).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("rag"))


def check_session_name(name: str) -> str:
    """`name` if it is a usable session name, else InputError saying what is allowed."""
    if not isinstance(name, str) or not SESSION_NAME.match(name):
        shown = name if isinstance(name, str) else repr(name)
        raise InputError(
            f"session name '{shown[:80]}' is not allowed: use 1 to 100 letters, digits, '-' or '_'"
        )
    return name


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _begin_writing(connection: sqlite3.Connection) -> None:
    """Start a write transaction (BEGIN IMMEDIATE: waited for while another process holds
    one) and make the schema inside it, so two processes creating the file at once queue
    instead of racing (executescript would commit on its own)."""
    connection.execute("BEGIN IMMEDIATE")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            connection.execute(statement)


class SessionStore:
    """Conversations saved in `data_dir`/sessions.sqlite; safe to share between threads and
    to use from several processes at once (every call opens its own connection)."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.database = self.data_dir / DATABASE_NAME
        self.legacy_directory = self.data_dir / LEGACY_FOLDER

    # -- reading --------------------------------------------------------------------------

    def load(self, name: str) -> list[Turn]:
        """The turns of session `name`, oldest first; SessionError if it does not exist."""
        turns = self._turns(check_session_name(name))
        if turns is None:
            raise SessionError(f"no session named '{name}' (see `rag sessions list`)")
        return turns

    def load_or_empty(self, name: str) -> list[Turn]:
        """Like `load`, but a session that does not exist yet is an empty conversation."""
        return self._turns(check_session_name(name)) or []

    def exists(self, name: str) -> bool:
        return self._turns(check_session_name(name)) is not None

    def names(self) -> list[SessionInfo]:
        """Every saved session, most recently updated first; a JSON file of an earlier version
        that could not be moved in is listed with `damaged=True` (and 0 turns)."""
        infos: list[SessionInfo] = []
        with self._reading() as connection:
            # What is left of the old JSON files once they are moved in could not be read.
            infos += [SessionInfo(name, 0, "", damaged=True) for name in self._legacy_names()]
            if connection is not None:
                rows = connection.execute(
                    "SELECT name, updated, (SELECT count(*) FROM turns WHERE session = name) "
                    "FROM sessions"
                ).fetchall()
                infos += [SessionInfo(name, count, updated) for name, updated, count in rows]
        return sorted(infos, key=lambda info: (info.updated, info.name), reverse=True)

    # -- writing --------------------------------------------------------------------------

    def append(self, name: str, turn: Turn) -> None:
        """Add `turn` at the end of session `name`, creating the session if needed: one
        transaction, so a turn appended by another process at the same time is kept too."""
        check_session_name(name)
        self._raise_if_damaged(name)
        with self._writing() as connection:
            now = _now()
            connection.execute(
                "INSERT INTO sessions (name, created, updated) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET updated = excluded.updated",
                (name, now, now),
            )
            (position,) = connection.execute(
                "SELECT coalesce(max(position), 0) + 1 FROM turns WHERE session = ?", (name,)
            ).fetchone()
            connection.execute(_INSERT_TURN, (name, position, *_turn_row(turn)))

    def replace_last(self, name: str, turn: Turn) -> None:
        """Put `turn` in place of the latest turn of session `name` (the same question answered
        again, for another reader); SessionError when the session has no turn."""
        check_session_name(name)
        self._raise_if_damaged(name)
        with self._writing() as connection:
            found = connection.execute(
                "SELECT max(position) FROM turns WHERE session = ?", (name,)
            ).fetchone()
            if found[0] is None:
                raise SessionError(f"session '{name}' has no answer to replace")
            connection.execute(
                "UPDATE turns SET question = ?, answer = ?, standalone_question = ?, "
                "cited_doc_ids = ? WHERE session = ? AND position = ?",
                (*_turn_row(turn), name, found[0]),
            )
            connection.execute("UPDATE sessions SET updated = ? WHERE name = ?", (_now(), name))

    def delete(self, name: str) -> None:
        """Remove session `name` (a damaged file of an earlier version too); SessionError if
        there is none."""
        check_session_name(name)
        legacy = self._legacy_path(name)
        removed = False
        if legacy.exists():
            legacy.unlink(missing_ok=True)
            removed = True
        if self.database.exists():
            with self._writing() as connection:
                removed |= (
                    connection.execute("DELETE FROM sessions WHERE name = ?", (name,)).rowcount > 0
                )
        if not removed:
            raise SessionError(f"no session named '{name}' (see `rag sessions list`)")

    # -- the database ---------------------------------------------------------------------

    def _turns(self, name: str) -> list[Turn] | None:
        self._raise_if_damaged(name)
        with self._reading() as connection:
            if connection is None:
                return None
            if (
                connection.execute("SELECT 1 FROM sessions WHERE name = ?", (name,)).fetchone()
                is None
            ):
                return None
            rows = connection.execute(
                "SELECT question, answer, standalone_question, cited_doc_ids FROM turns "
                "WHERE session = ? ORDER BY position",
                (name,),
            ).fetchall()
        return [
            Turn(question, answer, standalone, tuple(json.loads(cited)))
            for question, answer, standalone, cited in rows
        ]

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.database, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA foreign_keys = ON")
        return connection

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A connection for reading, None when nothing was ever saved here."""
        try:
            self._migrate_legacy_files()
            if not self.database.exists():
                yield None
                return
            with closing(self._connect()) as connection:
                yield connection
        except sqlite3.Error as error:
            raise self._storage_error(error) from None

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: taken at once, waited for when another
        process holds it), committed on success and rolled back on any error."""
        try:
            self._migrate_legacy_files()
            with closing(self._open_for_writing()) as connection:
                _begin_writing(connection)
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
        except sqlite3.Error as error:
            raise self._storage_error(error) from None

    def _open_for_writing(self) -> sqlite3.Connection:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SessionError(
                f"session folder {self.data_dir} cannot be created ({error.strerror})"
            ) from None
        connection = self._connect()
        # WAL lets readers go on while a turn is written; the setting stays with the file.
        # Switching a new file to WAL needs it to itself, and SQLite reports "locked" at once
        # (no busy wait) when another process is switching it too: try again briefly.
        for attempt in range(int(BUSY_TIMEOUT_S / WAL_RETRY_S)):
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    connection.close()
                    raise
                time.sleep(WAL_RETRY_S)
        return connection

    def _storage_error(self, error: sqlite3.Error) -> SessionError:
        return SessionError(f"session database {self.database} cannot be used ({error})")

    # -- JSON files of earlier versions ---------------------------------------------------

    def _legacy_path(self, name: str) -> Path:
        return self.legacy_directory / f"{name}.json"

    def _legacy_names(self) -> list[str]:
        if not self.legacy_directory.is_dir():
            return []
        return sorted(
            path.stem
            for path in self.legacy_directory.glob("*.json")
            if SESSION_NAME.match(path.stem)
        )

    def _raise_if_damaged(self, name: str) -> None:
        if self._legacy_path(name).exists():
            _read_legacy_file(self._legacy_path(name), name)  # raises the damage it finds

    def _migrate_legacy_files(self) -> None:
        """Move every readable JSON conversation into the database; a session the database
        already has (another process moved it first) only has its file renamed."""
        for name in self._legacy_names():
            path = self._legacy_path(name)
            try:
                data = _read_legacy_file(path, name)
            except SessionError:
                continue  # left in place and reported as damaged
            if data is None:
                continue
            with closing(self._open_for_writing()) as connection:
                _begin_writing(connection)
                if connection.execute("SELECT 1 FROM sessions WHERE name = ?", (name,)).fetchone():
                    connection.execute("ROLLBACK")
                else:
                    updated = str(data.get("updated") or _now())
                    connection.execute(
                        "INSERT INTO sessions (name, created, updated) VALUES (?, ?, ?)",
                        (name, str(data.get("created") or updated), updated),
                    )
                    connection.executemany(
                        _INSERT_TURN,
                        [
                            (name, position, *_turn_row(_turn_from_json(item)))
                            for position, item in enumerate(data["turns"], start=1)
                        ],
                    )
                    connection.execute("COMMIT")
            try:
                path.rename(path.with_name(path.name + ".migrated"))
            except FileNotFoundError:
                pass  # another process renamed it first


_INSERT_TURN = (
    "INSERT INTO turns (session, position, question, answer, standalone_question, cited_doc_ids) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _turn_row(turn: Turn) -> tuple[str, str, str, str]:
    return (
        turn.question,
        turn.answer,
        turn.standalone_question,
        json.dumps(list(turn.cited_doc_ids), ensure_ascii=False),
    )


def _read_legacy_file(path: Path, name: str) -> dict[str, Any] | None:
    """The parsed JSON conversation at `path`, None when it is gone; SessionError naming the
    file and the command that deletes it when it is damaged."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SessionError(f"session file {path} cannot be read ({error.strerror})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
        _check_shape(data)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as error:
        raise SessionError(
            f"session file {path} is damaged ({_short(error)}); delete it with "
            f"`rag sessions delete {name}` or restore it from a backup"
        ) from None
    return data


def _check_shape(data: Any) -> None:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    turns = data.get("turns")
    if not isinstance(turns, list):
        raise TypeError("no list of turns")
    if not isinstance(data.get("updated", ""), str):
        raise TypeError("'updated' is not a time")
    for number, item in enumerate(turns, start=1):
        if not isinstance(item, dict):
            raise TypeError(f"turn {number} is not an object")
        for key in ("question", "answer"):
            if not isinstance(item.get(key), str):
                raise TypeError(f"turn {number} has no {key}")
        if not isinstance(item.get("standalone_question", ""), str):
            raise TypeError(f"turn {number} has a bad standalone_question")
        cited = item.get("cited_doc_ids", [])
        if not isinstance(cited, list) or not all(isinstance(doc_id, str) for doc_id in cited):
            raise TypeError(f"turn {number} has a bad cited_doc_ids")


def _short(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON at line {error.lineno} column {error.colno}"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(error)


def turn_to_json(turn: Turn) -> dict[str, Any]:
    """`turn` as the JSON object `rag sessions show --json` and the web API return."""
    return {
        "question": turn.question,
        "answer": turn.answer,
        "standalone_question": turn.standalone_question,
        "cited_doc_ids": list(turn.cited_doc_ids),
    }


def _turn_from_json(item: dict[str, Any]) -> Turn:
    return Turn(
        question=item["question"],
        answer=item["answer"],
        standalone_question=item.get("standalone_question", ""),
        cited_doc_ids=tuple(item.get("cited_doc_ids", ())),
    )


# ---------------------------------------------------------------------------------------------
# Answering inside a saved conversation


class Asker(Protocol):
    """What `answer_in_session` needs: rag.answer.Engine's `ask`."""

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        session: str | None = None,
        **options: Any,
    ) -> Answer: ...


class Conversations(Protocol):
    """What `answer_in_session` needs from a store (SessionStore provides it)."""

    def load(self, name: str) -> list[Turn]: ...

    def load_or_empty(self, name: str) -> list[Turn]: ...

    def append(self, name: str, turn: Turn) -> None: ...

    def replace_last(self, name: str, turn: Turn) -> None: ...


def answer_in_session(
    engine: Asker,
    store: Conversations,
    session: str,
    question: str,
    *,
    history: Sequence[Turn] | None = None,
    must_exist: bool = False,
    replace_last: bool = False,
    **options: Any,
) -> Answer:
    """Answer `question` in the light of session `session` and save the exchange as its turn.

    The history is the saved turns (or `history`, when the caller keeps its own, as
    `rag chat` does after /new); `must_exist` makes a session never saved a SessionError
    instead of a new conversation. With `replace_last` the question is answered again in
    place of the latest turn (the web page's audience switch): it is read in the light of the
    turns before it and the saved turn is replaced, not repeated. `options` go to
    `engine.ask` (audience, mode, k, sources, min_year). An answer whose turn cannot be saved
    raises TurnNotSaved, which carries the answer.
    """
    if history is None:
        history = store.load(session) if must_exist else store.load_or_empty(session)
    if replace_last:
        if not history:
            raise SessionError(f"session '{session}' has no answer to replace")
        history = history[:-1]
    answer = engine.ask(question, history=history, session=session, **options)
    try:
        if replace_last:
            store.replace_last(session, answer.as_turn())
        else:
            store.append(session, answer.as_turn())
    except SessionError as error:
        raise TurnNotSaved(str(error), answer) from None
    return answer
