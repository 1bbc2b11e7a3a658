"""The statistics behind the tables: a proportion's 95 % Wilson interval, the majority-class reference and the
exact McNemar test on paired test predictions (SciPy, imported when one is computed)."""

from typing import Any, Optional

import numpy as np


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if not n:
        return np.nan, np.nan
    from scipy.stats import binomtest  # SciPy: only for the intervals
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return float(ci.low), float(ci.high)


def majority_reference(meta: dict[str, Any], test_labels: Optional[np.ndarray] = None,
                       test_predictions: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Always predicting the training split's most frequent class: its validation and test accuracy and
    macro-F1, and the one-sided exact McNemar p-value of the model beating it on the same test rows."""
    counts = meta.get("data", {}).get("class_counts")
    if not counts:
        return {}
    from scipy.stats import binomtest  # SciPy: only for the intervals
    majority, n_classes = int(np.argmax(counts["train"])), len(counts["train"])
    ref = {"majority_class": meta["label_names"][majority]}
    for split in ("val", "test"):
        n, n_major = sum(counts[split]), counts[split][majority]
        ref[f"majority_{split}_accuracy"] = n_major / n if n else np.nan
        # the constant predictor's F1 is 2·n_major / (n + n_major) for its class, 0 for the others
        ref[f"majority_{split}_macro_f1"] = 2 * n_major / (n + n_major) / n_classes if n else np.nan
    if test_predictions is not None:
        model_right, majority_right = test_predictions == test_labels, test_labels == majority
        b, c = int(np.sum(model_right & ~majority_right)), int(np.sum(~model_right & majority_right))
        p = binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
        ref.update(beats_majority_p=float(p), beats_majority=bool(p < 0.05))
    return ref


def mcnemar(pred_a: np.ndarray, pred_b: np.ndarray, y: np.ndarray) -> tuple[int, int, float]:
    """Exact McNemar test on paired test predictions: (b, c, p-value)."""
    from scipy.stats import binomtest  # SciPy: only for the intervals
    a_right, b_right = pred_a == y, pred_b == y
    b, c = int(np.sum(a_right & ~b_right)), int(np.sum(~a_right & b_right))
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return b, c, float(p)
