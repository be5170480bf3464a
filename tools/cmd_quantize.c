/* cmd_quantize.c: `snipmeta quantize IN.gguf OUT.gguf TYPE [-t N]`: rewrites a GGUF model with its
 * weight matrices in another element type, the way llama.cpp's llama-quantize chooses them:
 * tensors whose name ends in "weight" and that have two or more dimensions (ggml_n_dims) are
 * converted; 1-D tensors (norms, biases) and everything else are copied unchanged. A matrix whose
 * rows are not whole blocks of the target type is copied unchanged too, with a note. All metadata
 * is copied; general.file_type is set to llama.cpp's llama_ftype for the target and
 * general.quantization_version to 2 (GGML_QNT_VERSION), as llama-quantize does.
 *
 * Conversion goes row by row through f32 with sm_dequantize_row / sm_quantize_row (tensor.c),
 * so a q8_0 file we write is the same as llama.cpp's reference quantizer would write it.
 */
#include "cli.h"
#include "gguf.h"
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUANTIZATION_VERSION 2 /* GGML_QNT_VERSION */

/* llama.cpp's llama_ftype for a file that is "mostly" of this type. */
static uint32_t llama_ftype(int type) {
    switch (type) {
    case SM_TYPE_F32: return 0;   /* LLAMA_FTYPE_ALL_F32 */
    case SM_TYPE_F16: return 1;   /* LLAMA_FTYPE_MOSTLY_F16 */
    case SM_TYPE_Q4_0: return 2;  /* LLAMA_FTYPE_MOSTLY_Q4_0 */
    case SM_TYPE_Q8_0: return 7;  /* LLAMA_FTYPE_MOSTLY_Q8_0 */
    case SM_TYPE_BF16: return 32; /* LLAMA_FTYPE_MOSTLY_BF16 */
    default: return 0;
    }
}

/* ggml_n_dims: the number of dimensions up to the last one that is not 1. */
static int effective_dims(const sm_gguf_tensor *t) {
    int n = 1;
    for (int d = 1; d < SM_GGUF_MAX_DIMS; d++)
        if (t->ne[d] != 1) n = d + 1;
    return n;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* The type tensor t gets in a file of `target`. */
static int new_type(const sm_gguf_tensor *t, int target, int *misfit) {
    *misfit = 0;
    if (!ends_with(t->name, "weight") || effective_dims(t) < 2) return t->type;
    if (t->ne[0] % sm_type_block_elems(target) != 0) { *misfit = 1; return t->type; }
    return target;
}

/* Converts a tensor of `rows` rows of n elements from src_type to dst_type. */
static int convert(void *dst, int dst_type, const void *src, int src_type, int64_t rows, int64_t n) {
    size_t src_row, dst_row;
    if (sm_type_row_bytes(src_type, n, &src_row) || sm_type_row_bytes(dst_type, n, &dst_row)) return -1;
    int failed = 0;
#pragma omp parallel
    {
        float *buf = malloc(n ? (size_t)n * sizeof *buf : 1);
        if (!buf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!buf) continue;
            sm_dequantize_row(src_type, buf, (const char *)src + (size_t)r * src_row, n);
            sm_quantize_row(dst_type, (char *)dst + (size_t)r * dst_row, buf, n);
        }
        free(buf);
    }
    return failed ? -1 : 0;
}

/* n bytes as "512 B", "1.50 KiB", "3.20 MiB" or "1.10 GiB". */
static const char *human_bytes(char *buf, size_t cap, double n) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (n >= 1024 && u < 4) n /= 1024, u++;
    snprintf(buf, cap, u ? "%.2f %s" : "%.0f %s", n, units[u]);
    return buf;
}

static void usage(FILE *f) {
    fprintf(f, "usage: snipmeta quantize IN.gguf OUT.gguf q8_0|q4_0|f16|bf16|f32 [-t THREADS] [-q]\n\n"
               "Rewrites IN's weight matrices (tensors named *weight with 2 or more dimensions) in the\n"
               "given type and copies everything else, metadata included; sets general.file_type as\n"
               "llama.cpp does. OUT is written atomically.\n\n"
               "  -t N   threads (default: all cores)\n"
               "  -q     quiet: no notes, no summary\n");
}

