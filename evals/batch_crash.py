"""Crash-and-resume check of `rag batch` against a real local LLM.

The batch issue's "Done when": 200 questions answered by `rag batch --workers 2` through rag's
openai backend and a llama.cpp server on this machine, the batch killed with SIGKILL once some
answers are on disk, then re-run with the same output file. Done means the output ends with
exactly one valid JSON answer line per question id, none of them an error, and the answers
written before the kill kept as they were (not asked again).

Questions (200, written to the work folder, never to the repository):
  1. the first turn of every conversation in evals/conversations.jsonl,
  2. every question of evals/abstention.jsonl (answerable and unanswerable ones),
  3. MedQuAD-style templated questions over the demo corpus topics, one per guideline
     section ("What do the guidelines recommend for <section> in <condition>?"), in a fixed
     order, until there are 200.

Usage:
  .venv/bin/python evals/batch_crash.py                      # SmolLM2, writes the results
  .venv/bin/python evals/batch_crash.py --model qwen2.5-coder-1.5b --questions 50

The LLM settings are cut down (short passages, short replies) because this measures crash
safety and throughput of the batch, not answer quality, on 2 shared cores. Prints the figures
and writes them to evals/results/batch-crash.md (unless --results is empty).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rag.jsonl import jsonl_lines, read_jsonl
from rag.local_llm import MODELS, fetch_model, start_server

DEFAULT_INDEX = REPO / "indexes" / "default"
DEFAULT_RESULTS = REPO / "evals" / "results" / "batch-crash.md"

# Condition words for each demo guideline (the id prefix), used by the templated questions.
DEMO_TOPICS = {
    "aasld_cirrhosis_2023": "liver cirrhosis",
    "aasld_nafld_2023": "nonalcoholic fatty liver disease",
    "aba_burn_2016": "burns",
    "acc_aha_af_2023": "atrial fibrillation",
    "acc_aha_ascvd_2013": "cardiovascular risk assessment",
    "acc_aha_cholesterol_2018": "high blood cholesterol",
    "acc_aha_hypertension_2017": "high blood pressure in adults",
    "acc_aha_perioperative_2014": "noncardiac surgery",
    "acc_aha_stemi_2013": "ST-elevation myocardial infarction",
    "acg_acute_pancreatitis_2024": "acute pancreatitis",
    "acog_perinatal_depression_2018": "perinatal depression",
    "acr_gout_2020": "gout",
    "acr_ra_2021": "rheumatoid arthritis",
    "ada_diabetes_2024": "diabetes",
    "ada_dka_hhs_2024": "diabetic ketoacidosis",
    "aha_aap_nrp_2020": "neonatal resuscitation",
    "aha_acc_chest_pain_2021": "chest pain",
    "aha_acc_hf_2022": "heart failure",
    "aha_asa_ich_2022": "spontaneous intracerebral hemorrhage",
    "aha_asa_sah_2023": "aneurysmal subarachnoid hemorrhage",
    "aha_asa_stroke_2019": "acute ischemic stroke",
    "aha_asa_tia_2009": "transient ischemic attack",
    "aha_endocarditis_2015": "infective endocarditis",
    "apa_aud_2018": "alcohol use disorder",
    "apa_mdd_2023": "depression",
    "ash_vte_2020": "venous thromboembolism",
    "ats_idsa_cap_2019": "community-acquired pneumonia",
    "btf_tbi_2016": "severe traumatic brain injury",
    "bts_cap_2009": "community-acquired pneumonia",
    "endocrine_osteoporosis_2020": "postmenopausal osteoporosis",
    "esc_acs_2023": "acute coronary syndromes",
    "gina_asthma_2024": "asthma",
    "gold_copd_2024": "COPD",
    "idsa_meningitis_2017": "healthcare-associated ventriculitis and meningitis",
    "idsa_uti_2022": "complicated urinary tract infection",
    "kdigo_aki_2012": "acute kidney injury",
    "kdigo_ckd_2024": "chronic kidney disease",
    "nice_ugib_2012": "acute upper gastrointestinal bleeding",
    "rcp_news2_2017": "acute illness severity (NEWS2)",
    "sepsis3_2016": "sepsis",
    "ssc_sepsis_2021": "sepsis and septic shock",
    "timi_ua_nstemi_2000": "unstable angina and non-ST elevation MI",
    "wells_pe_2000": "pulmonary embolism",
}


# --- the questions ---------------------------------------------------------------------------


def build_questions(count: int) -> tuple[list[dict[str, str]], dict[str, int]]:
    """`count` batch records ({"id", "question"}) and how many came from each source."""
    records: list[dict[str, str]] = []
    sources: dict[str, int] = {}

    def take(source: str, record_id: str, question: str) -> None:
        if len(records) < count:
            records.append({"id": record_id, "question": question})
            sources[source] = sources.get(source, 0) + 1

    for _, conversation in read_jsonl(REPO / "evals" / "conversations.jsonl", "conversation set"):
        take("first turns of evals/conversations.jsonl", conversation["id"],
             conversation["turns"][0]["question"])  # fmt: skip
    for _, item in read_jsonl(REPO / "evals" / "abstention.jsonl", "abstention set"):
        take("evals/abstention.jsonl (answerable and not)", item["id"], item["question"])
    for doc_id in demo_document_ids():
        guideline, _, section = doc_id.partition("/")
        topic = DEMO_TOPICS.get(guideline)
        if topic and section:
            take(
                "MedQuAD-style templates over the demo guideline sections",
                f"tmpl-{doc_id}",
                f"What do the guidelines recommend for {section.replace('_', ' ')} in {topic}?",
            )
    if len(records) < count:
        raise SystemExit(f"only {len(records)} questions could be made; asked for {count}")
    return records, sources


def demo_document_ids() -> list[str]:
    """The demo corpus's document ids, sorted, interleaved across guidelines so that a prefix
    of the list covers as many conditions as possible."""
    from rag.ingest.demo import load_demo_corpus

    by_guideline: dict[str, list[str]] = {}
    for document in load_demo_corpus():
        by_guideline.setdefault(document.id.partition("/")[0], []).append(document.id)
    columns = [sorted(ids) for _, ids in sorted(by_guideline.items())]
    interleaved: list[str] = []
    for depth in range(max(map(len, columns))):
        interleaved += [ids[depth] for ids in columns if depth < len(ids)]
    return interleaved


# --- running the batch -----------------------------------------------------------------------


def rag_command() -> list[str]:
    script = Path(sys.executable).parent / "rag"
    return [str(script)] if script.exists() else [sys.executable, "-m", "rag.cli"]


def ensure_demo_index(index: Path) -> str:
    """'present' when `rag search gout` works on `index`, else builds it and says 'built'."""
    probe = subprocess.run(
        [*rag_command(), "search", "gout", "-k", "1", "--index", str(index)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.returncode == 0:
        return "present"
    print(f"no usable demo index at {index} ({probe.stderr.strip()}); building it", flush=True)
    subprocess.run(
        [*rag_command(), "ingest", "--demo", "--no-progress", "--index", str(index)],
        cwd=REPO, check=True,
    )  # fmt: skip
    return "built"


def complete_lines(path: Path) -> int:
    """Lines of `path` that end in a newline (a killed writer may leave a partial last one)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@dataclass
