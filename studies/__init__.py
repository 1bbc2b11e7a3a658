"""The earlier study as data: its plan of searches (earlier_study.toml), its published validation accuracies
(earlier_study_results.csv) and the suite's departures from it (departures.md), shipped with the package."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.resources.abc from Python 3.11; importlib.abc before
    from importlib.abc import Traversable


def path(name: str) -> Traversable:
    """A file of this package (a real path: the wheel installs it as a plain file)."""
    return resources.files(__name__) / name
