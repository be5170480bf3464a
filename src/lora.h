/* lora.h: LoRA adapters for the Llama-family model (model.h): for each targeted projection W
 * (out x in) of each layer, A (rank x in) and B (out x rank), applied unmerged as
 *     y = W x + s * B (A x),   s = alpha / rank   (alpha / sqrt(rank) with rsLoRA)
 * so that adapters swap by pointer, or merged into a copy of W for a single-task deployment.
 *
 * All A and B matrices of an adapter live in ONE f32 slab (`params`), layer by layer, projection
 * by projection in sm_proj order, A then B: the optimizer, checkpoints and gradient all-reduce
 * work on that flat buffer. Files: GGUF LoRA as llama.cpp writes it (general.type=adapter,
 * adapter.type=lora, adapter.lora.alpha, tensors blk.N.attn_q.weight.lora_a {in, rank} and
 * .lora_b {rank, out}) plus snipmeta.* keys; and PEFT (adapter_model.safetensors +
 * adapter_config.json). The inference context applies adapters unmerged
 * (sm_context_set_adapters in model.h, from an optional start position for activated adapters).
 *
 * Callers that train an adapter set base_fingerprint (sm_model_fingerprint) before saving it, so
 * that loading it on any other base is refused.
 */
#ifndef SM_LORA_H
#define SM_LORA_H

#include "model.h"

#include <stdint.h>

typedef struct {
    float *a;   /* (rank, in), NULL when this projection is not targeted or the adapter is held as f16 */
    float *b;   /* (out, rank) */
    const uint16_t *a16, *b16; /* the same as f16 (ggml's half) after sm_lora_to_f16, else NULL */
    int in, out;
} sm_lora_pair;

typedef struct sm_lora {
    int n_layer;
    int rank;
    float alpha;
    int rslora;                 /* 1: scale alpha / sqrt(rank) */
    unsigned targets;           /* bit (1u << sm_proj) set for each targeted projection */
    sm_lora_pair *pairs;        /* [n_layer * SM_PROJ_COUNT] */
    float *params;              /* the slab holding every A and B (NULL once held as f16) */
    uint16_t *params16;         /* the f16 slab after sm_lora_to_f16, else NULL */
    size_t n_params;
    char task[64];              /* snipmeta.task ("title", ...; "" when none) */
    char base_fingerprint[65];  /* hex digest of the base weights it was trained on */
    int prompt_format;          /* version of prompts/student.txt it was trained with */
    int activated;              /* 1: switched on only from the task's invocation sequence onward */
    /* of the base (sm_lora_new copies them from the config; files carry them): general.architecture
     * and the head counts that the q/k rope permutation between PEFT and GGUF needs (0: unknown) */
    char arch[32];
    int n_head, n_head_kv;
} sm_lora;

#define SM_LORA_TARGETS_ATTN ((1u << SM_PROJ_Q) | (1u << SM_PROJ_K) | (1u << SM_PROJ_V) | (1u << SM_PROJ_O))
#define SM_LORA_TARGETS_MLP ((1u << SM_PROJ_GATE) | (1u << SM_PROJ_UP) | (1u << SM_PROJ_DOWN))

/* The adapter's matrices for projection p of layer l (a and b NULL when p is not targeted). */
static inline sm_lora_pair *sm_lora_at(const sm_lora *l, int layer, sm_proj p) {
    return &l->pairs[(size_t)layer * SM_PROJ_COUNT + p];
}

/* Whether pair holds matrices (f32 or f16), that is whether its projection is targeted. */
static inline int sm_lora_pair_set(const sm_lora_pair *pair) { return pair->a != NULL || pair->a16 != NULL; }

/* For serving, where adapters stay resident beside the base: converts every A and B to f16
 * (round to nearest even, as F16C) into one slab of half the size and frees the f32 slab. After
 * it params and the pairs' a, b are NULL and params16, a16, b16 hold the values; the inference
 * context reads either (model.h), sm_lora_save_gguf writes F16 tensors and sm_lora_merge_into
 * reads them, while training and sm_lora_save_peft refuse such an adapter. A no-op on an adapter
 * already held as f16. Returns SM_OK or SM_ENOMEM (the adapter unchanged then). */
int sm_lora_to_f16(sm_lora *l, sm_error *err);
/* Bytes of the adapter's A and B values as held (4 or 2 per parameter). */
size_t sm_lora_bytes(const sm_lora *l);

/* A new adapter for a model of config cfg: rank r (>= 1), alpha, rsLoRA flag, the projections in
 * `targets` (a non-zero mask of SM_PROJ_* bits). Every A and B lives in one zeroed f32 slab, laid
 * out layer by layer, projection by projection in sm_proj order, A (rank, in) then B (out, rank);
 * in/out of every pair are set whether targeted or not. task, base_fingerprint are empty,
 * prompt_format and activated 0. Returns the adapter, which the caller frees with sm_lora_free, or
 * NULL with *err set (SM_EINVAL for a bad rank, mask or config; SM_ENOMEM). */
sm_lora *sm_lora_new(const sm_model_config *cfg, int rank, float alpha, int rslora, unsigned targets, sm_error *err);
void sm_lora_free(sm_lora *l); /* NULL-safe */

/* Initialises as PEFT does: every A from Kaiming-uniform with a = sqrt(5), that is
 * U(-1/sqrt(in), 1/sqrt(in)), every B zero, so the adapter starts as the identity. The values
 * depend only on (seed, layer, projection, element index). */
