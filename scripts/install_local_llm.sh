#!/usr/bin/env bash
# Install rag's `local` extra (llama-cpp-python with its OpenAI-compatible server) into the
# project's virtual environment from a wheel cache, building the wheel there once if absent.
#
# Building llama.cpp takes 10+ minutes on 2 cores, so the wheel is kept in $RAG_WHEEL_CACHE
# (default ~/.cache/rag-wheels) and reused by later runs and CI on the same machine.
#
# The build is portable AVX2 rather than -march=native: on CPUs with AMX/AVX-512 (this
# workplace's) a native build segfaults on any batch of more than one token, inside the extra
# weight-repacking buffers. A stamp file next to the wheel records the flags it was built
# with, so a wheel built with other flags is rebuilt rather than trusted.
#
# Usage: scripts/install_local_llm.sh          (PYTHON=/path/to/python to pick another venv)
set -euo pipefail

VERSION=0.3.36
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
WHEELS=${RAG_WHEEL_CACHE:-$HOME/.cache/rag-wheels}
CMAKE_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
STAMP="$WHEELS/llama_cpp_python-$VERSION.cmake-flags"

wheel_file() { ls "$WHEELS"/llama_cpp_python-"$VERSION"-*.whl 2>/dev/null | head -n 1; }

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

# --force-reinstall: a same-version wheel built with other flags may already be installed.
"$PYTHON" -m pip install --disable-pip-version-check --no-deps --force-reinstall "$(wheel_file)"
"$PYTHON" -m pip install --disable-pip-version-check --find-links "$WHEELS" \
    "llama-cpp-python[server]==$VERSION"
"$PYTHON" -c "import llama_cpp, llama_cpp.server; print('llama-cpp-python', llama_cpp.__version__)"
