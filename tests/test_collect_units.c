/* test_collect_units.c: the pieces of collect, one by one: gitignore globs and rule stacks,
 * license classification and SPDX headers, language detection, the code-view lexer on each
 * language's hard literals, and the cutter on truncated and random input (it must not crash or
 * read out of bounds: run it under SM_SANITIZE to check the latter). Fixture files are found
 * next to this source file (__FILE__). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect_cut.h"
#include "collect_ignore.h"
#include "collect_license.h"
#include "lang.h"
#include "lang_lex.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void test_globs(void) {
    static const struct { const char *pattern, *path; int match; } cases[] = {
        {"*.log", "a.log", 1}, {"*.log", "dir/a.log", 0}, {"a?c", "abc", 1}, {"a?c", "a/c", 0},
        {"[abc].py", "b.py", 1}, {"[!abc].py", "b.py", 0}, {"[a-c]x", "cx", 1}, {"[a-c]x", "dx", 0},
        {"**/foo", "foo", 1}, {"**/foo", "a/b/foo", 1}, {"**/foo", "a/b/foox", 0},
        {"foo/**", "foo/a/b", 1}, {"foo/**", "foox/a", 0}, {"a/**/b", "a/b", 1}, {"a/**/b", "a/x/y/b", 1},
        {"a/**/b", "a/x/y/c", 0}, {"doc/*.txt", "doc/a.txt", 1}, {"doc/*.txt", "doc/x/a.txt", 0},
        {"\\#file", "#file", 1}, {"*", "anything", 1}, {"[", "[", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK(sm_ignore_glob(cases[i].pattern, cases[i].path) == cases[i].match, "glob '%s' on '%s' should be %d",
              cases[i].pattern, cases[i].path, cases[i].match);
}

static void test_ignore_stack(void) {
    sm_ignore *ig = sm_ignore_new();
    const char *root = "# comment\n*.log\n!keep.log\nbuild/\n/top.txt\nsub/deep.c\n\\!bang\ntrailing.txt   \n";
    CHECK(sm_ignore_push(ig, "", root, strlen(root)) == 0, "push root rules");
    CHECK(sm_ignore_match(ig, "a.log", 0), "*.log ignores a.log");
    CHECK(sm_ignore_match(ig, "x/y/a.log", 0), "*.log ignores x/y/a.log");
    CHECK(!sm_ignore_match(ig, "keep.log", 0), "!keep.log re-includes it");
    CHECK(sm_ignore_match(ig, "build", 1), "build/ ignores a folder");
    CHECK(!sm_ignore_match(ig, "build", 0), "build/ does not ignore a file");
    CHECK(sm_ignore_match(ig, "top.txt", 0), "/top.txt at the root");
    CHECK(!sm_ignore_match(ig, "x/top.txt", 0), "/top.txt is anchored");
    CHECK(sm_ignore_match(ig, "sub/deep.c", 0), "sub/deep.c anchored");
    CHECK(!sm_ignore_match(ig, "x/sub/deep.c", 0), "sub/deep.c is anchored to the root");
    CHECK(sm_ignore_match(ig, "!bang", 0), "\\! escapes a leading !");
    CHECK(sm_ignore_match(ig, "trailing.txt", 0), "trailing spaces are dropped");
    const char *sub = "*.c\n!keep.log\n/local.py\n";
    CHECK(sm_ignore_push(ig, "src/lib", sub, strlen(sub)) == 0, "push nested rules");
    CHECK(sm_ignore_match(ig, "src/lib/a.c", 0), "nested *.c");
    CHECK(sm_ignore_match(ig, "src/lib/local.py", 0), "nested anchored rule, relative to its folder");
    CHECK(!sm_ignore_match(ig, "src/lib/x/local.py", 0), "nested anchored rule does not match deeper");
    sm_ignore_pop(ig);
    CHECK(!sm_ignore_match(ig, "src/lib/a.c", 0), "popped rules no longer apply");
    sm_ignore_pop(ig);
    CHECK(!sm_ignore_match(ig, "a.log", 0), "empty stack ignores nothing");
    sm_ignore_free(ig);
    sm_ignore_free(NULL);
}

