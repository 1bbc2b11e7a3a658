#!/usr/bin/env python
"""Soak test: kill -9 a search at random moments, resume, and check nothing is lost.

    python bench/kill_soak.py [--kills 20] [--family lyrics_lstm] [--trials 12]

Each round starts the same search, kills it after a random delay (start-up,
mid-trial, mid-write of trials.csv or best/ all happen), and checks that
trials.csv parses with each trial once and that best/ loads and holds the best
finished trial. The last round runs to the end, which must reach --max-trials.
Prints kills survived, trials lost and invariant failures.
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from lyrics_cifar_search.runners.best_model import load_best
from lyrics_cifar_search.study_data.lyrics_demo import make_demo_table


def check(res, family):
    t = pd.read_csv(res / family / "trials.csv")
    problems = []
    if not t["trial_id"].is_unique:
        problems.append("a trial appears twice")
    done = t[t["status"] == "COMPLETE"]
    if len(done):
        meta = load_best(family, res).meta
        if abs(meta["metrics"]["val_accuracy"] - done["val_accuracy"].max()) > 1e-12:
            problems.append(f"best/ holds {meta['metrics']['val_accuracy']}, best finished is {done['val_accuracy'].max()}")
    return t, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--family", default="lyrics_lstm")
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_demo_table(tmp / "data.csv", n_rows=400, seed=1)
        res = tmp / "results"
        cmd = [sys.executable, str(ROOT / "runners" / "search.py"), args.family, "--data", str(data),
               "--results-dir", str(res), "--max-trials", str(args.trials), "--epochs", "1",
               "--sample-fraction", "1", "--seq-len", "30", "--vocab-size", "300"]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        kills, failures, seen = 0, [], {}
        while kills < args.kills:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            time.sleep(rng.uniform(4, 14))
            if p.poll() is not None:
                break  # finished before the kill
            p.kill()
            p.wait()
            kills += 1
            if (res / args.family / "trials.csv").exists():
                t, problems = check(res, args.family)
                failures += problems
                for _, r in t[t["status"] == "COMPLETE"].iterrows():
                    seen.setdefault(str(r["trial_id"]), r["val_accuracy"])
            print(f"kill {kills}: {len(seen)} finished trials on record, {len(failures)} invariant failures",
                  flush=True)
        final = subprocess.run(cmd, capture_output=True, text=True, env=env)
        t, problems = check(res, args.family)
        failures += problems
        done = {str(r["trial_id"]): r["val_accuracy"] for _, r in t[t["status"] == "COMPLETE"].iterrows()}
        lost = [tid for tid, acc in seen.items() if done.get(tid) != acc]
        print(f"\nkills survived: {kills}; final exit code {final.returncode}; trials on record {len(t)} "
              f"(--max-trials {args.trials}); finished trials lost: {len(lost)}; invariant failures: {len(failures)}")
        for f in failures:
            print(f"  {f}")
        return 0 if not lost and not failures and len(t) == args.trials and final.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
