/* shard.c: shards of a corpus by id hash (shard.h). */
#include "shard.h"

#include "sha256.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int sm_shard_parse(const char *text, sm_shard *out, sm_error *err) {
    const char *slash = strchr(text, '/');
    char *end;
    long k = 0, n = 0;
    int ok = slash && slash != text;
    if (ok) {
        errno = 0;
        k = strtol(text, &end, 10);
        ok = !errno && end == slash;
    }
    if (ok) {
        n = strtol(slash + 1, &end, 10);
        ok = !errno && end != slash + 1 && !*end;
    }
    if (!ok || k < 1 || n < 1 || k > n || n > SM_SHARD_MAX)
        return sm_err(err, SM_EINVAL, "a shard is K/N with 1 <= K <= N <= %d (as 1/4 .. 4/4), not '%s'", SM_SHARD_MAX, text);
    out->k = (int)k;
    out->n = (int)n;
    return SM_OK;
}

int sm_shard_index(const char *id, int n) {
    sm_sha256_ctx h;
    uint8_t d[32];
    sm_sha256_init(&h);
    sm_sha256_update(&h, "shard:", 6);
    sm_sha256_update(&h, id, strlen(id));
    sm_sha256_final(&h, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | d[i];
    return (int)(v % (uint64_t)n);
}

int sm_shard_contains(const sm_shard *s, const char *id) {
    return s->n == 0 || sm_shard_index(id, s->n) == s->k - 1;
}
