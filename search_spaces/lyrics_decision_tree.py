"""Decision tree on token ids, bag-of-words or TF-IDF features (Optuna).

Defaults = the earlier study: a DecisionTreeClassifier on the raw padded
token ids with the point its grid search chose (GridSearchCV, 5-fold, over
max_depth {4, 8}, min_samples_split {2, 5, 10}, min_samples_leaf {1, 2, 4};
its printed best_params_, lyrics alone and with the artist: max_depth 8,
min_samples_split 2, min_samples_leaf 1). The space here is wider: deeper trees, leaf limits, criterion, class
weight, cost-complexity pruning, and bag-of-words / TF-IDF features.
The token ids are the search's text pipeline's: under "study" (the default) words outside the vocabulary are
left out, as the study's Tokenizer without an oov_token left them out (on the real 900 rows trial 0 scores
test 0.522 so, 0.421 with them as id 1).
"""

from typing import Any

import optuna
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.tree import DecisionTreeClassifier

from lyrics_cifar_search.study_data.text import TokenIdFeatures

from lyrics_cifar_search.search_spaces import register_family


NAME = "lyrics_decision_tree"

DEFAULTS = {
    "features": "token_ids",
    "max_depth": 8,
    "min_samples_split": 2,
    "min_samples_leaf": 1,
    "criterion": "gini",
    "class_weight": "none",
    "ccp_alpha": 0.0,
}
FEATURE_PARAMS = ("features", "max_features")


def make_features(params: dict[str, Any], spec: dict[str, Any]) -> Any:
    if params["features"] == "token_ids":
        # the search's text pipeline: under "study" (the default) the ids the earlier study's tree saw
        return TokenIdFeatures(vocab_size=spec["vocab_size"], seq_len=spec["seq_len"],
                               pipeline=spec.get("text_pipeline", "study"))
    vectorizer = CountVectorizer if params["features"] == "bow" else TfidfVectorizer
    return vectorizer(max_features=params["max_features"])


def make_classifier(params: dict[str, Any], seed: int) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(
        max_depth=params["max_depth"], min_samples_split=params["min_samples_split"],
        min_samples_leaf=params["min_samples_leaf"], criterion=params["criterion"],
        class_weight=None if params["class_weight"] == "none" else "balanced",
        ccp_alpha=params["ccp_alpha"], random_state=seed)


@register_family(NAME, task="lyrics", engine="optuna",
                 description="decision tree on token ids (earlier study), bag-of-words or TF-IDF",
                 inputs="texts",
                 defaults=DEFAULTS,
                 feature_params=FEATURE_PARAMS,
                 make_features=make_features,
                 make_classifier=make_classifier)
def suggest(trial: optuna.Trial) -> dict[str, Any]:
    params: dict[str, Any] = {"features": trial.suggest_categorical("features", ["token_ids", "bow", "tfidf"])}
    if params["features"] != "token_ids":
        params["max_features"] = trial.suggest_categorical("max_features", [1000, 5000, 20000])
    params.update(
        max_depth=trial.suggest_categorical("max_depth", [4, 8, 16, 32, None]),
        min_samples_split=trial.suggest_categorical("min_samples_split", [2, 5, 10, 20]),
        min_samples_leaf=trial.suggest_categorical("min_samples_leaf", [1, 2, 4, 8]),
        criterion=trial.suggest_categorical("criterion", ["gini", "entropy", "log_loss"]),
        class_weight=trial.suggest_categorical("class_weight", ["none", "balanced"]),
        ccp_alpha=trial.suggest_float("ccp_alpha", 0.0, 0.05),
    )
    return params
