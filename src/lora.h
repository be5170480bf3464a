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

#endif