class Run:
    """One `rag batch` process: how it ended and what it said."""

    seconds: float
    exit_code: int | None  # None: killed by us
    summary_line: str
    lines_at_end: int
    log: str = field(repr=False, default="")


def run_batch_process(
    command: list[str],
    env: dict[str, str],
    output: Path,
    log_path: Path,
    *,
    kill_after_lines: int | None,
    timeout_s: float,
) -> Run:
    """Run `command`; with `kill_after_lines`, SIGKILL it as soon as that many answer lines are
    on disk. A run still going after `timeout_s` is killed and reported as a failure."""
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    killed = False
    try:
        while process.poll() is None:
            if kill_after_lines is not None and complete_lines(output) >= kill_after_lines:
                os.kill(process.pid, signal.SIGKILL)
                killed = True
                process.wait()
                break
            if time.monotonic() - started > timeout_s:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
                raise SystemExit(f"rag batch did not finish within {timeout_s:.0f} s; see {log_path}")
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    seconds = time.monotonic() - started
    text = log_path.read_text(errors="replace")
    summary = next(
        (line for line in reversed(text.splitlines()) if "answered (" in line), ""
    )
    return Run(
        seconds=seconds,
        exit_code=None if killed else process.returncode,
        summary_line=summary,
        lines_at_end=complete_lines(output),
        log=text,
    )


# --- checking the output ---------------------------------------------------------------------


@dataclass
class Check:
    lines: int = 0
    distinct_ids: int = 0
    invalid_json: list[int] = field(default_factory=list)
    error_lines: list[dict[str, Any]] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    unexpected_ids: list[str] = field(default_factory=list)
    abstained: int = 0
    generated_by_llm: int = 0  # answers whose generation step took an LLM call
    abstained_after_llm: int = 0  # of those, the ones shown as abstentions
    answered_with_citations: int = 0
    backends: dict[str, int] = field(default_factory=dict)

    def passed(self, expected: int) -> bool:
        return (
            self.lines == expected
            and self.distinct_ids == expected
            and not self.invalid_json
            and not self.error_lines
            and not self.missing_ids
            and not self.unexpected_ids
        )


