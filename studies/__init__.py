"""The earlier study as data: its plan of searches (earlier_study.toml), its published validation accuracies
(earlier_study_results.csv) and the suite's departures from it (departures.md), shipped with the package."""

from importlib import resources


def path(name):
    """A file of this package (a real path: the wheel installs it as a plain file)."""
    return resources.files(__name__) / name
