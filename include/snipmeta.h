/* snipmeta: the public C API.
 *
 * snipmeta gives a code snippet its metadata with one small base language model and one LoRA
 * adapter per task, on the CPU. This header is the contract every front end (the CLI, the
 * server, a user's program) builds on. Handles are opaque; every function that can fail
 * returns 0 (SM_OK) or a negative SM_E* code and, where it takes one, fills an sm_error with a
 * message that names the file, the offset or line, and what was expected. Nothing here exits.
 */
#ifndef SNIPMETA_H
#define SNIPMETA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SM_VERSION "0.1.0"

enum {
    SM_OK = 0,
    SM_EIO = -1,          /* a file could not be opened, read, written or mapped */
    SM_EFORMAT = -2,      /* a file or input is malformed (truncated, corrupt, inconsistent) */
    SM_ENOMEM = -3,       /* an allocation failed or a size overflowed */
    SM_EINVAL = -4,       /* a bad argument from the caller */
    SM_EUNSUPPORTED = -5, /* well-formed but not something this build handles */
};

/* An error report: the code and a human-readable message. Zero-initialise it; functions that
 * take a NULL sm_error just return the code. */
typedef struct sm_error {
    int code;
    char msg[512];
} sm_error;

/* Records an error; returns code so that callers can write `return sm_err(e, SM_EIO, ...)`. */
int sm_err(sm_error *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A short name for an error code ("I/O error", "bad format", ...). */
const char *sm_strerror(int code);

#ifdef __cplusplus
}
#endif
#endif
