"""The suite's one import name. Its subpackages are the folders at the top of the repository (setup.cfg's
package_dir maps them), from the lowest layer up:

    lyrics_cifar_search.suite_common    suite_common/    helpers every layer uses (atomic writes, errors, tables)
    lyrics_cifar_search.studies         studies/         the earlier study's plan, numbers and departures
    lyrics_cifar_search.study_data      study_data/      loading, splitting and encoding the data
    lyrics_cifar_search.search_spaces   search_spaces/   one module per family, and the registry
    lyrics_cifar_search.runners         runners/         the search CLI, its two engines, the results' record
    lyrics_cifar_search.analysis        analysis/        comparison tables, report, demo

    from lyrics_cifar_search.analysis.best_model import load_best
    from lyrics_cifar_search import search      # the Python API (runners/api.py): search("lyrics_lstm", data=...)
"""

import os as _os

# In a clone, this folder's runners, analysis, ... are links to the folders at the top of the repository, so
# editors and type checkers follow the import name (issue 53). A copy of the tree that lost the links, used with
# the repository root on PYTHONPATH (as on a GPU machine that runs bench/gpu_figures.sh): the subpackages are
# this folder's siblings there.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "setup.cfg")) and _os.path.isdir(_os.path.join(_root, "runners")):
    __path__.append(_root)


def __getattr__(name):
    """`from lyrics_cifar_search import search, SearchResult`: the Python API (runners/api.py), imported on first
    use, so that importing the package starts no framework."""
    if name in ("search", "SearchResult"):
        from lyrics_cifar_search.runners import api
        return getattr(api, name)
    raise AttributeError(f"module 'lyrics_cifar_search' has no attribute {name!r}")
