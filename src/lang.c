/* lang.c: language detection by file name, shebang and content (see lang.h). */
#include "lang.h"

#include <string.h>
#include <strings.h>

static const char *const names[SM_LANG_COUNT] = {
    "none", "python", "c", "cpp", "go", "rust", "java", "javascript", "typescript",
    "php", "perl", "lua", "shell", "ruby",
};

const char *sm_lang_name(sm_lang lang) {
    return (lang > SM_LANG_NONE && lang < SM_LANG_COUNT) ? names[lang] : names[0];
}

static const struct { const char *ext; sm_lang lang; } extensions[] = {
    {"py", SM_LANG_PYTHON}, {"pyw", SM_LANG_PYTHON}, {"pyi", SM_LANG_PYTHON},
    {"c", SM_LANG_C}, {"h", SM_LANG_C},
    {"cc", SM_LANG_CPP}, {"cpp", SM_LANG_CPP}, {"cxx", SM_LANG_CPP}, {"c++", SM_LANG_CPP},
    {"hh", SM_LANG_CPP}, {"hpp", SM_LANG_CPP}, {"hxx", SM_LANG_CPP}, {"h++", SM_LANG_CPP},
    {"ipp", SM_LANG_CPP}, {"tcc", SM_LANG_CPP}, {"inl", SM_LANG_CPP},
    {"go", SM_LANG_GO},
    {"rs", SM_LANG_RUST},
    {"java", SM_LANG_JAVA},
    {"js", SM_LANG_JAVASCRIPT}, {"mjs", SM_LANG_JAVASCRIPT}, {"cjs", SM_LANG_JAVASCRIPT},
    {"jsx", SM_LANG_JAVASCRIPT},
    {"ts", SM_LANG_TYPESCRIPT}, {"tsx", SM_LANG_TYPESCRIPT}, {"mts", SM_LANG_TYPESCRIPT},
    {"cts", SM_LANG_TYPESCRIPT},
    {"php", SM_LANG_PHP}, {"phtml", SM_LANG_PHP}, {"php5", SM_LANG_PHP}, {"php7", SM_LANG_PHP},
    {"pl", SM_LANG_PERL}, {"pm", SM_LANG_PERL}, {"t", SM_LANG_PERL},
    {"lua", SM_LANG_LUA},
    {"sh", SM_LANG_SHELL}, {"bash", SM_LANG_SHELL}, {"ksh", SM_LANG_SHELL},
    {"rb", SM_LANG_RUBY}, {"rake", SM_LANG_RUBY}, {"gemspec", SM_LANG_RUBY}, {"ru", SM_LANG_RUBY},
};

static const struct { const char *name; sm_lang lang; } file_names[] = {
    {"Rakefile", SM_LANG_RUBY}, {"Gemfile", SM_LANG_RUBY}, {"Guardfile", SM_LANG_RUBY},
    {"Vagrantfile", SM_LANG_RUBY}, {"SConstruct", SM_LANG_PYTHON}, {"SConscript", SM_LANG_PYTHON},
    {".bashrc", SM_LANG_SHELL}, {".bash_profile", SM_LANG_SHELL}, {".profile", SM_LANG_SHELL},
    {"configure", SM_LANG_SHELL},
};

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

sm_lang sm_lang_from_name(const char *path) {
    const char *base = base_name(path);
    for (size_t i = 0; i < sizeof file_names / sizeof file_names[0]; i++)
        if (!strcmp(base, file_names[i].name)) return file_names[i].lang;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return SM_LANG_NONE;
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++)
        if (!strcasecmp(dot + 1, extensions[i].ext)) {
            /* .C and .H (upper case) are C++ by convention */
            if (extensions[i].lang == SM_LANG_C && (dot[1] == 'C' || dot[1] == 'H')) return SM_LANG_CPP;
            return extensions[i].lang;
        }
    return SM_LANG_NONE;
}

/* The interpreter a "#!" line names: "/usr/bin/env -S python3 -u" gives "python3". */
static sm_lang from_shebang(const char *head, size_t len) {
    if (len < 3 || head[0] != '#' || head[1] != '!') return SM_LANG_NONE;
    char line[256];
    size_t n = 0;
    for (size_t i = 2; i < len && head[i] != '\n' && n + 1 < sizeof line; i++) line[n++] = head[i];
    line[n] = 0;
    char *words[8];
    int n_words = 0;
    for (char *tok = strtok(line, " \t\r"); tok && n_words < 8; tok = strtok(NULL, " \t\r")) words[n_words++] = tok;
    if (!n_words) return SM_LANG_NONE;
    const char *prog = base_name(words[0]);
    for (int w = 1; !strcmp(prog, "env") && w < n_words; w++)
        if (words[w][0] != '-' && !strchr(words[w], '=')) prog = words[w];
    static const struct { const char *prefix; sm_lang lang; } interpreters[] = {
        {"python", SM_LANG_PYTHON}, {"pypy", SM_LANG_PYTHON}, {"perl", SM_LANG_PERL},
        {"ruby", SM_LANG_RUBY}, {"node", SM_LANG_JAVASCRIPT}, {"nodejs", SM_LANG_JAVASCRIPT},
        {"deno", SM_LANG_TYPESCRIPT}, {"ts-node", SM_LANG_TYPESCRIPT}, {"lua", SM_LANG_LUA},
        {"luajit", SM_LANG_LUA}, {"php", SM_LANG_PHP}, {"bash", SM_LANG_SHELL}, {"sh", SM_LANG_SHELL},
        {"dash", SM_LANG_SHELL}, {"ksh", SM_LANG_SHELL}, {"zsh", SM_LANG_SHELL}, {"ash", SM_LANG_SHELL},
    };
    for (size_t i = 0; i < sizeof interpreters / sizeof interpreters[0]; i++) {
        size_t k = strlen(interpreters[i].prefix);
        if (!strncmp(prog, interpreters[i].prefix, k) &&
            (prog[k] == 0 || (prog[k] >= '0' && prog[k] <= '9') || prog[k] == '.'))
            return interpreters[i].lang;
    }
    return SM_LANG_NONE;
}

static int is_word_char(char c) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* Does the text contain word at a word boundary? A light check, not a parse. */
static int has_word(const char *text, size_t len, const char *word) {
    size_t k = strlen(word);
    for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), word, k)); p++) {
        size_t end = (size_t)(p - text) + k;
        if ((p == text || !is_word_char(p[-1])) && (end >= len || !is_word_char(p[k]))) return 1;
    }
    return 0;
}

sm_lang sm_lang_detect(const char *path, const char *head, size_t head_len) {
    sm_lang lang = sm_lang_from_name(path);
    if (lang == SM_LANG_C) {
        const char *dot = strrchr(base_name(path), '.');
        if (dot && !strcmp(dot, ".h") &&
            (has_word(head, head_len, "namespace") || has_word(head, head_len, "template") ||
             memmem(head, head_len, "std::", 5) || memmem(head, head_len, "public:", 7) ||
             memmem(head, head_len, "private:", 8)))
            return SM_LANG_CPP;
        return lang;
    }
    if (lang != SM_LANG_NONE) return lang;
    lang = from_shebang(head, head_len);
    if (lang != SM_LANG_NONE) return lang;
    if (head_len >= 5 && !memcmp(head, "<?php", 5)) return SM_LANG_PHP;
    return SM_LANG_NONE;
}
