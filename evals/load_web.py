"""Load benchmark for `rag serve`: many clinicians asking at once.

Starts the web server in its own process with the extractive backend (no LLM) over the demo
index, waits until it answers, fires `--requests` questions at it with up to `--concurrency`
in flight over loopback, and prints the latency percentiles, the throughput, the error count
and the server's resident memory (RSS, sampled every 50 ms from /proc on Linux: after the
warm-up question, at its peak under load, and after the load). This is a benchmark, not a
test: it prints figures and exits 1 only when a request failed.

    rag ingest --demo                      # builds indexes/default once
    .venv/bin/python evals/load_web.py     # 50 questions, all 50 at once
    .venv/bin/python evals/load_web.py --url http://127.0.0.1:8000 --key KEY   # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]

# Questions the demo guidelines (open-medicine) answer, cycled to make up the load.
QUESTIONS = [
    "What is the first-line treatment for hypertension in adults?",
    "How should an acute gout flare be treated?",
    "What are the criteria for diagnosing diabetic ketoacidosis?",
    "When is anticoagulation recommended in atrial fibrillation?",
    "Which antibiotics are recommended for community-acquired pneumonia in outpatients?",
    "What is the initial fluid resuscitation volume in septic shock?",
    "How is the severity of acute pancreatitis assessed?",
    "What is the target LDL cholesterol after a myocardial infarction?",
    "What maintenance inhaler is recommended for moderate persistent asthma?",
    "How is acute kidney injury staged?",
    "What blood pressure target is recommended after intracerebral haemorrhage?",
    "What is the treatment of uncomplicated cystitis in women?",
]

SERVER_SCRIPT = """
import sys
from rag.config import Settings
from rag.web.app import serve
overrides = {"index": sys.argv[1], "data_dir": sys.argv[2], "llm": {"base_url": ""}}
if sys.argv[4:]:
    overrides["concurrent_answers"] = int(sys.argv[4])
serve(Settings.from_env().merged(overrides), host="127.0.0.1", port=int(sys.argv[3]))
"""


@dataclass
class Outcome:
    question: str
    seconds: float
    status: int | None
    error: str = ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    index: Path, data_dir: Path, port: int, concurrent_answers: int | None = None
) -> subprocess.Popen:
    """`serve` in a child process, so client and server do not share one interpreter lock."""
    environment = dict(os.environ)
    environment.pop("OPENAI_BASE_URL", None)  # the extractive backend, whatever the shell says
    environment.pop("RAG_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(index), str(data_dir), str(port)]
        + ([str(concurrent_answers)] if concurrent_answers else []),
        cwd=REPO,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_ready(url: str, server: subprocess.Popen, timeout_s: float) -> float:
    """Seconds until /api/health answered; raises SystemExit with the server's error if it died."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if server.poll() is not None:
            log = server.stderr.read() if server.stderr else ""
            last_line = log.strip().splitlines()[-1] if log.strip() else "no output"
            raise SystemExit(f"the server exited before answering: {last_line}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1.0).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} did not answer within {timeout_s:.0f}s")


async def ask_all(url: str, questions: list[str], concurrency: int, key: str | None,
                  timeout_s: float) -> tuple[list[Outcome], float]:
    """Every question posted to /api/ask, at most `concurrency` at a time; (outcomes, wall s)."""
    headers = {"X-API-Key": key} if key else {}
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s,
                                 limits=limits) as client:

        async def ask_one(question: str) -> Outcome:
            async with gate:
                started = time.perf_counter()
                try:
                    response = await client.post("/api/ask", json={"question": question})
                except httpx.HTTPError as error:
                    return Outcome(question, time.perf_counter() - started, None,
                                   type(error).__name__)
                seconds = time.perf_counter() - started
                if response.status_code != 200:
                    return Outcome(question, seconds, response.status_code, response.text[:200])
                body = response.json()
                if not (body.get("answer") or body.get("bottom_line")):
                    return Outcome(question, seconds, response.status_code,
                                   f"empty answer (abstained: {body.get('abstained')})")
                return Outcome(question, seconds, response.status_code)

        started = time.perf_counter()
        outcomes = await asyncio.gather(*(ask_one(question) for question in questions))
        return list(outcomes), time.perf_counter() - started


