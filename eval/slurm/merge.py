#!/usr/bin/python3
"""Joins the shard files of a Slurm job array (eval/slurm/batch_array.sbatch) into one report.

    python3 eval/slurm/merge.py OUT N MANIFEST.tsv --out results.jsonl

Reads OUT.0.jsonl ... OUT.(N-1).jsonl and writes one line per manifest item, in manifest order:
what `wavllm batch` on one machine writes. Every item must be answered exactly once in the
shard it belongs to (`wavllm batch --shard`: items i, i+N, ...). A missing shard file, a
missing or repeated id, or an id in the wrong shard is an error naming it (exit 1), and
nothing is written. Failed items keep their "error" lines (exit status 1 after writing).
"""
import argparse
import csv
import json
import os
import sys


def manifest_ids(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or "id" not in rows[0]:
        raise SystemExit(f"merge: {path}: no header row with an id column")
    return [r["id"] for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prefix", help="OUT as given to batch_array.sbatch")
    ap.add_argument("shards", type=int, help="N, the array's task count")
    ap.add_argument("manifest")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.shards < 1:
        raise SystemExit("merge: the shard count must be at least 1")
    ids = manifest_ids(a.manifest)
    shard_of = {item: i % a.shards for i, item in enumerate(ids)}
    lines, problems = {}, []
    for s in range(a.shards):
        path = f"{a.prefix}.{s}.jsonl"
        if not os.path.isfile(path):
            problems.append(f"{path}: missing (did task {s} run?)")
            continue
        with open(path, encoding="utf-8") as f:
            for n, text in enumerate(f, 1):
                try:
                    line = json.loads(text)
                    item = line["id"]
                except (ValueError, KeyError, TypeError):
                    problems.append(f"{path}:{n}: not a wavllm batch line")
                    continue
                if item not in shard_of:
                    problems.append(f"{path}:{n}: id {item!r} is not in {a.manifest}")
                elif shard_of[item] != s:
                    problems.append(f"{path}:{n}: id {item!r} belongs to shard {shard_of[item]}")
                elif item in lines:
                    problems.append(f"{path}:{n}: id {item!r} answered twice")
                else:
                    lines[item] = (line, text if text.endswith("\n") else text + "\n")
    missing = [i for i in ids if i not in lines]
    if missing:
        problems.append(f"{len(missing)} items unanswered: {', '.join(missing[:10])}")
    if problems:
        print("merge: " + "\nmerge: ".join(problems), file=sys.stderr)
        return 1
    if os.path.exists(a.out):
        raise SystemExit(f"merge: {a.out} exists; choose another --out")
    with open(a.out, "w", encoding="utf-8") as f:
        for i in ids:
            f.write(lines[i][1])  # the line as the shard wrote it
    failed = sum("error" in lines[i][0] for i in ids)
    print(f"merge: {len(ids)} items from {a.shards} shards into {a.out}; {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
