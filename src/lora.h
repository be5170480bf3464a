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
 * adapter_config.json).
 */
#ifndef SM_LORA_H
#define SM_LORA_H

#include "model.h"

#include <stdint.h>

typedef struct {
    float *a;   /* (rank, in), NULL when this projection is not targeted */
    float *b;   /* (out, rank) */
    int in, out;
} sm_lora_pair;

typedef struct sm_lora {
    int n_layer;
    int rank;
    float alpha;
    int rslora;                 /* 1: scale alpha / sqrt(rank) */
    unsigned targets;           /* bit (1u << sm_proj) set for each targeted projection */
    sm_lora_pair *pairs;        /* [n_layer * SM_PROJ_COUNT] */
    float *params;              /* the slab holding every A and B */
    size_t n_params;
    char task[64];              /* snipmeta.task ("title", ...; "" when none) */
    char base_fingerprint[65];  /* hex digest of the base weights it was trained on */
    int prompt_format;          /* version of prompts/student.txt it was trained with */
    int activated;              /* 1: switched on only from the task's invocation sequence onward */
} sm_lora;

#define SM_LORA_TARGETS_ATTN ((1u << SM_PROJ_Q) | (1u << SM_PROJ_K) | (1u << SM_PROJ_V) | (1u << SM_PROJ_O))
#define SM_LORA_TARGETS_MLP ((1u << SM_PROJ_GATE) | (1u << SM_PROJ_UP) | (1u << SM_PROJ_DOWN))

/* The adapter's matrices for projection p of layer l (a and b NULL when p is not targeted). */
static inline sm_lora_pair *sm_lora_at(const sm_lora *l, int layer, sm_proj p) {
    return &l->pairs[(size_t)layer * SM_PROJ_COUNT + p];
}

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

/* The scale s of y = W x + s * B (A x): alpha / rank, or alpha / sqrt(rank) with rsLoRA. */
float sm_lora_scale(const sm_lora *l);

#endif
