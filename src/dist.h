/* dist.h: the process group of data-parallel training, over MPI.
 *
 * A group is the ranks 0..size-1 that `mpirun -np N snipmeta train ...` starts (or srun, or any
 * launcher that sets up MPI). Every rank runs the same loop on its share of each global batch;
 * the collectives below keep their parameters identical: gradients are summed with one in-place
 * allreduce over the flat gradient buffer, cut into buckets of SM_DIST_BUCKET floats (a LoRA
 * adapter's slab is one bucket; a full model's gradients are many), and for ZeRO-1 (zero.h)
 * reduce-scattered and the updated parameters allgathered.
 *
 * A group of one is what every function does with a NULL group, and what sm_dist_init gives
 * when the process was not started by an MPI launcher (no OMPI_COMM_WORLD_SIZE, PMI_SIZE,
 * PMIX_RANK in the environment) or the build has no MPI (CMake option SM_MPI): then nothing
 * touches MPI and every collective is a no-op (a sum over one rank is its input). A process that
 * a launcher started as one of several ranks in a build without MPI is an error, not N copies
 * of the same run writing the same files.
 *
 * Only the thread that called sm_dist_init calls MPI (MPI_THREAD_FUNNELED); OpenMP threads never do.
 * Every collective must be called by every rank in the same order; a failure is returned as
 * SM_EIO (Open MPI's default handler aborts the job first).
 */
#ifndef SM_DIST_H
#define SM_DIST_H

#include "snipmeta.h"

#include <stddef.h>
#include <stdint.h>

#define SM_DIST_BUCKET ((size_t)1 << 22) /* floats per allreduce call: 16 MiB */

typedef struct sm_dist sm_dist;

/* Communication counters of this rank since sm_dist_init (for logs and benchmarks). */
typedef struct {
    uint64_t calls;        /* collective calls */
    uint64_t bytes;        /* payload bytes of the reductions and gathers (each rank's buffer) */
    double seconds;        /* wall time inside them */
} sm_dist_stats;

/* Joins the group (see above). Returns SM_OK with *out (free it with sm_dist_finalize, which
 * ends MPI), or SM_EUNSUPPORTED when launched as one of several ranks without MPI support, or
 * SM_EIO when MPI cannot start. */
int sm_dist_init(sm_dist **out, sm_error *err);
void sm_dist_finalize(sm_dist *d); /* NULL-safe */

int sm_dist_rank(const sm_dist *d);   /* 0 for NULL */
int sm_dist_size(const sm_dist *d);   /* 1 for NULL */
/* 1 when this build can run several ranks (compiled with MPI). */
int sm_dist_has_mpi(void);

/* buf[0..n) <- the sum over ranks of buf[0..n), in place, SM_DIST_BUCKET floats per call. */
int sm_dist_allreduce_sum(sm_dist *d, float *buf, size_t n, sm_error *err);
/* The same, then divided by the number of ranks. */
int sm_dist_allreduce_mean(sm_dist *d, float *buf, size_t n, sm_error *err);
/* buf[0..n) <- the sum over ranks, in double (losses, token counts, norms). */
int sm_dist_allreduce_f64(sm_dist *d, double *buf, int n, sm_error *err);
/* 1 on every rank when flag is non-zero on any rank (a stop signal seen by one rank). */
int sm_dist_any(sm_dist *d, int flag, sm_error *err);
/* Copies bytes[0..n) from rank root to every rank. */
int sm_dist_broadcast(sm_dist *d, void *buf, size_t n, int root, sm_error *err);
int sm_dist_barrier(sm_dist *d, sm_error *err);
/* Ends every rank of the job with exit status code (after an error on this rank only: the
 * others would wait in their next collective forever). Returns only in a group of one. */
void sm_dist_abort(sm_dist *d, int code);

/* The slices of n elements over the ranks: rank r owns [lo[r], lo[r+1]), lo has size + 1
 * entries, the first n % size slices one element longer. */
void sm_dist_slices(size_t n, int size, size_t *lo);
/* buf[lo[r]..lo[r+1]) <- the sum over ranks of that range of their buf, for this rank r; the
 * rest of buf is left undefined. lo from sm_dist_slices. */
int sm_dist_reduce_scatter_sum(sm_dist *d, float *buf, const size_t *lo, sm_error *err);
/* Every rank's buf[lo[r]..lo[r+1]) is copied to that range of every rank's buf. */
int sm_dist_allgather(sm_dist *d, float *buf, const size_t *lo, sm_error *err);
/* Rank root's full[0..lo[size]) <- every rank r's mine[0..lo[r+1]-lo[r]) at lo[r] (full is only
 * written on root; it may be NULL elsewhere). */
int sm_dist_gather(sm_dist *d, float *full, const float *mine, const size_t *lo, int root, sm_error *err);

/* The rows of a micro-batch of B rows that this rank computes: [*row0, *row0 + *rows), split as
 * evenly as sm_dist_slices splits them. Needs size <= B (so that every rank has a row). */
void sm_dist_rows(const sm_dist *d, int B, int *row0, int *rows);

/* 1 when buf[0..n) holds the same bytes on every rank (a 64-bit hash compared by min and max),
 * 0 when not, or a negative SM_E* code. */
int sm_dist_same(sm_dist *d, const void *buf, size_t n, sm_error *err);

sm_dist_stats sm_dist_get_stats(const sm_dist *d);

#endif
