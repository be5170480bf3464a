/* registry.c: resident adapters by name, with reference counts, and the tags and links
 * constraints of an adapter directory (see registry.h). */
#include "registry.h"

#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char name[SM_REGISTRY_NAME_MAX + 1];
    sm_lora *lora;
    int refs;
    int unloaded;   /* the name is gone; freed when refs drops to 0 */
} entry;

struct sm_registry {
    const sm_model *model;
    char *dir;
    char fingerprint[65];
    sm_constraint *tags, *links;
    pthread_mutex_t lock;
    entry *entries;
    int n, cap;
};

int sm_registry_valid_name(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n > SM_REGISTRY_NAME_MAX || name[0] == '.') return 0;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '_' || *p == '-'))
            return 0;
    return strstr(name, "..") == NULL;
}

/* The entry of a loaded name, or NULL; under the lock. */
static entry *find(sm_registry *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!r->entries[i].unloaded && !strcmp(r->entries[i].name, name)) return &r->entries[i];
    return NULL;
}

/* Reads and checks dir/NAME.gguf; NULL with *err set. */
static sm_lora *read_adapter(const sm_registry *r, const char *name, sm_error *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s.gguf", r->dir, name) >= (int)sizeof path) {
        sm_err(err, SM_EINVAL, "adapter path too long");
        return NULL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        sm_err(err, SM_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    sm_lora *l = sm_lora_load_gguf(path, err);
    /* resident for the registry's life: held as f16, half the memory (each value of A and B
     * rounded to f16, a relative change of at most 2^-11) */
    if (l && (sm_lora_check_base(l, path, r->model, r->fingerprint, err) || sm_lora_to_f16(l, err))) {
        sm_lora_free(l);
        l = NULL;
    }
#if defined(__GLIBC__)
    /* the freed f32 slab may be a hole below the f16 one in the heap, which glibc keeps resident
     * (measured: 5 MB of four rank-8 adapters at one thread); give its pages back */
    malloc_trim(0);
#endif
    return l;
}

/* Adds an entry; under the lock (or before the registry is shared). */
static int add_entry(sm_registry *r, const char *name, sm_lora *l, sm_error *err) {
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 8;
        entry *grown = realloc(r->entries, (size_t)cap * sizeof *grown);
        if (!grown) return sm_err(err, SM_ENOMEM, "out of memory for adapter '%s'", name);
        r->entries = grown, r->cap = cap;
    }
    entry *e = &r->entries[r->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->lora = l;
    return SM_OK;
}

static sm_constraint *open_constraint(const sm_model *m, const char *dir, const char *file, const char *sep, int min,
                                      int max, sm_error *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        sm_err(err, SM_EINVAL, "path too long: %s/%s", dir, file);
        return NULL;
    }
    if (access(path, F_OK) != 0) return sm_constraint_new(m->tokenizer, NULL, 0, sep, min, max, err);
    return sm_constraint_load(m->tokenizer, path, sep, min, max, err);
}

sm_registry *sm_registry_open(const sm_model *m, const char *dir, sm_error *err) {
    struct stat st;
    if (stat(dir, &st) != 0) { sm_err(err, SM_EIO, "adapter directory %s: %s", dir, strerror(errno)); return NULL; }
    if (!S_ISDIR(st.st_mode)) { sm_err(err, SM_EIO, "adapter directory %s: not a directory", dir); return NULL; }
    sm_registry *r = calloc(1, sizeof *r);
    if (!r || !(r->dir = strdup(dir))) {
        free(r);
        sm_err(err, SM_ENOMEM, "out of memory for the registry");
        return NULL;
    }
    r->model = m;
    pthread_mutex_init(&r->lock, NULL);
    if (sm_model_fingerprint(m, r->fingerprint)) {
        sm_err(err, SM_ENOMEM, "out of memory computing the base fingerprint");
        sm_registry_free(r);
        return NULL;
    }
    if (!(r->tags = open_constraint(m, dir, "tags.txt", ", ", 1, 6, err)) ||
        !(r->links = open_constraint(m, dir, "links.txt", "\n", 0, 3, err))) {
        sm_registry_free(r);
        return NULL;
    }
    static const char *task_names[] = {"title", "description", "tags", "links"};
    for (size_t i = 0; i < sizeof task_names / sizeof task_names[0]; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.gguf", dir, task_names[i]);
        if (access(path, F_OK) != 0) continue;
        sm_lora *l = read_adapter(r, task_names[i], err);
        if (!l || add_entry(r, task_names[i], l, err)) {
            sm_lora_free(l);
            sm_registry_free(r);
            return NULL;
        }
    }
    return r;
}

