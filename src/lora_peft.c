/* lora_peft.c: LoRA adapters as Hugging Face PEFT directories (see lora.h for the contracts):
 *
 *   adapter_config.json        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": R,
 *                               "lora_alpha": ALPHA, "use_rslora": false, "target_modules": [...],
 *                               "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": false,
 *                               "base_model_name_or_path": "...", ...}
 *   adapter_model.safetensors  F32 tensors
 *       base_model.model.model.layers.N.self_attn.{q,k,v,o}_proj.lora_A.weight   (r, in)
 *       base_model.model.model.layers.N.mlp.{gate,up,down}_proj.lora_B.weight    (out, r)
 *     and our keys (snipmeta.task, snipmeta.base_fingerprint, ...) in its __metadata__, where
 *     PEFT, which rejects unknown config keys in some versions, does not look.
 *
 * The rope permutation: Hugging Face's Llama checkpoints order the rows of q_proj and k_proj so
 * that RoPE rotates the pairs (i, i + head_dim/2) of each head; llama.cpp's converter
 * (convert_hf_to_gguf.py, LlamaModel.permute, applied to LoRA B by convert_lora_to_gguf.py as well)
 * reorders them so that it rotates (2i, 2i+1). Our adapters are in llama.cpp's order, so for the
 * architectures llama.cpp permutes (llama, mistral) the rows of B for q and k move between
 *     HF row  h*hd + j*hd/2 + i   and   GGUF row  h*hd + 2*i + j     (i < hd/2, j in {0, 1}).
 * A is untouched (its columns are the input features).
 */
#include "lora.h"

#include "safetensors.h"
#include "tensor.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const peft_module[SM_PROJ_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
};

/* 1 when llama.cpp's converter permutes q/k rows for this architecture. */
static int arch_permutes(const char *arch) { return !strcmp(arch, "llama") || !strcmp(arch, "mistral"); }

/* Moves the rows (each of `cols` floats) of b (out rows, n_head heads) between the HF and GGUF
 * orders: to_gguf 1 maps HF to GGUF, 0 back. tmp holds out * cols floats. */
static void permute_rows(float *b, float *tmp, int out, int cols, int n_head, int to_gguf) {
    int hd = out / n_head, half = hd / 2;
    for (int h = 0; h < n_head; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) {
                size_t hf = (size_t)h * hd + (size_t)j * half + i, gg = (size_t)h * hd + 2 * (size_t)i + j;
                size_t dst = to_gguf ? gg : hf, src = to_gguf ? hf : gg;
                memcpy(tmp + dst * cols, b + src * cols, (size_t)cols * sizeof(float));
            }
    memcpy(b, tmp, (size_t)out * cols * sizeof(float));
}

/* Checks that the q/k row permutation is possible for adapter l; returns heads for p (0: none). */
static int permute_heads(const sm_lora *l, sm_proj p, const char *what, sm_error *err, int *heads) {
    *heads = 0;
    if ((p != SM_PROJ_Q && p != SM_PROJ_K) || !arch_permutes(l->arch)) return SM_OK;
    int n = p == SM_PROJ_Q ? l->n_head : l->n_head_kv;
    int out = sm_lora_at(l, 0, p)->out;
    if (n < 1 || out % n || (out / n) % 2)
        return sm_err(err, SM_EINVAL, "%s: the %s rows of %s cannot be permuted for RoPE: the base's head count is %s", what,
                      p == SM_PROJ_Q ? "q" : "k", l->arch, n < 1 ? "unknown" : "inconsistent with the shape");
    *heads = n;
    return SM_OK;
}

static int write_text_atomic(const char *path, const char *text, sm_error *err) {
    size_t len = strlen(path), n = strlen(text);
    char *tmp = malloc(len + 16);
    if (!tmp) return sm_err(err, SM_ENOMEM, "%s: out of memory", path);
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    int failed = !f;
    if (fd >= 0 && !f) close(fd);
    if (f) {
        fchmod(fd, 0644);
        failed |= fwrite(text, 1, n, f) != n;
        failed |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        failed |= fclose(f) != 0;
    }
    int e = errno;
    if (!failed && rename(tmp, path) != 0) failed = 1, e = errno;
    if (failed && fd >= 0) unlink(tmp);
    free(tmp);
    return failed ? sm_err(err, SM_EIO, "%s: cannot write: %s", path, strerror(e)) : SM_OK;
}

