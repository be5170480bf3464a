/* dist.c: the process group over MPI (dist.h). Built with SM_HAVE_MPI when CMake found an MPI
 * library; without it, every group is a group of one and the collectives do nothing. */
#include "dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef SM_HAVE_MPI
#include <mpi.h>
#endif

struct sm_dist {
    int rank, size;
    int mpi;                /* 1: MPI_Init was called by us */
#ifdef SM_HAVE_MPI
    MPI_Comm comm;
#endif
    sm_dist_stats stats;
};

int sm_dist_has_mpi(void) {
#ifdef SM_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

/* The group size that the launcher announced in the environment, or 0 when none did. */
static int launcher_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return getenv("PMIX_RANK") ? -1 : 0; /* PMIx without a size: a launcher, size unknown */
}

int sm_dist_init(sm_dist **out, sm_error *err) {
    *out = NULL;
    sm_dist *d = calloc(1, sizeof *d);
    if (!d) return sm_err(err, SM_ENOMEM, "out of memory");
    d->size = 1;
    int launched = launcher_size();
#ifdef SM_HAVE_MPI
    if (launched != 0) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            free(d);
            return sm_err(err, SM_EIO, "MPI: cannot initialise (MPI_Init_thread failed)");
        }
        d->mpi = 1;
        MPI_Comm_dup(MPI_COMM_WORLD, &d->comm);
        MPI_Comm_set_errhandler(d->comm, MPI_ERRORS_RETURN);
        MPI_Comm_rank(d->comm, &d->rank);
        MPI_Comm_size(d->comm, &d->size);
    }
#else
    if (launched > 1 || launched < 0) {
        free(d);
        return sm_err(err, SM_EUNSUPPORTED,
                      "started by an MPI launcher as one of several ranks, but this snipmeta was built without MPI "
                      "(install libopenmpi-dev and rebuild with -DSM_MPI=ON)");
    }
#endif
    *out = d;
    return SM_OK;
}

void sm_dist_finalize(sm_dist *d) {
    if (!d) return;
#ifdef SM_HAVE_MPI
    if (d->mpi) {
        MPI_Comm_free(&d->comm);
        MPI_Finalize();
    }
#endif
    free(d);
}

int sm_dist_rank(const sm_dist *d) { return d ? d->rank : 0; }
int sm_dist_size(const sm_dist *d) { return d ? d->size : 1; }

sm_dist_stats sm_dist_get_stats(const sm_dist *d) {
    sm_dist_stats s = {0};
    return d ? d->stats : s;
}

void sm_dist_slices(size_t n, int size, size_t *lo) {
    size_t per = n / (size_t)size, extra = n % (size_t)size;
    lo[0] = 0;
    for (int r = 0; r < size; r++) lo[r + 1] = lo[r] + per + ((size_t)r < extra);
}

void sm_dist_rows(const sm_dist *d, int B, int *row0, int *rows) {
    int size = sm_dist_size(d), rank = sm_dist_rank(d);
    int per = B / size, extra = B % size;
    *row0 = rank * per + (rank < extra ? rank : extra);
    *rows = per + (rank < extra);
}

#ifdef SM_HAVE_MPI
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t fnv1a(const void *buf, size_t n) {
    const unsigned char *p = buf;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static int mpi_fail(sm_error *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return sm_err(err, SM_EIO, "MPI: %s failed: %.*s", what, len, msg);
}

/* Whether a collective call is needed at all (a real group of more than one rank). */
static int multi(const sm_dist *d) { return d && d->mpi && d->size > 1; }

static void count(sm_dist *d, double t0, size_t bytes) {
    d->stats.calls++;
    d->stats.bytes += bytes;
    d->stats.seconds += now_s() - t0;
}

/* counts and displacements of the slices lo, as MPI's ints; SM_EUNSUPPORTED past INT_MAX. */
static int int_slices(const sm_dist *d, const size_t *lo, int **counts, int **displs, sm_error *err) {
    if (lo[d->size] > INT_MAX) return sm_err(err, SM_EUNSUPPORTED, "MPI: %zu elements in one scatter or gather (at most %d)", lo[d->size], INT_MAX);
    *counts = malloc(2 * (size_t)d->size * sizeof(int));
    if (!*counts) return sm_err(err, SM_ENOMEM, "out of memory");
    *displs = *counts + d->size;
    for (int r = 0; r < d->size; r++) {
        (*counts)[r] = (int)(lo[r + 1] - lo[r]);
        (*displs)[r] = (int)lo[r];
    }
    return SM_OK;
}
#endif

int sm_dist_allreduce_sum(sm_dist *d, float *buf, size_t n, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return SM_OK;
    double t0 = now_s();
    for (size_t off = 0; off < n; off += SM_DIST_BUCKET) {
        int k = (int)(n - off < SM_DIST_BUCKET ? n - off : SM_DIST_BUCKET);
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "allreduce");
    }
    count(d, t0, n * sizeof(float));
#else
    (void)d, (void)buf, (void)n, (void)err;
#endif
    return SM_OK;
}

