/* test_model_init.c: the random-model writer (model_init.h). Values depend only on the seed and
 * the tensor name (not on threads or type), the statistics are those of the scheme, bad shapes are
 * refused, and a written file loads as a model with the right metadata, tensors and tokenizer.
 * usage: test_model_init SHARED_DIR   (skips the file tests without the vocabulary fixture) */
#include "gguf.h"
#include "model.h"
#include "model_init.h"
#include "tensor.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static const sm_model_shape small = {.n_vocab = 0, .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2,
                                     .n_ff = 96, .n_ctx = 128, .rope_theta = 10000.0f, .norm_eps = 1e-5f};

static void test_table_and_values(void) {
    sm_model_shape s = small;
    s.n_vocab = 100;
    sm_init_scheme scheme;
    CHECK(sm_init_scheme_preset("gpt2", &s, &scheme) == SM_OK, "gpt2 scheme");
    CHECK(sm_init_scheme_preset("nope", &s, &scheme) == SM_EINVAL, "unknown scheme accepted");
    const int n = sm_init_tensor_table(&s, NULL);
    CHECK(n == 9 * 2 + 3, "untied table has %d tensors", n);
    sm_init_tensor table[64];
    CHECK(sm_init_tensor_table(&s, table) == n, "table count");
    CHECK(!strcmp(table[0].name, "token_embd.weight") && table[0].ne[0] == 64 && table[0].ne[1] == 100, "token_embd");
    CHECK(!strcmp(table[3].name, "blk.0.attn_k.weight") && table[3].ne[1] == 32, "attn_k is {n_embd, n_embd_kv}");
    CHECK(!strcmp(table[n - 1].name, "output.weight"), "output last");
    s.tied = 1;
    CHECK(sm_init_tensor_table(&s, NULL) == n - 1, "tied drops output.weight");
    s.tied = 0;

    /* Same seed and name: same values at any thread count; another seed: other values. */
    const sm_init_tensor *ffn_up = &table[8]; /* blk.0.ffn_up.weight {64, 96} */
    CHECK(!strcmp(ffn_up->name, "blk.0.ffn_up.weight"), "table order: %s", ffn_up->name);
    const int64_t count = ffn_up->ne[0] * ffn_up->ne[1];
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    omp_set_num_threads(1);
    sm_init_tensor_values(a, ffn_up, count, &scheme, 5);
    omp_set_num_threads(3);
    sm_init_tensor_values(b, ffn_up, count, &scheme, 5);
    CHECK(!memcmp(a, b, count * sizeof *a), "values depend on the thread count");
    sm_init_tensor_values(b, ffn_up, count, &scheme, 6);
    CHECK(memcmp(a, b, count * sizeof *a), "seed 6 gives seed 5's values");
    double sum = 0, sum2 = 0;
    for (int64_t i = 0; i < count; i++) { sum += a[i]; sum2 += (double)a[i] * a[i]; }
    const double mean = sum / count, sd = sqrt(sum2 / count - mean * mean);
    printf("ffn_up: mean %.5f sd %.5f (want 0, %.3f)\n", mean, sd, scheme.std);
    CHECK(fabs(mean) < 0.002 && fabs(sd - scheme.std) < 0.002, "normal(0, %.3f): mean %g sd %g", scheme.std, mean, sd);
    sm_init_tensor_values(a, &table[1], 64, &scheme, 5); /* attn_norm */
    CHECK(a[0] == 1.0f && a[63] == 1.0f, "norms are 1");
    free(a);
    free(b);

    sm_error err = {0};
    CHECK(sm_model_shape_check(&s, SM_TYPE_Q8_0, &err) == SM_OK, "valid shape refused: %s", err.msg);
    sm_model_shape bad = s;
    bad.n_head = 5;
    CHECK(sm_model_shape_check(&bad, SM_TYPE_F32, &err) == SM_EINVAL, "n_embd %% n_head accepted");
    bad = s;
    bad.n_head_kv = 3;
    CHECK(sm_model_shape_check(&bad, SM_TYPE_F32, &err) == SM_EINVAL, "n_head %% n_head_kv accepted");
    bad = s;
    bad.n_ff = 100;
    CHECK(sm_model_shape_check(&bad, SM_TYPE_F32, &err) == SM_OK, "n_ff 100 is fine for f32");
    CHECK(sm_model_shape_check(&bad, SM_TYPE_Q4_0, &err) == SM_EINVAL, "n_ff 100 accepted for q4_0");
    bad = s;
    bad.n_layer = 0;
    CHECK(sm_model_shape_check(&bad, SM_TYPE_F32, &err) == SM_EINVAL, "n_layer 0 accepted");
    sm_model_shape preset;
    CHECK(sm_model_shape_preset("smollm2-135m", &preset) == SM_OK && preset.n_embd == 576 && preset.n_layer == 30 &&
          preset.n_head == 9 && preset.n_head_kv == 3 && preset.n_ff == 1536, "smollm2-135m preset");
    CHECK(sm_model_shape_preset("gpt-5", &preset) == SM_EINVAL, "unknown preset accepted");
}

/* Writes F32 and Q8_0 files of the same seed; the Q8_0 file holds the F32 values quantized, and
 * both load as models with the vocabulary's tokenizer. */
