"""Data loading and preprocessing for the study: lyrics tables and image sets.

Nothing here imports Keras or TensorFlow, so the tokenizer and the splits are
the same on every Keras backend and for the scikit-learn families.
"""

import sys


def log(msg):
    """A notice for the user (on stderr, so it never mixes with tables on stdout)."""
    print(msg, file=sys.stderr, flush=True)


class UserError(Exception):
    """Bad input. The message is one line: what is wrong and what to do.

    The CLI prints it and exits with code 2, without a traceback.
    """
