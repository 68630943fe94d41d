"""Saved conversations (rag.sessions): one SQLite file per data folder, shared by processes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rag.config import Settings
from rag.errors import InputError, SessionError
from rag.sessions import SessionStore, TurnNotSaved, answer_in_session, default_data_dir
from rag.types import Answer, Turn

REPO = Path(__file__).resolve().parents[1]

GOUT = Turn(
    question="What is the first-line treatment for a gout flare?",
    answer="Colchicine, NSAIDs or glucocorticoids are first-line [1].",
    standalone_question="What is the first-line treatment for a gout flare?",
    cited_doc_ids=("acr_gout_2020/flare_management",),
)
FOLLOW_UP = Turn("And how long for?", "Until the flare resolves [1].", "gout flare duration", ())


def test_turns_survive_a_new_store_instance(tmp_path: Path) -> None:
    SessionStore(tmp_path).append("gout-1", GOUT)
    SessionStore(tmp_path).append("gout-1", FOLLOW_UP)

    turns = SessionStore(tmp_path).load("gout-1")

    assert turns == [GOUT, FOLLOW_UP]
    assert turns[0].cited_doc_ids == ("acr_gout_2020/flare_management",)
    files = {path.name for path in tmp_path.iterdir()} - {
        "sessions.sqlite-wal",
        "sessions.sqlite-shm",
    }
    assert files == {"sessions.sqlite"}  # one file for every conversation


def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.append("walled", GOUT)
    with sqlite3.connect(store.database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_missing_session_names_the_list_command(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match=r"no session named 'nope' \(see `rag sessions list`\)"):
        SessionStore(tmp_path).load("nope")
    assert SessionStore(tmp_path).load_or_empty("nope") == []
    assert not (tmp_path / "sessions.sqlite").exists()  # reading creates nothing


@pytest.mark.parametrize(
    "name", ["", "../escape", "has space", "a/b", "semi;colon", "x" * 101, "é"]
)
def test_invalid_session_names_are_refused(tmp_path: Path, name: str) -> None:
    store = SessionStore(tmp_path)
    with pytest.raises(InputError, match="letters, digits"):
        store.append(name, GOUT)
    with pytest.raises(InputError):
        store.load(name)


def test_names_lists_most_recent_first_and_delete_removes(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.append("older", GOUT)
    store.append("newer", GOUT)
    store.append("newer", GOUT)

    infos = store.names()
    assert [(info.name, info.turns) for info in infos] == [("newer", 2), ("older", 1)]

    store.delete("older")
    assert [info.name for info in store.names()] == ["newer"]
    with pytest.raises(SessionError, match="no session named 'older'"):
        store.delete("older")
    with pytest.raises(SessionError, match="no session named 'older'"):
        store.load("older")


def test_empty_store_lists_nothing(tmp_path: Path) -> None:
    assert SessionStore(tmp_path / "never-created").names() == []
    assert not (tmp_path / "never-created").exists()


def test_replace_last_rewrites_the_latest_turn_only(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.append("s", GOUT)
    store.append("s", FOLLOW_UP)
    for_patients = Turn("And how long for?", "Until the pain has gone [1].", "gout flare duration")

    store.replace_last("s", for_patients)

    assert store.load("s") == [GOUT, for_patients]
    with pytest.raises(SessionError, match="has no answer to replace"):
        store.replace_last("empty", GOUT)


def test_concurrent_appends_from_threads_keep_every_turn(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)

    def add(worker: int) -> None:
        for number in range(10):
            store.append("busy", Turn(f"q{worker}-{number}", "a"))

    threads = [threading.Thread(target=add, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len({turn.question for turn in store.load("busy")}) == 40


# Each process waits for the start file, then appends its turns as fast as it can.
APPENDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from rag.sessions import SessionStore
from rag.types import Turn
data, worker, start = sys.argv[2], sys.argv[3], Path(sys.argv[4])
store = SessionStore(data)
while not start.exists():
    time.sleep(0.001)
for number in range(40):
    store.append("shared", Turn(f"{worker}-{number}", "answer [1].", "", ("doc",)))
"""


def test_two_processes_appending_to_one_session_lose_no_turn(tmp_path: Path) -> None:
    # `rag serve` and `rag ask --session` on the same conversation are two such processes.
    start = tmp_path / "start"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(REPO), str(tmp_path / "data"), name, str(start)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("serve", "ask")
    ]
    start.touch()
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors

    questions = [turn.question for turn in SessionStore(tmp_path / "data").load("shared")]
    assert len(questions) == 80
    assert sorted(questions) == sorted(
        f"{name}-{n}" for name in ("serve", "ask") for n in range(40)
    )
    # Each process's turns keep their own order.
    for name in ("serve", "ask"):
        assert [q for q in questions if q.startswith(name)] == [f"{name}-{n}" for n in range(40)]


