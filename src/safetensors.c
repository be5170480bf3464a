/* safetensors.c: the safetensors reader and writer (safetensors.h holds the byte layout). The
 * header's JSON is parsed with jansson; every number from it is checked before use. */
#include "safetensors.h"

#include "tensor.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20) /* as the reference implementation: a header of at most 100 MB */

struct sm_safetensors {
    char *path;
    unsigned char *buf;         /* the whole file */
    size_t size;
    sm_st_tensor *tensors;
    int n_tensors;
    json_t *header;             /* owns the names */
    json_t *metadata;           /* borrowed from header, or NULL */
};

static const struct {
    const char *name;
    int type;
    size_t size;
} dtypes[] = {
    {"F32", SM_TYPE_F32, 4}, {"F16", SM_TYPE_F16, 2}, {"BF16", SM_TYPE_BF16, 2}, {"F64", -1, 8},
    {"I64", -1, 8}, {"I32", -1, 4}, {"I16", -1, 2}, {"I8", -1, 1}, {"U8", -1, 1}, {"BOOL", -1, 1},
    {"U16", -1, 2}, {"U32", -1, 4}, {"U64", -1, 8}, {"F8_E4M3", -1, 1}, {"F8_E5M2", -1, 1},
};

static int cmp_begin(const void *a, const void *b) {
    const sm_st_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

void sm_safetensors_close(sm_safetensors *st) {
    if (!st) return;
    json_decref(st->header);
    free(st->tensors);
    free(st->buf);
    free(st->path);
    free(st);
}

/* Takes ownership of buf. */
static sm_safetensors *parse(unsigned char *buf, size_t size, const char *path, sm_error *err) {
    sm_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st), free(buf);
        sm_err(err, SM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    st->buf = buf, st->size = size;
    if (size < 8) { sm_err(err, SM_EFORMAT, "%s: %zu bytes, too short for the 8-byte header length", path, size); goto fail; }
    uint64_t n_header = 0;
    for (int i = 0; i < 8; i++) n_header |= (uint64_t)buf[i] << (8 * i);
    if (n_header > MAX_HEADER || n_header > size - 8) {
        sm_err(err, SM_EFORMAT, "%s: offset 0: header length %llu exceeds the file (%zu bytes) or 100 MB", path,
               (unsigned long long)n_header, size);
        goto fail;
    }
    json_error_t jerr;
    st->header = json_loadb((const char *)buf + 8, (size_t)n_header, JSON_REJECT_DUPLICATES, &jerr);
    if (!st->header || !json_is_object(st->header)) {
        sm_err(err, SM_EFORMAT, "%s: offset %d: the header is not a JSON object (trailing padding may only be spaces): %s", path, 8 + (st->header ? 0 : jerr.position),
               st->header ? "another JSON value" : jerr.text);
        goto fail;
    }
    const unsigned char *data = buf + 8 + n_header;
    size_t data_size = size - 8 - (size_t)n_header;
    size_t n_keys = json_object_size(st->header);
    st->tensors = calloc(n_keys ? n_keys : 1, sizeof *st->tensors);
    if (!st->tensors) { sm_err(err, SM_ENOMEM, "%s: out of memory", path); goto fail; }
    const char *key;
    json_t *v;
    json_object_foreach(st->header, key, v) {
        if (!strcmp(key, "__metadata__")) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) { sm_err(err, SM_EFORMAT, "%s: __metadata__ is not an object", path); goto fail; }
            json_object_foreach(v, mk, mv) if (!json_is_string(mv)) {
                sm_err(err, SM_EFORMAT, "%s: __metadata__.%s is not a string", path, mk);
                goto fail;
            }
            st->metadata = v;
            continue;
        }
        sm_st_tensor *t = &st->tensors[st->n_tensors];
        t->name = key;
        json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
        if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' needs dtype (string), shape (array) and data_offsets ([begin, end])", path, key);
            goto fail;
        }
        size_t elem = 0;
        for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
            if (!strcmp(json_string_value(dt), dtypes[i].name)) {
                elem = dtypes[i].size, t->type = dtypes[i].type;
                snprintf(t->dtype, sizeof t->dtype, "%s", dtypes[i].name);
            }
        if (!elem) { sm_err(err, SM_EFORMAT, "%s: tensor '%s' has an unknown dtype '%s'", path, key, json_string_value(dt)); goto fail; }
        if (json_array_size(shape) > SM_ST_MAX_DIMS) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' has %zu dimensions, more than %d", path, key, json_array_size(shape), SM_ST_MAX_DIMS);
            goto fail;
        }
        t->n_dims = (int)json_array_size(shape);
        size_t count = 1;
        for (int d = 0; d < t->n_dims; d++) {
            json_t *x = json_array_get(shape, (size_t)d);
            json_int_t dim = json_is_integer(x) ? json_integer_value(x) : -1;
            if (dim < 0 || (dim && count > SIZE_MAX / (size_t)dim)) {
                sm_err(err, SM_EFORMAT, "%s: tensor '%s' has a bad shape (dimension %d)", path, key, d);
                goto fail;
            }
            t->shape[d] = dim;
            count *= (size_t)dim;
        }
        json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
        json_int_t begin = json_is_integer(b) ? json_integer_value(b) : -1, end = json_is_integer(e) ? json_integer_value(e) : -1;
        if (begin < 0 || end < begin || (uint64_t)end > data_size) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' has data_offsets [%lld, %lld] outside the %zu bytes of data", path, key,
                   (long long)begin, (long long)end, data_size);
            goto fail;
        }
        if (count > SIZE_MAX / elem || (size_t)(end - begin) != count * elem) {
            sm_err(err, SM_EFORMAT, "%s: tensor '%s' holds %lld bytes, but its shape and dtype need %zu", path, key,
                   (long long)(end - begin), count > SIZE_MAX / elem ? SIZE_MAX : count * elem);
            goto fail;
        }
        t->data = data + begin;
        t->nbytes = (size_t)(end - begin);
        st->n_tensors++;
    }
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_begin);
    for (int i = 1; i < st->n_tensors; i++)
        if ((const unsigned char *)st->tensors[i - 1].data + st->tensors[i - 1].nbytes > (const unsigned char *)st->tensors[i].data) {
            sm_err(err, SM_EFORMAT, "%s: tensors '%s' and '%s' overlap", path, st->tensors[i - 1].name, st->tensors[i].name);
            goto fail;
        }
    return st;
