"""A write the disk refused during a Keras search (raised by the tuner and by compat's atomic state writes)."""

import keras_tuner as kt

from suite_common import CANNOT_WRITE


class WriteFailed(kt.errors.FatalError, OSError):
    """A write the disk refused (full, read-only, a file-size limit) during a trial: a FatalError, so Keras
    Tuner stops the search instead of recording the configuration as failed; an OSError, so the command line
    says it in one line."""

    @classmethod
    def of(cls, e):
        if isinstance(e, cls) or e.errno not in CANNOT_WRITE:
            return e
        return cls(e.errno, e.strerror, e.filename)
