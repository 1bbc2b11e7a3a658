"""Named failpoints: the one place where the suite can be made to die like `kill -9` at an exact point.

The reliability tests need a process to die between two writes (a trial's model saved but its CSV row not
yet, say) and then check that a resume loses and duplicates nothing. Each such point in the product is a
call `failpoint("name")`, a no-op unless the environment enables it:

    SEARCH_SUITE_CRASH_AT=name      die (exit status 137, no clean-up) at the point called `name`
    SEARCH_SUITE_CRASH_SKIP=k       ... at its (k+1)-th pass only (default: the first)
    SEARCH_SUITE_CRASH_WORKER=i     ... only in worker i of --workers N (SEARCH_SUITE_WORKER_INDEX)

Points (see tests/test_reliability.py and tests/test_hostile_inputs.py for the kills):
trial-started, trial-recorded, trial-file-written, oracle-saved, retry-taken, before-csv,
candidate-written, before-promote, mid-replace-dir, artifact-half-written, artifact-uploaded.
"""

import os

__all__ = ["failpoint", "POINTS"]

POINTS = ("trial-started", "trial-recorded", "trial-file-written", "oracle-saved", "retry-taken", "before-csv",
          "candidate-written", "before-promote", "mid-replace-dir", "artifact-half-written", "artifact-uploaded")
_passes: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Die here, like kill -9, when SEARCH_SUITE_CRASH_AT names this point (see the module's docstring)."""
    if name not in POINTS:  # a typo in the product would make a kill test pass without killing
        raise ValueError(f"unknown failpoint {name!r}; add it to suite_common.failpoints.POINTS")
    if os.environ.get("SEARCH_SUITE_CRASH_AT") != name:
        return
    worker = os.environ.get("SEARCH_SUITE_WORKER_INDEX")
    if os.environ.get("SEARCH_SUITE_CRASH_WORKER", worker) != worker:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if _passes[name] > int(os.environ.get("SEARCH_SUITE_CRASH_SKIP", "0")):
        # what this process printed gets out before it dies
        from lyrics_cifar_search.suite_common.process import flush_stderr
        flush_stderr(timeout=0.5)
        os._exit(137)
