"""What the suite says, through `logging`: code below the command-line tools logs to the lyrics_cifar_search
loggers, and each tool decides what reaches the console with `show()`.

    DEBUG    one line per epoch of a Keras trial                         stdout, with --verbose
    INFO     progress: a line per trial, the data a search runs on,      stdout, by default
             workers started and done
    NOTICE   notices (suite_common.log): rows dropped, resuming, a       stderr, by default
             result ignored
    WARNING  warnings (suite_common.warn): a version outside the         stderr, by default and with --quiet
             checked range, artists unseen in training

By default the tools show what print() showed before; --quiet leaves the warnings (and the tool's own closing
summary and errors); --verbose adds the epochs. Used as a library (a notebook) nothing is set up: Python shows
the warnings on stderr, and `logging.basicConfig(level=logging.INFO)` shows the progress lines as well.
"""

import logging
import sys

from lyrics_cifar_search.suite_common import NOTICE

ROOT = "lyrics_cifar_search"


class _Console(logging.Handler):
    """Lines below NOTICE to stdout, the rest to stderr, each flushed. The streams are looked up for each line,
    so a sys.stdout replaced after show() (a test's capture, a notebook's) gets them."""

    def emit(self, record):
        try:
            stream = sys.stderr if record.levelno >= NOTICE else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - logging's own rule: a failed line never stops the program
            self.handleError(record)


def show(verbose: bool = False, quiet: bool = False) -> None:
    """The command-line tools' console: every lyrics_cifar_search logger's lines, bare (no level or name), at
    DEBUG with --verbose, WARNING with --quiet, INFO otherwise. Called again, it replaces its own handler."""
    logger = logging.getLogger(ROOT)
    logger.handlers[:] = [h for h in logger.handlers if not isinstance(h, _Console)]
    logger.addHandler(_Console())
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False  # a root handler the user set up would print every line twice


def add_flags(parser, verbose_help: str = "also show the frameworks' start-up and retracing lines") -> None:
    """--verbose and --quiet, one or the other, on a command-line tool's parser."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--verbose", action="store_true", help=verbose_help)
    group.add_argument("--quiet", action="store_true",
                       help="no progress lines or notices: warnings, errors and the command's own results only")