# --- JSON files of earlier versions ------------------------------------------------------------


def _legacy_file(data_dir: Path, name: str, content: str | bytes) -> Path:
    folder = data_dir / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_json_sessions_are_moved_in_on_first_use(tmp_path: Path) -> None:
    legacy = {
        "format": 1,
        "name": "old",
        "created": "2026-01-02T03:04:05.000000Z",
        "updated": "2026-01-02T03:05:00.000000Z",
        "turns": [
            {
                "question": GOUT.question,
                "answer": GOUT.answer,
                "standalone_question": GOUT.standalone_question,
                "cited_doc_ids": list(GOUT.cited_doc_ids),
            }
        ],
    }
    path = _legacy_file(tmp_path, "old", json.dumps(legacy))
    store = SessionStore(tmp_path)

    assert store.load("old") == [GOUT]
    assert not path.exists() and path.with_name("old.json.migrated").exists()
    assert [(info.name, info.turns, info.updated) for info in store.names()] == [
        ("old", 1, "2026-01-02T03:05:00.000000Z")
    ]
    store.append("old", FOLLOW_UP)
    assert SessionStore(tmp_path).load("old") == [GOUT, FOLLOW_UP]


@pytest.mark.parametrize(
    "content",
    [
        b'{"turns": [{"question": "q"',
        b"\xff\xfe not text",
        b"[1, 2]",
        b'{"turns": [{"answer": "a"}]}',
    ],
)
def test_a_damaged_json_session_is_a_clear_error(tmp_path: Path, content: bytes) -> None:
    path = _legacy_file(tmp_path, "broken", content)
    store = SessionStore(tmp_path)

    with pytest.raises(SessionError) as caught:
        store.load("broken")

    message = str(caught.value)
    assert str(path) in message and "damaged" in message
    assert "rag sessions delete broken" in message
    assert "\n" not in message
    # Appending must not silently replace a damaged conversation either.
    with pytest.raises(SessionError):
        store.append("broken", GOUT)


def test_a_damaged_json_session_is_listed_and_can_be_deleted(tmp_path: Path) -> None:
    store = SessionStore(tmp_path)
    store.append("good", GOUT)
    _legacy_file(tmp_path, "bad", "{not json")

    listed = {info.name: info for info in store.names()}
    assert listed["good"].turns == 1 and not listed["good"].damaged
    assert listed["bad"].damaged

    store.delete("bad")
    assert [info.name for info in store.names()] == ["good"]


def test_default_data_dir_prefers_settings(tmp_path: Path) -> None:
    assert default_data_dir(Settings(data_dir=str(tmp_path))) == tmp_path
    fallback = default_data_dir(Settings())
    assert fallback.is_absolute() and fallback.name == "rag"


# --- answering inside a saved conversation --------------------------------------------------------


class EchoEngine:
    """Answers with the number of earlier turns it was shown."""

    def __init__(self) -> None:
        self.histories: list[list[Turn]] = []

    def ask(self, question: str, *, history=(), session=None, audience=None, **_) -> Answer:
        self.histories.append(list(history))
        return Answer(
            question=question,
            answer=f"for {audience or 'clinician'} after {len(history)} turns",
            bottom_line="",
            abstained=False,
            citations=(),
            retrieved=(),
            session=session,
        )


def test_answer_in_session_reads_the_saved_turns_and_saves_the_new_one(tmp_path: Path) -> None:
    store, engine = SessionStore(tmp_path), EchoEngine()
    store.append("s", GOUT)

    answer = answer_in_session(engine, store, "s", "And how long for?")

    assert engine.histories == [[GOUT]]
    assert answer.session == "s"
    assert [turn.question for turn in store.load("s")] == [GOUT.question, "And how long for?"]


def test_answering_again_for_another_audience_replaces_the_turn(tmp_path: Path) -> None:
    store, engine = SessionStore(tmp_path), EchoEngine()
    answer_in_session(engine, store, "s", GOUT.question)
    answer_in_session(engine, store, "s", "And how long for?")

    answer = answer_in_session(
        engine, store, "s", "And how long for?", replace_last=True, audience="patient"
    )

    assert answer.answer == "for patient after 1 turns"  # read against the turn before it only
    assert [turn.answer for turn in store.load("s")] == [
        "for clinician after 0 turns",
        "for patient after 1 turns",
    ]


def test_an_answer_that_cannot_be_saved_is_handed_back(tmp_path: Path) -> None:
    class FullDisk(SessionStore):
        def append(self, name: str, turn: Turn) -> None:
            raise SessionError(f"session database {self.database} cannot be used (disk is full)")

    with pytest.raises(TurnNotSaved) as caught:
        answer_in_session(EchoEngine(), FullDisk(tmp_path), "s", "Dose?")

    assert caught.value.answer.answer == "for clinician after 0 turns"
    assert "sessions.sqlite cannot be used (disk is full)" in str(caught.value)
