/* pretokenize.c: llama.cpp's regex pre-tokenizers of byte-level BPE under PCRE2 (see
 * pretokenize.h). It owns the table from tokenizer.ggml.pre names to regex lists and the
 * compiled regexes; splitting keeps its scratch per call, so a handle is shared read-only. */
#include "pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

#define MAX_REGEXES 8

/* The regex lists, from llama.cpp's llm_tokenizer_bpe (llama-vocab.cpp). Where llama.cpp rewrote
 * a case-insensitive group (?i:'s|...) as '[sS]|..., the rewrite is kept: under Unicode case
 * folding (?i:s) would also match U+017F. Code points outside ASCII are written \x{...}: as literal
 * characters, Unicode normalization by an editor would silently change some (U+212A KELVIN SIGN
 * into 'K', U+1F7D into U+03CE) and with them the ranges. */
static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
    NULL,
};
static const char *const re_gpt2[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    NULL,
};
static const char *const re_starcoder[] = {
    "\\p{N}",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    NULL,
};
static const char *const re_llama3[] = {
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};
static const char *const re_qwen2[] = {
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};
static const char *const re_deepseek_coder[] = {
    "[\r\n]",
    "\\s?\\p{L}+",
    "\\s?\\p{P}+",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}",
    NULL,
};
static const char *const re_deepseek_llm[] = {
    "[\r\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"
    "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}-\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
    "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-"
    "\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-"
    "\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
    "\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-"
    "\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-"
    "\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-"
    "\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
    "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-"
    "\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}"
    "\\x{2183}-\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}-"
    "\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"
    "\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-"
    "\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
    NULL,
};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};
static const char *const re_falcon[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "[0-9][0-9][0-9]",
    NULL,
};
static const char *const re_bloom[] = {
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+",
    NULL,
};
static const char *const re_viking[] = {
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+",
    "\\p{N}",
    NULL,
};
/* llama.cpp writes "a letter but not a-z" as ((?=[\p{L}])([^a-z])); the class [^\P{L}a-z] says
 * the same without a repeated group, which would need backtracking stack per character. */
static const char *const re_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}a-z]*[^\\P{L}A-Z]+"
    "|[^\\r\\n\\p{L}\\p{N}]?[^\\P{L}a-z]+[^\\P{L}A-Z]*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

typedef struct {
    const char *name;           /* canonical name */
    const char *const *regexes; /* NULL-terminated */
    int ignore_merges;          /* look a whole piece up before merging */
    int add_bos;                /* llama.cpp's default for tokenizer.ggml.add_bos_token */
} pre_def;

enum { P_DEFAULT, P_GPT2, P_STARCODER, P_LLAMA3, P_QWEN2, P_DEEPSEEK_CODER, P_DEEPSEEK_LLM,
       P_DEEPSEEK3, P_FALCON, P_BLOOM, P_VIKING, P_TEKKEN, P_LLAMA3_PLAIN };

static const pre_def defs[] = {
    [P_DEFAULT] = {"default", re_default, 0, 0},
    [P_GPT2] = {"gpt-2", re_gpt2, 0, 0},
    [P_STARCODER] = {"starcoder", re_starcoder, 0, 0},
    [P_LLAMA3] = {"llama3", re_llama3, 1, 1},
    [P_QWEN2] = {"qwen2", re_qwen2, 0, 0},
    [P_DEEPSEEK_CODER] = {"deepseek-coder", re_deepseek_coder, 0, 0},
    [P_DEEPSEEK_LLM] = {"deepseek-llm", re_deepseek_llm, 0, 0},
    [P_DEEPSEEK3] = {"deepseek-v3", re_deepseek3, 0, 0},
    [P_FALCON] = {"falcon", re_falcon, 0, 0},
    [P_BLOOM] = {"bloom", re_bloom, 0, 0},
    [P_VIKING] = {"viking", re_viking, 0, 0},
    [P_TEKKEN] = {"tekken", re_tekken, 1, 1},
    [P_LLAMA3_PLAIN] = {"dbrx", re_llama3, 0, 0}, /* llama3's regex without its merge shortcut */
};

/* tokenizer.ggml.pre values as llama.cpp's loader maps them. */
static const struct { const char *pre; int def; } names[] = {
    {"default", P_DEFAULT},
    {"gpt-2", P_GPT2}, {"phi-2", P_GPT2}, {"mpt", P_GPT2}, {"olmo", P_GPT2}, {"jais", P_GPT2},
    {"jina-es", P_GPT2}, {"jina-de", P_GPT2}, {"jina-v1-en", P_GPT2}, {"jina-v2-es", P_GPT2},
    {"jina-v2-de", P_GPT2}, {"jina-v2-code", P_GPT2}, {"gigachat", P_GPT2}, {"roberta-bpe", P_GPT2},
    {"starcoder", P_STARCODER}, {"refact", P_STARCODER}, {"command-r", P_STARCODER},
    {"smollm", P_STARCODER}, {"codeshell", P_STARCODER}, {"exaone", P_STARCODER},
    {"minerva-7b", P_STARCODER},
    {"llama3", P_LLAMA3}, {"llama-v3", P_LLAMA3}, {"llama-bpe", P_LLAMA3}, {"falcon3", P_LLAMA3},
    {"dbrx", P_LLAMA3_PLAIN}, {"smaug-bpe", P_LLAMA3_PLAIN}, {"chatglm-bpe", P_LLAMA3_PLAIN},
    {"qwen2", P_QWEN2}, {"stablelm2", P_QWEN2}, {"megrez", P_QWEN2},
    {"deepseek-coder", P_DEEPSEEK_CODER},
    {"deepseek-llm", P_DEEPSEEK_LLM},
    {"deepseek-v3", P_DEEPSEEK3},
    {"falcon", P_FALCON},
    {"bloom", P_BLOOM}, {"poro-chat", P_BLOOM}, {"gpt3-finnish", P_BLOOM},
    {"viking", P_VIKING},
    {"tekken", P_TEKKEN},
};