void sm_lora_init(sm_lora *l, uint64_t seed);

/* An adapter of n_layer layers, rank and targets whose projection p has dims[p][0] columns (in)
 * and dims[p][1] rows (out), zeroed, in the layout of sm_lora_new, with alpha = rank (scale 1)
 * and no arch or head counts; for file readers, which learn
 * the shapes from the file. Returns NULL with *err set (SM_EINVAL, SM_ENOMEM). */
sm_lora *sm_lora_alloc(int n_layer, int rank, unsigned targets, const int dims[SM_PROJ_COUNT][2], sm_error *err);

/* The scale s of y = W x + s * B (A x): alpha / rank, or alpha / sqrt(rank) with rsLoRA. */
float sm_lora_scale(const sm_lora *l);

/* Writes to out the 64 hex digits (and a NUL) of the fingerprint of the exact base weights: a
 * SHA-256 tree over every tensor of the model's file, taken in name order, each contributing its
 * name, ggml type, shape, byte count and the SHA-256 of each 4 MiB piece of its bytes (the pieces
 * are hashed in parallel on the enclosing OpenMP threads). Metadata is not covered. Returns SM_OK
 * or SM_ENOMEM. */
int sm_model_fingerprint(const sm_model *m, char out[65]);

/* Checks that adapter l (read from lora_path, named in errors) fits base m: the same
 * architecture (when the adapter names one), no more layers, every targeted projection of the
 * same shape, and, when the adapter carries a base fingerprint, the same fingerprint as m's
 * (fingerprint: m's, already computed, or NULL to compute it here). Returns SM_OK, or SM_EINVAL
 * with *err naming both files and what differs; SM_ENOMEM. */
int sm_lora_check_base(const sm_lora *l, const char *lora_path, const sm_model *m, const char *fingerprint, sm_error *err);

/* Writes l as a GGUF LoRA adapter that llama.cpp loads (lora_gguf.c's header comment lists the
 * keys and tensors), atomically. l->arch must be set. Returns SM_OK or an SM_E* code with *err. */
int sm_lora_save_gguf(const sm_lora *l, const char *path, sm_error *err);
/* Reads a GGUF LoRA adapter (ours, or llama.cpp's: then alpha is adapter.lora.alpha, or rank
 * when it is 0 or missing, as llama.cpp's scale of 1; no fingerprint). Tensors may be F32, F16,
 * BF16 or Q8_0; they must all have one rank, and A and B come in pairs (a layer a projection
 * skips keeps zeros: no change there, as llama.cpp's layers without tensors). Returns a new adapter the caller frees with sm_lora_free, or NULL with *err naming the
 * file and the tensor or key (SM_EIO, SM_EFORMAT for truncated or corrupt files, SM_EUNSUPPORTED,
 * SM_ENOMEM). Does not check it against a base: see sm_lora_check_base. */
sm_lora *sm_lora_load_gguf(const char *path, sm_error *err);
sm_lora *sm_lora_load_gguf_memory(const void *buf, size_t size, const char *name, sm_error *err);

/* Writes l as a PEFT adapter directory (created if missing): adapter_config.json and
 * adapter_model.safetensors (F32), in Hugging Face's row order (for llama and mistral the rows of
 * q/k's B are permuted back from llama.cpp's RoPE order: lora_peft.c says how; that needs
 * l->n_head and l->n_head_kv). base_name goes to base_model_name_or_path. Files are written
 * atomically. Returns SM_OK or an SM_E* code with *err set. */
int sm_lora_save_peft(const sm_lora *l, const char *base_name, const char *dir, sm_error *err);
/* Reads a PEFT adapter directory for a base of config cfg (its architecture and head counts
 * decide the q/k row permutation; see sm_lora_check_base for the rest of the fit). cfg may be
 * NULL for a directory that sm_lora_save_peft wrote, which names them in its metadata; other
 * directories then give SM_EINVAL. Tensors may be
 * F32, F16 or BF16. Returns a new adapter the caller frees with sm_lora_free, or NULL with *err
 * naming the file and what was wrong (SM_EIO, SM_EFORMAT, SM_EUNSUPPORTED, SM_ENOMEM). */
sm_lora *sm_lora_load_peft(const char *dir, const sm_model_config *cfg, sm_error *err);

/* Merging, for a single-task deployment. w (pair out rows of in f32, the dequantized base
 * projection p of layer `layer`) += scale * s * B A; nothing when l does not target it. */
void sm_lora_merge_into(float *w, const sm_lora *l, float scale, int layer, sm_proj p);
/* Writes to path a copy of base m (every metadata key and tensor as stored) in which each
 * projection that one of the n adapters targets is replaced by the F32 matrix
 * W + sum_i scales[i] * s_i * B_i A_i. Each adapter must fit m (sm_lora_check_base, fingerprint
 * included). Returns SM_OK or an SM_E* code with *err set. */
int sm_lora_merge_gguf(const sm_model *m, const sm_lora *const *adapters, const float *scales, int n, const char *path, sm_error *err);

/* Parses a comma-separated target list into a mask: q, k, v, o, gate, up, down (or llama.cpp's
 * attn_q, ..., or PEFT's q_proj, ...), and attn, mlp, all. Returns SM_OK or SM_EINVAL. */
int sm_lora_parse_targets(const char *list, unsigned *targets);

#endif
