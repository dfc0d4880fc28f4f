#!/bin/sh
# Builds tests/gen/ggml_ref_harness.c against llama.cpp's real ggml-quants.c and writes a
# reference-vector file for tests/ggml_reference.rs.
#
# usage: tests/gen/ggml_vectors.sh OUT_FILE [SEED] [N_ROWS]
#   LLAMA_CPP_DIR  llama.cpp checkout (default: the copy vendored by llama-cpp-python 0.3.36)
#   CC             C compiler (default gcc)
#
# The committed fixture is: tests/gen/ggml_vectors.sh tests/fixtures/ggml/vectors.bin 1 52
# A larger randomized set for CI:   tests/gen/ggml_vectors.sh /tmp/v.bin 12345 20000
#   then LLM_EXPORT_GGML_VECTORS=/tmp/v.bin cargo test --release --test ggml_reference
set -eu

out=$1
seed=${2:-1}
rows=${3:-52}
L=${LLAMA_CPP_DIR:-/root/.cache/llm-export/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp}
CC=${CC:-gcc}
here=$(cd "$(dirname "$0")" && pwd)

# The flags CMake uses for libggml-base in a Release build (CMAKE_C_STANDARD 11 with GNU
# extensions, -O3 -DNDEBUG, the ggml compile definitions). Deliberately no -march: the
# quantizers must be compiled exactly as shipped, without FMA contraction.
CFLAGS="-std=gnu11 -O3 -DNDEBUG -fPIC -D_GNU_SOURCE -D_XOPEN_SOURCE=600 -DGGML_BUILD -DGGML_SHARED"
INC="-I$L/ggml/include -I$L/ggml/src"

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

$CC $CFLAGS $INC -c "$L/ggml/src/ggml-quants.c" -o "$build/ggml-quants.o"
$CC $CFLAGS $INC -c "$here/ggml_ref_harness.c" -o "$build/harness.o"
$CC -o "$build/harness" "$build/harness.o" "$build/ggml-quants.o" -lm
"$build/harness" "$out" "$seed" "$rows"

commit=$(git -C "$L" rev-parse HEAD 2>/dev/null || echo unknown)
echo "wrote $out: $rows rows x 256, seed $seed, llama.cpp $commit, $($CC --version | head -1)"
