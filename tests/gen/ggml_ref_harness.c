// Reference-vector generator for tests/ggml_reference.rs.
//
// Linked against llama.cpp's own ggml-quants.c (compiled by ggml_vectors.sh with the flags
// libggml-base uses), it builds a deterministic set of input rows, quantizes them with the
// functions ggml_quantize_chunk dispatches to (imatrix = NULL), dequantizes the result with
// ggml's dequantize_row_* and writes everything to one file.
//
// usage: ggml_ref_harness OUT_FILE SEED N_ROWS
//
// File layout (all little-endian), see also tests/fixtures/ggml/README.md:
//   "GGMLVEC1"  u32 n_per_row  u32 n_rows  u32 n_types
//   u32 case_id[n_rows]                 which generator made each row (see gen_row)
//   f32 input[n_rows * n_per_row]
//   n_types times:
//     u32 ggml_type  u32 row_bytes
//     u8  quantized[n_rows * row_bytes]
//     f32 dequantized[n_rows * n_per_row]

#include "ggml.h"
#include "ggml-impl.h"
#include "ggml-quants.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_PER_ROW 256

// ---- the few libggml-base symbols ggml-quants.c needs -------------------------------------

void ggml_abort(const char * file, int line, const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    abort();
}

struct type_info { enum ggml_type type; const char * name; int64_t blck; size_t size; };

static const struct type_info TYPES[] = {
    { GGML_TYPE_F32,  "f32",  1,   4   },
    { GGML_TYPE_F16,  "f16",  1,   2   },
    { GGML_TYPE_Q4_0, "q4_0", 32,  18  },
    { GGML_TYPE_Q4_1, "q4_1", 32,  20  },
    { GGML_TYPE_Q5_0, "q5_0", 32,  22  },
    { GGML_TYPE_Q5_1, "q5_1", 32,  24  },
    { GGML_TYPE_Q8_0, "q8_0", 32,  34  },
    { GGML_TYPE_Q2_K, "q2_K", 256, 84  },
    { GGML_TYPE_Q3_K, "q3_K", 256, 110 },
    { GGML_TYPE_Q4_K, "q4_K", 256, 144 },
    { GGML_TYPE_Q5_K, "q5_K", 256, 176 },
    { GGML_TYPE_Q6_K, "q6_K", 256, 210 },
    { GGML_TYPE_BF16, "bf16", 1,   2   },
};
#define N_TYPES (sizeof(TYPES) / sizeof(TYPES[0]))

static const struct type_info * info(enum ggml_type t) {
    for (size_t i = 0; i < N_TYPES; i++) {
        if (TYPES[i].type == t) return &TYPES[i];
    }
    fprintf(stderr, "type %d not in harness table\n", (int) t);
    abort();
}

const char * ggml_type_name(enum ggml_type t) { return info(t)->name; }
size_t ggml_type_size(enum ggml_type t) { return info(t)->size; }
size_t ggml_row_size(enum ggml_type t, int64_t ne) { return info(t)->size * (size_t)(ne / info(t)->blck); }

// ---- deterministic inputs ------------------------------------------------------------------

static uint64_t rng_state;

