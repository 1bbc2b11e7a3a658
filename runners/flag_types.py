"""The command lines' value types (argparse `type=`): a bad value is one line naming what was expected."""

import argparse
import re
from typing import Callable


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


MAX_SEED = 2 ** 31 - 1  # trials and repeats add to it; every framework takes seeds below 2**32


def seed_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}, got {value}")
    return value


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from low to high."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value
    return parse


def duration(text: str) -> float:
    """Seconds from '90s', '30m', '2h' or a plain number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 30m or 2h, got {text!r}")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def word_list(text: str) -> tuple[str, ...]:
    """A tuple of the comma-separated words (at least one), e.g. 'en,pt' -> ('en', 'pt')."""
    words = tuple(w.strip() for w in text.split(",") if w.strip())
    if not words:
        raise argparse.ArgumentTypeError(f"expected one or more comma-separated values, e.g. en,pt, got {text!r}")
    return words


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def objective_names(text: str) -> str:
    """--objective: one score (val_accuracy, val_macro_f1, val_loss, or a family's own), or a score then costs
    (params, predict_ms, train_s), comma-separated: 'val_accuracy,params'. Returns the names, as given, joined."""
    from lyrics_cifar_search.runners.trials_table import COSTS, OBJECTIVES
    names = [w.strip() for w in str(text).split(",")]
    known = [*OBJECTIVES, *COSTS]
    for name in names:
        if name not in known and not name.startswith("val_"):
            raise argparse.ArgumentTypeError(f"unknown objective {name!r}: choose from {', '.join(known)}")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names an objective twice")
    if names[0] in COSTS:
        raise argparse.ArgumentTypeError(f"the first objective is what the tables rank by: name a score first "
                                         f"(e.g. val_accuracy,{names[0]})")
    return ",".join(names)