def check_output(output: Path, expected_ids: list[str]) -> Check:
    check = Check()
    seen: set[str] = set()
    raw = output.read_bytes()
    if raw and not raw.endswith(b"\n"):
        check.invalid_json.append(raw.count(b"\n") + 1)  # a partial last line
    for number, line in jsonl_lines(raw.decode("utf-8", errors="replace")):
        check.lines += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            check.invalid_json.append(number)
            continue
        if not isinstance(record, dict) or "id" not in record:
            check.invalid_json.append(number)
            continue
        seen.add(str(record["id"]))
        if "error" in record:
            check.error_lines.append(record)
            continue
        check.abstained += bool(record.get("abstained"))
        # Coverage abstentions skip the LLM: their generate step takes no time at all.
        asked_llm = (record.get("timings_ms") or {}).get("generate", 0) > 50
        check.generated_by_llm += asked_llm
        check.abstained_after_llm += asked_llm and bool(record.get("abstained"))
        check.answered_with_citations += bool(record.get("citations"))
        backend = str(record.get("backend"))
        check.backends[backend] = check.backends.get(backend, 0) + 1
    check.distinct_ids = len(seen)
    check.missing_ids = sorted(set(expected_ids) - seen)
    check.unexpected_ids = sorted(seen - set(expected_ids))
    return check


