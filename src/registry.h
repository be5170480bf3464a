/* registry.h: the adapters a base model serves, loaded once from one directory and shared by
 * every inference context, plus the decoding constraints that live beside them.
 *
 * The directory holds NAME.gguf LoRA adapters (the four task adapters are title.gguf,
 * description.gguf, tags.gguf and links.gguf; any other name can be loaded at run time) and the
 * tag vocabulary tags.txt and links index links.txt that `snipmeta dataset` writes. Opening the
 * registry computes the base's fingerprint once and loads the task adapters that are present and
 * both text files (missing ones are empty sets); each adapter must fit the base (sm_lora_check_base,
 * fingerprint included) or the open fails naming the file.
 *
 * Adapters stay resident and are applied unmerged, so that changing a context's task is a
 * pointer change (sm_context_set_adapters). They are held as f16 (sm_lora_to_f16): half the
 * memory of f32, so that the base with its four adapters stays within 1.05x the base alone. Names are 1-64 bytes of [A-Za-z0-9._-], not starting
 * with '.', so that a name never leaves the directory.
 *
 * Thread safety: every function may be called from any thread. A user acquires an adapter by
 * name and releases it when done; unloading removes the name at once but frees the adapter only
 * after its last user released it.
 */
#ifndef SM_REGISTRY_H
#define SM_REGISTRY_H

#include "constrain.h"
#include "lora.h"
#include "model.h"

typedef struct sm_registry sm_registry;

#define SM_REGISTRY_NAME_MAX 64

/* Opens dir for base m (which must outlive the registry). Returns a new registry the caller frees
 * with sm_registry_free, or NULL with *err naming the file (SM_EIO: no such directory; SM_EFORMAT,
 * SM_EINVAL: an adapter that is malformed or made for another base; SM_ENOMEM). */
sm_registry *sm_registry_open(const sm_model *m, const char *dir, sm_error *err);
/* Frees the registry and every adapter in it; no adapter may still be acquired. NULL-safe. */
void sm_registry_free(sm_registry *r);

const char *sm_registry_dir(const sm_registry *r);
/* The base's fingerprint (64 hex digits). */
const char *sm_registry_fingerprint(const sm_registry *r);
/* The tag vocabulary and the links index (never NULL; empty when the file was absent). */
const sm_constraint *sm_registry_tags(const sm_registry *r);
const sm_constraint *sm_registry_links(const sm_registry *r);

/* 1 when name is a valid adapter name (see above). */
int sm_registry_valid_name(const char *name);

/* Loads dir/NAME.gguf under name. Returns SM_OK; SM_EINVAL for a bad name, a name already loaded
 * or an adapter that does not fit the base (the message says which); SM_EIO when the file is
 * missing or unreadable; SM_EFORMAT, SM_ENOMEM. */
int sm_registry_load(sm_registry *r, const char *name, sm_error *err);
/* Forgets name (see above). Returns SM_OK, or SM_EINVAL when no adapter has that name. */
int sm_registry_unload(sm_registry *r, const char *name, sm_error *err);

/* The adapter named name, which stays valid until sm_registry_release; NULL when none. */
const sm_lora *sm_registry_acquire(sm_registry *r, const char *name);
void sm_registry_release(sm_registry *r, const sm_lora *l); /* NULL-safe */

/* What sm_registry_list reports of one adapter. */
typedef struct {
    char name[SM_REGISTRY_NAME_MAX + 1];
    char task[64];
    int rank;
    float alpha;
    int rslora, activated;
    unsigned targets;
    size_t n_params;
} sm_registry_info;

/* The loaded adapters in name order: writes a new array to *out (the caller frees it) and its
 * length to *n. Returns SM_OK or SM_ENOMEM. */
int sm_registry_list(sm_registry *r, sm_registry_info **out, int *n);
/* Bytes of all loaded adapters' parameters, as held (f16). */
size_t sm_registry_bytes(sm_registry *r);

#endif