void sm_registry_free(sm_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) sm_lora_free(r->entries[i].lora);
    free(r->entries);
    sm_constraint_free(r->tags);
    sm_constraint_free(r->links);
    pthread_mutex_destroy(&r->lock);
    free(r->dir);
    free(r);
}

const char *sm_registry_dir(const sm_registry *r) { return r->dir; }
const char *sm_registry_fingerprint(const sm_registry *r) { return r->fingerprint; }
const sm_constraint *sm_registry_tags(const sm_registry *r) { return r->tags; }
const sm_constraint *sm_registry_links(const sm_registry *r) { return r->links; }

int sm_registry_load(sm_registry *r, const char *name, sm_error *err) {
    if (!sm_registry_valid_name(name))
        return sm_err(err, SM_EINVAL, "bad adapter name '%.80s' (expected 1-%d of A-Z a-z 0-9 . _ -, no '..', not starting with '.')",
                      name, SM_REGISTRY_NAME_MAX);
    pthread_mutex_lock(&r->lock);
    int loaded = find(r, name) != NULL;
    pthread_mutex_unlock(&r->lock);
    if (loaded) return sm_err(err, SM_EINVAL, "adapter '%s' is loaded already", name);
    sm_lora *l = read_adapter(r, name, err); /* outside the lock: reading takes a while */
    if (!l) return err ? err->code : SM_EIO;
    pthread_mutex_lock(&r->lock);
    int rc = find(r, name) ? sm_err(err, SM_EINVAL, "adapter '%s' is loaded already", name) : add_entry(r, name, l, err);
    pthread_mutex_unlock(&r->lock);
    if (rc) sm_lora_free(l);
    return rc;
}

/* Drops entry i (refs 0, unloaded) from the table; under the lock. */
static void drop(sm_registry *r, int i) {
    sm_lora_free(r->entries[i].lora);
    r->entries[i] = r->entries[--r->n];
}

int sm_registry_unload(sm_registry *r, const char *name, sm_error *err) {
    pthread_mutex_lock(&r->lock);
    entry *e = find(r, name);
    if (e) {
        e->unloaded = 1;
        if (e->refs == 0) drop(r, (int)(e - r->entries));
    }
    pthread_mutex_unlock(&r->lock);
    return e ? SM_OK : sm_err(err, SM_EINVAL, "no adapter named '%.80s' is loaded", name);
}

const sm_lora *sm_registry_acquire(sm_registry *r, const char *name) {
    pthread_mutex_lock(&r->lock);
    entry *e = find(r, name);
    if (e) e->refs++;
    pthread_mutex_unlock(&r->lock);
    return e ? e->lora : NULL;
}

void sm_registry_release(sm_registry *r, const sm_lora *l) {
    if (!l) return;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < r->n; i++) {
        entry *e = &r->entries[i];
        if (e->lora != l) continue;
        if (--e->refs == 0 && e->unloaded) drop(r, i);
        break;
    }
    pthread_mutex_unlock(&r->lock);
}

static int cmp_info(const void *a, const void *b) {
    return strcmp(((const sm_registry_info *)a)->name, ((const sm_registry_info *)b)->name);
}

int sm_registry_list(sm_registry *r, sm_registry_info **out, int *n) {
    pthread_mutex_lock(&r->lock);
    sm_registry_info *info = malloc((size_t)(r->n ? r->n : 1) * sizeof *info);
    int k = 0;
    for (int i = 0; info && i < r->n; i++) {
        const entry *e = &r->entries[i];
        if (e->unloaded) continue;
        sm_registry_info *x = &info[k++];
        memset(x, 0, sizeof *x);
        snprintf(x->name, sizeof x->name, "%s", e->name);
        snprintf(x->task, sizeof x->task, "%s", e->lora->task);
        x->rank = e->lora->rank, x->alpha = e->lora->alpha;
        x->rslora = e->lora->rslora, x->activated = e->lora->activated;
        x->targets = e->lora->targets, x->n_params = e->lora->n_params;
    }
    pthread_mutex_unlock(&r->lock);
    if (!info) return SM_ENOMEM;
    qsort(info, (size_t)k, sizeof *info, cmp_info);
    *out = info, *n = k;
    return SM_OK;
}

size_t sm_registry_bytes(sm_registry *r) {
    pthread_mutex_lock(&r->lock);
    size_t bytes = 0;
    for (int i = 0; i < r->n; i++) bytes += sm_lora_bytes(r->entries[i].lora);
    pthread_mutex_unlock(&r->lock);
    return bytes;
}