static void test_files(const char *shared) {
    char vocab_path[4096], f32_path[64], q8_path[64];
    snprintf(vocab_path, sizeof vocab_path, "%s/fixtures/tokenizers/ggml-vocab-starcoder.gguf", shared);
    if (access(vocab_path, R_OK)) { printf("skip file tests: %s is missing\n", vocab_path); return; }
    snprintf(f32_path, sizeof f32_path, "/tmp/test_model_init.%d.f32.gguf", (int)getpid());
    snprintf(q8_path, sizeof q8_path, "/tmp/test_model_init.%d.q8_0.gguf", (int)getpid());
    sm_error err = {0};
    sm_gguf *vocab = sm_gguf_open(vocab_path, &err);
    CHECK(vocab, "open vocab: %s", err.msg);
    if (!vocab) return;
    sm_init_scheme scheme;
    sm_init_scheme_preset("decode", &small, &scheme);
    CHECK(sm_init_write_gguf(f32_path, &small, &scheme, vocab, SM_TYPE_F32, 9, &err) == SM_OK, "write f32: %s", err.msg);
    CHECK(sm_init_write_gguf(q8_path, &small, &scheme, vocab, SM_TYPE_Q8_0, 9, &err) == SM_OK, "write q8_0: %s", err.msg);
    sm_model_shape wrong = small;
    wrong.n_vocab = 7;
    CHECK(sm_init_write_gguf(f32_path, &wrong, &scheme, vocab, SM_TYPE_F32, 9, &err) == SM_EINVAL,
          "a shape's n_vocab that differs from the vocabulary's is accepted");

    sm_gguf *f32 = sm_gguf_open(f32_path, &err), *q8 = sm_gguf_open(q8_path, &err);
    CHECK(f32 && q8, "reopen: %s", err.msg);
    if (f32 && q8) {
        CHECK(sm_gguf_get_str(f32, "general.architecture") && !strcmp(sm_gguf_get_str(f32, "general.architecture"), "llama"),
              "architecture");
        uint32_t v = 0;
        CHECK(sm_gguf_get_u32(f32, "llama.block_count", &v, &err) == SM_OK && v == 2, "block_count %u", v);
        CHECK(sm_gguf_get_u32(f32, "llama.attention.head_count_kv", &v, &err) == SM_OK && v == 2, "head_count_kv %u", v);
        CHECK(sm_gguf_get_u32(f32, "llama.rope.dimension_count", &v, &err) == SM_OK && v == 16, "rope dims %u", v);
        CHECK(sm_gguf_get_u32(q8, "general.file_type", &v, &err) == SM_OK && v == 7, "q8_0 file_type %u", v);
        int n_tok_keys = 0;
        for (int64_t i = 0; i < sm_gguf_n_kv(vocab); i++)
            if (!strncmp(sm_gguf_key(vocab, i), "tokenizer.", 10)) {
                n_tok_keys++;
                CHECK(sm_gguf_find_key(f32, sm_gguf_key(vocab, i)) >= 0, "%s not copied", sm_gguf_key(vocab, i));
            }
        CHECK(n_tok_keys > 3, "vocab has %d tokenizer keys", n_tok_keys);
        const sm_gguf_tensor *a = sm_gguf_find_tensor(f32, "blk.1.ffn_down.weight");
        const sm_gguf_tensor *b = sm_gguf_find_tensor(q8, "blk.1.ffn_down.weight");
        const sm_gguf_tensor *norm = sm_gguf_find_tensor(q8, "blk.1.ffn_norm.weight");
        CHECK(a && b && a->type == SM_TYPE_F32 && b->type == SM_TYPE_Q8_0 && a->ne[0] == 96 && a->ne[1] == 64,
              "ffn_down types and shape");
        CHECK(norm && norm->type == SM_TYPE_F32, "norms stay f32 in a q8_0 file");
        if (a && b) {
            const int64_t n = a->ne[0] * a->ne[1];
            void *q = malloc(b->nbytes);
            sm_quantize_row(SM_TYPE_Q8_0, q, a->data, n);
            CHECK(b->nbytes == a->nbytes / 4 * 34 / 32 && !memcmp(q, b->data, b->nbytes),
                  "the q8_0 file is not the f32 file quantized");
            free(q);
        }
    }
    sm_gguf_close(f32);
    sm_gguf_close(q8);
    sm_model *m = sm_model_load(q8_path, &err);
    CHECK(m, "load q8_0 model: %s", err.msg);
    if (m) {
        CHECK(m->config.n_vocab == (int)sm_gguf_arr_n(vocab, sm_gguf_find_key(vocab, "tokenizer.ggml.tokens")) &&
              m->config.n_head_kv == 2 && m->config.head_dim == 16 && !m->config.tied_output, "loaded config");
        sm_model_free(m);
    }
    sm_gguf_close(vocab);
    unlink(f32_path);
    unlink(q8_path);
}

int main(int argc, char **argv) {
    test_table_and_values();
    test_files(argc > 1 ? argv[1] : "../shared");
    if (failures) { printf("test_model_init: %d failures\n", failures); return 1; }
    printf("test_model_init: ok\n");
    return 0;
}
