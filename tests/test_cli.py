"""The `rag` command as a user runs it, through typer's CliRunner, on real indexes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ask_before_any_index_names_the_command_that_builds_one(tmp_path: Path):
    result = run("ask", "What treats a gout flare?", "--index", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert "rag ingest" in result.output
    assert "Traceback" not in result.output


def test_ask_prints_bottom_line_cited_answer_references_and_disclaimer(small_index: Path):
    result = run("ask", "What is the first-line treatment for a gout flare?", "--index", str(small_index))
    assert result.exit_code == 0, result.output
    output = result.output
    assert "Bottom line:" in output
    assert "[1]" in output
    assert "### References" in output
    references = output.split("### References", 1)[1]
    assert "Management of Gout Flares" in references
    assert "Test Society of Rheumatology, 2020" in references
    assert "https://doi.org/10.0000/test.gout.2020" in references
    assert "not a substitute for clinical judgement" in output


def test_ask_json_has_the_documented_fields_and_every_marker_resolves(
    small_index: Path, test_docs: Path
):
    question = "When should a patient with pneumonia be admitted to hospital?"
    result = run("ask", question, "--index", str(small_index), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["question"] == question
    assert answer["abstained"] is False
    assert "hospital admission" in answer["bottom_line"]
    # One sentence answers this; it is said once, as the bottom line, and the body (the
    # antibiotic choice is no answer to "when to admit") may be empty.
    assert "Amoxicillin" not in answer["answer"]
    assert all(isinstance(q, str) and q.strip() for q in answer["related_questions"])
    assert answer["timings_ms"] and all(ms >= 0 for ms in answer["timings_ms"].values())
    numbers = [citation["n"] for citation in answer["citations"]]
    assert numbers == list(range(1, len(numbers) + 1))
    import re

    shown = {int(n) for n in re.findall(r"\[(\d+)\]", answer["answer"] + answer["bottom_line"])}
    assert shown and shown <= set(numbers)
    first = answer["citations"][0]
    # The reference carries the document's own citation fields, and quotes its text.
    assert first["doc_id"].endswith("pneumonia.md")
    assert first["chunk_id"].startswith(first["doc_id"] + "#")
    assert first["title"] == "Community-Acquired Pneumonia in Adults"
    assert (first["source"], first["year"]) == ("Test Thoracic Society", 2019)
    assert first["url"] == "https://example.org/cap-2019" and first["doi"] is None
    assert first["section"] == "Severity assessment"
    document = " ".join((test_docs / "pneumonia.md").read_text().split())
    assert first["quote"] and " ".join(first["quote"].split()) in document
    retrieved = answer["retrieved"]
    assert [hit["rank"] for hit in retrieved] == list(range(1, len(retrieved) + 1))
    scores = [hit["score"] for hit in retrieved]
    assert scores == sorted(scores, reverse=True)
    assert all(hit["chunk_id"].startswith(hit["doc_id"] + "#") for hit in retrieved)
    assert retrieved[0]["chunk_id"] == first["chunk_id"]


def test_search_json_lists_ranked_hits(small_index: Path):
    result = run("search", "CHA2DS2-VASc anticoagulation", "--index", str(small_index), "--json", "-k", "3")
    assert result.exit_code == 0, result.output
    hits = json.loads(result.output)
    assert [hit["rank"] for hit in hits] == list(range(1, len(hits) + 1))
    assert len(hits) == 3
    top = hits[0]
    assert top["doc_id"].endswith("atrial-fibrillation.md")
    assert top["chunk_id"].startswith(top["doc_id"] + "#")
    assert top["title"] == "Anticoagulation in Atrial Fibrillation"
    assert top["section"] and "CHA2DS2-VASc" in top["text"]
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)


def test_ingest_reports_each_bad_file_and_keeps_the_good_ones(tmp_path: Path, test_docs: Path):
    folder = tmp_path / "docs"
    shutil.copytree(test_docs, folder)
    (folder / "empty.md").write_text("")
    (folder / "binary.txt").write_bytes(b"\x00\xff\xfe\x00binary")
    (folder / "broken.jsonl").write_text('{"id": "a", "title": "A", "text": "Fine text."}\n{not json\n')
    index = tmp_path / "index"
    result = run("ingest", str(folder), str(tmp_path / "nowhere"), "--index", str(index), "--no-progress")
    assert result.exit_code == 1
    errors = result.output
    assert "empty.md" in errors
    assert "binary.txt" in errors
    assert "broken.jsonl:2" in errors
    assert "nowhere" in errors
    assert "Traceback" not in errors
    # The good documents are in, and the index answers.
    result = run("search", "colchicine", "--index", str(index), "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)[0]["doc_id"].endswith("gout.md")


def test_ingest_twice_embeds_nothing_the_second_time(tmp_path: Path, test_docs: Path):
    index = tmp_path / "index"
    first = run("ingest", str(test_docs), "--index", str(index), "--no-progress")
    assert first.exit_code == 0, first.output
    assert "5 added" in first.output
    second = run("ingest", str(test_docs), "--index", str(index), "--no-progress")
    assert second.exit_code == 0
    assert "5 unchanged" in second.output
    assert "0 chunks embedded" in second.output


def test_bad_mode_is_one_clear_line(small_index: Path):
    result = run("search", "gout", "--index", str(small_index), "--mode", "fuzzy")
    assert result.exit_code == 1
    assert "fuzzy" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_demo_curb65_question_cites_the_pneumonia_guideline(demo_index: Path):
    result = run(
        "ask", "How is the severity of community-acquired pneumonia assessed with CURB-65?",
        "--index", str(demo_index), "--json",
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert not answer["abstained"]
    cited = {citation["doc_id"] for citation in answer["citations"]}
    assert any(doc_id.startswith("bts_cap_2009/") for doc_id in cited), cited
    assert "CURB" in answer["answer"]


@pytest.mark.slow
def test_demo_gout_flare_question_cites_the_gout_guideline(demo_index: Path):
    result = run("ask", "What is the first-line treatment of an acute gout flare?",
                 "--index", str(demo_index), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    cited = {citation["doc_id"] for citation in answer["citations"]}
    assert any("gout" in doc_id for doc_id in cited), cited


# ---- hard edges: one clear line, nothing lost -------------------------------------------


def test_ingest_of_a_missing_path_creates_no_index_folder(tmp_path: Path):
    index = tmp_path / "index"
    result = run("ingest", str(tmp_path / "nonexistent"), "--index", str(index), "--no-progress")
    assert result.exit_code == 1
    assert f"{tmp_path / 'nonexistent'}: no such file or folder" in result.output
    assert f"nothing to ingest; no index created at {index}" in result.output
    assert not index.exists()


def test_a_symlink_loop_is_reported_and_the_rest_is_ingested(tmp_path: Path, test_docs: Path):
    folder = tmp_path / "docs"
    shutil.copytree(test_docs, folder)
    (folder / "loop-a").symlink_to(folder / "loop-b")
    (folder / "loop-b").symlink_to(folder / "loop-a")
    index = tmp_path / "index"
    result = run("ingest", str(folder), "--index", str(index), "--no-progress")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    loops = [line for line in result.output.splitlines() if "symbolic link loop" in line]
    assert len(loops) == 2 and "loop-a" in loops[0] and "loop-b" in loops[1]
    assert "5 added" in result.output


@pytest.mark.parametrize(
    ("arguments", "wanted"),
    [
        (["search", "gout", "-k", "0"], "Invalid value for '-k'"),
        (["ask", "gout?", "-k", "0"], "Invalid value for '-k'"),
        (["search", "gout", "--since", "abc"], "Invalid value for '--since'"),
        (["ask", "gout?", "--since", "20x1"], "Invalid value for '--since'"),
    ],
)
def test_a_bad_option_value_is_one_line(small_index: Path, arguments: list[str], wanted: str):
    result = run(*arguments, "--index", str(small_index))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and wanted in lines[0]
    assert "--help" in lines[0]


def test_k_below_one_is_refused_by_the_library_too(small_index: Path):
    from rag.answer import Engine
    from rag.errors import InputError
    from tests.conftest import settings_for

    engine = Engine.load(settings_for(small_index))
    for call in (engine.search, engine.ask):
        with pytest.raises(InputError, match="k must be 1 or more"):
            call("colchicine for gout", k=0)


def test_one_question_length_limit_holds_for_every_entry_point(
    small_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from fastapi.testclient import TestClient

    from rag.answer import Engine
    from rag.converse import SessionStore
    from rag.web.app import create_app
    from tests.conftest import settings_for

    long_question = "What treats a gout flare? " + "x" * 2000  # 2026 characters
    wanted = "too long (2026 characters; the limit is 2000"
    for command in ("ask", "search"):
        result = run(command, long_question, "--index", str(small_index))
        assert result.exit_code == 1 and wanted in result.output, result.output
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"id": "q1", "question": long_question}) + "\n")
    result = run("batch", str(questions), "-o", str(tmp_path / "out.jsonl"), "--index",
                 str(small_index), "--no-progress")
    assert result.exit_code == 1
    assert wanted in json.loads((tmp_path / "out.jsonl").read_text())["error"]
    engine = Engine.load(settings_for(small_index))
    client = TestClient(create_app(engine, SessionStore(tmp_path / "sessions")))
    for route, field in (("/api/ask", "question"), ("/api/search", "query")):
        response = client.post(route, json={field: long_question})
        assert response.status_code == 400 and wanted in response.json()["error"]

    # The limit is a setting: raised, every entry point takes the long question.
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("[answer]\nmax_question_chars = 3000\n")
    monkeypatch.setenv("RAG_SETTINGS", str(settings_file))
    result = run("search", long_question, "--index", str(small_index), "--json")
    assert result.exit_code == 0 and json.loads(result.output)[0]["doc_id"].endswith("gout.md")
    engine = Engine.load(settings_for(small_index))
    client = TestClient(create_app(engine, SessionStore(tmp_path / "sessions")))
    assert client.post("/api/ask", json={"question": long_question}).status_code == 200


def test_check_index_passes_a_sound_index_and_names_damage(small_index: Path, tmp_path: Path):
    result = run("check-index", "--index", str(small_index))
    assert result.exit_code == 0, result.output
    assert "ok (5 documents" in result.output
    damaged = tmp_path / "index"
    shutil.copytree(small_index, damaged)
    with sqlite3.connect(damaged / "chunks.sqlite") as connection:  # every page in the file
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(damaged / "chunks.sqlite", "r+b") as handle:
        handle.seek(7 * 4096)
        handle.write(bytes(range(256)) * 16)
    for command in (["check-index"], ["search", "gout"], ["ingest", str(tmp_path)]):
        result = run(*command, "--index", str(damaged))
        assert result.exit_code == 1, (command, result.output)
        assert "chunks.sqlite: the index database is damaged" in result.output
        assert "Traceback" not in result.output


# ---- rag eval, on a small gold set written for the tests

EVAL_QUESTIONS = {
    "gout.md": ["What is the first-line treatment for a gout flare?", "When should allopurinol start?"],
    "hypertension.md": ["What blood pressure target suits most adults?", "Which drugs start hypertension treatment?"],
    "pneumonia.md": ["Which antibiotic treats community-acquired pneumonia?", "When is a patient with pneumonia admitted?"],
    "atrial-fibrillation.md": ["Who needs anticoagulation in atrial fibrillation?", "How is the heart rate controlled in AF?"],
}  # fmt: skip


def eval_gold(small_index: Path, folder: Path) -> Path:
    """A gold JSONL over the test documents (ids as the index stores them)."""
    from rag.config import Settings
    from rag.index.store import Index

    settings = Settings().merged({"index": str(small_index)})
    doc_ids = {Path(document.id).name: document.id for document in Index.open(small_index, settings).documents()}
    lines = [
        json.dumps({"id": f"{name}-{n}", "question": question, "relevant_doc_ids": [doc_ids[name]]})
        for name, questions in EVAL_QUESTIONS.items()
        for n, question in enumerate(questions)
    ]
    gold = folder / "gold.jsonl"
    gold.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return gold


def test_eval_prints_every_mode_and_writes_rows_and_table(small_index: Path, tmp_path: Path):
    gold = eval_gold(small_index, tmp_path)
    rows_path = tmp_path / "out" / "rows.jsonl"
    result = run("eval", str(gold), "--index", str(small_index), "-o", str(rows_path))
    assert result.exit_code == 0, result.output
    for mode in ("dense", "lexical", "hybrid"):
        assert f"| {mode} |" in result.output
    assert "(8 questions)" in result.output and "Every relevant document is in the index." in result.output
    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8 * 3 and {row["mode"] for row in rows} == {"dense", "lexical", "hybrid"}
    assert "| hybrid |" in rows_path.with_suffix(".md").read_text(encoding="utf-8")

    result = run("eval", str(gold), "--index", str(small_index), "--modes", "hybrid", "--json")
    assert result.exit_code == 0, result.output
    (hybrid,) = json.loads(result.stdout)["retrieval"]["summaries"]
    assert hybrid["mode"] == "hybrid" and hybrid["questions"] == 8
    assert hybrid["recall@5"] == 1.0 and hybrid["mrr@10"] > 0.8  # five documents; easy questions


def test_eval_names_bad_input_in_one_line(small_index: Path, tmp_path: Path):
    gold = tmp_path / "gold.jsonl"
    gold.write_text('{"id": "q1", "question": "Gout?", "relevant_doc_ids": ["gout.md"]}\n{"id": "q2"}\n')
    result = run("eval", str(gold), "--index", str(small_index))
    assert result.exit_code == 1
    assert "gold.jsonl:2: 'question' must be a non-empty string" in result.output
    result = run("eval", str(eval_gold(small_index, tmp_path)), "--index", str(small_index), "--modes", "fuzzy")
    assert result.exit_code == 1 and "retrieval mode 'fuzzy' is unknown" in result.output
    for result in (run("eval", str(tmp_path / "missing.jsonl"), "--index", str(small_index)),):
        assert result.exit_code == 1 and "missing.jsonl: gold file not found" in result.output
    assert "Traceback" not in result.output


def test_eval_ranks_hybrid_with_the_fusion_the_settings_name(
    small_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from rag.config import Settings
    from rag.index.store import Index
    from rag.retrieve import DEFAULT_FUSION, Fusion, retrieve_documents

    gold = eval_gold(small_index, tmp_path)
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('[retrieval]\nfusion = "blend"\nfusion_alpha = 0.0\n')  # BM25 alone decides
    monkeypatch.setenv("RAG_SETTINGS", str(settings_file))
    rows_path = tmp_path / "rows.jsonl"
    result = run("eval", str(gold), "--index", str(small_index), "--modes", "hybrid", "-o", str(rows_path))
    assert result.exit_code == 0, result.output
    ranked = {row["id"]: row["retrieved_doc_ids"] for row in map(json.loads, rows_path.read_text().splitlines())}

    index = Index.open(small_index, Settings().merged({"index": str(small_index)}))
    configured = Fusion("blend", alpha=0.0, normalisation="zscore")
    questions = {f"{name}-{n}": q for name, qs in EVAL_QUESTIONS.items() for n, q in enumerate(qs)}

    def ranking(question: str, fusion: Fusion) -> list[str]:
        return [hit.doc_id for hit in retrieve_documents(index, question, k=10, fusion=fusion)]

    assert ranked == {qid: ranking(question, configured) for qid, question in questions.items()}
    # The setting matters here: the default fusion ranks some question otherwise.
    assert any(ranking(q, DEFAULT_FUSION) != ranking(q, configured) for q in questions.values())


def test_eval_answers_asks_with_the_configured_k(
    small_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    gold = eval_gold(small_index, tmp_path)
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text("[retrieval]\nk = 2\n")
    monkeypatch.setenv("RAG_SETTINGS", str(settings_file))
    rows_path = tmp_path / "eval.jsonl"
    result = run("eval", str(gold), "--index", str(small_index), "--modes", "hybrid",
                 "--answers", "--limit", "2", "--json", "-o", str(rows_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    answers = json.loads(result.stdout)["answers"]
    assert answers["k"] == 2 and answers["retrieval_mode"] == "hybrid" and answers["questions"] == 2
    answer_rows = [json.loads(line) for line in (tmp_path / "eval-answers.jsonl").read_text().splitlines()]
    retrieved = [row["retrieved_doc_ids"] for row in answer_rows if row["mode"] == "retrieval"]
    assert len(retrieved) == 2 and all(1 <= len(doc_ids) <= 2 for doc_ids in retrieved)
    assert "top 2." in (tmp_path / "eval-answers.md").read_text()


# ---- saved conversations: rag sessions ---------------------------------------------------


def test_sessions_list_show_and_delete_a_conversation_saved_by_ask(small_index: Path):
    assert run("sessions", "list").output.strip() == "No saved conversations."
    questions = [
        "Which colchicine dose is preferred for an acute gout flare?",
        "What is the blood pressure target for adults with hypertension?",
    ]
    for question in questions:
        asked = run("ask", question, "--index", str(small_index), "--session", "visit-1")
        assert asked.exit_code == 0, asked.output

    listed = run("sessions", "list")
    assert listed.exit_code == 0
    assert listed.output.startswith("visit-1\t2 turns\t")
    (info,) = json.loads(run("sessions", "list", "--json").output)
    assert (info["name"], info["turns"]) == ("visit-1", 2)

    shown = run("sessions", "show", "visit-1")
    assert shown.exit_code == 0
    assert f"## 1. {questions[0]}" in shown.output and f"## 2. {questions[1]}" in shown.output
    turns = json.loads(run("sessions", "show", "visit-1", "--json").output)
    assert [turn["question"] for turn in turns] == questions
    assert "colchicine" in turns[0]["answer"].lower() and "[1]" in turns[0]["answer"]

    deleted = run("sessions", "delete", "visit-1")
    assert deleted.exit_code == 0 and "visit-1" in deleted.output
    assert run("sessions", "list").output.strip() == "No saved conversations."
    for command in ("show", "delete"):
        missing = run("sessions", command, "visit-1")
        assert missing.exit_code == 1
        lines = missing.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "visit-1" in lines[0]


# ---- settings: rag config, settings files, environment variables --------------------------


def test_config_shows_values_from_the_file_and_the_environment_and_hides_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text('[retrieval]\nk = 5\n\n[index]\nfolder = "elsewhere"\n')
    monkeypatch.setenv("RAG_SETTINGS", str(settings_file))
    monkeypatch.setenv("RAG_RETRIEVAL_MODE", "lexical")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-do-not-print")
    result = run("config")
    assert result.exit_code == 0, result.output
    values, descriptions = result.output.split("\n\n", 1)
    shown = json.loads(values)
    assert shown["retrieval"]["k"] == 5 and shown["index"] == "elsewhere"
    assert shown["retrieval"]["mode"] == "lexical"
    assert shown["llm"]["api_key"] == "***" and "sk-do-not-print" not in result.output
    lines = descriptions.strip().splitlines()
    assert "retrieval.mode (default 'hybrid'): dense, lexical or hybrid. [env var: RAG_RETRIEVAL_MODE]" in lines
    assert any(line.startswith("index.backend (default 'local'): ") for line in lines)
    # Every setting is described, on one line of its own.
    assert all(line.split(": ", 1)[1].strip() for line in lines)


@pytest.mark.parametrize(
    ("contents", "wanted"),
    [
        ('[retrieval]\nmode = "fuzzy"\n',
         "setting 'retrieval.mode' is 'fuzzy'; choose one of 'dense', 'lexical' or 'hybrid'"),
        ('[retrieval]\nmodes = "dense"\n', "unknown setting 'retrieval.modes'"),
        ("[retrieval]\nk = 0\n", "setting 'retrieval.k' is 0: input should be greater than or equal to 1"),
        ('[index]\nbackend = "postgres"\n', "setting 'index.backend' is 'postgres'; choose one of"),
        ("[retrieval\n", "not valid TOML"),
    ],
)
def test_a_bad_settings_file_is_one_line_naming_the_file_and_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contents: str, wanted: str
):
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(contents)
    monkeypatch.setenv("RAG_SETTINGS", str(settings_file))
    result = run("config")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {settings_file}: ") and wanted in lines[0]


def test_a_bad_environment_value_fails_before_the_first_query(
    small_index: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RAG_RETRIEVAL_MODE", "fuzzy")
    for command in (["config"], ["search", "gout", "--index", str(small_index)]):
        result = run(*command)
        assert result.exit_code == 1
        assert result.output.strip() == (
            "error: RAG_RETRIEVAL_MODE: setting 'retrieval.mode' is 'fuzzy'; "
            "choose one of 'dense', 'lexical' or 'hybrid'"
        )


def test_every_option_with_a_setting_names_its_environment_variable():
    import click
    import typer.main

    from rag.config import ENVIRONMENT

    def commands(group: click.Group, prefix: str = ""):
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                yield from commands(command, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", command

    # Options that set a setting, by their flag: the variable each must name.
    wanted = {
        "--index": "RAG_INDEX",
        "--mode": "RAG_RETRIEVAL_MODE",
        "--audience": "RAG_AUDIENCE",
        "--engine": "RAG_INGEST_ENGINE",
        "--batch-size": "RAG_INGEST_BATCH_SIZE",
    }
    seen = set()
    for name, command in commands(typer.main.get_command(app)):
        for option in command.params:
            if option.envvar:
                assert option.envvar in ENVIRONMENT, (name, option.opts, option.envvar)
            for flag in option.opts:
                if flag in wanted:
                    assert option.envvar == wanted[flag], (name, flag)
                    seen.add(flag)
    assert seen == set(wanted)
    ask = {option.opts[0]: option.envvar for option in typer.main.get_command(app).commands["ask"].params}
    assert ask["-k"] == "RAG_RETRIEVAL_K"
    help_text = run("ask", "--help").output
    assert "RAG_RETRIEVAL_MODE" in help_text and "RAG_AUDIENCE" in help_text
