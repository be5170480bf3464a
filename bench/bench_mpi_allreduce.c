/* bench_mpi_allreduce.c: the time of the gradient reductions of data-parallel training (dist.h)
 * on this machine's MPI, for buffer sizes from a LoRA adapter's to a full model's. Run it under
 * `mpirun -np N bench_mpi_allreduce [FLOATS...]`; rank 0 prints one JSON line per size and
 * operation: the median of the timed calls (each after a barrier, so that no rank's lateness is
 * counted), the algorithm bandwidth bytes / time, and the bus bandwidth 2 (N-1)/N bytes / time
 * that a ring allreduce moves per rank (comparable across N; docs/SCALING.md uses it).
 * Operations: allreduce (sm_dist_allreduce_sum, 16 MiB buckets) and reduce-scatter + allgather
 * (the ZeRO-1 step's pair). Alone (no mpirun) it prints the one-rank no-op times. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    sm_dist *d;
    sm_error err = {0};
    if (sm_dist_init(&d, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    int rank = sm_dist_rank(d), size = sm_dist_size(d);
    /* default sizes: stories260K's rank-8 adapter and whole model, a SmolLM2-135M rank-8 q,k,v,o
     * adapter (1.6M floats), 16M and 64M floats */
    size_t sizes[32] = {17920, 260032, 1622016, (size_t)16 << 20, (size_t)64 << 20};
    int n_sizes = 5;
    if (argc > 1) {
        n_sizes = 0;
        for (int i = 1; i < argc && n_sizes < 32; i++) sizes[n_sizes++] = (size_t)strtoull(argv[i], NULL, 10);
    }
    size_t *lo = malloc((size_t)(size + 1) * sizeof *lo);
    for (int s = 0; s < n_sizes; s++) {
        size_t n = sizes[s];
        float *buf = malloc(n * sizeof *buf);
        if (!buf || !lo) { fprintf(stderr, "out of memory\n"); return 1; }
        for (size_t i = 0; i < n; i++) buf[i] = 1e-3f * (float)(i % 977);
        sm_dist_slices(n, size, lo);
        int reps = n >= ((size_t)16 << 20) ? 5 : n >= ((size_t)1 << 20) ? 15 : 50;
        for (int op = 0; op < 2; op++) {
            double t[64];
            for (int k = 0; k <= reps; k++) { /* the first call warms up and is not counted */
                sm_dist_barrier(d, &err);
                double t0 = now_s();
                int rc = op == 0 ? sm_dist_allreduce_sum(d, buf, n, &err)
                                 : (sm_dist_reduce_scatter_sum(d, buf, lo, &err) || sm_dist_allgather(d, buf, lo, &err));
                if (rc) { fprintf(stderr, "rank %d: %s\n", rank, err.msg); return 1; }
                if (k) t[k - 1] = now_s() - t0;
            }
            qsort(t, (size_t)reps, sizeof t[0], cmp_double);
            double med = t[reps / 2], bytes = (double)n * sizeof(float);
            if (rank == 0)
                printf("{\"bench\":\"mpi_allreduce\",\"op\":\"%s\",\"np\":%d,\"floats\":%zu,\"bytes\":%.0f,\"ms\":%.4f,"
                       "\"algbw_GBps\":%.3f,\"busbw_GBps\":%.3f,\"reps\":%d}\n",
                       op == 0 ? "allreduce" : "reduce_scatter+allgather", size, n, bytes, 1e3 * med,
                       med > 0 ? bytes / med / 1e9 : 0.0, med > 0 ? 2.0 * (size - 1) / size * bytes / med / 1e9 : 0.0, reps);
            fflush(stdout);
        }
        free(buf);
    }
    free(lo);
    sm_dist_finalize(d);
    return 0;
}