int sm_lora_save_peft(const sm_lora *l, const char *base_name, const char *dir, sm_error *err) {
    if (l->params16) return sm_err(err, SM_EINVAL, "%s: the adapter is held as f16 (for serving); write PEFT from its f32 file", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return sm_err(err, SM_EIO, "%s: cannot create the directory: %s", dir, strerror(errno));
    int n_pairs = 0, max_out = 0;
    for (int p = 0; p < SM_PROJ_COUNT; p++) {
        if (!(l->targets & (1u << p))) continue;
        int heads, rc = permute_heads(l, (sm_proj)p, dir, err, &heads);
        if (rc) return rc;
        n_pairs += l->n_layer;
        if (sm_lora_at(l, 0, (sm_proj)p)->out > max_out) max_out = sm_lora_at(l, 0, (sm_proj)p)->out;
    }
    sm_st_tensor *t = calloc((size_t)n_pairs * 2, sizeof *t);
    char (*names)[128] = calloc((size_t)n_pairs * 2, sizeof *names);
    float *permuted = malloc(2 * (size_t)l->n_layer * max_out * l->rank * sizeof(float)); /* q and k B of every layer */
    float *tmp = malloc((size_t)max_out * l->rank * sizeof(float));
    int rc = SM_OK, k = 0;
    if (!t || !names || !permuted || !tmp) { rc = sm_err(err, SM_ENOMEM, "%s: out of memory", dir); goto done; }
    float *next_permuted = permuted;
    for (int layer = 0; layer < l->n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++) {
            const sm_lora_pair *pair = sm_lora_at(l, layer, (sm_proj)p);
            if (!pair->a) continue;
            int heads;
            permute_heads(l, (sm_proj)p, dir, err, &heads);
            const float *b = pair->b;
            if (heads) {
                memcpy(next_permuted, pair->b, (size_t)pair->out * l->rank * sizeof(float));
                permute_rows(next_permuted, tmp, pair->out, l->rank, heads, 0);
                b = next_permuted, next_permuted += (size_t)pair->out * l->rank;
            }
            for (int ab = 0; ab < 2; ab++, k++) {
                snprintf(names[k], sizeof names[k], "base_model.model.model.layers.%d.%s.lora_%c.weight", layer, peft_module[p], "AB"[ab]);
                t[k] = (sm_st_tensor){.name = names[k], .type = SM_TYPE_F32, .n_dims = 2, .data = ab ? (const void *)b : pair->a};
                t[k].shape[0] = ab ? pair->out : l->rank;
                t[k].shape[1] = ab ? l->rank : pair->in;
            }
        }
    char rank[16], prompt_format[16], heads[2][16];
    snprintf(rank, sizeof rank, "%d", l->rank);
    snprintf(prompt_format, sizeof prompt_format, "%d", l->prompt_format);
    snprintf(heads[0], sizeof heads[0], "%d", l->n_head);
    snprintf(heads[1], sizeof heads[1], "%d", l->n_head_kv);
    const char *meta[] = {
        "format", "pt",
        "snipmeta.task", l->task,
        "snipmeta.base_fingerprint", l->base_fingerprint,
        "snipmeta.prompt_format", prompt_format,
        "snipmeta.activated", l->activated ? "true" : "false",
        "snipmeta.architecture", l->arch,
        "snipmeta.base.head_count", heads[0],
        "snipmeta.base.head_count_kv", heads[1],
    };
    size_t n_dir = strlen(dir);
    char *path = malloc(n_dir + 32);
    if (!path) { rc = sm_err(err, SM_ENOMEM, "%s: out of memory", dir); goto done; }
    snprintf(path, n_dir + 32, "%s/adapter_model.safetensors", dir);
    rc = sm_safetensors_write(path, t, k, meta, (int)(sizeof meta / sizeof meta[0] / 2), err);

    if (!rc) {
        json_t *modules = json_array();
        for (int p = 0; modules && p < SM_PROJ_COUNT; p++)
            if (l->targets & (1u << p)) json_array_append_new(modules, json_string(strchr(peft_module[p], '.') + 1));
        /* an integral alpha as an integer, as PEFT writes it; any other with all its digits */
        json_t *alpha = l->alpha == floorf(l->alpha) && fabsf(l->alpha) < 1e9f ? json_integer((json_int_t)l->alpha) : json_real(l->alpha);
        json_t *cfg = json_pack("{s:s, s:s, s:s, s:i, s:o, s:b, s:o, s:f, s:s, s:b, s:b, s:b, s:b, s:n, s:n}",
                                "peft_type", "LORA", "task_type", "CAUSAL_LM", "base_model_name_or_path", base_name ? base_name : "",
                                "r", l->rank, "lora_alpha", alpha, "use_rslora", l->rslora, "target_modules", modules,
                                "lora_dropout", 0.0, "bias", "none", "fan_in_fan_out", 0, "inference_mode", 1,
                                "init_lora_weights", 1, "use_dora", 0, "modules_to_save", "layers_to_transform");
        char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
        json_decref(cfg);
        snprintf(path, n_dir + 32, "%s/adapter_config.json", dir);
        if (text) { char *nl = realloc(text, strlen(text) + 2); if (nl) text = nl, strcat(text, "\n"); }
        rc = text ? write_text_atomic(path, text, err) : sm_err(err, SM_ENOMEM, "%s: out of memory", dir);
        free(text);
    }
    free(path);
done:
    free(tmp);
    free(permuted);
    free(names);
    free(t);
    return rc;
}

/* Parses a PEFT tensor name into (layer, projection, is_b); returns 0 or -1. Accepts the
 * adapter-name form (lora_A.default.weight) too. */
static int parse_peft_name(const char *name, int *layer, sm_proj *proj, int *is_b) {
    const char *prefix = "base_model.model.model.layers.";
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n)) return -1;
    char *end;
    long v = strtol(name + n, &end, 10);
    if (end == name + n || *end != '.' || v < 0 || v > 65535) return -1;
    const char *s = end + 1;
    for (int p = 0; p < SM_PROJ_COUNT; p++) {
        size_t len = strlen(peft_module[p]);
        if (strncmp(s, peft_module[p], len)) continue;
        const char *rest = s + len;
        if (!strcmp(rest, ".lora_A.weight") || !strcmp(rest, ".lora_A.default.weight")) *is_b = 0;
        else if (!strcmp(rest, ".lora_B.weight") || !strcmp(rest, ".lora_B.default.weight")) *is_b = 1;
        else return -1;
        *layer = (int)v, *proj = (sm_proj)p;
        return 0;
    }
    return -1;
}

