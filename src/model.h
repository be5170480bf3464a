/* model.h: the Llama-family decoder (RMSNorm, RoPE, grouped-query attention, SwiGLU, optional
 * tied output, optional q/k/v/o biases as in Qwen2) over a memory-mapped GGUF file, and the
 * inference context (KV cache and activations) that runs its forward pass.
 *
 * A model is read-only once loaded: weights stay in the file's mapping in their stored type
 * (F32, F16, BF16, Q8_0, Q4_0); only 1-D vectors (norm weights, biases) stored in another type
 * are converted to f32 once, into one slab that the model owns. Many contexts may share one
 * model (a server runs one context per request).
 *
 * Tensor names and metadata keys are llama.cpp's:
 *   token_embd.weight            {n_embd, n_vocab}
 *   blk.N.attn_norm.weight       {n_embd}
 *   blk.N.attn_q.weight          {n_embd, n_head*head_dim}      (.bias {n_head*head_dim}, optional)
 *   blk.N.attn_k.weight          {n_embd, n_head_kv*head_dim}   (.bias, optional)
 *   blk.N.attn_v.weight          {n_embd, n_head_kv*head_dim}   (.bias, optional)
 *   blk.N.attn_output.weight     {n_head*head_dim, n_embd}      (.bias {n_embd}, optional)
 *   blk.N.ffn_norm.weight        {n_embd}
 *   blk.N.ffn_gate.weight        {n_embd, n_ff}
 *   blk.N.ffn_up.weight          {n_embd, n_ff}
 *   blk.N.ffn_down.weight        {n_ff, n_embd}
 *   output_norm.weight           {n_embd}
 *   output.weight                {n_embd, n_vocab}  (absent: tied to token_embd.weight)
 * and {arch}.embedding_length, .block_count, .feed_forward_length, .context_length,
 * .attention.head_count, .attention.head_count_kv, .attention.key_length,
 * .attention.layer_norm_rms_epsilon, .rope.freq_base, .rope.dimension_count.
 */
#ifndef SM_MODEL_H
#define SM_MODEL_H

#include "gguf.h"
#include "tokenizer.h"

#include <stddef.h>

/* The hyperparameters read from the metadata. */
typedef struct {
    char arch[32];      /* general.architecture: "llama", "qwen2", ... */
    int n_vocab;
    int n_embd;
    int n_layer;
    int n_head;
    int n_head_kv;
    int head_dim;       /* {arch}.attention.key_length, default n_embd / n_head */
    int n_ff;
    int n_ctx_train;    /* {arch}.context_length */
    float rope_theta;   /* {arch}.rope.freq_base, default 10000 */
    float norm_eps;     /* {arch}.attention.layer_norm_rms_epsilon, default 1e-5 */
    int rope_neox;      /* 0: LLAMA_ROPE_TYPE_NORM (llama), 1: NEOX (qwen2), by architecture */
    int tied_output;    /* 1 when output.weight is absent and token_embd.weight serves */
} sm_model_config;

/* A matrix of `out` rows by `in` columns in its stored type, inside the mapping. */
typedef struct {
    const char *name;   /* the tensor's name in the file (for errors and adapter lookup) */
    const void *data;
    int type;           /* ggml type id (tensor.h) */
    int in, out;        /* GGUF ne[0], ne[1] */
    size_t row_bytes;
} sm_weight;

/* The seven projections of a block: where a LoRA adapter (y = Wx + s*B(Ax)) hooks in. */
typedef enum {
    SM_PROJ_Q, SM_PROJ_K, SM_PROJ_V, SM_PROJ_O,
    SM_PROJ_GATE, SM_PROJ_UP, SM_PROJ_DOWN,
    SM_PROJ_COUNT
} sm_proj;

/* llama.cpp's tensor name stem of a projection ("attn_q", ..., "ffn_down"). */
const char *sm_proj_name(sm_proj p);

typedef struct {
    const float *attn_norm;         /* (n_embd) */
    const float *ffn_norm;          /* (n_embd) */
    sm_weight proj[SM_PROJ_COUNT];
    const float *bias[SM_PROJ_COUNT]; /* (out) f32, NULL when absent; only Q, K, V, O are read */
} sm_layer;

typedef struct sm_model {
    sm_gguf *gguf;              /* owns the mapping the weights point into */
    sm_tokenizer *tokenizer;
    sm_model_config config;
    sm_weight token_embd;       /* (n_vocab rows, n_embd columns) */
    const float *output_norm;   /* (n_embd) */
    sm_weight output;           /* == token_embd when config.tied_output */
    sm_layer *layers;           /* n_layer */
    float *f32_slab;            /* owned copies of 1-D tensors not stored as f32 */
} sm_model;

/* Maps a GGUF file and checks it as a Llama-family model: every tensor present with the expected
 * type and shape, the metadata consistent. Builds the tokenizer from the file's metadata.
 * Returns a new model that the caller frees with sm_model_free, or NULL with *err naming the file,
 * the tensor or key, and what was expected (SM_EIO, SM_EFORMAT, SM_EUNSUPPORTED, SM_ENOMEM). */
sm_model *sm_model_load(const char *path, sm_error *err);
/* Same over an already opened GGUF; the model takes ownership of g (it closes g on failure too). */
sm_model *sm_model_from_gguf(sm_gguf *g, sm_error *err);
void sm_model_free(sm_model *m);

