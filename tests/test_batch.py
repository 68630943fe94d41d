"""Batch answering: JSONL/CSV in, one JSON line per id out, resumable after any crash.

A fake answer callable stands in for the engine: the behaviour under test is the file
handling, not the answers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.batch import BatchSummary, run_batch
from rag.errors import InputError, LLMError
from rag.types import Answer, Turn

REPO = Path(__file__).resolve().parent.parent


def make_answer(question: str, *, abstained: bool = False) -> Answer:
    return Answer(
        question=question,
        answer=f"Answer to: {question} [1]",
        bottom_line=f"Bottom line for {question}",
        abstained=abstained,
        citations=(),
        retrieved=(),
    )


class RecordingAnswerer:
    """Answers every question, remembering what it was asked and with which history."""

    def __init__(self, *, fail_on: dict[str, Exception] | None = None, delay_s: float = 0.0):
        self.calls: list[tuple[str, list[Turn]]] = []
        self.fail_on = fail_on or {}
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def __call__(self, question: str, history: list[Turn]) -> Answer:
        with self.lock:
            self.calls.append((question, history))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            if question in self.fail_on:
                raise self.fail_on[question]
            return make_answer(question, abstained="unknowable" in question)
        finally:
            with self.lock:
                self.in_flight -= 1

    @property
    def questions(self) -> list[str]:
        return [question for question, _ in self.calls]


def write_jsonl(path: Path, records: list[dict | str]) -> Path:
    lines = [record if isinstance(record, str) else json.dumps(record) for record in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_output(path: Path) -> list[dict]:
    """Every output line parsed; fails the test on a line that is not a JSON object."""
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "output must end with a complete line"
    records = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(record, dict) for record in records)
    return records


def by_id(records: list[dict]) -> dict:
    ids = [record["id"] for record in records]
    assert len(ids) == len(set(ids)), f"duplicate ids in output: {ids}"
    return {record["id"]: record for record in records}


def questions(n: int) -> list[dict]:
    return [{"id": f"q{i}", "question": f"Question number {i}?"} for i in range(1, n + 1)]


def test_each_question_answered_with_its_id_and_history(tmp_path: Path) -> None:
    input_path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "question": "First line treatment for gout?"},
            {
                "id": "b",
                "question": "And in kidney disease?",
                "history": [{"question": "First line treatment for gout?", "answer": "NSAIDs [1]"}],
            },
            {"id": 7, "question": "Is this unknowable?"},
        ],
    )
    answerer = RecordingAnswerer()

    summary = run_batch(input_path, tmp_path / "out.jsonl", answerer, progress=False)

    records = by_id(read_output(tmp_path / "out.jsonl"))
    assert set(records) == {"a", "b", 7}  # ids keep their JSON type
    assert records["a"]["answer"] == "Answer to: First line treatment for gout? [1]"
    assert records["a"]["question"] == "First line treatment for gout?"
    assert records[7]["abstained"] is True
    assert "citations" in records["b"] and "retrieved" in records["b"]
    history_of_b = dict(answerer.calls)["And in kidney disease?"]
    assert history_of_b == [Turn(question="First line treatment for gout?", answer="NSAIDs [1]")]
    assert (summary.answered, summary.abstained, summary.failed, summary.skipped) == (3, 1, 0, 0)
    assert summary.line() == "3 answered (1 abstained), 0 failed, 0 skipped (already done)"


def test_rerun_skips_answered_ids(tmp_path: Path) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(3))
    output_path = tmp_path / "out.jsonl"
    run_batch(input_path, output_path, RecordingAnswerer(), progress=False)
    write_jsonl(input_path, questions(5))  # two questions added since
    second = RecordingAnswerer()

    summary = run_batch(input_path, output_path, second, progress=False)

    assert second.questions == ["Question number 4?", "Question number 5?"]
    assert summary.skipped == 3 and summary.answered == 2
    assert set(by_id(read_output(output_path))) == {"q1", "q2", "q3", "q4", "q5"}


KILLABLE_BATCH = """
import sys, time
from pathlib import Path
from rag.batch import run_batch
from rag.types import Answer

def slow_answer(question, history):
    time.sleep(0.05)
    return Answer(question=question, answer="slow: " + question, bottom_line="",
                  abstained=False, citations=(), retrieved=())

