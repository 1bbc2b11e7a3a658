"""What every package of the suite shares: the error type, notices, atomic writes, process settings.

Importing it (or any package of the suite) changes nothing in the process: the
process settings in `suite_common.process` are applied by the entry points.
"""

import sys


def log(msg):
    """A notice for the user (on stderr, so it never mixes with tables on stdout)."""
    print(msg, file=sys.stderr, flush=True)


class UserError(Exception):
    """Bad input. The message is one line: what is wrong and what to do.

    The CLI prints it and exits with code 2, without a traceback.
    """