/* Copies the f32 row of token id into dst (n_embd floats), dequantizing as needed. */
void sm_model_embed(const sm_model *m, float *dst, int id);

/* The inference state of one sequence: the KV cache (f32, per layer, n_ctx positions) and the
 * activations for up to n_batch tokens at once, in one allocation sliced by a size table. */
typedef struct sm_context sm_context;

/* n_ctx: positions the cache holds (<= 0: the model's context_length); n_batch: tokens per
 * forward chunk (<= 0: 512, capped at n_ctx). The model must outlive the context. Returns a new
 * context the caller frees with sm_context_free, or NULL with *err set. */
sm_context *sm_context_new(const sm_model *m, int n_ctx, int n_batch, sm_error *err);
void sm_context_free(sm_context *c);

int sm_context_n_ctx(const sm_context *c);
/* Positions filled so far (the position the next token gets). */
int sm_context_pos(const sm_context *c);
/* Forgets positions >= pos (0 clears the sequence); the cache before pos is kept, so a shared
 * prefix is computed once. Returns SM_EINVAL if pos is beyond the current position. */
int sm_context_truncate(sm_context *c, int pos, sm_error *err);

/* LoRA adapters (lora.h) applied unmerged by every forward pass from now on: each targeted
 * projection computes y = W x + sum_i scales[i] * s_i * B_i (A_i x) (s_i the adapter's own
 * alpha / rank), before any bias, as llama.cpp does with --lora A:SCALE. The adapters are
 * borrowed, not copied: they must outlive their use, and swapping one is a pointer change (the
 * KV cache is not cleared: truncate it where the positions were computed with other adapters).
 * n = 0 detaches all. Checks each adapter's shapes against the model (not its fingerprint: see
 * sm_lora_check_base). Returns SM_OK, or SM_EINVAL / SM_ENOMEM with *err set, the previous
 * adapters then still attached. */
struct sm_lora;
int sm_context_set_adapters(sm_context *c, const struct sm_lora *const *adapters, const float *scales, int n, sm_error *err);
/* Positions < pos run without the adapters (activated LoRA: the prefix before the task's
 * invocation sequence has the base's KV cache, shared by every task); 0, the default, applies
 * them everywhere. */
void sm_context_set_adapter_start(sm_context *c, int pos);

/* Runs n tokens at positions pos..pos+n-1 (pos = sm_context_pos), in chunks of n_batch, adding
 * them to the cache. Writes the logits (n_vocab floats) of the last token to `logits`, or, with
 * all_logits, the logits of every token ((n, n_vocab)) ; logits may be NULL to only fill the cache.
 * Errors (nothing is changed): SM_EINVAL when a token id is out of range, n < 1, or the context
 * would overflow (pos + n > n_ctx). */
int sm_forward(sm_context *c, const int *tokens, int n, float *logits, int all_logits, sm_error *err);

/* ---- several sequences sharing a prefix (batched decoding) ----
 * After a prefix is in the cache (positions [0, pos), pos = sm_context_pos), the context can be
 * split into n_seq sequences that all continue from pos, each with its own adapter, and advance
 * together: one forward pass runs rows of every sequence, so that the weights are read once per
 * step for all of them (activated adapters: the four tasks of a snippet decode side by side after
 * one shared prefill). Sequence 0 continues in the context's own cache; sequences 1.. get a copy
 * of the prefix's keys and values in caches that the context keeps (grown as needed, freed with
 * it). The split ends with sm_context_seqs_end, sm_context_truncate or sm_forward, after which
 * the context holds sequence 0. */
#define SM_CONTEXT_MAX_SEQ 8

/* Splits the context into n_seq (1..SM_CONTEXT_MAX_SEQ) sequences at the current position, each
 * with room for n_extra more positions. Sequence s runs with adapters[s] (NULL: the base alone)
 * at scales[s] on every position it adds (as sm_context_set_adapter_start at the split); the
 * adapters are borrowed and must outlive the split. The context's own adapters (set_adapters)
 * are not used while split. Returns SM_OK; SM_EINVAL (bad arguments, pos + n_extra > n_ctx, an
 * adapter whose shapes do not fit the model); SM_ENOMEM (nothing changes then). */
int sm_context_seqs_begin(sm_context *c, int n_seq, const struct sm_lora *const *adapters, const float *scales, int n_extra,
                          sm_error *err);
/* Runs n_tokens[s] tokens of each sequence s (0: s sits this pass out, e.g. because it finished),
 * `tokens` holding them sequence after sequence, at each sequence's next positions, in one
 * forward pass. Writes to logits, when not NULL, the logits of the last token of each sequence
 * that ran, in sequence order ((number of such sequences, n_vocab)). The results are those of
 * running each sequence alone (sm_forward after sm_context_set_adapters and
 * sm_context_set_adapter_start at the split) up to float summation order. Errors (nothing
 * changes): SM_EINVAL when the context is not split, no token or more than n_batch tokens in all,
 * a token is out of range or a sequence would overflow its room. */
int sm_forward_seqs(sm_context *c, const int *tokens, const int *n_tokens, float *logits, sm_error *err);
/* The number of sequences (0 when not split) and the positions filled of sequence seq (-1 when
 * there is no such sequence). */
int sm_context_n_seq(const sm_context *c);
int sm_context_seq_pos(const sm_context *c, int seq);
/* Ends the split: the context is one sequence again, sequence 0 (positions and cache). */
void sm_context_seqs_end(sm_context *c);

#endif
