#!/usr/bin/env bash
# A light Python environment for the checks CI runs against the real tools, without torch:
# numpy, gguf, safetensors, and llama-cpp-python (which builds the real llama.cpp, once; the
# wheel is cached). Also unpacks llama-cpp-python's source distribution, which vendors
# llama.cpp's convert scripts, gguf-py and reference vocabularies.
# Prints nothing but progress; the venv is $LLM_EXPORT_CACHE/venv-ci.
set -euo pipefail
cache="${LLM_EXPORT_CACHE:-$HOME/.cache/llm-export}"
version=0.3.36   # vendors llama.cpp 0c1e57098bba; tests and fixtures are pinned to it
venv="$cache/venv-ci"
mkdir -p "$cache/wheels" "$cache/sdist"

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -U pip wheel
fi
"$venv/bin/pip" install -q numpy gguf safetensors

sdist="$cache/sdist/llama_cpp_python-$version.tar.gz"
if [ ! -f "$sdist" ]; then
  "$venv/bin/pip" download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$cache/sdist"
fi
src="$cache/sdist/llama_cpp_python-$version"
[ -d "$src/vendor/llama.cpp" ] || tar xzf "$sdist" -C "$cache/sdist"

if ! "$venv/bin/python" -c "import llama_cpp" 2>/dev/null; then
  wheel=$(ls "$cache"/wheels/llama_cpp_python-$version-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    echo "setup-python: building llama-cpp-python $version (compiles llama.cpp, ~10 min on 2 cores)" >&2
    "$venv/bin/pip" install -q cmake ninja scikit-build-core
    # Portable CPU flags: a -march=native build can use instructions a VM advertises but traps.
    CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
      "$venv/bin/pip" wheel -q --no-deps -w "$cache/wheels" "$sdist"
    wheel=$(ls "$cache"/wheels/llama_cpp_python-$version-*.whl | head -n1)
  fi
  "$venv/bin/pip" install -q --no-deps "$wheel"
  "$venv/bin/pip" install -q diskcache jinja2 typing_extensions
fi
echo "LLM_EXPORT_LLAMA_CPP_SRC=$src/vendor/llama.cpp" > "$cache/python-env.sh"
echo "LLM_EXPORT_PYTHON=$venv/bin/python" >> "$cache/python-env.sh"