fail:
    sm_safetensors_close(st);
    return NULL;
}

sm_safetensors *sm_safetensors_open_memory(const void *buf, size_t size, const char *name, sm_error *err) {
    unsigned char *copy = malloc(size ? size : 1);
    if (!copy) { sm_err(err, SM_ENOMEM, "out of memory"); return NULL; }
    if (size) memcpy(copy, buf, size);
    return parse(copy, size, name ? name : "<memory>", err);
}

sm_safetensors *sm_safetensors_open(const char *path, sm_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { sm_err(err, SM_EIO, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        sm_err(err, SM_EIO, "%s: cannot read: not a regular file", path);
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) { fclose(f); sm_err(err, SM_ENOMEM, "%s: out of memory for %zu bytes", path, size); return NULL; }
    if (fread(buf, 1, size, f) != size) {
        fclose(f), free(buf);
        sm_err(err, SM_EIO, "%s: cannot read %zu bytes", path, size);
        return NULL;
    }
    fclose(f);
    return parse(buf, size, path, err);
}

int sm_safetensors_n_tensors(const sm_safetensors *st) { return st->n_tensors; }
const sm_st_tensor *sm_safetensors_tensor_at(const sm_safetensors *st, int i) {
    return i >= 0 && i < st->n_tensors ? &st->tensors[i] : NULL;
}
const sm_st_tensor *sm_safetensors_find(const sm_safetensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}
const char *sm_safetensors_metadata(const sm_safetensors *st, const char *key) {
    return st->metadata ? json_string_value(json_object_get(st->metadata, key)) : NULL;
}

int sm_safetensors_write(const char *path, const sm_st_tensor *tensors, int n, const char *const *meta, int n_meta, sm_error *err) {
    json_t *h = json_object();
    size_t offset = 0;
    int bad = !h;
    if (n_meta > 0 && !bad) {
        json_t *m = json_object();
        for (int i = 0; m && i < n_meta; i++) json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1]));
        bad = !m || json_object_set_new(h, "__metadata__", m);
    }
    for (int i = 0; i < n && !bad; i++) {
        const sm_st_tensor *t = &tensors[i];
        const char *dt = t->type == SM_TYPE_F32 ? "F32" : t->type == SM_TYPE_F16 ? "F16" : t->type == SM_TYPE_BF16 ? "BF16" : NULL;
        if (!dt) { json_decref(h); return sm_err(err, SM_EINVAL, "%s: tensor '%s' is not F32, F16 or BF16", path, t->name); }
        size_t bytes = t->type == SM_TYPE_F32 ? 4 : 2;
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->n_dims; d++) {
            json_array_append_new(shape, json_integer(t->shape[d]));
            bytes *= (size_t)t->shape[d];
        }
        json_t *entry = json_pack("{s:s, s:o, s:[I, I]}", "dtype", dt, "shape", shape, "data_offsets", (json_int_t)offset,
                                  (json_int_t)(offset + bytes));
        bad = !shape || !entry || json_object_set_new(h, t->name, entry);
        offset += bytes;
    }
    char *json = bad ? NULL : json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (!json) return sm_err(err, SM_ENOMEM, "%s: out of memory", path);
    size_t n_json = strlen(json), n_header = (n_json + 7) / 8 * 8;

    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) { free(json); return sm_err(err, SM_ENOMEM, "%s: out of memory", path); }
    memcpy(tmp, path, len);
    memcpy(tmp + len, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int failed = !f;
    if (fd >= 0 && !f) close(fd);
    if (f) {
        fchmod(fd, 0644);
        unsigned char le[8];
        for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)n_header >> (8 * i));
        failed |= fwrite(le, 1, 8, f) != 8 || fwrite(json, 1, n_json, f) != n_json;
        for (size_t i = n_json; i < n_header; i++) failed |= fputc(' ', f) == EOF;
        for (int i = 0; i < n && !failed; i++) {
            size_t bytes = tensors[i].type == SM_TYPE_F32 ? 4 : 2;
            for (int d = 0; d < tensors[i].n_dims; d++) bytes *= (size_t)tensors[i].shape[d];
            failed |= bytes && fwrite(tensors[i].data, 1, bytes, f) != bytes;
        }
        failed |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        failed |= fclose(f) != 0;
    }
    int e = errno;
    free(json);
    if (!failed && rename(tmp, path) != 0) failed = 1, e = errno;
    if (failed) {
        if (fd >= 0) unlink(tmp);
        free(tmp);
        return sm_err(err, SM_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return SM_OK;
}