/* Writes in's tensors with their new types and all its metadata to out_path. Returns an sm_E* code. */
static int quantize_file(const sm_gguf *in, const char *out_path, int target, int quiet, sm_error *err) {
    const char *in_path = sm_gguf_path(in);
    const int64_t n_tensors = sm_gguf_n_tensors(in);
    int *types = calloc((size_t)n_tensors + 1, sizeof *types);
    size_t *offsets = calloc((size_t)n_tensors + 1, sizeof *offsets);
    char *slab = NULL;
    sm_gguf_writer *w = NULL;
    int rc = SM_OK;
    if (!types || !offsets) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }

    /* Types and sizes first, so that the converted tensors share one allocation. */
    size_t total = 0;
    int64_t n_converted = 0, n_misfit = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(in, i);
        if (!t->data) {
            rc = sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' has ggml type %d, which this build cannot read", in_path, t->name, t->type);
            goto done;
        }
        int misfit;
        types[i] = new_type(t, target, &misfit);
        if (misfit && !quiet) {
            fprintf(stderr, "snipmeta quantize: note: '%s' keeps type %s: its rows of %lld are not whole blocks of %s\n",
                    t->name, sm_type_name(t->type), (long long)t->ne[0], sm_type_name(target));
        }
        n_misfit += misfit;
        offsets[i] = total;
        if (types[i] == t->type) continue;
        size_t row, bytes = 0;
        const uint64_t rows = (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        if (sm_type_row_bytes(types[i], t->ne[0], &row) || (rows && row > SIZE_MAX / rows) ||
            (bytes = row * (size_t)rows) > SIZE_MAX - total) {
            rc = sm_err(err, SM_ENOMEM, "%s: tensor '%s' is too large", in_path, t->name);
            goto done;
        }
        total += bytes;
    }
    slab = malloc(total ? total : 1);
    w = slab ? sm_gguf_writer_new() : NULL;
    if (!w) { rc = sm_err(err, SM_ENOMEM, "out of memory for %zu bytes of converted tensors", total); goto done; }

    for (int64_t i = 0; i < sm_gguf_n_kv(in) && !rc; i++) rc = sm_gguf_copy_kv(w, in, i);
    if (!rc) rc = sm_gguf_set_u32(w, "general.quantization_version", QUANTIZATION_VERSION);
    if (!rc) rc = sm_gguf_set_u32(w, "general.file_type", llama_ftype(target));
    if (rc) { sm_err(err, rc, "%s: cannot copy the metadata (%s)", in_path, sm_strerror(rc)); goto done; }
    size_t bytes_in = 0, bytes_out = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(in, i);
        const int64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
        const void *data = t->data;
        if (types[i] != t->type) {
            if (convert(slab + offsets[i], types[i], t->data, t->type, rows, t->ne[0])) {
                rc = sm_err(err, SM_ENOMEM, "out of memory converting '%s'", t->name);
                goto done;
            }
            data = slab + offsets[i];
            n_converted++;
        }
        if ((rc = sm_gguf_add_tensor(w, t->name, types[i], t->n_dims, t->ne, data))) {
            sm_err(err, rc, "%s: tensor '%s' cannot be written (%s)", in_path, t->name, sm_strerror(rc));
            goto done;
        }
        size_t row = 0;
        sm_type_row_bytes(types[i], t->ne[0], &row);
        bytes_in += t->nbytes;
        bytes_out += row * (size_t)rows;
    }
    if ((rc = sm_gguf_write(w, out_path, err))) goto done;
    if (!quiet) {
        char a[32], b[32];
        fprintf(stderr, "snipmeta quantize: %s -> %s: %lld of %lld tensors to %s (%lld kept for their row size), %s -> %s of tensor data\n",
                in_path, out_path, (long long)n_converted, (long long)n_tensors, sm_type_name(target), (long long)n_misfit,
                human_bytes(a, sizeof a, (double)bytes_in), human_bytes(b, sizeof b, (double)bytes_out));
    }
done:
    sm_gguf_writer_free(w);
    free(slab);
    free(types);
    free(offsets);
    return rc;
}

int cmd_quantize(int argc, char **argv) {
    const char *pos[3] = {0};
    int n_pos = 0;
    long long threads = 0;
    int quiet = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { usage(stdout); return EXIT_OK; }
        if (!strcmp(argv[a], "-q")) {
            quiet = 1;
        } else if (!strcmp(argv[a], "-t")) {
            if (++a >= argc || cli_parse_int(argv[a], 1, 4096, &threads))
                return cli_usage_error("quantize", "-t needs a thread count from 1 to 4096");
        } else if (argv[a][0] == '-' && argv[a][1]) {
            return cli_usage_error("quantize", "unknown option '%s'", argv[a]);
        } else if (n_pos < 3) {
            pos[n_pos++] = argv[a];
        } else {
            return cli_usage_error("quantize", "unexpected argument '%s'", argv[a]);
        }
    }
    if (n_pos < 3) return cli_usage_error("quantize", "expected IN.gguf OUT.gguf TYPE");
    const int target = sm_type_from_name(pos[2]);
    if (target < 0) return cli_usage_error("quantize", "unknown type '%s' (expected q8_0, q4_0, f16, bf16 or f32)", pos[2]);
    cli_set_threads((int)threads);

    sm_error err = {0};
    sm_gguf *in = sm_gguf_open(pos[0], &err);
    if (!in) return cli_report(&err);
    int rc = quantize_file(in, pos[1], target, quiet, &err);
    sm_gguf_close(in);
    return rc ? cli_report(&err) : EXIT_OK;
}
