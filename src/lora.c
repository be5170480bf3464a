/* lora.c: LoRA adapters in memory (see lora.h): the one-slab layout, PEFT's initialisation, the
 * scale, and merging into a copy of the base weights. Files live in lora_gguf.c and lora_peft.c;
 * the unmerged product is applied by the inference context (kvcache.c). */
#include "lora.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* in (columns) and out (rows) of projection p for config cfg. */
static void proj_dims(const sm_model_config *cfg, sm_proj p, int *in, int *out) {
    int q_dim = cfg->n_head * cfg->head_dim, kv_dim = cfg->n_head_kv * cfg->head_dim;
    switch (p) {
    case SM_PROJ_Q: *in = cfg->n_embd, *out = q_dim; break;
    case SM_PROJ_K:
    case SM_PROJ_V: *in = cfg->n_embd, *out = kv_dim; break;
    case SM_PROJ_O: *in = q_dim, *out = cfg->n_embd; break;
    case SM_PROJ_GATE:
    case SM_PROJ_UP: *in = cfg->n_embd, *out = cfg->n_ff; break;
    default: *in = cfg->n_ff, *out = cfg->n_embd; break;
    }
}

sm_lora *sm_lora_new(const sm_model_config *cfg, int rank, float alpha, int rslora, unsigned targets, sm_error *err) {
    if (!cfg || cfg->n_layer < 1 || cfg->n_embd < 1 || cfg->n_head < 1 || cfg->n_head_kv < 1 || cfg->head_dim < 1 ||
        cfg->n_ff < 1) {
        sm_err(err, SM_EINVAL, "sm_lora_new: the model config has a non-positive size");
        return NULL;
    }
    if (rank < 1 || rank > 65536) { sm_err(err, SM_EINVAL, "LoRA rank %d is outside 1..65536", rank); return NULL; }
    if (!targets || targets >> SM_PROJ_COUNT) {
        sm_err(err, SM_EINVAL, "LoRA target mask 0x%x names no projection or an unknown one", targets);
        return NULL;
    }
    if (!isfinite(alpha)) { sm_err(err, SM_EINVAL, "LoRA alpha is not a finite number"); return NULL; }

    size_t n_pairs = (size_t)cfg->n_layer * SM_PROJ_COUNT, n_params = 0;
    for (int p = 0; p < SM_PROJ_COUNT; p++) {
        if (!(targets & (1u << p))) continue;
        int in, out;
        proj_dims(cfg, (sm_proj)p, &in, &out);
        size_t per_layer = (size_t)rank * ((size_t)in + (size_t)out); /* no overflow: each < 2^31 */
        if (per_layer > (SIZE_MAX / sizeof(float) - n_params) / (size_t)cfg->n_layer) {
            sm_err(err, SM_ENOMEM, "a LoRA adapter of rank %d is too large for this model", rank);
            return NULL;
        }
        n_params += per_layer * (size_t)cfg->n_layer;
    }
    sm_lora *l = calloc(1, sizeof *l + n_pairs * sizeof *l->pairs);
    size_t bytes = (n_params * sizeof(float) + 63) / 64 * 64;
    float *params = l ? aligned_alloc(64, bytes ? bytes : 64) : NULL;
    if (!params) {
        free(l);
        sm_err(err, SM_ENOMEM, "out of memory for a LoRA adapter of %zu parameters", n_params);
        return NULL;
    }
    memset(params, 0, bytes);
    l->pairs = (sm_lora_pair *)(l + 1);
    l->params = params;
    l->n_params = n_params;
    l->n_layer = cfg->n_layer;
    l->rank = rank;
    l->alpha = alpha;
    l->rslora = rslora ? 1 : 0;
    l->targets = targets;

    float *next = params;
    for (int layer = 0; layer < cfg->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            proj_dims(cfg, (sm_proj)p, &pair->in, &pair->out);
            if (!(targets & (1u << p))) continue;
            pair->a = next, next += (size_t)rank * pair->in;
            pair->b = next, next += (size_t)pair->out * rank;
        }
    return l;
}

void sm_lora_free(sm_lora *l) {
    if (!l) return;
    free(l->params);
    free(l); /* the pairs share the struct's allocation */
}

/* splitmix64's output function: a bijective mix of a 64-bit word. */
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sm_lora_init(sm_lora *l, uint64_t seed) {
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            if (!pair->a) continue;
            /* kaiming_uniform_(a = sqrt(5)): gain sqrt(2 / (1 + 5)), bound gain * sqrt(3 / fan_in) */
            float bound = 1.0f / sqrtf((float)pair->in);
            uint64_t key = mix64(seed ^ mix64(((uint64_t)layer << 8 | (uint64_t)p) + 0x9e3779b97f4a7c15ull));
            size_t n = (size_t)l->rank * pair->in;
            for (size_t i = 0; i < n; i++) {
                /* a counter-based draw: element i depends only on (seed, layer, p, i) */
                float u = (float)(mix64(key + i * 0x9e3779b97f4a7c15ull) >> 40) * (1.0f / 16777216.0f);
                pair->a[i] = (2.0f * u - 1.0f) * bound;
            }
            memset(pair->b, 0, (size_t)pair->out * l->rank * sizeof(float));
        }
}

float sm_lora_scale(const sm_lora *l) {
    return l->rslora ? l->alpha / sqrtf((float)l->rank) : l->alpha / (float)l->rank;
}
