/* cmd_info.c: `snipmeta info FILE.gguf`: a GGUF file's header, its metadata (arrays summarised by
 * element type, count and first elements) and its tensor table with totals. */
#include "cli.h"
#include "gguf.h"
#include "tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOW_ELEMS 5    /* array elements shown */
#define SHOW_CHARS 64   /* characters of a string shown */

static const char *value_type_name(sm_gguf_type t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

/* A string in double quotes, escaped, cut at SHOW_CHARS. */
static void print_str(const char *s, uint64_t len) {
    putchar('"');
    for (uint64_t i = 0; i < len && i < SHOW_CHARS; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c); /* UTF-8 passes through */
    }
    putchar('"');
    if (len > SHOW_CHARS) printf("...(%llu bytes)", (unsigned long long)len);
}

/* Element j of a packed array of numbers. */
static void print_elem(sm_gguf_type t, const void *data, uint64_t j) {
    const char *p = data;
    switch (t) {
    case SM_GGUF_UINT8: printf("%u", ((const uint8_t *)p)[j]); break;
    case SM_GGUF_INT8: printf("%d", ((const int8_t *)p)[j]); break;
    case SM_GGUF_UINT16: printf("%u", ((const uint16_t *)p)[j]); break;
    case SM_GGUF_INT16: printf("%d", ((const int16_t *)p)[j]); break;
    case SM_GGUF_UINT32: printf("%u", ((const uint32_t *)p)[j]); break;
    case SM_GGUF_INT32: printf("%d", ((const int32_t *)p)[j]); break;
    case SM_GGUF_FLOAT32: printf("%g", ((const float *)p)[j]); break;
    case SM_GGUF_BOOL: printf("%s", ((const uint8_t *)p)[j] ? "true" : "false"); break;
    case SM_GGUF_UINT64: printf("%llu", (unsigned long long)((const uint64_t *)p)[j]); break;
    case SM_GGUF_INT64: printf("%lld", (long long)((const int64_t *)p)[j]); break;
    case SM_GGUF_FLOAT64: printf("%g", ((const double *)p)[j]); break;
    default: printf("?"); break;
    }
}

/* The shortest of a few precisions that reads back as the same value. */
static void print_number(double v, int is_f32) {
    char buf[40];
    for (int prec = 6; prec <= 17; prec += 3) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (is_f32 ? (float)back == (float)v : back == v) break;
    }
    printf("%s", buf);
}