int sm_dist_allreduce_mean(sm_dist *d, float *buf, size_t n, sm_error *err) {
    int rc = sm_dist_allreduce_sum(d, buf, n, err);
    int size = sm_dist_size(d);
    if (rc || size == 1) return rc;
    const float inv = 1.0f / (float)size;
    for (size_t i = 0; i < n; i++) buf[i] *= inv;
    return SM_OK;
}

int sm_dist_allreduce_f64(sm_dist *d, double *buf, int n, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return SM_OK;
    double t0 = now_s();
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "allreduce");
    count(d, t0, (size_t)n * sizeof(double));
#else
    (void)d, (void)buf, (void)n, (void)err;
#endif
    return SM_OK;
}

int sm_dist_any(sm_dist *d, int flag, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return flag != 0;
    int v = flag != 0;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "allreduce");
    return v;
#else
    (void)d, (void)err;
    return flag != 0;
#endif
}

int sm_dist_broadcast(sm_dist *d, void *buf, size_t n, int root, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return SM_OK;
    double t0 = now_s();
    for (size_t off = 0; off < n; off += (size_t)INT_MAX) {
        int k = (int)(n - off < (size_t)INT_MAX ? n - off : (size_t)INT_MAX);
        int rc = MPI_Bcast((char *)buf + off, k, MPI_BYTE, root, d->comm);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "broadcast");
    }
    count(d, t0, n);
#else
    (void)d, (void)buf, (void)n, (void)root, (void)err;
#endif
    return SM_OK;
}

int sm_dist_barrier(sm_dist *d, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return SM_OK;
    int rc = MPI_Barrier(d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "barrier");
#else
    (void)d, (void)err;
#endif
    return SM_OK;
}

void sm_dist_abort(sm_dist *d, int code) {
#ifdef SM_HAVE_MPI
    if (multi(d)) MPI_Abort(d->comm, code);
#else
    (void)d, (void)code;
#endif
}

int sm_dist_reduce_scatter_sum(sm_dist *d, float *buf, const size_t *lo, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return SM_OK;
    int *counts, *displs;
    int rc = int_slices(d, lo, &counts, &displs, err);
    if (rc) return rc;
    double t0 = now_s();
    /* in place: the input is all of buf; this rank's sum lands at buf[0..count), moved to its slice */
    rc = MPI_Reduce_scatter(MPI_IN_PLACE, buf, counts, MPI_FLOAT, MPI_SUM, d->comm);
    if (rc == MPI_SUCCESS) memmove(buf + lo[d->rank], buf, (size_t)counts[d->rank] * sizeof(float));
    free(counts);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "reduce-scatter");
    count(d, t0, lo[d->size] * sizeof(float));
#else
    (void)d, (void)buf, (void)lo, (void)err;
#endif
    return SM_OK;
}

int sm_dist_allgather(sm_dist *d, float *buf, const size_t *lo, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return SM_OK;
    int *counts, *displs;
    int rc = int_slices(d, lo, &counts, &displs, err);
    if (rc) return rc;
    double t0 = now_s();
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, d->comm);
    free(counts);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "allgather");
    count(d, t0, lo[d->size] * sizeof(float));
#else
    (void)d, (void)buf, (void)lo, (void)err;
#endif
    return SM_OK;
}

int sm_dist_gather(sm_dist *d, float *full, const float *mine, const size_t *lo, int root, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (multi(d)) {
        int *counts, *displs;
        int rc = int_slices(d, lo, &counts, &displs, err);
        if (rc) return rc;
        double t0 = now_s();
        rc = MPI_Gatherv(mine, counts[d->rank], MPI_FLOAT, full, counts, displs, MPI_FLOAT, root, d->comm);
        free(counts);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "gather");
        count(d, t0, (lo[d->rank + 1] - lo[d->rank]) * sizeof(float));
        return SM_OK;
    }
#else
    (void)root, (void)err;
#endif
    int rank = sm_dist_rank(d);
    if (full != mine) memmove(full + lo[rank], mine, (lo[rank + 1] - lo[rank]) * sizeof(float));
    return SM_OK;
}

int sm_dist_same(sm_dist *d, const void *buf, size_t n, sm_error *err) {
#ifdef SM_HAVE_MPI
    if (!multi(d)) return 1;
    uint64_t h = fnv1a(buf, n), lo = h, hi = h;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UINT64_T, MPI_MIN, d->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UINT64_T, MPI_MAX, d->comm);
    if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "allreduce");
    return lo == hi;
#else
    (void)d, (void)buf, (void)n, (void)err;
    return 1;
#endif
}
