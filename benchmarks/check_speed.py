"""Wall-clock speed of `compose check --all` and `compose new-model --dry-run`.

    python benchmarks/check_speed.py                       # this checkout, 7 runs each
    python benchmarks/check_speed.py --runs 11 --baseline /tmp/base

Each command runs in a fresh `python -m compose` process with the tree under test
as its working directory, so that tree's `compose` package is the one imported.
With `--baseline DIR` (another checkout, e.g. a `git worktree add` of an older
commit) the two trees are measured interleaved, run by run, so load from other
processes on the machine hits both about equally. One discarded warm-up run per
tree and command fills the page cache first.

Prints one row per tree and command: median and minimum seconds over the runs,
and, with a baseline, the ratio of the medians (this tree / baseline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMANDS = {
    "check --all": ["check", "--all"],
    "new-model --dry-run": ["new-model", "qwen2.5-7b", "--cloud", "gke", "--gpu", "l4", "--dry-run"],
}


def default_crd_dir(tree: Path) -> Path | None:
    env = os.environ.get("VLLM_COMPOSE_CRD_DIR")
    for candidate in (Path(env) if env else None, tree.parent / "shared" / "crds", HERE.parent / "shared" / "crds"):
        if candidate is not None and candidate.is_dir():
            return candidate
    return None


def argv_for(name: str, tree: Path, crd_dir: Path | None) -> list[str]:
    args = [sys.executable, "-m", "compose", *COMMANDS[name], "--repo", str(tree)]
    if name.startswith("check") and crd_dir is not None:
        args += ["--crd-dir", str(crd_dir)]
    return args


def time_once(argv: list[str], tree: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=tree, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {tree} (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per tree and command (default 7)")
    parser.add_argument("--repo", type=Path, default=HERE, help="the checkout to measure (default: this one)")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure interleaved with --repo")
    parser.add_argument("--only", choices=sorted(COMMANDS), action="append", help="measure only this command")
    args = parser.parse_args()
    trees = {"this": args.repo.resolve()}
    if args.baseline:
        trees["baseline"] = args.baseline.resolve()
    names = args.only or list(COMMANDS)
    crds = {label: default_crd_dir(tree) for label, tree in trees.items()}
    times: dict[tuple[str, str], list[float]] = {(label, name): [] for label in trees for name in names}
    for label, tree in trees.items():  # warm-up
        for name in names:
            time_once(argv_for(name, tree, crds[label]), tree)
    for _ in range(args.runs):
        for name in names:
            for label, tree in trees.items():
                times[(label, name)].append(time_once(argv_for(name, tree, crds[label]), tree))
    rows = [("command", "tree", "runs", "median s", "min s", "ratio")]
    for name in names:
        base = statistics.median(times[("baseline", name)]) if args.baseline else None
        for label, tree in trees.items():
            t = times[(label, name)]
            ratio = f"{statistics.median(t) / base:.3f}" if base and label == "this" else ""
            rows.append((name, f"{label} ({tree.name})", str(len(t)), f"{statistics.median(t):.3f}", f"{min(t):.3f}", ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return 0


if __name__ == "__main__":
    sys.exit(main())
