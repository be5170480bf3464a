/* checkpoint.c: writing and checking training checkpoints (checkpoint.h). */
#include "checkpoint.h"

#include "sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoints store host floats: little-endian only");

typedef struct {
    FILE *f;
    sm_sha256_ctx h;
    int bad;
} writer;

static void put(writer *w, const void *p, size_t n) {
    if (w->bad || n == 0) return;
    sm_sha256_update(&w->h, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->bad = 1;
}

static void put_u32(writer *w, uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 4);
}

static void put_u64(writer *w, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 8);
}

static void put_f64(writer *w, double d) {
    uint64_t v;
    memcpy(&v, &d, 8);
    put_u64(w, v);
}

/* fsync of the directory that holds path, so that the rename is durable too. */
static void sync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int sm_checkpoint_save(const char *path, const char *config, const sm_ckpt_state *st, const float *params,
                       const sm_adamw *opt, const float *best, sm_error *err) {
    size_t len = strlen(path);
    char *tmp = malloc(len + 32);
    if (!tmp) return sm_err(err, SM_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
    writer w = {.f = fopen(tmp, "wb")};
    if (!w.f) {
        int e = errno;
        free(tmp);
        return sm_err(err, SM_EIO, "%s: cannot write the checkpoint: %s", path, strerror(e));
    }
    sm_sha256_init(&w.h);
    put_u32(&w, SM_CKPT_MAGIC);
    put_u32(&w, SM_CKPT_VERSION);
    put_u64(&w, strlen(config));
    put(&w, config, strlen(config));
    put_u64(&w, st->step);
    put_u64(&w, st->cursor.epoch);
    put_u64(&w, st->cursor.pos);
    put_u64(&w, st->train_rng);
    put_u64(&w, opt->t);
    put_f64(&w, st->best_val);
    put_u64(&w, (uint64_t)st->bad_evals);
    put_u64(&w, st->tokens_seen);
    put_f64(&w, st->elapsed_s);
    put_u64(&w, st->best_step);
    put_u64(&w, opt->n);
    put(&w, params, opt->n * sizeof(float));
    put(&w, opt->m, opt->n * sizeof(float));
    put(&w, opt->v, opt->n * sizeof(float));
    put_u64(&w, best ? opt->n : 0);
    if (best) put(&w, best, opt->n * sizeof(float));
    uint8_t digest[32];
    sm_sha256_final(&w.h, digest);
    if (!w.bad && fwrite(digest, 1, 32, w.f) != 32) w.bad = 1;
    if (!w.bad && (fflush(w.f) || fsync(fileno(w.f)))) w.bad = 1;
    int e = errno;
    if (fclose(w.f)) w.bad = 1;
    if (!w.bad && rename(tmp, path)) { e = errno; w.bad = 1; }
    if (w.bad) {
        unlink(tmp);
        free(tmp);
        return sm_err(err, SM_EIO, "%s: cannot write the checkpoint: %s", path, strerror(e));
    }
    free(tmp);
    sync_dir(path);
    return SM_OK;
}

typedef struct {
    const uint8_t *p;
    size_t n, at;
} reader;

static int get(reader *r, void *out, size_t n) {
    if (r->n - r->at < n) return -1;
    memcpy(out, r->p + r->at, n);
    r->at += n;
    return 0;
}

static int get_u64(reader *r, uint64_t *v) {
    uint8_t b[8];
    if (get(r, b, 8)) return -1;
    *v = 0;
    for (int i = 0; i < 8; i++) *v |= (uint64_t)b[i] << (8 * i);
    return 0;
}

static int get_u32(reader *r, uint32_t *v) {
    uint8_t b[4];
    if (get(r, b, 4)) return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int get_f64(reader *r, double *d) {
    uint64_t v;
    if (get_u64(r, &v)) return -1;
    memcpy(d, &v, 8);
    return 0;
}

/* Names the first key whose value differs between two config JSON texts. */
static int config_mismatch(const char *path, const char *have, size_t have_len, const char *want, sm_error *err) {
    json_t *a = json_loadb(have, have_len, 0, NULL), *b = json_loads(want, 0, NULL);
    int rc = SM_EINVAL;
    if (a && b && json_is_object(a) && json_is_object(b)) {
        const char *key;
        json_t *vb;
        json_object_foreach(b, key, vb) {
            json_t *va = json_object_get(a, key);
            if (!va || !json_equal(va, vb)) {
                char *sa = va ? json_dumps(va, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
                char *sb = json_dumps(vb, JSON_ENCODE_ANY | JSON_COMPACT);
                sm_err(err, rc, "%s: the checkpoint belongs to another run: its %s is %s, this run's is %s "
                       "(start afresh without --resume, or run with the checkpoint's settings)",
                       path, key, sa ? sa : "absent", sb ? sb : "?");
                free(sa);
                free(sb);
                goto done;
            }
        }
        const char *k2;
        json_t *va;
        json_object_foreach(a, k2, va) if (!json_object_get(b, k2)) {
            sm_err(err, rc, "%s: the checkpoint belongs to another run: it has %s, this run has not", path, k2);
            goto done;
        }
    }
    sm_err(err, rc, "%s: the checkpoint belongs to another run (its configuration differs)", path);
done:
    json_decref(a);
    json_decref(b);
    return rc;
}

int sm_checkpoint_load(const char *path, const char *config, sm_ckpt_state *st, float *params, sm_adamw *opt,
                       float *best, sm_error *err) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return sm_err(err, SM_EIO, "%s: cannot open the checkpoint: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || sb.st_size < 0) {
        close(fd);
        return sm_err(err, SM_EIO, "%s: cannot read the checkpoint", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8 + 32) {
        close(fd);
        return sm_err(err, SM_EFORMAT, "%s: at byte 0: expected a snipmeta checkpoint, got %zu bytes", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return sm_err(err, SM_EIO, "%s: cannot map the checkpoint", path);
    reader r = {map, size - 32, 0};
    int rc = SM_OK;
    uint32_t magic = 0, version = 0;
    get_u32(&r, &magic);
    get_u32(&r, &version);
    if (magic != SM_CKPT_MAGIC) {
        rc = sm_err(err, SM_EFORMAT, "%s: at byte 0: expected the checkpoint magic SMCK, got 0x%08x", path, magic);
        goto done;
    }
    if (version != SM_CKPT_VERSION) {
        rc = sm_err(err, SM_EFORMAT, "%s: at byte 4: expected checkpoint version %u, got %u", path, SM_CKPT_VERSION, version);
        goto done;
    }
    uint8_t digest[32];
    sm_sha256(digest, map, size - 32);
    if (memcmp(digest, (const uint8_t *)map + size - 32, 32)) {
        rc = sm_err(err, SM_EFORMAT, "%s: the checksum does not match: the file is truncated or corrupt", path);
        goto done;
    }
    uint64_t clen = 0;
    if (get_u64(&r, &clen) || clen > r.n - r.at) {
        rc = sm_err(err, SM_EFORMAT, "%s: at byte 8: config length %llu runs past the end", path, (unsigned long long)clen);
        goto done;
    }
    const char *cfg = (const char *)r.p + r.at;
    r.at += clen;
    if (clen != strlen(config) || memcmp(cfg, config, clen)) {
        rc = config_mismatch(path, cfg, clen, config, err);
        goto done;
    }
    sm_ckpt_state s;
    uint64_t t = 0, bad = 0, n = 0;
    if (get_u64(&r, &s.step) || get_u64(&r, &s.cursor.epoch) || get_u64(&r, &s.cursor.pos) ||
        get_u64(&r, &s.train_rng) || get_u64(&r, &t) || get_f64(&r, &s.best_val) || get_u64(&r, &bad) ||
        get_u64(&r, &s.tokens_seen) || get_f64(&r, &s.elapsed_s) || get_u64(&r, &s.best_step) || get_u64(&r, &n)) {
        rc = sm_err(err, SM_EFORMAT, "%s: at byte %zu: the state runs past the end", path, r.at);
        goto done;
    }
    s.bad_evals = (int64_t)bad;
    size_t bytes = opt->n * sizeof(float);
    if (n != opt->n || (r.n - r.at) / 3 < bytes) {
        rc = sm_err(err, SM_EFORMAT, "%s: at byte %zu: expected %zu parameters with their AdamW state, got %llu (%zu bytes)",
                    path, r.at, opt->n, (unsigned long long)n, r.n - r.at);
        goto done;
    }
    size_t at = r.at;
    r.at += 3 * bytes;
    uint64_t n_best = 0;
    if (get_u64(&r, &n_best) || (n_best != 0 && n_best != n) || r.n - r.at != n_best * sizeof(float)) {
        rc = sm_err(err, SM_EFORMAT, "%s: at byte %zu: expected 0 or %zu best parameters to the end, got %llu (%zu bytes)",
                    path, at + 3 * bytes, opt->n, (unsigned long long)n_best, r.n - r.at);
        goto done;
    }
    if (best && !n_best) {
        rc = sm_err(err, SM_EFORMAT, "%s: the checkpoint keeps no best parameters, and this run needs them", path);
        goto done;
    }
    if (best) memcpy(best, r.p + r.at, bytes);
    r.at = at;
    get(&r, params, bytes);
    get(&r, opt->m, bytes);
    get(&r, opt->v, bytes);
    opt->t = t;
    *st = s;
done:
    munmap(map, size);
    return rc;
}
