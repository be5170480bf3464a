/* shard.h: deterministic shards of a snippet corpus by id hash, so that N machines label one
 * corpus with no overlap (`snipmeta label --shard K/N`): every snippet belongs to exactly one of
 * the N shards, whatever the order or the machine, and the same id always goes to the same
 * shard. The shard of an id is the first 8 bytes of SHA-256("shard:" id) as a big-endian u64,
 * modulo N (the salt keeps shards independent of the dataset splits, which hash "split:" id).
 * Shards are numbered 1..N on the command line, as --shard 1/4 .. 4/4.
 */
#ifndef SM_SHARD_H
#define SM_SHARD_H

#include "snipmeta.h"

#define SM_SHARD_MAX 1000000

typedef struct {
    int k, n;   /* shard k of n, 1 <= k <= n; n == 0: no sharding (every snippet) */
} sm_shard;

/* Parses "K/N" (1 <= K <= N <= SM_SHARD_MAX) into *out. Returns SM_OK, or SM_EINVAL with *err
 * saying what was expected. */
int sm_shard_parse(const char *text, sm_shard *out, sm_error *err);

/* The 0-based shard, in [0, n), of a snippet id (n >= 1). */
int sm_shard_index(const char *id, int n);

/* 1 when the id belongs to shard s (always, when s->n is 0), else 0. */
int sm_shard_contains(const sm_shard *s, const char *id);

#endif
