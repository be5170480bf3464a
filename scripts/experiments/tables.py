#!/usr/bin/env python3
"""tables.py: the tables of scripts/experiments.sh, from OUT_DIR/results/*.json and OUT_DIR/logs.

Usage: tables.py OUT_DIR [--write-docs ROOT]

Writes OUT_DIR/tables.md. With --write-docs, also replaces the text between
<!-- experiments:begin --> and <!-- experiments:end --> in ROOT/docs/EVALUATION.md (every table)
and between <!-- model-card:begin --> and <!-- model-card:end --> in ROOT/models/README.md (the
shipped adapters' table), so the documents hold exactly what the last run measured.
A run that is missing (not run, or its part not asked for) shows as "-".
"""
import json
import os
import sys

TASKS = ["title", "description", "tags", "links"]


def load(out, name):
    p = os.path.join(out, "results", name + ".json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def log_events(out, name):
    p = os.path.join(out, "logs", name + ".jsonl")
    if not os.path.exists(p):
        return None
    ev = {}
    with open(p) as f:
        for line in f:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            ev.setdefault(e.get("event"), []).append(e)
    return ev


def metric(res, task, key):
    if not res or task not in res.get("tasks", {}):
        return None
    return res["tasks"][task].get(key)


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# The headline metrics of each task (key, column name).
HEAD = {
    "title": [("rouge_l", "ROUGE-L"), ("bleu4", "BLEU-4"), ("chrf", "chrF")],
    "description": [("rouge_l", "ROUGE-L"), ("bleu4", "BLEU-4"), ("chrf", "chrF")],
    "tags": [("precision", "P"), ("recall", "R"), ("f1", "F1"), ("f1_without_lang", "F1 w/o lang")],
    "links": [("validity", "valid"), ("precision", "P"), ("recall", "R"), ("f1", "F1")],
}


def per_task(out, task, systems):
    """One task's table: a row per system (label, result name or a task -> name function)."""
    rows = []
    for label, name in systems:
        res = load(out, name(task) if callable(name) else name)
        rows.append([label] + [fmt(metric(res, task, k)) for k, _ in HEAD[task]] + [fmt(metric(res, task, "check_pass"), 2)])
    return table(["system"] + [c for _, c in HEAD[task]] + ["check pass"], rows)


def summary(out, task, name):
    ev = log_events(out, name)
    if not ev:
        return {}
    cfg = (ev.get("config") or [{}])[0]
    s = (ev.get("summary") or [{}])[-1]
    return {"n_params": cfg.get("n_params"), "elapsed_s": s.get("elapsed_s"), "tokens": s.get("tokens"),
            "steps": s.get("steps"), "best_val": s.get("best_val"), "first_val": s.get("first_val"),
            "tokens_per_s": s.get("tokens_per_s")}


def size(out, name):
    p = os.path.join(out, "runs", name + ".gguf")
    return os.path.getsize(p) if os.path.exists(p) else None


def main():
    out = sys.argv[1]
    root = sys.argv[sys.argv.index("--write-docs") + 1] if "--write-docs" in sys.argv else None
    with open(os.path.join(out, "meta.json")) as f:
        meta = json.load(f)
    md = []
    md.append(f"Made by `scripts/experiments.sh` at commit `{meta['commit'][:12]}`"
              f"{' (with uncommitted changes)' if meta.get('dirty') else ''} on {meta['date']}, "
              f"seed {meta['seed']}, base `{meta['base']}` (sha256 `{meta['base_sha256'][:16]}`), "
              f"{meta['machine']}; {meta['jobs']} runs at a time, {meta['threads']} thread(s) each"
              f"{'; QUICK smoke run, not results' if meta.get('quick') else ''}.\n")
    md.append(f"LoRA recipe: `{meta['lora_recipe']}` (+ `--activated` unless marked standard). "
              f"Full fine-tune: `{meta['full_recipe']}`. Training length: {meta.get('loop', '-')}. "
              f"Test split: 239 snippets per task.\n")

    systems = [("heuristic baseline (e)", "baseline"), ("prompted base, no adapter", "base"),
               ("LoRA, activated (shipped)", lambda t: f"lora-{t}"), ("LoRA, standard", lambda t: f"lora-std-{t}"),
               ("full fine-tune", lambda t: f"full-{t}")]
    md.append("### (a, d, e) Every system on every task\n")
    for t in TASKS:
        md.append(f"**{t}**\n")
        md.append(per_task(out, t, systems) + "\n")

    # The targets of the issue, against what the shipped adapters reach.
    ship = {t: load(out, f"lora-{t}") for t in TASKS}
    base = load(out, "baseline")
    goals = [("title", "rouge_l", "title ROUGE-L", 0.40), ("description", "rouge_l", "description ROUGE-L", 0.30),
             ("tags", "f1", "tag F1", 0.60), ("links", "validity", "links valid", 1.0),
             ("links", "precision", "link precision", 0.80)]
    rows = []
    for t, k, label, goal in goals:
        got, b = metric(ship[t], t, k), metric(base, t, k)
        rows.append([label, fmt(goal, 2), fmt(got), fmt(b),
                     "-" if got is None else ("met" if got >= goal else "not met"),
                     "-" if got is None or b is None else ("yes" if got > b or (got == b == 1.0) else "NO")])
    card = ["### The shipped adapters against the targets\n",
            table(["metric", "target", "shipped LoRA", "baseline", "target", "beats baseline"], rows) + "\n"]
    md += card

    md.append("### (b) Training-set size, LoRA (activated) against full fine-tune\n")
    rows = []
    for n in ["100", "300", "1000", "all"]:
        row = [n if n != "all" else "all (1863)"]
        for t, k in [("title", "rouge_l"), ("tags", "f1")]:
            for kind in ["lora", "full"]:
                name = f"{kind}-{t}" + ("" if n == "all" else f"-n{n}")
                row.append(fmt(metric(load(out, name), t, k)))
        rows.append(row)
    md.append(table(["train snippets", "title ROUGE-L LoRA", "title ROUGE-L full", "tag F1 LoRA", "tag F1 full"], rows) + "\n")

    md.append("### (c) Rank and targets (title, activated)\n")
    rows = []
    for label, name in [("rank 4, attention + MLP", "lora-title-r4"), ("rank 8, attention + MLP (shipped)", "lora-title"),
                        ("rank 16, attention + MLP", "lora-title-r16"), ("rank 8, attention only", "lora-title-attn")]:
        res, s = load(out, name), summary(out, "title", name)
        rows.append([label, fmt(metric(res, "title", "rouge_l")), fmt(metric(res, "title", "bleu4")),
                     fmt(metric(res, "title", "chrf")), s.get("n_params", "-"), size(out, name) or "-",
                     fmt(s.get("best_val"))])
    md.append(table(["adapter", "ROUGE-L", "BLEU-4", "chrF", "trainable params", "file bytes", "best val loss"], rows) + "\n")

    md.append("### (f) Cost: LoRA against full fine-tune (the runs of (a))\n")
    rows = []
    for t in TASKS:
        for kind, name in [("LoRA activated", f"lora-{t}"), ("LoRA standard", f"lora-std-{t}"), ("full", f"full-{t}")]:
            s = summary(out, t, name)
            rows.append([t, kind, s.get("n_params", "-"), fmt(s.get("elapsed_s"), 0), s.get("steps", "-"),
                         fmt(s.get("tokens_per_s"), 0), size(out, name) or "-", fmt(s.get("first_val")), fmt(s.get("best_val"))])
    md.append(table(["task", "run", "trainable params", "train s", "steps", "tokens/s", "output bytes",
                     "val loss start", "best val loss"], rows) + "\n")

    text = "\n".join(md)
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write(text)
    if root:
        replace(os.path.join(root, "docs", "EVALUATION.md"), "experiments", text)
        replace(os.path.join(root, "models", "README.md"), "model-card", "\n".join(md[:2] + card))
    print(f"tables.py: wrote {os.path.join(out, 'tables.md')}" + (" and the docs" if root else ""), file=sys.stderr)


def replace(path, tag, text):
    begin, end = f"<!-- {tag}:begin -->", f"<!-- {tag}:end -->"
    with open(path) as f:
        doc = f.read()
    if begin not in doc or end not in doc:
        sys.exit(f"tables.py: {path} has no {begin} ... {end} section to replace")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(head + begin + "\n" + text + "\n" + end + tail)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