struct sm_pretok {
    const pre_def *def;
    int n_re;
    pcre2_code *re[MAX_REGEXES];
};

static const pre_def *find_def(const char *name) {
    if (!name || !name[0]) return &defs[P_DEFAULT];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(names[i].pre, name)) return &defs[names[i].def];
    return NULL;
}

int sm_pretok_known(const char *name) { return find_def(name) != NULL; }

sm_pretok *sm_pretok_new(const char *name, sm_error *err) {
    const pre_def *def = find_def(name);
    if (!def) {
        sm_err(err, SM_EUNSUPPORTED, "unknown pre-tokenizer '%s'", name);
        return NULL;
    }
    sm_pretok *p = calloc(1, sizeof *p);
    if (!p) { sm_err(err, SM_ENOMEM, "out of memory"); return NULL; }
    p->def = def;
    for (const char *const *r = def->regexes; *r; r++) {
        int code;
        PCRE2_SIZE at;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)*r, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_DOLLAR_ENDONLY,
                                       &code, &at, NULL);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(code, msg, sizeof msg);
            sm_err(err, SM_EFORMAT, "pre-tokenizer '%s': regex %d does not compile at %zu: %s", def->name,
                   p->n_re, (size_t)at, (const char *)msg);
            sm_pretok_free(p);
            return NULL;
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT the interpreter runs it */
        p->re[p->n_re++] = re;
    }
    return p;
}

void sm_pretok_free(sm_pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n_re; i++) pcre2_code_free(p->re[i]);
    free(p);
}

const char *sm_pretok_name(const sm_pretok *p) { return p->def->name; }
int sm_pretok_ignore_merges(const sm_pretok *p) { return p->def->ignore_merges; }
int sm_pretok_add_bos(const sm_pretok *p) { return p->def->add_bos; }

/* ---- splitting ---- */

typedef struct {
    size_t *v;
    size_t n, cap;
} ends_vec;

static int push(ends_vec *e, size_t x) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        size_t *v = realloc(e->v, cap * sizeof *v);
        if (!v) return SM_ENOMEM;
        e->v = v;
        e->cap = cap;
    }
    e->v[e->n++] = x;
    return SM_OK;
}

typedef struct {
    pcre2_match_data *md;
    pcre2_match_context *mc; /* with a large JIT stack, made when the default one is too small */
    pcre2_jit_stack *js;
} matcher;

/* Splits piece [start, end) of text with re into its matches and the gaps between them. */
static int split_piece(const pcre2_code *re, matcher *m, const char *text, size_t start, size_t end,
                       ends_vec *out, sm_error *err) {
    PCRE2_SPTR s = (PCRE2_SPTR)(text + start);
    size_t n = end - start, pos = 0, last = 0;
    while (pos < n) {
        int rc = pcre2_match(re, s, n, pos, 0, m->md, m->mc);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !m->js) {
            m->js = pcre2_jit_stack_create(64 * 1024, 256 * 1024 * 1024, NULL);
            m->mc = pcre2_match_context_create(NULL);
            if (!m->js || !m->mc) return sm_err(err, SM_ENOMEM, "out of memory");
            pcre2_jit_stack_assign(m->mc, NULL, m->js);
            continue;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return sm_err(err, SM_EFORMAT, "pre-tokenizer regex failed at byte %zu: %s", start + pos,
                          (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match splits nothing: step over one character */
            pos = ms + 1;
            while (pos < n && (s[pos] & 0xC0) == 0x80) pos++;
            continue;
        }
        if ((ms > last && push(out, start + ms)) || push(out, start + me))
            return sm_err(err, SM_ENOMEM, "out of memory");
        last = pos = me;
    }
    if (last < n && push(out, end)) return sm_err(err, SM_ENOMEM, "out of memory");
    return SM_OK;
}

int sm_pretok_split(const sm_pretok *p, const char *text, size_t len, size_t **ends, size_t *n_pieces,
                    sm_error *err) {
    *ends = NULL;
    *n_pieces = 0;
    if (len == 0) return SM_OK;
    ends_vec cur = {0}, next = {0};
    matcher m = {0};
    int rc = SM_OK;
    m.md = pcre2_match_data_create(1, NULL);
    if (!m.md || push(&cur, len)) { rc = sm_err(err, SM_ENOMEM, "out of memory"); goto done; }
    for (int r = 0; r < p->n_re; r++) {
        next.n = 0;
        size_t start = 0;
        for (size_t i = 0; i < cur.n; i++) {
            if ((rc = split_piece(p->re[r], &m, text, start, cur.v[i], &next, err))) goto done;
            start = cur.v[i];
        }
        ends_vec t = cur;
        cur = next;
        next = t;
    }
    *ends = cur.v;
    *n_pieces = cur.n;
    cur.v = NULL;
done:
    free(cur.v);
    free(next.v);
    pcre2_match_data_free(m.md);
    pcre2_match_context_free(m.mc);
    pcre2_jit_stack_free(m.js);
    return rc;
}