/* Reads adapter_config.json: rank, alpha, rslora, target mask (checked against the tensors later). */
static int read_config(const char *path, int *rank, float *alpha, int *rslora, unsigned *targets, sm_error *err) {
    json_error_t jerr;
    json_t *cfg = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!cfg) return sm_err(err, jerr.line < 0 ? SM_EIO : SM_EFORMAT, "%s:%d: %s", path, jerr.line, jerr.text);
    int rc = SM_OK;
    json_t *type = json_object_get(cfg, "peft_type"), *r = json_object_get(cfg, "r"), *a = json_object_get(cfg, "lora_alpha");
    json_t *rs = json_object_get(cfg, "use_rslora"), *mods = json_object_get(cfg, "target_modules");
    json_t *fifo = json_object_get(cfg, "fan_in_fan_out"), *bias = json_object_get(cfg, "bias"), *dora = json_object_get(cfg, "use_dora");
    if (!json_is_object(cfg)) rc = sm_err(err, SM_EFORMAT, "%s: not a JSON object", path);
    else if (!json_is_string(type) || strcmp(json_string_value(type), "LORA"))
        rc = sm_err(err, SM_EUNSUPPORTED, "%s: peft_type is not \"LORA\"", path);
    else if (!json_is_integer(r) || json_integer_value(r) < 1 || json_integer_value(r) > 65536)
        rc = sm_err(err, SM_EFORMAT, "%s: r is not an integer in 1..65536", path);
    else if (!json_is_number(a) || !isfinite(json_number_value(a)))
        rc = sm_err(err, SM_EFORMAT, "%s: lora_alpha is not a number", path);
    else if (rs && !json_is_boolean(rs) && !json_is_null(rs))
        rc = sm_err(err, SM_EFORMAT, "%s: use_rslora is not a boolean", path);
    else if (json_is_true(fifo))
        rc = sm_err(err, SM_EUNSUPPORTED, "%s: fan_in_fan_out is true (a Conv1D model, not a Llama one)", path);
    else if (json_is_true(dora))
        rc = sm_err(err, SM_EUNSUPPORTED, "%s: use_dora is true (DoRA adapters are not supported)", path);
    else if (bias && json_is_string(bias) && strcmp(json_string_value(bias), "none"))
        rc = sm_err(err, SM_EUNSUPPORTED, "%s: bias is \"%s\" (only \"none\" is supported)", path, json_string_value(bias));
    if (!rc) {
        *rank = (int)json_integer_value(r);
        *alpha = (float)json_number_value(a);
        *rslora = json_is_true(rs);
        *targets = 0;
        size_t i;
        json_t *m;
        if (json_is_array(mods))
            json_array_foreach(mods, i, m) {
                for (int p = 0; p < SM_PROJ_COUNT; p++)
                    if (json_is_string(m) && !strcmp(json_string_value(m), strchr(peft_module[p], '.') + 1)) *targets |= 1u << p;
            }
    }
    json_decref(cfg);
    return rc;
}

