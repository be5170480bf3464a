/* prompts.h: the prompt templates compiled into the library.
 *
 * CMake turns every .txt file in prompts/ into a byte array in the generated sm_prompts.c (see
 * CMakeLists.txt), so that the binary needs no data files at run time. prompts/README.md
 * describes the templates and their placeholders.
 */
#ifndef SM_PROMPTS_H
#define SM_PROMPTS_H

#include <stddef.h>

typedef struct {
    const char *name;          /* the file name, e.g. "teacher_joint.txt" */
    const unsigned char *text; /* its bytes, followed by a 0 */
    size_t size;               /* without the 0 */
} sm_embedded_file;

/* The embedded files, ended by an entry whose name is NULL. */
extern const sm_embedded_file sm_prompt_files[];

#endif