static void print_value(const sm_gguf *g, int64_t i) {
    const sm_gguf_type t = sm_gguf_kv_type(g, i);
    uint64_t len;
    switch (t) {
    case SM_GGUF_STRING: {
        const char *s = sm_gguf_kv_str(g, i, &len);
        print_str(s, len);
        break;
    }
    case SM_GGUF_BOOL: printf("%s", sm_gguf_kv_u64(g, i) ? "true" : "false"); break;
    case SM_GGUF_FLOAT32: case SM_GGUF_FLOAT64: print_number(sm_gguf_kv_f64(g, i), t == SM_GGUF_FLOAT32); break;
    case SM_GGUF_INT8: case SM_GGUF_INT16: case SM_GGUF_INT32: case SM_GGUF_INT64:
        printf("%lld", (long long)sm_gguf_kv_i64(g, i));
        break;
    case SM_GGUF_ARRAY: {
        const sm_gguf_type et = sm_gguf_arr_type(g, i);
        const uint64_t n = sm_gguf_arr_n(g, i);
        printf("[%s x %llu]", value_type_name(et), (unsigned long long)n);
        if (et == SM_GGUF_ARRAY || n == 0) break;
        printf(" [");
        for (uint64_t j = 0; j < n && j < SHOW_ELEMS; j++) {
            if (j) printf(", ");
            if (et == SM_GGUF_STRING) {
                const char *s = sm_gguf_arr_str(g, i, j, &len);
                print_str(s, len);
            } else {
                print_elem(et, sm_gguf_arr_data(g, i), j);
            }
        }
        printf("%s]", n > SHOW_ELEMS ? ", ..." : "");
        break;
    }
    default: printf("%llu", (unsigned long long)sm_gguf_kv_u64(g, i)); break;
    }
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
    fprintf(f, "usage: snipmeta info FILE.gguf\n\n"
               "Prints a GGUF file's version, alignment and size, all its metadata (arrays as element\n"
               "type, count and first %d elements) and its tensor table (name, type, shape, offset in\n"
               "the data section, bytes) with totals.\n", SHOW_ELEMS);
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) { usage(stdout); return EXIT_OK; }
        if (!strcmp(argv[a], "-q")) continue; /* the common flag; info prints what was asked for */
        if (argv[a][0] == '-' && argv[a][1]) return cli_usage_error("info", "unknown option '%s'", argv[a]);
        if (path) return cli_usage_error("info", "one file at a time (got '%s' and '%s')", path, argv[a]);
        path = argv[a];
    }
    if (!path) return cli_usage_error("info", "no FILE.gguf given");

    sm_error err = {0};
    sm_gguf *g = sm_gguf_open(path, &err);
    if (!g) return cli_report(&err);

    printf("%s: GGUF v%u, %zu bytes, alignment %u, data section at byte %zu\n", path, sm_gguf_version(g),
           sm_gguf_file_size(g), sm_gguf_alignment(g), sm_gguf_data_offset(g));
    const int64_t n_kv = sm_gguf_n_kv(g), n_tensors = sm_gguf_n_tensors(g);
    int key_width = 10;
    for (int64_t i = 0; i < n_kv; i++) {
        int w = (int)strlen(sm_gguf_key(g, i));
        if (w > key_width && w <= 48) key_width = w;
    }
    printf("\nmetadata: %lld keys\n", (long long)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        printf("  %-*s %-4s ", key_width, sm_gguf_key(g, i), value_type_name(sm_gguf_kv_type(g, i)));
        print_value(g, i);
        putchar('\n');
    }

    int name_width = 4;
    for (int64_t i = 0; i < n_tensors; i++) {
        int w = (int)strlen(sm_gguf_tensor_at(g, i)->name);
        if (w > name_width && w <= 48) name_width = w;
    }
    printf("\ntensors: %lld\n", (long long)n_tensors);
    if (n_tensors) printf("  %5s  %-*s %-6s %-26s %12s %12s\n", "#", name_width, "name", "type", "shape", "offset", "bytes");
    uint64_t total_elems = 0, total_bytes = 0;
    int64_t n_unknown = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const sm_gguf_tensor *t = sm_gguf_tensor_at(g, i);
        char shape[96], type[16];
        int at = snprintf(shape, sizeof shape, "[");
        for (int d = 0; d < t->n_dims; d++)
            at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%lld", d ? ", " : "", (long long)t->ne[d]);
        snprintf(shape + at, sizeof shape - (size_t)at, "]");
        if (sm_type_supported(t->type)) snprintf(type, sizeof type, "%s", sm_type_name(t->type));
        else snprintf(type, sizeof type, "ggml:%d", t->type);
        uint64_t elems = (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        total_elems += elems;
        printf("  %5lld  %-*s %-6s %-26s %12llu ", (long long)i, name_width, t->name, type, shape, (unsigned long long)t->offset);
        if (t->data) printf("%12zu\n", t->nbytes), total_bytes += t->nbytes;
        else printf("%12s\n", "?"), n_unknown++;
    }
    char human[32];
    printf("\ntotal: %lld tensors, %llu elements, %llu bytes of tensor data (%s)", (long long)n_tensors,
           (unsigned long long)total_elems, (unsigned long long)total_bytes, human_bytes(human, sizeof human, (double)total_bytes));
    if (n_unknown) printf(", %lld tensors of types this build does not read", (long long)n_unknown);
    printf("\n");
    sm_gguf_close(g);
    return EXIT_OK;
}
