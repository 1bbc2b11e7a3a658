"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

from lyrics_cifar_search.suite_common.failpoints import failpoint

PathLike = Union[str, "os.PathLike[str]"]  # what every function here takes as a path


def linked(path: PathLike) -> Optional[str]:
    """Why writing at `path` in place would reach another file: "a symbolic link" (dangling or not), "a file
    with N hard links", or None. Rewrites by rename replace the name, never the target; SQLite databases,
    lock files and Keras Tuner's own files are written in place, so a planted link there is refused."""
    path = Path(path)
    if path.is_symlink():
        return "a symbolic link"
    try:
        st = path.stat()
    except OSError:
        return None
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        return f"a file with {st.st_nlink} hard links"
    return None


def _ordinary_mode():
    """The mode a plain open() would give a new file (0o666 less the umask): mkstemp makes 0600, and
    results are for everyone who may read the folder. The umask is read, not set (Linux's
    /proc/self/status), so nothing process-wide changes; 0o644 where it cannot be read."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def write_bytes(path: PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, _ordinary_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def temp_path_beside(path: PathLike, suffix: str = "") -> Path:
    """A fresh temporary name in the same folder (same filesystem, so os.replace is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
    os.close(fd)
    os.chmod(tmp, _ordinary_mode())
    return Path(tmp)


def replace_dir(new_dir: PathLike, target: PathLike) -> None:
    """Put the finished folder `new_dir` in place of `target`.

    Two renames: target -> target.old, new_dir -> target. A crash between them
    leaves target.old, which `recover_dir` puts back on the next start.
    """
    new_dir, target = Path(new_dir), Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.replace(target, old)
    failpoint("mid-replace-dir")  # tests: a crash between the two renames
    os.replace(new_dir, target)
    if old.exists():
        shutil.rmtree(old)


def recover_dir(target: PathLike) -> None:
    """Undo a `replace_dir` that was cut between its two renames."""
    target = Path(target)
    old = target.with_name(target.name + ".old")
    if old.exists():
        if target.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, target)
