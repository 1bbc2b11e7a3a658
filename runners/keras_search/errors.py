"""Errors that end a Keras search at once: a write the disk refused (raised by the tuner and by compat's atomic
state writes), and a family of the user's own whose code failed."""

from __future__ import annotations

import inspect
import traceback
from typing import TYPE_CHECKING

import keras_tuner as kt

from lyrics_cifar_search.suite_common import CANNOT_WRITE, UserError

if TYPE_CHECKING:
    from lyrics_cifar_search.search_spaces import KerasFamily


class WriteFailed(kt.errors.FatalError, OSError):
    """A write the disk refused (full, read-only, a file-size limit) during a trial: a FatalError, so Keras
    Tuner stops the search instead of recording the configuration as failed; an OSError, so the command line
    says it in one line."""

    @classmethod
    def of(cls, e: OSError) -> OSError:
        if isinstance(e, cls) or e.errno not in CANNOT_WRITE:
            return e
        return cls(e.errno, e.strerror, e.filename)


class FamilyFailed(kt.errors.FatalError, UserError):
    """A family of the user's own raised while building or training: a FatalError, so Keras Tuner stops the search
    at once instead of printing a traceback for every trial; a UserError, so the command line says it in one line
    (the error, and the file and line in the family's code where it happened)."""

    @classmethod
    def of(cls, family: KerasFamily, e: BaseException, trial_id: int | str) -> "FamilyFailed":
        return cls(f"{family.name} failed in trial {trial_id}: {type(e).__name__}: "
                   f"{str(e).splitlines()[0] if str(e) else ''} ({where(family, e)}); fix it and run again with "
                   "--fresh")


def where(family: KerasFamily, e: BaseException) -> str:
    """'file, line N' of the innermost frame of the error in the family's own source file (else the innermost)."""
    frames = traceback.extract_tb(e.__traceback__)
    try:
        own = inspect.getsourcefile(family.hypermodel)
    except TypeError:
        own = None
    mine = [f for f in frames if own and f.filename == own] or frames
    return f"{mine[-1].filename}, line {mine[-1].lineno}" if mine else "no traceback"

