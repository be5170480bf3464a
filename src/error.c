/* error.c: the sm_error report shared by every module (see include/snipmeta.h). */
#include "snipmeta.h"

#include <stdarg.h>
#include <stdio.h>

int sm_err(sm_error *e, int code, const char *fmt, ...) {
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *sm_strerror(int code) {
    switch (code) {
    case SM_OK: return "ok";
    case SM_EIO: return "I/O error";
    case SM_EFORMAT: return "bad format";
    case SM_ENOMEM: return "out of memory";
    case SM_EINVAL: return "invalid argument";
    case SM_EUNSUPPORTED: return "unsupported";
    default: return "unknown error";
    }
}
