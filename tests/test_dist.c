/* test_dist.c: the process group (dist.h) on known buffers. Run alone it checks the group of one
 * (every collective leaves its input as it is) and the slice and row arithmetic; under
 * `mpirun -np N` (tests/test_mpi_dist.sh) every collective against its closed form, with a
 * buffer longer than one bucket so that the bucketed allreduce is crossed. Exits 0 on success. */
#include "dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fails;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "rank %d: FAIL %s:%d: ", rank, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
            fails++;                                                       \
        }                                                                  \
    } while (0)

int main(void) {
    sm_dist *d;
    sm_error err = {0};
    int rank = 0;
    if (sm_dist_init(&d, &err)) { fprintf(stderr, "dist init: %s\n", err.msg); return 1; }
    rank = sm_dist_rank(d);
    int size = sm_dist_size(d);

    /* slices and rows: a partition, evenly */
    for (int s = 1; s <= 9; s++) {
        size_t lo[10];
        for (size_t n = 0; n < 40; n++) {
            sm_dist_slices(n, s, lo);
            CHECK(lo[0] == 0 && lo[s] == n, "slices of %zu over %d end at %zu", n, s, lo[s]);
            for (int r = 0; r < s; r++) {
                size_t len = lo[r + 1] - lo[r];
                CHECK(len == n / s || len == n / s + 1, "slice %d of %zu over %d: %zu", r, n, s, len);
            }
        }
    }
    int row0, rows, total = 0;
    int B = 7 * size + 3;
    sm_dist_rows(d, B, &row0, &rows);
    CHECK((rows == B / size || rows == B / size + 1) && row0 >= 0 && row0 + rows <= B, "rows %d..%d of %d", row0, row0 + rows, B);
    double t = rows;
    sm_dist_allreduce_f64(d, &t, 1, &err);
    total = (int)t;
    CHECK(total == 7 * size + 3, "rows over the ranks: %d, expected %d", total, 7 * size + 3);

    /* allreduce sum and mean over more than one bucket: rank r holds (r + 1) * (i % 1000) */
    size_t n = SM_DIST_BUCKET + 12345;
    float *buf = malloc(n * sizeof *buf);
    if (!buf) return 1;
    for (size_t i = 0; i < n; i++) buf[i] = (float)(rank + 1) * (float)(i % 1000);
    int rc = sm_dist_allreduce_sum(d, buf, n, &err);
    CHECK(rc == 0, "allreduce: %s", err.msg);
    float tri = (float)size * (float)(size + 1) / 2.0f;
    double max_diff = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)buf[i] - (double)tri * (double)(i % 1000));
        if (diff > max_diff) max_diff = diff;
    }
    CHECK(max_diff == 0, "allreduce sum: max difference %g", max_diff);
    for (size_t i = 0; i < n; i++) buf[i] = (float)(rank + 1) * 0.5f;
    rc = sm_dist_allreduce_mean(d, buf, n, &err);
    float want = 0.5f * (float)(size + 1) / 2.0f;
    max_diff = 0;
    for (size_t i = 0; i < n; i++) if (fabs(buf[i] - want) > max_diff) max_diff = fabs(buf[i] - want);
    CHECK(rc == 0 && max_diff < 1e-6, "allreduce mean: max difference %g", max_diff);
    if (rank == 0) printf("allreduce of %zu floats (%d buckets) over %d ranks: max difference %g\n", n,
                          (int)((n + SM_DIST_BUCKET - 1) / SM_DIST_BUCKET), size, max_diff);

    /* reduce-scatter then allgather: the sum, everywhere */
    size_t m = 1001, lo[65];
    if (size > 64) return 77;
    sm_dist_slices(m, size, lo);
    for (size_t i = 0; i < m; i++) buf[i] = (float)(rank + 1) + (float)i;
    rc = sm_dist_reduce_scatter_sum(d, buf, lo, &err);
    CHECK(rc == 0, "reduce-scatter: %s", err.msg);
    for (size_t i = lo[rank]; i < lo[rank + 1]; i++)
        CHECK(buf[i] == tri + (float)size * (float)i, "reduce-scatter [%zu] = %g", i, buf[i]);
    rc = sm_dist_allgather(d, buf, lo, &err);
    CHECK(rc == 0, "allgather: %s", err.msg);
    int bad = 0;
    for (size_t i = 0; i < m; i++) bad += buf[i] != tri + (float)size * (float)i;
    CHECK(bad == 0, "allgather: %d wrong", bad);

    /* gather to rank 0 */
    float *full = calloc(m, sizeof *full), mine[1001];
    for (size_t i = 0; i < lo[rank + 1] - lo[rank]; i++) mine[i] = (float)(lo[rank] + i) * 2.0f;
    rc = sm_dist_gather(d, rank == 0 ? full : NULL, mine, lo, 0, &err);
    CHECK(rc == 0, "gather: %s", err.msg);
    bad = 0;
    if (rank == 0) for (size_t i = 0; i < m; i++) bad += full[i] != (float)i * 2.0f;
    CHECK(bad == 0, "gather: %d wrong", bad);

    /* broadcast, any, same */
    char text[32] = "";
    if (rank == 0) strcpy(text, "from rank zero");
    rc = sm_dist_broadcast(d, text, sizeof text, 0, &err);
    CHECK(rc == 0 && !strcmp(text, "from rank zero"), "broadcast: '%s'", text);
    CHECK(sm_dist_any(d, 0, &err) == 0, "any of nothing");
    CHECK(sm_dist_any(d, rank == size - 1, &err) == 1, "any of the last rank's flag");
    CHECK(sm_dist_same(d, text, sizeof text, &err) == 1, "same after broadcast");
    int mine_only = rank;
    CHECK(sm_dist_same(d, &mine_only, sizeof mine_only, &err) == (size == 1), "same on different buffers");
    CHECK(sm_dist_barrier(d, &err) == 0, "barrier");

    sm_dist_stats st = sm_dist_get_stats(d);
    if (rank == 0)
        printf("ranks %d (MPI %s): %llu collective calls, %llu bytes, %.3f s\n", size, sm_dist_has_mpi() ? "built in" : "not built",
               (unsigned long long)st.calls, (unsigned long long)st.bytes, st.seconds);
    free(buf);
    free(full);
    double f = fails;
    sm_dist_allreduce_f64(d, &f, 1, &err);
    sm_dist_finalize(d);
    if (f > 0) {
        if (rank == 0) printf("test_dist: %g failures\n", f);
        return 1;
    }
    if (rank == 0) printf("test_dist: ok\n");
    return 0;
}
