#!/usr/bin/env bash
# Install rag's `local` extra (llama-cpp-python with its OpenAI-compatible server) into the
# project's virtual environment from a wheel cache, building the wheel there once if absent,
# and optionally fetch GGUF models for it.
#
# Building llama.cpp takes 10+ minutes on 2 cores, so the wheel is kept in $RAG_WHEEL_CACHE
# (default ~/.cache/rag-wheels) and reused by later runs and CI on the same machine.
#
# On x86-64 the build is portable AVX2 rather than -march=native: on CPUs with AMX/AVX-512
# (this workplace's) a native build segfaults on any batch of more than one token, inside the
# extra weight-repacking buffers. A stamp file next to the wheel records the flags it was
# built with, so a wheel built with other flags is rebuilt rather than trusted.
#
# Usage: scripts/install_local_llm.sh [--fetch MODEL]... [--optional]
#   --fetch MODEL  also run `rag llm fetch MODEL` (e.g. smollm2) once the extra is installed
#   --optional     never fail: when the build or a fetch is impossible on this machine, say
#                  why and exit 0, so `make test` goes on and the `llm` tests skip
#   PYTHON=/path/to/python picks another virtual environment.
set -euo pipefail

VERSION=0.3.36
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
WHEELS=${RAG_WHEEL_CACHE:-$HOME/.cache/rag-wheels}

optional=0
models=()
required_args=()
while (($#)); do
    case "$1" in
        --optional) optional=1 ;;
        --fetch)
            [[ $# -ge 2 ]] || { echo "install_local_llm.sh: --fetch needs a model name" >&2; exit 2; }
            models+=("$2")
            required_args+=("$1" "$2")
            shift
            ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install_local_llm.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((optional)); then
    # The same steps in a child that fails fast; its failure is reported, not propagated.
    if bash "$0" "${required_args[@]}"; then
        exit 0
    fi
    echo "install_local_llm.sh: the local LLM extra or its model is not available on this" \
        "machine (see the error above); the tests marked llm will be skipped" >&2
    exit 0
fi

if [[ "$(uname -m)" == x86_64 ]]; then
    CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
else
    # Other architectures: llama.cpp's portable defaults for that CPU family.
    CMAKE_FLAGS="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
fi
STAMP="$WHEELS/llama_cpp_python-$VERSION.cmake-flags"

wheel_file() { ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n 1; }

for tool in cc c++ cmake; do
    if [[ -z "$(wheel_file)" ]] && ! command -v "$tool" >/dev/null; then
        echo "install_local_llm.sh: building llama-cpp-python needs $tool, which is not installed" >&2
        exit 1
    fi
done

mkdir -p "$WHEELS"
if [[ -z "$(wheel_file)" || ! -f "$STAMP" || "$(cat "$STAMP")" != "$CMAKE_FLAGS" ]]; then
    echo "building llama-cpp-python $VERSION (10+ minutes on 2 cores) into $WHEELS" >&2
    build_dir=$(mktemp -d)
    trap 'rm -rf "$build_dir"' EXIT
    # --no-cache-dir: pip's own wheel cache may hold a build made with other flags.
    CMAKE_ARGS="$CMAKE_FLAGS" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
        "$PYTHON" -m pip wheel --no-deps --no-cache-dir --no-binary llama-cpp-python \
        --wheel-dir "$build_dir" "llama-cpp-python==$VERSION"
    rm -f "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl
    mv "$build_dir"/llama_cpp_python-"$VERSION"-*.whl "$WHEELS"/
    printf '%s' "$CMAKE_FLAGS" > "$STAMP"
fi

# Reinstall only when the installed build is not this wheel (a same-version wheel built with
# other flags may be installed): a marker in the environment records the wheel's checksum.
marker="$("$PYTHON" -c 'import sys; print(sys.prefix)')/.llama-cpp-python-wheel"
checksum=$(sha256sum "$(wheel_file)" | cut -d' ' -f1)
if [[ ! -f "$marker" || "$(cat "$marker")" != "$checksum" ]] || ! "$PYTHON" -c "import llama_cpp" 2>/dev/null; then
    "$PYTHON" -m pip install --disable-pip-version-check --no-deps --force-reinstall "$(wheel_file)"
    printf '%s' "$checksum" > "$marker"
fi
"$PYTHON" -m pip install --disable-pip-version-check --quiet --find-links "$WHEELS" \
    "llama-cpp-python[server]==$VERSION"
"$PYTHON" -c "import llama_cpp, llama_cpp.server; print('llama-cpp-python', llama_cpp.__version__)"

for model in "${models[@]}"; do
    # Prints the model's path; a model already in place is reused without any download.
    "$PYTHON" -m rag.cli llm fetch "$model"
done