def _is_answer_line(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(record, dict) and "id" in record and "error" not in record


# --- the report ------------------------------------------------------------------------------


def markdown_report(facts: dict[str, Any]) -> str:
    check: Check = facts["check"]
    first: Run = facts["first"]
    second: Run = facts["second"]
    expected = facts["questions"]
    verdict = "PASS" if facts["passed"] else "FAIL"
    sources = "\n".join(f"  - {count}: {source}" for source, count in facts["sources"].items())
    errors = "".join(
        f"\n  - `{record['id']}`: {record['error']}" for record in check.error_lines[:10]
    )
    generated = first.lines_at_end + second.lines_at_end - facts["kept_after_kill"]
    seldom_cites = (
        f" ({facts['model']} seldom writes [n] markers)"
        if check.abstained_after_llm * 2 > check.generated_by_llm
        else ""
    )
    return f"""# `rag batch` killed with SIGKILL and resumed: {verdict}

Produced by `evals/batch_crash.py` on {facts["date"]} (2 shared CPU cores; load average
{facts["load"]} at the start).

## Setup

- Questions: {expected}, written as JSONL with ids:
{sources}
- Index: `{facts["index"]}` (the open-medicine demo corpus; {facts["index_state"]}).
- LLM: {facts["model"]} served by llama-cpp-python {facts["llama_version"]} on 127.0.0.1
  (`start_server`, n_ctx 2048, {facts["threads"]} thread(s)), reached through rag's openai backend
  (`OPENAI_BASE_URL`). Cut-down settings, as this checks crash safety rather than quality:
  `llm.context_tokens = {facts["context_tokens"]}`, `llm.max_tokens = {facts["max_tokens"]}`.
- Command: `rag batch questions.jsonl -o answers.jsonl --workers {facts["workers"]} --index ... --no-progress`

## What happened

| step | seconds | lines on disk after | exit |
|---|---:|---:|---|
| first run, SIGKILL once {facts["kill_after"]} answers were on disk | {first.seconds:.1f} | {first.lines_at_end} (partial last line: {facts["partial_tail"]}) | killed |
| re-run, same output file | {second.seconds:.1f} | {second.lines_at_end} | {second.exit_code} |

- Re-run summary: `{second.summary_line}`
- Answer lines written before the kill and kept unchanged by the re-run: {facts["kept_after_kill"]}
  (prefix of the final file identical: {facts["prefix_intact"]}).
- LLM requests the server answered over both runs: {facts["llm_requests"]}, for
  {check.generated_by_llm} final answers that needed the LLM (the rest abstained on coverage
  before any call); the difference, at most --workers, is the answers in flight at the kill.
- Answers generated in total: {generated} for {expected} questions, in {first.seconds + second.seconds:.0f} s
  ({(first.seconds + second.seconds) / max(generated, 1):.1f} s per question with {facts["workers"]} workers).

## Checks on the final file

| check | result |
|---|---|
| lines | {check.lines} (expected {expected}) |
| distinct ids | {check.distinct_ids} (expected {expected}); missing {len(check.missing_ids)}, unexpected {len(check.unexpected_ids)} |
| every line valid JSON with an id | {"yes" if not check.invalid_json else f"no: lines {check.invalid_json[:10]}"} |
| error lines | {len(check.error_lines)}{errors} |
| abstained | {check.abstained} |
| answered with citations | {check.answered_with_citations} |
| backend | {", ".join(f"`{name}` ({count})" for name, count in check.backends.items())} |

{expected - check.generated_by_llm} questions abstained on coverage, before any LLM call. The other
{check.generated_by_llm} reached the model; a draft that cites no passage is shown as an abstention
by the citation contract, and {check.abstained_after_llm} of them were{seldom_cites}.
"""


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kill-after", type=int, default=None,
                        help="SIGKILL the first run once this many answer lines are on disk "
                        "(default: half the questions)")  # fmt: skip
    # 2 threads measured faster than 1 on the loaded 2-core machine (19-27 s vs 26-30 s for
    # two ~320-token prompts), with the server's passive OpenMP waits.
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    parser.add_argument("--context-tokens", type=int, default=200)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="where questions, answers and logs go (default: a temporary folder)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=5400, help="seconds allowed per run")
    parser.add_argument("--results", default=str(DEFAULT_RESULTS),
                        help="Markdown report to write ('' for none)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.kill_after is None:
        args.kill_after = args.questions // 2
    if not 0 < args.kill_after < args.questions:
        parser.error("--kill-after must be between 1 and --questions - 1")

    import llama_cpp

    # A plain `kill` unwinds the `with` blocks too, so the server and the batch are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="rag-batch-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    index = args.index.resolve()
    index_state = ensure_demo_index(index)
    records, sources = build_questions(args.questions)
    questions_path = work / "questions.jsonl"
    questions_path.write_text(
        "".join(json.dumps(record) + "\n" for record in records), encoding="utf-8"
    )
    output = work / "answers.jsonl"
    output.unlink(missing_ok=True)
    settings_path = work / "llm.toml"
    settings_path.write_text(
        f"[llm]\ncontext_tokens = {args.context_tokens}\nmax_tokens = {args.max_tokens}\n"
        "timeout_s = 600\nretries = 1\n",
        encoding="utf-8",
    )
    print(f"work folder {work}; {len(records)} questions: {sources}", flush=True)

    load = " ".join(f"{value:.1f}" for value in os.getloadavg())
    with start_server(fetch_model(args.model), ctx=2048, threads=args.threads) as server:
        env = {
            **os.environ,
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "local",
            "RAG_LLM_MODEL": server.model,
            "RAG_SETTINGS": str(settings_path),
        }
        command = [
            *rag_command(), "batch", str(questions_path), "-o", str(output),
            "--workers", str(args.workers), "--index", str(index), "--no-progress",
        ]  # fmt: skip
        first = run_batch_process(
            command, env, output, work / "first-run.log",
            kill_after_lines=args.kill_after, timeout_s=args.timeout,
        )  # fmt: skip
        at_kill = output.read_bytes()
        partial_tail = not at_kill.endswith(b"\n") and bool(at_kill)
        # What a resume must keep: the complete answer lines (error lines are retried).
        kept_lines = [line for line in at_kill.split(b"\n")[:-1] if _is_answer_line(line)]
        kept = b"".join(line + b"\n" for line in kept_lines)
        print(
            f"killed after {first.seconds:.1f} s with {first.lines_at_end} complete lines "
            f"(partial last line: {partial_tail}); re-running",
            flush=True,
        )
        second = run_batch_process(
            command, env, output, work / "second-run.log",
            kill_after_lines=None, timeout_s=args.timeout,
        )  # fmt: skip
        llm_requests = server.log_path.read_text(errors="replace").count(
            "POST /v1/chat/completions HTTP/1.1"
        )

    expected_ids = [record["id"] for record in records]
    check = check_output(output, expected_ids)
    final = output.read_bytes()
    facts: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "load": load,
        "questions": len(records),
        "sources": sources,
        "index": index.relative_to(REPO) if index.is_relative_to(REPO) else index,
        "index_state": "already built" if index_state == "present" else "built by this run",
        "model": MODELS[args.model].filename,
        "llama_version": llama_cpp.__version__,
        "threads": args.threads,
        "context_tokens": args.context_tokens,
        "max_tokens": args.max_tokens,
        "workers": args.workers,
        "kill_after": args.kill_after,
        "first": first,
        "second": second,
        "partial_tail": "yes" if partial_tail else "no",
        "kept_after_kill": len(kept_lines),
        "prefix_intact": "yes" if final.startswith(kept) else "no",
        "check": check,
        "llm_requests": llm_requests,
    }
    facts["passed"] = (
        check.passed(len(records))
        and final.startswith(kept)
        and second.exit_code == 0
        and f"{len(kept_lines)} skipped" in second.summary_line
        # Only the answers in flight at the kill may have been asked twice.
        and 0 <= llm_requests - check.generated_by_llm <= args.workers
    )
    report = markdown_report(facts)
    print(report)
    if args.results:
        Path(args.results).write_text(report, encoding="utf-8")
        print(f"wrote {args.results}; answers and logs in {work}")
    return 0 if facts["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