run_batch(Path(sys.argv[1]), Path(sys.argv[2]), slow_answer, workers=2, progress=False)
"""


def test_resume_after_kill_9_gives_one_valid_line_per_id(tmp_path: Path) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(80))
    output_path = tmp_path / "out.jsonl"
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE_BATCH, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script), str(input_path), str(output_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if output_path.exists() and output_path.read_bytes().count(b"\n") >= 10:
                break
            assert process.poll() is None, "the batch ended before it could be killed"
            time.sleep(0.02)
        assert process.poll() is None, "the batch finished before it was killed"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    answered_before_kill = {
        json.loads(line)["id"]
        for line in output_path.read_bytes().split(b"\n")
        if line.strip() and line.endswith(b"}")
    }
    assert 10 <= len(answered_before_kill) < 80

    resumed = RecordingAnswerer()
    summary = run_batch(input_path, output_path, resumed, progress=False)

    records = by_id(read_output(output_path))
    assert set(records) == {f"q{i}" for i in range(1, 81)}
    asked_again = {question for question in resumed.questions}
    assert not asked_again & {f"Question number {qid[1:]}?" for qid in answered_before_kill}
    assert summary.skipped + summary.answered == 80


def test_truncated_last_line_is_cut_off_and_that_id_answered_again(tmp_path: Path) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(3))
    output_path = tmp_path / "out.jsonl"
    run_batch(input_path, output_path, RecordingAnswerer(), progress=False)
    lines = output_path.read_bytes().splitlines(keepends=True)
    last_id = json.loads(lines[-1])["id"]
    # What a kill in the middle of writing the last line would leave behind.
    output_path.write_bytes(b"".join(lines[:-1]) + lines[-1][:25])

    resumed = RecordingAnswerer()
    summary = run_batch(input_path, output_path, resumed, progress=False)

    assert resumed.questions == [f"Question number {last_id[1:]}?"]
    assert summary.skipped == 2
    assert set(by_id(read_output(output_path))) == {"q1", "q2", "q3"}


def test_duplicate_ids_are_reported_and_answered_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    input_path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "q1", "question": "Original question?"},
            {"id": "q2", "question": "Another question?"},
            {"id": "q1", "question": "A copy with other words?"},
        ],
    )
    answerer = RecordingAnswerer()

    summary = run_batch(input_path, tmp_path / "out.jsonl", answerer, progress=False)

    assert summary.duplicates == {"q1": [1, 3]}
    assert "1 duplicate id" in summary.line()
    stderr = capsys.readouterr().err
    assert "'q1'" in stderr and "lines 1, 3" in stderr
    assert answerer.questions == ["Original question?", "Another question?"]
    records = by_id(read_output(tmp_path / "out.jsonl"))
    assert records["q1"]["question"] == "Original question?"
    assert len(records) == 2


def test_bad_input_lines_become_error_lines_and_the_batch_goes_on(tmp_path: Path) -> None:
    input_path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            "{not json",
            {"question": "Where is my id?"},
            {"id": "no-question"},
            {"id": "blank", "question": "   "},
            {"id": "bad-history", "question": "Why?", "history": [{"question": "only half"}]},
            "",  # blank lines are not questions
            {"id": "good", "question": "A fine question?"},
        ],
    )
    answerer = RecordingAnswerer()

    summary = run_batch(input_path, tmp_path / "out.jsonl", answerer, progress=False)

    records = by_id(read_output(tmp_path / "out.jsonl"))
    assert answerer.questions == ["A fine question?"]
    assert records["good"]["answer"].startswith("Answer to:")
    assert "not JSON" in records["line 1"]["error"]
    assert "no id" in records["line 2"]["error"]
    assert "no question" in records["no-question"]["error"]
    assert "empty question" in records["blank"]["error"]
    assert "history turn 1" in records["bad-history"]["error"]
    assert all("input line" in records[key]["error"] for key in records if key != "good")
    assert (summary.failed, summary.bad_input, summary.answered) == (5, 5, 1)
    assert "5 failed (5 bad input lines)" in summary.line()


def test_failing_answers_become_error_lines_and_are_retried_on_rerun(tmp_path: Path) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(4))
    output_path = tmp_path / "out.jsonl"
    flaky = RecordingAnswerer(
        fail_on={
            "Question number 2?": LLMError("the LLM endpoint timed out after 3 retries"),
            "Question number 3?": ValueError("unexpected reply"),
        }
    )

    first = run_batch(input_path, output_path, flaky, progress=False)

    records = by_id(read_output(output_path))
    assert records["q2"] == {"id": "q2", "error": "the LLM endpoint timed out after 3 retries"}
    assert records["q3"] == {"id": "q3", "error": "ValueError: unexpected reply"}
    assert records["q4"]["answer"] == "Answer to: Question number 4? [1]"
    assert (first.answered, first.failed) == (2, 2)

    healthy = RecordingAnswerer()
    second = run_batch(input_path, output_path, healthy, progress=False)

    assert sorted(healthy.questions) == ["Question number 2?", "Question number 3?"]
    records = by_id(read_output(output_path))
    assert set(records) == {"q1", "q2", "q3", "q4"}
    assert not any("error" in record for record in records.values())
    assert (second.answered, second.failed, second.skipped) == (2, 0, 2)
    assert list(tmp_path.glob("*.tmp")) == []


def test_csv_input(tmp_path: Path) -> None:
    input_path = tmp_path / "questions.csv"
    input_path.write_text(
        'ID,Question\nc1,"Dose of amoxicillin, for adults?"\nc2,\n,Orphan question?\n',
        encoding="utf-8-sig",
    )
    answerer = RecordingAnswerer()

    summary = run_batch(input_path, tmp_path / "out.jsonl", answerer, progress=False)

    records = by_id(read_output(tmp_path / "out.jsonl"))
    assert answerer.questions == ["Dose of amoxicillin, for adults?"]
    assert records["c1"]["question"] == "Dose of amoxicillin, for adults?"
    assert "empty question" in records["c2"]["error"]
    assert "no id" in records["line 4"]["error"]
    assert (summary.answered, summary.failed) == (1, 2)


def test_csv_without_question_column_is_one_clear_error(tmp_path: Path) -> None:
    input_path = tmp_path / "questions.csv"
    input_path.write_text("id,text\n1,hello\n", encoding="utf-8")

    with pytest.raises(InputError, match=r"questions\.csv: .*id and question columns"):
        run_batch(input_path, tmp_path / "out.jsonl", RecordingAnswerer(), progress=False)
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [("missing.jsonl", "no such file"), ("questions.txt", "unknown input format .txt")],
)
def test_unusable_input_file_is_named(tmp_path: Path, name: str, message: str) -> None:
    if name.endswith(".txt"):
        (tmp_path / name).write_text("q?\n", encoding="utf-8")
    with pytest.raises(InputError, match=rf"{name}.*{message}"):
        run_batch(tmp_path / name, tmp_path / "out.jsonl", RecordingAnswerer(), progress=False)


def test_four_workers_answer_concurrently_with_the_same_results(tmp_path: Path) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(24))
    serial = RecordingAnswerer()
    run_batch(input_path, tmp_path / "serial.jsonl", serial, progress=False)
    parallel = RecordingAnswerer(delay_s=0.02)

    summary = run_batch(
        input_path, tmp_path / "parallel.jsonl", parallel, workers=4, progress=False
    )

    serial_records = by_id(read_output(tmp_path / "serial.jsonl"))
    parallel_records = by_id(read_output(tmp_path / "parallel.jsonl"))
    assert parallel_records == serial_records
    assert summary.answered == 24
    assert parallel.most_in_flight > 1, "workers=4 never answered two questions at once"


def test_no_progress_output_when_stderr_is_not_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(3))

    run_batch(input_path, tmp_path / "out.jsonl", RecordingAnswerer(), progress=True)

    assert capsys.readouterr().err == ""


def test_summary_line_mentions_every_count() -> None:
    summary = BatchSummary(
        answered=10, abstained=2, failed=3, skipped=4, bad_input=1, duplicates={"x": [1, 2]}
    )
    assert summary.line() == (
        "10 answered (2 abstained), 3 failed (1 bad input line), 4 skipped (already done), "
        "1 duplicate id"
    )


def test_an_answer_that_cannot_be_written_as_json_is_an_error_line(tmp_path: Path) -> None:
    input_path = write_jsonl(tmp_path / "in.jsonl", questions(2))

    def answer(question: str, history: list[Turn]) -> Answer:
        timings = {"retrieve": object()} if question.endswith("1?") else {}
        return Answer(
            question=question, answer="ok", bottom_line="", abstained=False,
            citations=(), retrieved=(), timings_ms=timings,  # type: ignore[dict-item]
        )  # fmt: skip

    summary = run_batch(input_path, tmp_path / "out.jsonl", answer, progress=False)

    records = by_id(read_output(tmp_path / "out.jsonl"))
    assert "could not be written as JSON" in records["q1"]["error"]
    assert records["q2"]["answer"] == "ok"
    assert (summary.answered, summary.failed) == (1, 1)


def test_a_question_holding_a_raw_paragraph_separator_stays_one_line(tmp_path):
    """JSON allows raw U+2028/U+2029 inside strings; they must not split the input line."""
    from rag.batch import read_items

    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"id": "q1", "question": "Does it help?\u2029Really?"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    items = read_items(questions)
    assert len(items) == 1
    assert "\u2029" in items[0].question
