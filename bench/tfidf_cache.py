#!/usr/bin/env python
"""A TF-IDF + logistic regression search with the feature cache vs re-vectorising in every trial.

    python bench/tfidf_cache.py [--trials 50] [--data FILE]

Both runs make the same Optuna proposals (same seed, same sampler); the only
difference is whether the fitted vectoriser and its matrices are reused.
Prints both wall times and their ratio.
"""

import argparse
import tempfile
import time

import optuna


from lyrics_cifar_search.runners import optuna_engine
from lyrics_cifar_search.runners.prepare import prepare_lyrics
from lyrics_cifar_search.runners.search import build_parser, data_options
from lyrics_cifar_search.search_spaces import get_family

family = get_family("lyrics_tfidf_logreg")


class NoCache(optuna_engine.FeatureCache):
    def get(self, params):
        self.entries.clear()
        return super().get(params)


def search(prepared, trials, cache_cls):
    cache = cache_cls(family, prepared.x_train, prepared.x_val, prepared.spec)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.enqueue_trial(family.defaults)
    start = time.perf_counter()
    study.optimize(lambda t: optuna_engine.train(family, family.suggest(t), prepared, cache, 0)[1]["val_accuracy"],
                   n_trials=trials)
    return time.perf_counter() - start, cache.misses


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--data")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["lyrics_tfidf_logreg", "--results-dir", tmp, "--sample-fraction", "1"]
        prepared = prepare_lyrics(family, data_options(build_parser().parse_args(argv + (["--data", args.data] if args.data else []))))
    cached, fits = search(prepared, args.trials, optuna_engine.FeatureCache)
    plain, _ = search(prepared, args.trials, NoCache)
    print(f"{args.trials} trials on {len(prepared.y_train)} training texts")
    print(f"with the vectoriser cache: {cached:.2f} s ({fits} vectoriser fits)")
    print(f"re-vectorising every trial: {plain:.2f} s ({args.trials} fits)")
    print(f"speed-up: {plain / cached:.2f}x")


if __name__ == "__main__":
    main()
