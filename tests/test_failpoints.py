"""The failpoint facility (suite_common/failpoints.py): a no-op unless enabled, dies at exactly the named pass."""

import os
import subprocess
import sys

import pytest

from lyrics_cifar_search.suite_common.failpoints import POINTS, failpoint

PASSES = "from lyrics_cifar_search.suite_common.failpoints import failpoint\nfor i in range(3):\n    print(i, flush=True)\n    failpoint('before-csv')\n"


def run(env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SEARCH_SUITE_")}
    return subprocess.run([sys.executable, "-c", PASSES], env={**clean, **env}, capture_output=True, text=True)


def test_off_unless_named():
    assert run({}).stdout.split() == ["0", "1", "2"]
    assert run({"SEARCH_SUITE_CRASH_AT": "before-promote"}).returncode == 0


def test_dies_like_kill_at_the_named_pass():
    first = run({"SEARCH_SUITE_CRASH_AT": "before-csv"})
    assert (first.returncode, first.stdout.split()) == (137, ["0"])
    third = run({"SEARCH_SUITE_CRASH_AT": "before-csv", "SEARCH_SUITE_CRASH_SKIP": "2"})
    assert (third.returncode, third.stdout.split()) == (137, ["0", "1", "2"])


def test_only_in_the_named_worker():
    other = run({"SEARCH_SUITE_CRASH_AT": "before-csv", "SEARCH_SUITE_CRASH_WORKER": "1",
                 "SEARCH_SUITE_WORKER_INDEX": "0"})
    assert other.returncode == 0
    named = run({"SEARCH_SUITE_CRASH_AT": "before-csv", "SEARCH_SUITE_CRASH_WORKER": "1",
                 "SEARCH_SUITE_WORKER_INDEX": "1"})
    assert named.returncode == 137


def test_unknown_point_is_refused():
    with pytest.raises(ValueError, match="unknown failpoint"):
        failpoint("before-cvs")


def test_every_point_in_the_product_is_listed_and_used():
    import pathlib
    import re
    root = pathlib.Path(__file__).resolve().parents[1]
    used = {m for d in ("runners", "suite_common", "analysis", "search_spaces", "study_data")
            for f in (root / d).rglob("*.py") if f.name != "failpoints.py"
            for m in re.findall(r'^[^#\n]*\bfailpoint\("([a-z-]+)"\)', f.read_text(), re.M)}  # not in comments
    assert used == set(POINTS)
    exits = [str(f.relative_to(root)) for d in ("runners", "suite_common", "analysis", "search_spaces", "study_data")
             for f in (root / d).rglob("*.py") if "os._exit(" in f.read_text()]
    assert exits == ["suite_common/failpoints.py"]
