#!/usr/bin/env python3
"""bench_collect_accuracy.py: how exactly `snipmeta collect` cuts Python, against CPython's ast.

Runs collect on a Python tree with no line bounds, parses every file it cut with the ast
module, and compares each FunctionDef / AsyncFunctionDef / ClassDef (start = first decorator,
end = end_lineno) with the snippet that starts on that line. A definition with no snippet is
"dropped as duplicate" when its whitespace-normalised code has an id that collect wrote
(collect keeps one copy of identical code), otherwise "wrong". Prints one JSON line.

Usage: bench/bench_collect_accuracy.py [SNIPMETA_BINARY] [TREE]
       (defaults: build/snipmeta, /usr/lib/python3.11)
"""
import ast
import collections
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/snipmeta"
    tree = sys.argv[2] if len(sys.argv) > 2 else "/usr/lib/python3.11"
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "all.jsonl")
        subprocess.run([binary, "collect", tree, "-o", out, "--min-lines", "1", "--max-lines", "100000", "-q"], check=True)
        snippets = collections.defaultdict(dict)
        ids = set()
        with open(out, encoding="utf-8") as f:
            for line in f:
                o = json.loads(line)
                ids.add(o["id"])
                if o["lang"] == "python":
                    snippets[o["path"]][o["lines"][0]] = (o["symbol"], o["lines"][1])
    counts = collections.Counter(wrong=0)
    wrong = []
    parent = os.path.dirname(os.path.abspath(tree.rstrip("/")))  # snippet paths start with the tree's name
    for path, got in snippets.items():
        try:
            with open(os.path.join(parent, path), encoding="utf-8") as f:
                src = f.read()
            module = ast.parse(src)
        except (SyntaxError, ValueError, OSError):
            counts["files_ast_cannot_parse"] += 1
            continue
        counts["files"] += 1
        lines = src.split("\n")
        for node in ast.walk(module):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            counts["definitions"] += 1
            mine = got.get(start)
            if mine == (node.name, node.end_lineno):
                counts["exact"] += 1
                continue
            code = " ".join("\n".join(lines[start - 1:node.end_lineno]).split())
            if mine is None and hashlib.sha256(code.encode()).hexdigest()[:16] in ids:
                counts["dropped_as_duplicate"] += 1
            else:
                counts["wrong"] += 1
                if len(wrong) < 10:
                    wrong.append([path, node.name, start, node.end_lineno, mine])
    print(json.dumps({"bench": "collect_accuracy", "lang": "python", "tree": tree, **counts, "wrong_examples": wrong}))
    return 1 if counts["wrong"] else 0


if __name__ == "__main__":
    sys.exit(main())
