#!/usr/bin/env python3
"""The study's tables from its run folders (standard library only).

    python3 examples/study/aggregate.py runs/study [--split val|test]

Each run folder holds eval.json (redi_quickstart: the run's config, its judge report against
the split it was run with) and, for the final stage, judge_test.json (redi_judge eval --ref
test). Runs named NAME_sK are seeds of one configuration NAME: the table gives mean +- sample
std over the seeds. Output: Markdown on stdout.
"""
import json
import math
import os
import re
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def judge_of(run_dir, split):
    """The judge report of a run for a split, or None."""
    if split == "test" and os.path.exists(os.path.join(run_dir, "judge_test.json")):
        return load(os.path.join(run_dir, "judge_test.json"))
    ev = os.path.join(run_dir, "eval.json")
    if not os.path.exists(ev):
        return None
    e = load(ev)
    if e.get("eval_split") != split or "judge" not in e:
        return None
    return e["judge"]


def mean_std(v):
    m = sum(v) / len(v)
    s = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else float("nan")
    return m, s


def fmt(v, digits=1):
    m, s = mean_std(v)
    if len(v) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    split = "test" if "--split" in sys.argv and sys.argv[sys.argv.index("--split") + 1] == "test" else None
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    root = args[0]
    groups = {}
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.isdir(d) or not os.path.exists(os.path.join(d, "eval.json")):
            continue
        m = re.fullmatch(r"(.*)_s(\d+)", name)
        key = m.group(1) if m else name
        groups.setdefault(key, []).append(d)
    for sp in ([split] if split else ["val", "test"]):
        rows = []
        for key, dirs in groups.items():
            reps = [judge_of(d, sp) for d in dirs]
            reps = [r for r in reps if r]
            if not reps:
                continue
            e = load(os.path.join(dirs[0], "eval.json"))
            cov = [r["coverage"] for r in reps]
            # class accuracy only means something for class-conditional runs (unconditional
            # samples carry the label 0 in their npz)
            acc = [r["class_accuracy"] for r in reps if e["conditional"] and r.get("class_accuracy") is not None]

            rows.append((key, len(reps), e, fmt([r["fd"] for r in reps]), fmt([r["precision"] for r in reps], 3),
                         fmt([r["recall"] for r in reps], 3), fmt(cov, 3), fmt(acc, 3) if acc else "-"))
        if not rows:
            continue
        print(f"\n### judge, reference = {sp} split\n")
        print("| run | seeds | variant | cond. | r | grid | guidance (cfg, rg) | judge FD | precision | recall | coverage | class acc. |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for key, n, e, fd, p, rc, cov, acc in rows:
            g = e.get("guidance", "auto")
            print(f"| {key} | {n} | {e['variant']} | {'yes' if e['conditional'] else 'no'} | {e['r']} | "
                  f"{e.get('feature_grid', '-') if e['r'] > 0 else '-'} | {g} ({e.get('cfg_scale')}, {e.get('rg_scale')}) | {fd} | {p} | {rc} | {cov} | {acc} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
