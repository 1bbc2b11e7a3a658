"""TF-IDF features + logistic regression (scikit-learn), searched with Optuna.

Defaults = the earlier study: TfidfVectorizer(max_features=5000) +
LogisticRegression(max_iter=1000). The engine fits the vectorizer once per
distinct setting of FEATURE_PARAMS and reuses the matrices across trials.
"""

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

NAME = "lyrics_tfidf_logreg"
TASK = "lyrics"
ENGINE = "optuna"
DESCRIPTION = "TF-IDF + logistic regression (earlier study: 5,000 features, C=1)"
INPUTS = "texts"

DEFAULTS = {
    "max_features": 5000,
    "ngram_max": 1,
    "sublinear_tf": False,
    "min_df": 1,
    "C": 1.0,
    "class_weight": "none",
}
# The parameters that change the feature matrix (the engine's cache key).
FEATURE_PARAMS = ("max_features", "ngram_max", "sublinear_tf", "min_df")


def suggest(trial):
    return {
        "max_features": trial.suggest_categorical("max_features", [1000, 2000, 5000, 10000, 20000]),
        "ngram_max": trial.suggest_int("ngram_max", 1, 3),
        "sublinear_tf": trial.suggest_categorical("sublinear_tf", [False, True]),
        "min_df": trial.suggest_int("min_df", 1, 5),
        "C": trial.suggest_float("C", 1e-3, 1e2, log=True),
        "class_weight": trial.suggest_categorical("class_weight", ["none", "balanced"]),
    }


def make_features(params, spec):
    """An unfitted transformer from cleaned texts to the feature matrix."""
    return TfidfVectorizer(max_features=params["max_features"], ngram_range=(1, params["ngram_max"]),
                           sublinear_tf=params["sublinear_tf"], min_df=params["min_df"])


def make_classifier(params, seed):
    return LogisticRegression(C=params["C"], max_iter=1000, random_state=seed,
                              class_weight=None if params["class_weight"] == "none" else "balanced")
