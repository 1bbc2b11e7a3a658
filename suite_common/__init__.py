"""What every package of the suite shares: the error type, notices, atomic writes, process settings.

Importing it (or any package of the suite) changes nothing in the process: the
process settings in `suite_common.process` are applied by the entry points.
"""

from __future__ import annotations

import errno
import logging
import re
import sys
import time
from typing import Iterable, Iterator, Optional, TextIO, TypeVar

_T = TypeVar("_T")

_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<secret>[^@\s]*)@", re.I)


# Each command as a clone runs it, and its console script once the wheel is installed
_COMMANDS = {"search": ("runners/search.py", "lyrics-search"), "study": ("runners/study.py", "lyrics-study"),
             "compare": ("analysis/compare.py", "lyrics-compare"), "report": ("analysis/report.py", "lyrics-report"),
             "demo": ("analysis/demo.py", "lyrics-demo")}


def command(name: str) -> str:
    """How the user runs one of the suite's commands: `python runners/search.py` in a clone (the README's
    way), the console script `lyrics-search` where the suite is installed from its wheel (no clone there)."""
    from pathlib import Path
    script, console = _COMMANDS[name]
    in_clone = (Path(__file__).resolve().parents[1] / "setup.cfg").is_file()
    return f"python {script}" if in_clone else console


def invoked_as(name: str) -> str:
    """The command's name as it was run, for its --help and error lines: the console script (`lyrics-search`),
    `python -m lyrics_cifar_search.runners.search`, or the script's path (`runners/search.py`); where none of
    these ran it (a test, the Python API), the script's path in a clone, the console script's name installed."""
    import os
    import sys
    from pathlib import Path
    script, console = _COMMANDS[name]
    arg0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(arg0) == console:
        return console
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name.startswith("lyrics_cifar_search."):
        return f"python -m {spec.name}"
    if arg0.endswith(script):
        return arg0
    return script if (Path(__file__).resolve().parents[1] / "setup.cfg").is_file() else console


def masked(text: object) -> str:
    """The text with the password of every URL in it replaced by ***: postgresql://user:***@host/db (error lines,
    the recorded command, search.json)."""
    return _CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


def error_line(e: object) -> str:
    """What the command-line tools print for a UserError: one line, passwords masked."""
    return "error: " + " ".join(masked(e).split())


# what a write that the disk refuses raises: a read-only folder or file, a full disk, a file-size limit
CANNOT_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EISDIR}


def write_error_line(e: OSError) -> str:
    """What the command-line tools print when the disk refuses a write (full, read-only, a file-size limit):
    one line; what was finished stays, and the same command picks up from it."""
    where = f" {e.filename}" if getattr(e, "filename", None) else ""
    return (f"error: cannot write{where}: {e.strerror or e}; free space or fix permissions, then run the same "
            "command again")


# A notice: between logging's INFO (progress, stdout) and WARNING (stderr even with --quiet); the command-line
# tools show it on stderr, so it never mixes with tables on stdout (suite_common/console.py).
NOTICE = 25


def log(msg: str) -> None:
    """A notice for the user: on stderr, left out by --quiet."""
    logging.getLogger("lyrics_cifar_search").log(NOTICE, msg)


def warn(msg: str) -> None:
    """A warning for the user: on stderr, --quiet included."""
    logging.getLogger("lyrics_cifar_search").warning(msg)


class UserError(Exception):
    """Bad input. The message is one line: what is wrong and what to do.

    The CLI prints it and exits with code 2, without a traceback.
    """


def counted(items: Iterable[_T], total: int, label: str, every_s: float = 0.5,
            stream: Optional[TextIO] = None) -> Iterator[_T]:
    """Yield items; on a terminal, show 'label: n of total rows (rows/s)' as they pass (quiet in pipes and CI)."""
    stream = stream or sys.stderr
    live = stream.isatty()
    start = last = time.time()
    n = 0
    for n, item in enumerate(items, start=1):
        yield item
        if live and time.time() - last >= every_s:
            last = time.time()
            stream.write(f"\r{label}: {n:,} of {total:,} rows ({n / (last - start):,.0f} rows/s)")
            stream.flush()
    if live and time.time() - start >= every_s:  # only what took long enough to have shown progress
        stream.write(f"\r{label}: {n:,} rows in {time.time() - start:.1f} s\n")
        stream.flush()
