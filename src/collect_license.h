/* collect_license.h: the license of a collected file.
 *
 * A file's own "SPDX-License-Identifier:" line (in its first 64 lines) wins; otherwise the
 * walker uses the nearest license file up the tree (LICENSE, LICENCE, COPYING, with any suffix),
 * whose text is classified here by the phrases that each license's standard text contains.
 */
#ifndef SM_COLLECT_LICENSE_H
#define SM_COLLECT_LICENSE_H

#include <stddef.h>

/* Copies the SPDX expression of the file text[0..len) to out (NUL-terminated, at most cap-1
 * bytes); returns 1 when the file has one, else 0. */
int sm_license_spdx(char *out, size_t cap, const char *text, size_t len);

/* The SPDX id of a license file's text ("MIT", "Apache-2.0", "BSD-3-Clause", ...), or NULL
 * when it is none of those recognised: MIT, Apache-2.0, BSD-2-Clause, BSD-3-Clause, GPL-2.0,
 * GPL-3.0, LGPL-2.1, LGPL-3.0, AGPL-3.0, MPL-2.0, ISC, Zlib, PSF-2.0, Unlicense,
 * Artistic-2.0. The returned string is static. */
const char *sm_license_classify(const char *text, size_t len);

/* Is name a license file's name (LICENSE, LICENSE.txt, LICENCE-MIT, COPYING, COPYING.LESSER)? */
int sm_license_file_name(const char *name);

#endif