sm_lora *sm_lora_load_peft(const char *dir, const sm_model_config *cfg, sm_error *err) {
    size_t n_dir = strlen(dir);
    char *path = malloc(n_dir + 32);
    if (!path) { sm_err(err, SM_ENOMEM, "out of memory"); return NULL; }
    int cfg_rank = 0, rslora = 0;
    float alpha = 0;
    unsigned cfg_targets = 0;
    snprintf(path, n_dir + 32, "%s/adapter_config.json", dir);
    if (read_config(path, &cfg_rank, &alpha, &rslora, &cfg_targets, err)) { free(path); return NULL; }
    snprintf(path, n_dir + 32, "%s/adapter_model.safetensors", dir);
    sm_safetensors *st = sm_safetensors_open(path, err);
    sm_lora *l = NULL;
    unsigned char *seen = NULL;
    float *tmp = NULL;
    if (!st) goto fail;

    /* shapes first */
    int n_layer = 0, dims[SM_PROJ_COUNT][2] = {{0}}, max_out = 0;
    unsigned targets = 0;
    for (int i = 0; i < sm_safetensors_n_tensors(st); i++) {
        const sm_st_tensor *t = sm_safetensors_tensor_at(st, i);
        int layer, is_b;
        sm_proj p;
        if (parse_peft_name(t->name, &layer, &p, &is_b)) {
            sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' is not a LoRA matrix of a Llama attention or MLP projection", path, t->name);
            goto fail;
        }
        if (t->type < 0 || t->n_dims != 2) {
            sm_err(err, SM_EUNSUPPORTED, "%s: tensor '%s' is %s of %d dimensions, expected F32, F16 or BF16 of 2", path, t->name, t->dtype, t->n_dims);
            goto fail;
        }
        int64_t r = is_b ? t->shape[1] : t->shape[0], other = is_b ? t->shape[0] : t->shape[1];
        if (r != cfg_rank || other < 1 || other > INT32_MAX) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' is %lld x %lld, expected rank %d (r in adapter_config.json)", path, t->name,
                   (long long)t->shape[0], (long long)t->shape[1], cfg_rank);
            goto fail;
        }
        int *d = &dims[p][is_b ? 1 : 0];
        if (*d && *d != (int)other) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' has %lld %s, other layers %d", path, t->name, (long long)other, is_b ? "rows" : "columns", *d);
            goto fail;
        }
        *d = (int)other;
        if (is_b && *d > max_out) max_out = *d;
        targets |= 1u << p;
        if (layer + 1 > n_layer) n_layer = layer + 1;
    }
    if (!targets) { sm_err(err, SM_EFORMAT, "%s: no LoRA tensors", path); goto fail; }
    if (cfg_targets && (cfg_targets & targets) != targets) {
        sm_err(err, SM_EFORMAT, "%s: holds tensors of modules that target_modules in adapter_config.json does not list", path);
        goto fail;
    }
    l = sm_lora_alloc(n_layer, cfg_rank, targets, (const int (*)[2])dims, err);
    if (!l) goto fail;
    l->alpha = alpha;
    l->rslora = rslora;
    const char *v, *meta_arch = sm_safetensors_metadata(st, "snipmeta.architecture");
    if (cfg) {
        if (meta_arch && *meta_arch && strcmp(meta_arch, cfg->arch)) {
            sm_err(err, SM_EINVAL, "%s: the adapter is for architecture '%s', the base is '%s'", path, meta_arch, cfg->arch);
            goto fail;
        }
        snprintf(l->arch, sizeof l->arch, "%s", cfg->arch);
        l->n_head = cfg->n_head;
        l->n_head_kv = cfg->n_head_kv;
    } else {
        /* no base: the description our own PEFT files carry, or nothing to go on */
        const char *h = sm_safetensors_metadata(st, "snipmeta.base.head_count"), *hkv = sm_safetensors_metadata(st, "snipmeta.base.head_count_kv");
        if (!meta_arch || !*meta_arch || !h || !hkv) {
            sm_err(err, SM_EINVAL, "%s: the adapter does not name its base's architecture and head counts: give the base model", path);
            goto fail;
        }
        snprintf(l->arch, sizeof l->arch, "%s", meta_arch);
        l->n_head = atoi(h);
        l->n_head_kv = atoi(hkv);
    }
    if ((v = sm_safetensors_metadata(st, "snipmeta.task"))) snprintf(l->task, sizeof l->task, "%s", v);
    if ((v = sm_safetensors_metadata(st, "snipmeta.base_fingerprint"))) snprintf(l->base_fingerprint, sizeof l->base_fingerprint, "%s", v);
    if ((v = sm_safetensors_metadata(st, "snipmeta.prompt_format"))) l->prompt_format = atoi(v);
    if ((v = sm_safetensors_metadata(st, "snipmeta.activated"))) l->activated = !strcmp(v, "true");

    seen = calloc((size_t)n_layer * SM_PROJ_COUNT, 1);
    tmp = malloc((size_t)max_out * cfg_rank * sizeof(float) + 1);
    if (!seen || !tmp) { sm_err(err, SM_ENOMEM, "%s: out of memory", path); goto fail; }
    for (int i = 0; i < sm_safetensors_n_tensors(st); i++) {
        const sm_st_tensor *t = sm_safetensors_tensor_at(st, i);
        int layer, is_b;
        sm_proj p;
        parse_peft_name(t->name, &layer, &p, &is_b);
        unsigned char bit = (unsigned char)(is_b ? 2 : 1), *s = &seen[(size_t)layer * SM_PROJ_COUNT + p];
        if (*s & bit) { sm_err(err, SM_EFORMAT, "%s: tensor '%s' appears twice", path, t->name); goto fail; }
        *s |= bit;
        sm_lora_pair *pair = sm_lora_at(l, layer, p);
        float *dst = is_b ? pair->b : pair->a;
        size_t n = (size_t)t->shape[0] * (size_t)t->shape[1];
        sm_dequantize_row(t->type, dst, t->data, (int64_t)n); /* F32, F16, BF16; the file's bytes may be unaligned */
        for (size_t k = 0; k < n; k++)
            if (!isfinite(dst[k])) {
                sm_err(err, SM_EFORMAT, "%s: tensor '%s' holds a non-finite value at element %zu", path, t->name, k);
                goto fail;
            }
        int heads;
        if (is_b && permute_heads(l, p, path, err, &heads)) goto fail;
        if (is_b && heads) permute_rows(dst, tmp, pair->out, l->rank, heads, 1);
    }
    for (int layer = 0; layer < n_layer; layer++)
        for (int p = 0; p < SM_PROJ_COUNT; p++)
            if (seen[(size_t)layer * SM_PROJ_COUNT + p] == 1 || seen[(size_t)layer * SM_PROJ_COUNT + p] == 2) {
                /* a layer without the pair (layers_to_transform) keeps zeros: no change there */
                sm_err(err, SM_EFORMAT, "%s: layer %d's %s has only one of lora_A and lora_B", path, layer, peft_module[p]);
                goto fail;
            }
    free(tmp);
    free(seen);
    sm_safetensors_close(st);
    free(path);
    return l;
fail:
    free(tmp);
    free(seen);
    sm_lora_free(l);
    sm_safetensors_close(st);
    free(path);
    return NULL;
}
