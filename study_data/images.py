"""Image sets for Task 2: CIFAR-100 (or any image-folder tree), split into two class blocks.

Sources (`--data`; their readers: study_data/image_sources.py):
  (none)                  CIFAR-100 fine labels through keras.datasets (downloads; fails offline)
  cifar-100-python[.tar.gz]  the official archive or its extracted folder, read without pickle's code paths
  ROOT/                   an image-folder tree ROOT/{train,test}/<class>/*.jpg|png (e.g. CIFAR-10 as JPEG)
  demo                    a small generated set (coloured shapes, not real data) for tests and offline demos

The earlier study split the classes at random into two equal blocks, pooled
the official training images of each block (500 a class) and split them
80/20 into train and test, with no seed, validating on that test split. Here
the block draw and every split are seeded, labels are remapped to 0..N-1
within a block, the block's official test images are its test split (where
the source has them: the archive, keras.datasets, an image folder with
test/), validation is carved from its official training images, and pixels
are scaled to [0, 1].
"""

import logging
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from typing import Optional, Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from lyrics_cifar_search.suite_common import UserError, atomic, log
# the readers of each source (image_sources.py)
from lyrics_cifar_search.study_data.image_sources import (cifar100_python, image_folder,
                                                          keras_cifar100, make_demo_images, npz_arrays)

logger = logging.getLogger(__name__)

CACHE_VERSION = 2


@dataclass
class ImageSet:
    """All images of a source, uint8 [n, 32, 32, 3], with class ids and names.

    is_test marks the source's official test images (None: the source has no
    test split). fingerprint hashes the images, labels, names and split."""
    x: np.ndarray
    y: np.ndarray
    class_names: list
    source: str
    is_demo: bool
    fingerprint: str
    is_test: Optional[np.ndarray] = None


