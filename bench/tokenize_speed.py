#!/usr/bin/env python
"""Preparing the full-size lyrics table: cold (tokenising) and from the cache.

    python bench/tokenize_speed.py [--rows 290000]

Builds a table of --rows rows by repeating the real 900-row Kaggle subset in
../shared (the generated demo table if absent), then times lyrics.load with
sample fraction 1 into an empty cache, and again from the cache.
"""

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]

from lyrics_cifar_search.study_data import lyrics
from lyrics_cifar_search.study_data.lyrics_demo import make_demo_table

REAL = ROOT.parent / "shared" / "data" / "lyrics" / "mll-train-subset-en-900.tsv"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=290000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = pd.read_csv(REAL, sep="\t") if REAL.exists() else pd.read_csv(make_demo_table(tmp / "d.csv"))
        big = pd.concat([base] * (args.rows // len(base) + 1)).head(args.rows)
        path = tmp / "big.csv"
        big.to_csv(path, index=False)
        print(f"{len(big)} rows, {path.stat().st_size / 1e6:.0f} MB")
        start = time.perf_counter()
        d = lyrics.load(path, cache_dir=tmp / "cache", sample_fraction=1.0)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        lyrics.load(path, cache_dir=tmp / "cache", sample_fraction=1.0)
        warm = time.perf_counter() - start
        print(f"cold (read, clean, split, tokenise, cache): {cold:.1f} s; from the cache: {warm:.2f} s; "
              f"vocabulary {d.encoder.vocab_size}")


if __name__ == "__main__":
    main()
