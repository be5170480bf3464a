/* collect_license.c: SPDX headers and license-file classification (see collect_license.h). */
#include "collect_license.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { SPDX_LINES = 64, CLASSIFY_BYTES = 64 * 1024 };

int sm_license_spdx(char *out, size_t cap, const char *text, size_t len) {
    static const char tag[] = "SPDX-License-Identifier:";
    size_t end = 0;
    for (int lines = 0; end < len && lines < SPDX_LINES; end++) lines += text[end] == '\n';
    const char *p = memmem(text, end, tag, sizeof tag - 1);
    if (!p || cap == 0) return 0;
    p += sizeof tag - 1;
    const char *e = text + end;
    while (p < e && (*p == ' ' || *p == '\t')) p++;
    const char *q = p;
    while (q < e && *q != '\n' && *q != '\r') q++;
    /* drop a comment's closing ("*" "/", "-->") and trailing blanks */
    while (q > p && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '/' || q[-1] == '*' || q[-1] == '>' || q[-1] == '-' || q[-1] == '#'))
        q--;
    size_t n = (size_t)(q - p);
    if (!n) return 0;
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
    return 1;
}

/* text, lower-cased, with every whitespace run as one space: license texts wrap differently */
static char *normalise(const char *text, size_t len) {
    if (len > CLASSIFY_BYTES) len = CLASSIFY_BYTES;
    char *s = malloc(len + 1);
    if (!s) return NULL;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '*' || c == '#') {
            if (n && s[n - 1] != ' ') s[n++] = ' ';
            continue;
        }
        s[n++] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    s[n] = 0;
    return s;
}

const char *sm_license_classify(const char *text, size_t len) {
    char *s = normalise(text, len);
    if (!s) return NULL;
    const char *id = NULL;
#define HAS(phrase) (strstr(s, phrase) != NULL)
    if (HAS("python software foundation license")) id = "PSF-2.0";
    else if (HAS("gnu affero general public license")) id = "AGPL-3.0";
    else if (HAS("gnu lesser general public license") || HAS("gnu library general public license"))
        id = HAS("version 3") ? "LGPL-3.0" : "LGPL-2.1";
    else if (HAS("gnu general public license"))
        id = HAS("version 3, 29 june 2007") || (HAS("version 3") && !HAS("version 2")) ? "GPL-3.0" : "GPL-2.0";
    else if (HAS("apache license") && HAS("version 2.0")) id = "Apache-2.0";
    else if (HAS("mozilla public license") && HAS("2.0")) id = "MPL-2.0";
    else if (HAS("this is free and unencumbered software released into the public domain")) id = "Unlicense";
    else if (HAS("the artistic license 2.0")) id = "Artistic-2.0";
    else if (HAS("altered source versions must be plainly marked") && HAS("provided 'as-is'")) id = "Zlib";
    else if (HAS("redistribution and use in source and binary forms"))
        id = HAS("neither the name") || HAS("endorse or promote products") ? "BSD-3-Clause" : "BSD-2-Clause";
    else if (HAS("permission is hereby granted, free of charge")) id = "MIT";
    else if (HAS("permission to use, copy, modify, and/or distribute this software for any purpose with or without fee") ||
             (HAS("permission to use, copy, modify, and distribute this software for any purpose with or without fee")))
        id = "ISC";
#undef HAS
    free(s);
    return id;
}

int sm_license_file_name(const char *name) {
    static const char *const stems[] = {"license", "licence", "copying", "unlicense", NULL};
    for (int i = 0; stems[i]; i++) {
        size_t k = strlen(stems[i]);
        if (!strncasecmp(name, stems[i], k) && (name[k] == 0 || name[k] == '.' || name[k] == '-' || name[k] == '_'))
            return 1;
    }
    return 0;
}
