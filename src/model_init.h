/* model_init.h: the shape of a Llama-architecture model and its deterministic random
 * initialisation, as a table of llama.cpp-named tensors, as f32 buffers, or as a whole GGUF file.
 *
 * `snipmeta init` writes random models for interop tests and benchmarks; pretraining starts from
 * the same weights. Every tensor's values depend only on (seed, tensor name, element index), so
 * they do not depend on the thread count, the order in which tensors are made, or the stored type
 * (a Q8_0 file holds the quantized values of the F32 file of the same seed).
 *
 * Tensors (ne[0] is the contiguous axis, so a matrix of `out` rows and `in` columns has
 * ne = {in, out}); head_dim = n_embd / n_head, n_embd_kv = n_head_kv * head_dim:
 *   token_embd.weight          {n_embd, n_vocab}
 *   blk.N.attn_norm.weight     {n_embd}               1.0
 *   blk.N.attn_q.weight        {n_embd, n_embd}
 *   blk.N.attn_k.weight        {n_embd, n_embd_kv}
 *   blk.N.attn_v.weight        {n_embd, n_embd_kv}
 *   blk.N.attn_output.weight   {n_embd, n_embd}
 *   blk.N.ffn_norm.weight      {n_embd}               1.0
 *   blk.N.ffn_gate.weight      {n_embd, n_ff}
 *   blk.N.ffn_up.weight        {n_embd, n_ff}
 *   blk.N.ffn_down.weight      {n_ff, n_embd}
 *   output_norm.weight         {n_embd}               1.0
 *   output.weight              {n_embd, n_vocab}      absent when tied (token_embd is reused)
 * Matrices are normal with the standard deviations of an init scheme (below); norm weights are
 * 1.0 and always stored as F32.
 */
#ifndef SM_MODEL_INIT_H
#define SM_MODEL_INIT_H

#include "gguf.h"

#include <stdint.h>

#define SM_INIT_STD 0.02f /* the base standard deviation of both schemes below */

/* How matrices are drawn: N(0, std^2) by tensor kind, and optionally a log-normal scale per row
 * of output.weight. */
typedef struct {
    float std;              /* attn_v, ffn_gate, ffn_up, output */
    float std_embd;         /* token_embd */
    float std_qk;           /* attn_q, attn_k: larger makes attention sharper */
    float std_residual;     /* attn_output, ffn_down: the writes into the residual stream */
    float output_row_sigma; /* output.weight row r is scaled by exp(sigma * z_r), z_r ~ N(0,1); 0: off */
} sm_init_scheme;

/* The hyperparameters that fix a model's tensor shapes, with llama.cpp's llama.* meanings. */
typedef struct {
    int n_vocab;      /* 0 until known (sm_init_write_gguf takes it from the vocabulary file) */
    int n_embd;       /* llama.embedding_length */
    int n_layer;      /* llama.block_count */
    int n_head;       /* llama.attention.head_count */
    int n_head_kv;    /* llama.attention.head_count_kv */
    int n_ff;         /* llama.feed_forward_length */
    int n_ctx;        /* llama.context_length */
    float rope_theta; /* llama.rope.freq_base */
    float norm_eps;   /* llama.attention.layer_norm_rms_epsilon */
    int tied;         /* 1: no output.weight; the output projection reuses token_embd.weight */
} sm_model_shape;

/* Fills *shape with a named preset ("smollm2-135m": 576 wide, 30 layers, 9 heads, 3 KV heads,
 * ffn 1536, context 8192, rope_theta 100000, eps 1e-5; n_vocab left 0; untied, whereas the
 * real SmolLM2 ties its output to token_embd: set tied to match it). Returns 0, or
 * SM_EINVAL for an unknown name. */
int sm_model_shape_preset(const char *name, sm_model_shape *shape);

/* Fills *scheme with a named scheme; returns 0, or SM_EINVAL for an unknown name.
 *   "decode"  for random models whose greedy decoding is a useful interop test: it varies, and its
 *             top-1 / top-2 logit gaps are rarely near-ties that rounding could flip. A deep random
 *             model with 0.02 everywhere maps every context to one token (its positions collapse
 *             to their mean through near-uniform attention), and a Q8_0 model of it amplifies the
 *             rounding differences between two implementations to ~0.03 in the logits. Untied:
 *             token_embd 1.0 (the current token steers the output), q/k 0.05, residual writes
 *             0.01 (blocks still make a third of the residual stream), output rows scaled with
 *             sigma 0.5 (heavier-tailed logits, wider gaps). Tied: q/k 0.15 (sharp attention),
 *             0.02 elsewhere, no row scaling (token_embd is the output: a large embedding would
 *             make every token predict itself).
 *   "gpt2"    for training from scratch: std 0.02, residual writes 0.02 / sqrt(2 * n_layer). */
int sm_init_scheme_preset(const char *name, const sm_model_shape *shape, sm_init_scheme *scheme);

/* Checks that the shape is consistent (positive sizes, n_embd divisible by n_head into an even
 * head_dim, n_head divisible by n_head_kv) and that matrices of `type` can hold it (rows a
 * multiple of 32 for Q8_0/Q4_0). Returns 0 or SM_EINVAL with *err saying which value is wrong. */
int sm_model_shape_check(const sm_model_shape *shape, int type, sm_error *err);

/* One tensor of the table above. */
typedef struct {
    char name[64];
    int n_dims;     /* 1 (norm weights) or 2 */
    int64_t ne[2];  /* ne[1] is 1 for a vector */
    int is_norm;    /* 1: initialised to 1.0 and stored as F32 */
} sm_init_tensor;

/* Writes the model's tensors, in file order, to out[0..n) and returns n; with out NULL returns
 * only n (9 * n_layer + 3, less one when tied). */
int sm_init_tensor_table(const sm_model_shape *shape, sm_init_tensor *out);

/* Fills w (n) with the initial values of the tensor `t`: 1.0 for a norm, else normal values from a
 * counter-based generator keyed by (seed, t->name) with the scheme's deviations, so element i is
 * the same for any thread count and any caller. n must be t's element count. */
void sm_init_tensor_values(float *w, const sm_init_tensor *t, int64_t n, const sm_init_scheme *scheme, uint64_t seed);

/* Writes a GGUF model of this shape with random weights (drawn per `scheme`) to path: general.architecture=llama,
 * the llama.* hyperparameters, general.file_type, and every tokenizer.* key of the open
 * vocabulary file `vocab` (whose token count sets n_vocab; shape->n_vocab must be 0 or equal).
 * Matrices are stored as `type` (F32, F16, BF16, Q8_0 or Q4_0), norms as F32. Uses the
 * enclosing OpenMP thread count. Returns 0 or a negative SM_E* code with *err set. */
int sm_init_write_gguf(const char *path, const sm_model_shape *shape, const sm_init_scheme *scheme,
                       const sm_gguf *vocab, int type, uint64_t seed, sm_error *err);

#endif
