#!/usr/bin/env python
"""Demo: reload every saved best model and use it; nothing is refitted.

    python analysis/demo.py                                   # every best model scored on its held-out test set
    python analysis/demo.py --lyrics "I walk alone tonight"   # top-3 genres from the best lyrics model
    python analysis/demo.py --lyrics "..." --artist "Queen"   # ... from the best lyrics+artist model
    python analysis/demo.py --image cat.jpg [--family cifar_cnn]

Each model uses what was saved with it: tokenizer, artist vocabulary, block
assignment and label names. (The earlier study refitted its tokenizer on the
test set and redrew its classes without a seed, so its demo scores were not on
its own test set.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd

from lyrics_cifar_search.analysis import compare
from lyrics_cifar_search.runners import trials_table
from lyrics_cifar_search.runners.best_model import BestModel, load_best
from lyrics_cifar_search.search_spaces import get_family
from lyrics_cifar_search.suite_common import UserError, console, error_line
from lyrics_cifar_search.suite_common.process import tune_this_process


def best_models(results_dir: str | Path) -> list[tuple[Path, BestModel]]:
    """(folder, loaded best model) for every search with a best/ folder."""
    out = []
    for folder, family in compare.search_folders(results_dir):
        try:
            out.append((folder, load_best(family.name, results_dir, with_artist=folder.name.endswith("_artist"))))
        except UserError as e:
            compare.problem(str(e))
    if not out:
        raise UserError(f"no saved best model in {results_dir}/: run e.g. `python runners/search.py lyrics_lstm` first")
    return out


def score_all(results_dir: str | Path) -> pd.DataFrame:
    """One row per saved best model: its search, trial, the objective that chose it and its value, and its
    scores on the held-out test rows (accuracy and macro-F1, or reconstruction MSE)."""
    rows = []
    for folder, model in best_models(results_dir):
        try:
            scores, y, _ = model.score_test(results_dir)
        except UserError as e:
            compare.problem(str(e))
            continue
        objective = trials_table.folder_objective(folder, get_family(model.family))[0]  # what chose this model
        rows.append({"search": folder.name, "trial": model.meta["trial_id"], "objective": objective,
                     "val": model.meta["metrics"].get(objective),
                     **scores, "test_rows": len(y), "data": model.meta["data"]["source"]})
    table = pd.DataFrame(rows)
    order = ["search", "trial", "objective", "val", "test_accuracy", "test_macro_f1", "test_reconstruction_mse",
             "test_rows", "data"]
    return table[[c for c in order if c in table]]


def choose(results_dir: str | Path, family: Optional[str], want: Callable[[BestModel], bool],
           with_artist: bool = False) -> BestModel:
    """The named family's model (its own error if it cannot be loaded), or the best by validation
    accuracy among those that fit `want`."""
    if family:
        model = load_best(family, results_dir, with_artist=with_artist)
        if not want(model):
            raise UserError(f"{family}'s best model does not take this input")
        return model
    models = [m for _, m in best_models(results_dir) if want(m)]
    if not models:
        raise UserError("no saved model fits this input: run a search of that task first")
    return max(models, key=lambda m: m.meta["metrics"].get("val_accuracy", -1))


def top3(model: BestModel, probs: np.ndarray) -> list[tuple[str, float]]:
    order = np.argsort(probs)[::-1][:3]
    return [(model.label_names[i], float(probs[i])) for i in order]


def read_image(path: str | Path) -> np.ndarray:
    from PIL import Image  # Pillow: only for image files
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((32, 32)), dtype="uint8")
    except FileNotFoundError:
        raise UserError(f"image not found: {path}") from None
    except Exception as e:
        raise UserError(f"cannot read image {path} ({type(e).__name__}): pass a JPEG or PNG") from None


KNOWN_WORDS_WARNING = 0.5  # below this share of known words, the demo warns that its answer says little


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results-dir", default="results")
    console.add_flags(ap)
    ap.add_argument("--lyrics", help="raw lyrics to classify")
    ap.add_argument("--artist", help="the artist, for a lyrics+artist model")
    ap.add_argument("--image", help="an image file to classify")
    ap.add_argument("--family", help="use this family's best model (default: the best of the task)")
    args = ap.parse_args(argv)
    console.show(verbose=args.verbose, quiet=args.quiet)
    try:
        if args.lyrics is not None:
            with_artist = args.artist is not None
            model = choose(args.results_dir, args.family,
                           lambda m: m.meta["inputs"] != "images" and bool(m.meta.get("with_artist")) == with_artist,
                           with_artist)
            probs = model.predict_proba([args.lyrics], [args.artist] if with_artist else None)[0]
            print(f"{model.family} ({model.meta['variant']}, trial {model.meta['trial_id']}):")
            for genre, p in top3(model, probs):
                print(f"  {genre:<20} {p:.3f}")
            known, total = model.known_words(args.lyrics)
            print(f"  known words: {known} of {total} ({known / total if total else 0:.0%}) are in the model's "
                  "vocabulary")
            if not total or known / total < KNOWN_WORDS_WARNING:
                print("warning: most of these lyrics are words the model never saw in training: its answer "
                      "leans on the few it knows, or on how frequent each genre was", file=sys.stderr)
        elif args.image is not None:
            image = read_image(args.image)
            model = choose(args.results_dir, args.family,
                           lambda m: m.meta["inputs"] == "images" and not m.reconstructs_input)
            probs = model.predict_proba(image)[0]
            print(f"{model.family} ({model.meta['variant']}: {', '.join(model.label_names)}):")
            for name, p in top3(model, probs):
                print(f"  {name:<20} {p:.3f}")
        else:
            table = score_all(args.results_dir)
            print(table.to_string(index=False))
    except UserError as e:
        print(error_line(e), file=sys.stderr)
        return 2
    return 0


def entry_point() -> None:
    """`python analysis/demo.py` and its console script."""
    tune_this_process()  # allocator and TensorFlow settings, before any framework starts
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