class MemorySampler:
    """The resident memory of process `pid`, read from /proc every `interval_s` seconds in a
    background thread; `peak_mb` is the largest sample since `reset`. Silent where /proc is
    not (not Linux): every figure is then None."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self._status = Path(f"/proc/{pid}/status")
        self._interval_s = interval_s
        self._peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def rss_mb(self) -> float | None:
        try:
            for line in self._status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return None

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            rss = self.rss_mb()
            if rss is not None:
                self._peak_kb = max(self._peak_kb, int(rss * 1024))

    def reset(self) -> None:
        self._peak_kb = 0

    @property
    def peak_mb(self) -> float | None:
        return self._peak_kb / 1024 if self._peak_kb else None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _mb(value: float | None) -> str:
    return f"{value:.0f} MB" if value is not None else "n/a"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (fraction in 0..1)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def report(outcomes: list[Outcome], wall_s: float, concurrency: int) -> int:
    """Prints the figures; returns the number of failed requests."""
    latencies = [outcome.seconds for outcome in outcomes]
    failures = [outcome for outcome in outcomes if outcome.error]
    print(f"requests      {len(outcomes)} ({concurrency} in flight at most)")
    print(f"errors        {len(failures)}")
    print(f"wall time     {wall_s:.2f} s  ({len(outcomes) / wall_s:.2f} answers/s)")
    print(f"latency p50   {percentile(latencies, 0.50):.2f} s")
    print(f"latency p95   {percentile(latencies, 0.95):.2f} s")
    print(f"latency max   {max(latencies):.2f} s  (mean {statistics.fmean(latencies):.2f} s)")
    for failure in failures[:5]:
        print(f"  failed: {failure.question!r}: status {failure.status}: {failure.error}")
    return len(failures)


def serve_and_measure(
    index: Path, questions: list[str], args: argparse.Namespace, concurrent_answers: int | None
) -> int:
    """Start a server, warm it up, send the load, print the figures; returns the failures."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="rag-load-") as data_dir:
        server = start_server(index, Path(data_dir), port, concurrent_answers)
        try:
            ready_s = wait_until_ready(url, server, timeout_s=180)
            print(f"server        {url}, extractive backend, {index.name} index "
                  f"(ready in {ready_s:.1f} s)")
            # One question first, so model warm-up is not counted as load.
            asyncio.run(ask_all(url, questions[:1], 1, None, args.timeout))
            memory = MemorySampler(server.pid)
            before = memory.rss_mb()
            outcomes, wall_s = asyncio.run(
                ask_all(url, questions, args.concurrency, None, args.timeout))
            peak = memory.peak_mb
            time.sleep(1.0)
            after = memory.rss_mb()
            memory.stop()
            failed = report(outcomes, wall_s, args.concurrency)
            print(f"server RSS    {_mb(before)} after warm-up, {_mb(peak)} peak under load, "
                  f"{_mb(after)} after")
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="indexes/default",
                        help="index folder to serve (build it with `rag ingest --demo`)")
    parser.add_argument("--requests", type=int, default=50, help="questions to send")
    parser.add_argument("--concurrency", type=int, default=50, help="most requests in flight")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request")
    parser.add_argument("--url", help="benchmark a server that is already running instead")
    parser.add_argument("--key", help="access key for --url, when the server has one")
    parser.add_argument(
        "--concurrent-answers", default="",
        help="comma-separated values of the server's concurrent_answers setting, each measured "
        "with a fresh server, one after the other (default: the setting as configured)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        parser.error("--requests and --concurrency must be at least 1")
    questions = [QUESTIONS[number % len(QUESTIONS)] for number in range(args.requests)]

    if args.url:
        outcomes, wall_s = asyncio.run(
            ask_all(args.url.rstrip("/"), questions, args.concurrency, args.key, args.timeout))
        return 1 if report(outcomes, wall_s, args.concurrency) else 0

    index = (REPO / args.index) if not Path(args.index).is_absolute() else Path(args.index)
    if not (index / "manifest.json").exists():
        print(f"{index}: no index here; build the demo index with `rag ingest --demo`",
              file=sys.stderr)
        return 2
    limits = [int(value) for value in args.concurrent_answers.split(",") if value.strip()]
    failed = 0
    for limit in limits or [None]:
        if limits:
            print(f"\n## concurrent_answers = {limit}")
        failed += serve_and_measure(index, questions, args, limit)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
