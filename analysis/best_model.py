"""The documented way to load a search's best model (README, "Using a best model"):

    from lyrics_cifar_search.analysis.best_model import load_best

Its code is runners/best_model.py, below analysis in the suite's layers, where the search's closing summary
uses it too."""

from lyrics_cifar_search.runners.best_model import BestModel, load_best

__all__ = ["BestModel", "load_best"]