def content_fingerprint(x: np.ndarray, y: np.ndarray, names: Sequence[str], is_test: Optional[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in (x, y, np.zeros(0) if is_test is None else is_test):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(list(names)).encode())
    return h.hexdigest()[:16]


def _cap_per_class(y, is_test, per_class):
    """Rows keeping the first per_class images of each class in each of the train and test parts."""
    parts = [np.zeros(len(y), bool)] if is_test is None else [~is_test, is_test]
    keep = [np.flatnonzero((y == c) & part)[:per_class] for part in parts for c in np.unique(y)]
    return np.sort(np.concatenate(keep))


@dataclass
class Block:
    """One block of classes, split and normalised: labels 0..N-1 index class_names."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    assignment: dict  # what was drawn, to save beside the results

    def describe(self) -> str:
        return (f"block {self.assignment['block']}: {len(self.class_names)} classes "
                f"({', '.join(self.class_names[:6])}{', ...' if len(self.class_names) > 6 else ''}), "
                f"{len(self.y_train)} train / {len(self.y_val)} validation / {len(self.y_test)} test images, "
                f"seed {self.assignment['seed']}")


def load_images(data: str | Path | None = None, cache_dir: str | Path = "results/_cache",
                per_class: Optional[int] = None, announce_demo: bool = True,
                deferred_writes: Optional[list] = None) -> ImageSet:
    """Every image of the source (cached as .npz for folders and archives; deferred_writes: as lyrics.load's)."""
    is_test: Optional[np.ndarray]  # which rows are the source's own test split; None: it has none
    if data == "demo":
        if announce_demo:
            logger.info("NOTE: --data demo uses generated shapes, not real images; pass the CIFAR-100 archive for "
                        "the study")
        x, y, names = make_demo_images()
        return ImageSet(x, y, names, "generated demo images (not real data)", True,
                        content_fingerprint(x, y, names, None))
    if data is None:
        x, y, names, is_test = keras_cifar100()
        if per_class:
            keep = _cap_per_class(y, is_test, per_class)
            x, y, is_test = x[keep], y[keep], is_test[keep]
        return ImageSet(x, y, names, "CIFAR-100 (keras.datasets)", False, content_fingerprint(x, y, names, is_test),
                        is_test)
    path = Path(data)
    if not path.exists():
        raise UserError(f"image data not found: {path}: pass the cifar-100-python archive/folder, "
                        "an image-folder tree, or demo")
    # The cache key: every file's name, size and modification time, and the options.
    if path.is_dir():
        stats = sorted((str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in path.rglob("*") if p.is_file())
    else:
        stats = [(path.name, path.stat().st_size, path.stat().st_mtime_ns)]
    key = hashlib.sha256(json.dumps([str(path.resolve()), stats, per_class, CACHE_VERSION]).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"images-{key}.npz"
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                is_test = z["is_test"] if z["has_test"] else None
                return ImageSet(z["x"], z["y"], json.loads(z["names"].tobytes()), str(path), False,
                                str(z["fingerprint"]), is_test)
        except Exception as e:
            log(f"image cache {cache} is unreadable ({type(e).__name__}); rebuilding it")
    is_cifar = (path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar"))) or \
        (path.is_dir() and ((path / "meta").is_file() or (path / "cifar-100-python").is_dir()))
    if is_cifar:
        x, y, names, is_test = cifar100_python(path)
        if per_class:
            keep = _cap_per_class(y, is_test, per_class)
            x, y, is_test = x[keep], y[keep], is_test[keep]
    elif path.is_file() and path.suffix == ".npz":
        x, y, names, is_test = npz_arrays(path)
        if per_class:
            keep = _cap_per_class(y, is_test if is_test is not None else np.zeros(len(y), bool), per_class)
            x, y, is_test = x[keep], y[keep], is_test[keep] if is_test is not None else None
    elif path.is_dir():
        x, y, names, is_test = image_folder(path, per_class)
    else:
        raise UserError(f"{path} is neither a cifar-100-python archive nor an image-folder tree")
    fingerprint = content_fingerprint(x, y, names, is_test)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y, names=np.frombuffer(json.dumps(names).encode(), dtype=np.uint8),
             is_test=np.zeros(0, bool) if is_test is None else is_test, has_test=is_test is not None,
             fingerprint=fingerprint)
    write = (lambda: atomic.write_bytes(cache, buf.getvalue()))
    deferred_writes.append(write) if deferred_writes is not None else write()
    return ImageSet(x, y, names, str(path), False, fingerprint, is_test)


# --------------------------------------------------------------------------
# Blocks
# --------------------------------------------------------------------------
def draw_blocks(n_classes: int, seed: int) -> tuple[list[int], list[int]]:
    """The classes split at random into two blocks of equal size (seeded)."""
    order = np.random.default_rng(seed).permutation(n_classes)
    half = n_classes // 2
    return sorted(order[:half].tolist()), sorted(order[half:2 * half].tolist())


def _without_test_copies(x, train, val, test, block):
    """Training and validation images that are exact copies (the same pixels) of a test image, or validation
    ones that copy a training image, are dropped with a count: a copied image would put the test (or the
    validation) split into what the model learns from. The test split is kept whole."""
    def digests(idx):
        return [hashlib.sha1(x[i].tobytes()).digest() for i in idx]
    in_test = set(digests(test))
    d_train = digests(train)
    keep_train = np.array([d not in in_test for d in d_train], dtype=bool)
    in_train = {d for d, k in zip(d_train, keep_train) if k}
    d_val = digests(val)
    keep_val = np.array([d not in in_test and d not in in_train for d in d_val], dtype=bool)
    dropped_train, dropped_val = int((~keep_train).sum()), int((~keep_val).sum())
    if dropped_train or dropped_val:
        log(f"block {block}: dropped {dropped_train} training and {dropped_val} validation images that are exact "
            "copies of a test image (or, for validation, of a training one)")
    return train[keep_train], val[keep_val]


def make_block(images: ImageSet, block: int, seed: int = 42, test_fraction: float = 0.2,
               val_fraction: float = 0.2) -> Block:
    """Block 1 or 2 of `images`: its classes remapped to 0..N-1, split train/val/test, pixels in [0, 1].

    The test split is the block's official test images where the source has
    them; otherwise (the demo set, a folder without test/) test_fraction of
    the block is held out. Validation is val_fraction of the rest."""
    classes = draw_blocks(len(images.class_names), seed)[block - 1]
    if len(classes) < 2:  # a one-output softmax "succeeds" with nothing to learn
        raise UserError(f"{images.source} has {len(images.class_names)} classes, so block {block} holds "
                        f"{len(classes)}: each block needs at least 2 classes; use a source with at least 4")
    rows = np.flatnonzero(np.isin(images.y, classes))
    remap = {c: i for i, c in enumerate(classes)}
    y = np.array([remap[c] for c in images.y[rows]], dtype=np.int32)
    official = images.is_test is not None and images.is_test[rows].any()
    try:
        if official and images.is_test is not None:  # (the second: for the type checker)
            trainval, test = np.flatnonzero(~images.is_test[rows]), np.flatnonzero(images.is_test[rows])
        else:
            trainval, test = train_test_split(np.arange(len(rows)), test_size=test_fraction, stratify=y,
                                              random_state=seed)
        train, val = train_test_split(trainval, test_size=val_fraction, stratify=y[trainval], random_state=seed)
    except ValueError as e:
        raise UserError(f"too few images to split block {block} ({e}); use more images per class") from None
    train, val = _without_test_copies(images.x[rows], train, val, test, block)
    empty = [images.class_names[c] for c, n in zip(classes, np.bincount(y[train], minlength=len(classes))) if n == 0]
    if empty:
        raise UserError(f"{images.source}: class {', '.join(empty)} of block {block} has no training images "
                        "(an empty train/ folder?): add its images or remove the class")

    def pixels(idx):
        return images.x[rows[idx]].astype("float32") / 255.0

    names = [images.class_names[c] for c in classes]
    assignment = {"block": block, "seed": seed, "source": images.source, "fingerprint": images.fingerprint,
                  "block_classes": {"1": [images.class_names[c] for c in draw_blocks(len(images.class_names), seed)[0]],
                                    "2": [images.class_names[c] for c in draw_blocks(len(images.class_names), seed)[1]]},
                  "class_ids": classes, "val_fraction": val_fraction,
                  "test_split": "the official test images" if official
                  else f"{test_fraction:.0%} of the block held out (the source has no test images)"}
    return Block(pixels(train), y[train], pixels(val), y[val], pixels(test), y[test], names, assignment)