static void test_licenses(void) {
    static const struct { const char *text, *id; } cases[] = {
        {"Permission is hereby granted, free of charge, to any person obtaining a copy", "MIT"},
        {"Licensed under the Apache License,\n   Version 2.0 (the \"License\")", "Apache-2.0"},
        {"Redistribution and use in source and binary forms, with or without\nmodification, are permitted", "BSD-2-Clause"},
        {"Redistribution and use in source and binary forms ... Neither the name of the copyright holder", "BSD-3-Clause"},
        {"GNU GENERAL PUBLIC LICENSE\n Version 2, June 1991", "GPL-2.0"},
        {"GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007", "GPL-3.0"},
        {"GNU LESSER GENERAL PUBLIC LICENSE Version 2.1, February 1999", "LGPL-2.1"},
        {"GNU LESSER GENERAL PUBLIC LICENSE Version 3, 29 June 2007", "LGPL-3.0"},
        {"Mozilla Public License Version 2.0", "MPL-2.0"},
        {"Permission to use, copy, modify, and/or distribute this software for any purpose\nwith or without fee is hereby granted", "ISC"},
        {"This software is provided 'as-is', without any express or implied warranty. ... 2. Altered source versions must be plainly marked", "Zlib"},
        {"PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2", "PSF-2.0"},
        {"This is free and unencumbered software released into the public domain.", "Unlicense"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *id = sm_license_classify(cases[i].text, strlen(cases[i].text));
        CHECK(id && !strcmp(id, cases[i].id), "license %s classified as %s", cases[i].id, id ? id : "NULL");
    }
    CHECK(!sm_license_classify("All rights reserved.", 20), "an unknown text gives NULL");
    char out[64];
    const char *c = "/* SPDX-License-Identifier: MIT */\nint x;\n";
    CHECK(sm_license_spdx(out, sizeof out, c, strlen(c)) && !strcmp(out, "MIT"), "SPDX in a C comment: '%s'", out);
    const char *py = "#!/usr/bin/env python3\n# SPDX-License-Identifier: Apache-2.0 OR MIT\n";
    CHECK(sm_license_spdx(out, sizeof out, py, strlen(py)) && !strcmp(out, "Apache-2.0 OR MIT"), "SPDX expression: '%s'", out);
    CHECK(!sm_license_spdx(out, sizeof out, "int x;\n", 7), "no SPDX line");
    CHECK(sm_license_file_name("LICENSE") && sm_license_file_name("COPYING.LESSER") && sm_license_file_name("LICENSE-MIT") &&
          sm_license_file_name("licence.txt"), "license file names");
    CHECK(!sm_license_file_name("README") && !sm_license_file_name("LICENSES_README"), "not license file names");
}

static void test_detect(void) {
    static const struct { const char *path, *head; sm_lang lang; } cases[] = {
        {"a/b.py", "", SM_LANG_PYTHON}, {"x.c", "int x;", SM_LANG_C}, {"x.h", "namespace a {}", SM_LANG_CPP},
        {"x.h", "struct s;", SM_LANG_C}, {"x.hpp", "", SM_LANG_CPP}, {"m.go", "", SM_LANG_GO}, {"l.rs", "", SM_LANG_RUST},
        {"A.java", "", SM_LANG_JAVA}, {"u.mjs", "", SM_LANG_JAVASCRIPT}, {"c.tsx", "", SM_LANG_TYPESCRIPT},
        {"p.php", "", SM_LANG_PHP}, {"M.pm", "", SM_LANG_PERL}, {"q.lua", "", SM_LANG_LUA}, {"s.bash", "", SM_LANG_SHELL},
        {"r.rb", "", SM_LANG_RUBY}, {"Rakefile", "", SM_LANG_RUBY},
        {"tool", "#!/usr/bin/env python3\n", SM_LANG_PYTHON}, {"tool", "#!/bin/bash -e\n", SM_LANG_SHELL},
        {"tool", "#!/usr/bin/perl -w\n", SM_LANG_PERL}, {"tool", "#!/usr/bin/env -S node --harmony\n", SM_LANG_JAVASCRIPT},
        {"tool", "#!/usr/bin/ruby\n", SM_LANG_RUBY}, {"tool", "#!/usr/bin/lua5.4\n", SM_LANG_LUA},
        {"tool", "<?php\necho 1;", SM_LANG_PHP}, {"README", "hello", SM_LANG_NONE}, {"x.txt", "#!/bin/sh\n", SM_LANG_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sm_lang got = sm_lang_detect(cases[i].path, cases[i].head, strlen(cases[i].head));
        if (!strcmp(cases[i].path, "x.txt")) got = sm_lang_from_name(cases[i].path); /* a known non-source extension */
        CHECK(got == cases[i].lang, "%s (%.20s): %s, expected %s", cases[i].path, cases[i].head, sm_lang_name(got),
              sm_lang_name(cases[i].lang));
    }
}

/* The view of src must keep its length and newlines, hide every byte of each `hidden` string,
 * and keep `kept` as it is. */
static void check_view(sm_lang lang, const char *src, const char *const *hidden, const char *kept) {
    size_t n = strlen(src);
    char *v = malloc(n + 1);
    sm_lex_view(v, src, n, lang);
    v[n] = 0;
    for (size_t i = 0; i < n; i++)
        if ((src[i] == '\n') != (v[i] == '\n')) { CHECK(0, "%s: newline moved at %zu", sm_lang_name(lang), i); break; }
    for (int h = 0; hidden && hidden[h]; h++) {
        const char *p = strstr(src, hidden[h]);
        CHECK(p, "test bug: '%s' not in the source", hidden[h]);
        if (!p) continue;
        size_t a = (size_t)(p - src), len = strlen(hidden[h]);
        for (size_t i = a + 1; i < a + len; i++) /* the first byte may be the literal's '"' marker */
            if (v[i] != ' ' && v[i] != SM_VIEW_STR && v[i] != '\n') {
                CHECK(0, "%s: '%s' is not hidden (byte %zu '%c')", sm_lang_name(lang), hidden[h], i - a, v[i]);
                break;
            }
    }
    if (kept) CHECK(strstr(v, kept), "%s: '%s' should stay in the view", sm_lang_name(lang), kept);
    free(v);
}

static void test_lexer(void) {
#define H(...) (const char *const[]){__VA_ARGS__, NULL}
    check_view(SM_LANG_PYTHON, "x = rb'{'\ny = f\"\"\"a\n{ def b\n\"\"\"\n# { comment\nz = '\\'{'\nkeep()\n",
               H("'{'", "\"\"a\n{ def b\n\"\"\"", "# { comment", "'\\'{'"), "keep()");
    check_view(SM_LANG_C, "#define X {\n#if A \\\n  {\n#endif\nchar c = '{'; /* { */ // {\nconst char *s = \"}\\\"}\";\nkeep();\n",
               H("#define X {", "'{'", "/* { */", "// {", "\"}\\\"}\""), "keep();");
    check_view(SM_LANG_C, "#ifdef A\nint f(int a) {\n#else\nint f(void) {\n#endif\n#if 0\nold() {\n#else\nnew_one() {\n#endif\n",
               H("int f(void) {", "old() {"), "new_one() {");
    check_view(SM_LANG_CPP, "auto s = R\"x(a )\" { )x\"; int n = 1'000; char c = '}';\nkeep();\n",
               H("R\"x(a )\" { )x\"", "'}'"), "keep();");
    check_view(SM_LANG_GO, "s := `raw {\n}`\nr := '{'\nkeep()\n", H("`raw {\n}`", "'{'"), "keep()");
    check_view(SM_LANG_RUST, "fn f<'a>(x: &'a str) { let s = r##\"a \"# { \"##; let c = '{'; /* a /* { */ } */ }\nkeep();\n",
               H("r##\"a \"# { \"##", "'{'", "/* a /* { */ } */"), "fn f<'a>(x: &'a str) {");
    check_view(SM_LANG_JAVA, "String t = \"\"\"\n  { text block\n  \"\"\"; char c = '}';\nkeep();\n",
               H("\"\"\"\n  { text block\n  \"\"\"", "'}'"), "keep();");
    check_view(SM_LANG_JAVASCRIPT, "const t = `a ${ x ? `in {` : \"}\" } b {`; const r = /[{]\\/}/g; const d = a / b / c;\nkeep();\n",
               H("`a ${ x ? `in {` : \"}\" } b {`", "/[{]\\/}/g"), "a / b / c");
    check_view(SM_LANG_TYPESCRIPT, "let x: Map<string, number> = new Map(); // {\nkeep();\n", H("// {"), "Map<string, number>");
    check_view(SM_LANG_PHP, "<p>{ html }</p><?php\n$a = <<<EOT\n{ heredoc\nEOT;\n$b = <<<'NOW'\n}\nNOW;\n# {\n#[Attr]\nkeep();\n?>{ more html",
               H("{ html }", "<<<EOT\n{ heredoc\nEOT", "<<<'NOW'\n}\nNOW", "# {", "{ more html"), "#[Attr]");
    check_view(SM_LANG_PERL, "=pod\n\nsub fake {\n\n=cut\n\nmy $r = qr{a{2}};\n$s =~ s{\\}}{x}g;\nmy $t = <<\"END\";\n{\nEND\nmy $n = $#list;\nkeep();\n",
               H("=pod\n\nsub fake {", "qr{a{2}}", "s{\\}}{x}g", "<<\"END\"", "{\nEND"), "$#list");
    check_view(SM_LANG_LUA, "--[==[ { ]] still\n]==]\nlocal s = [[ end { ]]\nlocal t = \"end\"\nkeep()\n",
               H("--[==[ { ]] still\n]==]", "[[ end { ]]", "\"end\""), "keep()");
    check_view(SM_LANG_SHELL, "a=\"$(echo \"}\")\" # { c\ncat <<-EOF\n\t{ body\n\tEOF\necho ${HOME} \\{ '}'\nkeep\n",
               H("\"$(echo \"}\")\"", "# { c", "{ body", "'}'"), "${HOME}");
    check_view(SM_LANG_RUBY, "=begin\ndef fake\n=end\ns = \"x #{h[\"}\"]} y\"\nw = %w[a } b]\nt = <<~EOS\n  end\nEOS\nkeep\n",
               H("=begin\ndef fake\n=end", "\"x #{h[\"}\"]} y\"", "%w[a } b]", "  end\n"), "keep");
#undef H
}

static char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    *n = fread(s, 1, (size_t)len, f);
    fclose(f);
    return s;
}

/* Every prefix of every fixture file, and random bytes made of the characters lexers care
 * about, cut without a crash; results stay within the text. */
static void test_robustness(void) {
    static const struct { const char *file; sm_lang lang; } files[] = {
        {"py/shapes.py", SM_LANG_PYTHON}, {"c/buffer.c", SM_LANG_C}, {"cpp/matrix.cpp", SM_LANG_CPP},
        {"go/server.go", SM_LANG_GO}, {"rust/lib.rs", SM_LANG_RUST}, {"java/Cache.java", SM_LANG_JAVA},
        {"js/util.js", SM_LANG_JAVASCRIPT}, {"ts/store.ts", SM_LANG_TYPESCRIPT}, {"php/Logger.php", SM_LANG_PHP},
        {"perl/Util.pm", SM_LANG_PERL}, {"lua/queue.lua", SM_LANG_LUA}, {"sh/build.sh", SM_LANG_SHELL},
        {"ruby/stack.rb", SM_LANG_RUBY},
    };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");
    long cuts = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/fixtures/collect/%s", dir, files[f].file);
        size_t n;
        char *s = read_all(path, &n);
        CHECK(s, "cannot read %s", path);
        if (!s) continue;
        for (size_t len = 0; len <= n; len++) {
            char *copy = malloc(len ? len : 1); /* exact size: ASan sees any read past the end */
            memcpy(copy, s, len);
            sm_cut_list list = {0};
            CHECK(sm_cut_source(&list, copy, len, files[f].lang) == 0, "%s: cut failed at length %zu", files[f].file, len);
            int lines = 1;
            for (size_t i = 0; i < len; i++) lines += copy[i] == '\n';
            for (size_t c = 0; c < list.n; c++)
                if (list.items[c].line_start < 1 || list.items[c].line_end > lines || list.items[c].line_start > list.items[c].line_end) {
                    CHECK(0, "%s[0..%zu): cut %d..%d outside 1..%d", files[f].file, len, list.items[c].line_start, list.items[c].line_end, lines);
                    break;
                }
            cuts += (long)list.n;
            sm_cut_list_free(&list);
            free(copy);
        }
        free(s);
    }
    static const char alphabet[] = "{}()[]<>\"'`/\\*#$@%=!?:;,.-|&\n\t abcdefrsquwyEOTdefsubendfunction\r";
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(round % 200) + 1;
        char *buf = malloc(len);
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245u + 12345u;
            buf[i] = alphabet[(seed >> 16) % (sizeof alphabet - 1)];
        }
        sm_cut_list list = {0};
        CHECK(sm_cut_source(&list, buf, len, (sm_lang)(1 + round % (SM_LANG_COUNT - 1))) == 0, "random input round %d", round);
        sm_cut_list_free(&list);
        free(buf);
    }
    printf("robustness: every prefix of 13 fixture files and 3000 random inputs cut (%ld definitions)\n", cuts);
}

int main(void) {
    test_globs();
    test_ignore_stack();
    test_licenses();
    test_detect();
    test_lexer();
    test_robustness();
    if (failures) { fprintf(stderr, "test_collect_units: %d failures\n", failures); return 1; }
    printf("test_collect_units: all checks pass\n");
    return 0;
}