static uint64_t next_u64(void) { // splitmix64
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(void) { return (double)(next_u64() >> 11) * 0x1.0p-53; }
static double uniform(double a, double b) { return a + (b - a) * uniform01(); }
static double normal(void) {
    double u = uniform01(), v = uniform01();
    return sqrt(-2.0 * log(u + 1e-300)) * cos(6.283185307179586 * v);
}

static float round_bf16(float f) {
    ggml_bf16_t h = ggml_compute_fp32_to_bf16(f);
    return ggml_compute_bf16_to_fp32(h);
}
static float round_f16(float f) { return ggml_compute_fp16_to_fp32(ggml_compute_fp32_to_fp16(f)); }

#define N_CASES 26

// Fills one row according to `c`; each case aims at a branch or rounding corner of the
// reference quantizers.
static void gen_row(int c, float * x) {
    const int n = N_PER_ROW;
    switch (c) {
    case 0: // all zero
        for (int i = 0; i < n; i++) x[i] = 0.0f;
        break;
    case 1: // positive constant
        for (int i = 0; i < n; i++) x[i] = 0.3125f;
        break;
    case 2: // negative constant
        for (int i = 0; i < n; i++) x[i] = -1.7f;
        break;
    case 3: // typical weights
        for (int i = 0; i < n; i++) x[i] = (float)(0.02 * normal());
        break;
    case 4: { // normal with a random overall scale
        double s = pow(10.0, uniform(-4.0, 2.0));
        for (int i = 0; i < n; i++) x[i] = (float)(s * normal());
    } break;
    case 5: // uniform symmetric
        for (int i = 0; i < n; i++) x[i] = (float)uniform(-1.0, 1.0);
        break;
    case 6: // all positive (min clamps to 0)
        for (int i = 0; i < n; i++) x[i] = (float)uniform(0.1, 1.0);
        break;
    case 7: // all negative
        for (int i = 0; i < n; i++) x[i] = (float)uniform(-1.0, -0.1);
        break;
    case 8: // heavy tailed (Cauchy)
        for (int i = 0; i < n; i++) x[i] = (float)(0.01 * tan(3.141592653589793 * (uniform01() - 0.5)));
        break;
    case 9: { // one outlier
        for (int i = 0; i < n; i++) x[i] = (float)(0.02 * normal());
        x[next_u64() % n] = (float)(uniform(-3.0, 3.0));
    } break;
    case 10: // tiny
        for (int i = 0; i < n; i++) x[i] = (float)(1e-30 * normal());
        break;
    case 11: // huge (x*x overflows)
        for (int i = 0; i < n; i++) x[i] = (float)(1e30 * normal());
        break;
    case 12: // bf16-representable weights, as from a bf16 checkpoint
        for (int i = 0; i < n; i++) x[i] = round_bf16((float)(0.03 * normal()));
        break;
    case 13: // f16-representable weights
        for (int i = 0; i < n; i++) x[i] = round_f16((float)(0.05 * normal()));
        break;
    case 14: { // small integers times a power of two: many exact ties
        float s = ldexpf(1.0f, (int)(next_u64() % 12) - 8);
        for (int i = 0; i < n; i++) x[i] = s * (float)((int)(next_u64() % 33) - 16);
    } break;
    case 15: { // half-integers times a power of two
        float s = ldexpf(1.0f, (int)(next_u64() % 12) - 8);
        for (int i = 0; i < n; i++) x[i] = s * ((float)((int)(next_u64() % 32) - 16) + 0.5f);
    } break;
    case 16: // sparse
        for (int i = 0; i < n; i++) x[i] = (next_u64() % 8 == 0) ? (float)normal() : 0.0f;
        break;
    case 17: // a single non-zero element
        for (int i = 0; i < n; i++) x[i] = 0.0f;
        x[next_u64() % n] = (float)uniform(-2.0, 2.0);
        break;
    case 18: // each 16-group at its own scale
        for (int i = 0; i < n; i += 16) {
            double s = pow(10.0, uniform(-6.0, 1.0));
            for (int j = 0; j < 16; j++) x[i + j] = (float)(s * normal());
        }
        break;
    case 19: // linear ramp
        for (int i = 0; i < n; i++) x[i] = -1.0f + 2.0f * (float)i / (float)(n - 1);
        break;
    case 20: // near the GROUP_MAX_EPS threshold
        for (int i = 0; i < n; i++) x[i] = (float)(uniform(0.2, 3.0) * 1e-15 * (next_u64() % 2 ? 1 : -1));
        break;
    case 21: // below ~2e-38 the inverse scales overflow to inf
        for (int i = 0; i < n; i++) x[i] = (float)(1e-39 * normal());
        break;
    case 22: // alternating large/small with both signs
        for (int i = 0; i < n; i++) x[i] = (i % 2 ? 1.0f : 1e-3f) * (float)normal();
        break;
    case 23: // bf16 weights with per-32 scales spanning 1e-4..1
        for (int i = 0; i < n; i += 32) {
            double s = pow(10.0, uniform(-4.0, 0.0));
            for (int j = 0; j < 32; j++) x[i + j] = round_bf16((float)(s * normal()));
        }
        break;
    case 24: // near the f16 range limit (d saturates to inf in f16)
        for (int i = 0; i < n; i++) x[i] = (float)(uniform(-1.0, 1.0) * 2e6);
        break;
    default: // 25: few distinct values (quantization grid aligned)
        for (int i = 0; i < n; i++) x[i] = 0.0625f * (float)((int)(next_u64() % 4) - 1);
        break;
    }
}

// ---- quantize / dequantize through ggml ----------------------------------------------------

static size_t quantize(enum ggml_type t, const float * src, void * dst, int64_t nrows) {
    switch (t) {
    case GGML_TYPE_F32: memcpy(dst, src, (size_t) nrows * N_PER_ROW * 4); return (size_t) nrows * N_PER_ROW * 4;
    case GGML_TYPE_F16: {
        ggml_fp16_t * y = dst;
        for (int64_t i = 0; i < nrows * N_PER_ROW; i++) y[i] = GGML_FP32_TO_FP16(src[i]);
        return (size_t) nrows * N_PER_ROW * 2;
    }
    case GGML_TYPE_BF16: {
        ggml_bf16_t * y = dst;
        for (int64_t i = 0; i < nrows * N_PER_ROW; i++) y[i] = ggml_compute_fp32_to_bf16(src[i]);
        return (size_t) nrows * N_PER_ROW * 2;
    }
    case GGML_TYPE_Q4_0: return quantize_q4_0(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q4_1: return quantize_q4_1(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q5_0: return quantize_q5_0(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q5_1: return quantize_q5_1(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q8_0: return quantize_q8_0(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q2_K: return quantize_q2_K(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q3_K: return quantize_q3_K(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q4_K: return quantize_q4_K(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q5_K: return quantize_q5_K(src, dst, nrows, N_PER_ROW, NULL);
    case GGML_TYPE_Q6_K: return quantize_q6_K(src, dst, nrows, N_PER_ROW, NULL);
    default: abort();
    }
}

static void dequantize(enum ggml_type t, const void * src, float * dst, int64_t n) {
    switch (t) {
    case GGML_TYPE_F32: memcpy(dst, src, (size_t) n * 4); break;
    case GGML_TYPE_F16: {
        const ggml_fp16_t * x = src;
        for (int64_t i = 0; i < n; i++) dst[i] = GGML_FP16_TO_FP32(x[i]);
    } break;
    case GGML_TYPE_BF16: {
        const ggml_bf16_t * x = src;
        for (int64_t i = 0; i < n; i++) dst[i] = GGML_BF16_TO_FP32(x[i]);
    } break;
    case GGML_TYPE_Q4_0: dequantize_row_q4_0(src, dst, n); break;
    case GGML_TYPE_Q4_1: dequantize_row_q4_1(src, dst, n); break;
    case GGML_TYPE_Q5_0: dequantize_row_q5_0(src, dst, n); break;
    case GGML_TYPE_Q5_1: dequantize_row_q5_1(src, dst, n); break;
    case GGML_TYPE_Q8_0: dequantize_row_q8_0(src, dst, n); break;
    case GGML_TYPE_Q2_K: dequantize_row_q2_K(src, dst, n); break;
    case GGML_TYPE_Q3_K: dequantize_row_q3_K(src, dst, n); break;
    case GGML_TYPE_Q4_K: dequantize_row_q4_K(src, dst, n); break;
    case GGML_TYPE_Q5_K: dequantize_row_q5_K(src, dst, n); break;
    case GGML_TYPE_Q6_K: dequantize_row_q6_K(src, dst, n); break;
    default: abort();
    }
}

static void put_u32(FILE * f, uint32_t v) {
    uint8_t b[4] = { (uint8_t) v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    fwrite(b, 1, 4, f);
}

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s OUT_FILE SEED N_ROWS\n", argv[0]);
        return 2;
    }
    const uint16_t probe = 1;
    if (*(const uint8_t *) &probe != 1) {
        fprintf(stderr, "this generator writes host-endian floats; run it on a little-endian host\n");
        return 2;
    }
    rng_state = strtoull(argv[2], NULL, 10);
    const int64_t nrows = atoll(argv[3]);
    const int64_t n = nrows * N_PER_ROW;

    uint32_t * cases = malloc(sizeof(uint32_t) * (size_t) nrows);
    float * input = malloc(sizeof(float) * (size_t) n);
    float * deq = malloc(sizeof(float) * (size_t) n);
    uint8_t * q = malloc(4 * (size_t) n);
    if (!cases || !input || !deq || !q) { fprintf(stderr, "out of memory\n"); return 1; }

    for (int64_t r = 0; r < nrows; r++) {
        cases[r] = (uint32_t)(r % N_CASES);
        gen_row((int) cases[r], input + r * N_PER_ROW);
    }

    FILE * f = fopen(argv[1], "wb");
    if (!f) { perror(argv[1]); return 1; }
    fwrite("GGMLVEC1", 1, 8, f);
    put_u32(f, N_PER_ROW);
    put_u32(f, (uint32_t) nrows);
    put_u32(f, (uint32_t) N_TYPES);
    for (int64_t r = 0; r < nrows; r++) put_u32(f, cases[r]);
    fwrite(input, sizeof(float), (size_t) n, f);
    for (size_t t = 0; t < N_TYPES; t++) {
        const size_t row_bytes = ggml_row_size(TYPES[t].type, N_PER_ROW);
        const size_t got = quantize(TYPES[t].type, input, q, nrows);
        if (got != row_bytes * (size_t) nrows) { fprintf(stderr, "size mismatch for %s\n", TYPES[t].name); return 1; }
        dequantize(TYPES[t].type, q, deq, n);
        put_u32(f, (uint32_t) TYPES[t].type);
        put_u32(f, (uint32_t) row_bytes);
        fwrite(q, 1, got, f);
        fwrite(deq, sizeof(float), (size_t) n, f);
    }
    if (fclose(f) != 0) { perror(argv[1]); return 1; }
    free(cases); free(input); free(deq); free(q);
    return 0;
}
