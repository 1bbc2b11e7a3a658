#!/usr/bin/env python
"""The earlier study's text pipeline against the suite's former one, on the same table: tokens a song, the
share of songs that tokenise differently, and each pipeline's baseline (trial 0) of lyrics_tfidf_logreg and
lyrics_lstm, validation and test accuracy.

    python bench/text_pipeline.py [--data FILE]   (default: the real 900-row subset beside the checkout)
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lyrics_cifar_search.study_data import lyrics

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "lyrics" / "mll-train-subset-en-900.tsv"
ap = argparse.ArgumentParser()
ap.add_argument("--data", default=str(REAL))
args = ap.parse_args()

with tempfile.TemporaryDirectory() as tmp:
    data = {p: lyrics.load(args.data, cache_dir=tmp, text_pipeline=p) for p in ("study", "suite")}
    texts = {p: d.train.texts + d.val.texts + d.test.texts for p, d in data.items()}
    differ = np.mean([a != b for a, b in zip(texts["study"], texts["suite"])])
    print(f"{args.data}: tokens a song, study {np.mean([len(t.split()) for t in texts['study']]):.1f}, suite "
          f"{np.mean([len(t.split()) for t in texts['suite']]):.1f}; songs tokenised differently {differ:.1%}")
    for family, extra in (("lyrics_tfidf_logreg", []), ("lyrics_lstm", ["--epochs", "20"])):
        for pipeline in ("study", "suite"):
            out = Path(tmp) / pipeline
            subprocess.run([sys.executable, "-m", "lyrics_cifar_search.runners.search",
                            family, "--data", args.data, "--results-dir",
                            str(out), "--max-trials", "1", "--text-pipeline", pipeline, *extra], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            from lyrics_cifar_search.runners.best_model import load_best
            model = load_best(family, out)
            scores, _, _ = model.score_test(out)
            print(f"{family} baseline, {pipeline} pipeline: val {model.meta['metrics']['val_accuracy']:.4f}, "
                  f"test {scores['test_accuracy']:.4f}", flush=True)
