"""Image sets for Task 2: CIFAR-100 (or any image-folder tree), split into two class blocks.

Sources (`--data`):
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
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

from typing import Optional

import numpy as np
from sklearn.model_selection import train_test_split

from lyrics_cifar_search.suite_common import UserError, atomic, log

logger = logging.getLogger(__name__)

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
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


def content_fingerprint(x, y, names, is_test):
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

    def describe(self):
        return (f"block {self.assignment['block']}: {len(self.class_names)} classes "
                f"({', '.join(self.class_names[:6])}{', ...' if len(self.class_names) > 6 else ''}), "
                f"{len(self.y_train)} train / {len(self.y_val)} validation / {len(self.y_test)} test images, "
                f"seed {self.assignment['seed']}")


# --------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------
def _keras_cifar100():
    import keras  # Keras starts only when a Keras model is built or loaded
    try:
        (xtr, ytr), (xte, yte) = keras.datasets.cifar100.load_data(label_mode="fine")
    except Exception as e:
        raise UserError(f"could not download CIFAR-100 through keras.datasets ({type(e).__name__}); "
                        f"download {CIFAR100_URL} and pass --data path/to/cifar-100-python.tar.gz (or its "
                        "extracted folder), or pass an image-folder tree ROOT/{train,test}/<class>/, "
                        "or --data demo for the generated set") from None
    names = _CIFAR100_FINE_NAMES
    is_test = np.concatenate([np.zeros(len(xtr), bool), np.ones(len(xte), bool)])
    return np.concatenate([xtr, xte]), np.concatenate([ytr, yte]).reshape(-1).astype(np.int32), names, is_test


class _ArraysOnly(pickle.Unpickler):
    """Unpickles the CIFAR archive's dicts of arrays and refuses everything else,
    so a doctored archive cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("copyreg", "_reconstructor"), ("builtins", "object")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing {module}.{name}")


def _unpickle(data, what):
    try:
        return _ArraysOnly(io.BytesIO(data), encoding="bytes").load()
    except Exception as e:
        raise UserError(f"{what} is not a CIFAR-100 python batch ({e}); pass the official "
                        f"cifar-100-python archive from {CIFAR100_URL}") from None


def _checked_batch(d, what, n_classes):
    """A batch's images [n, 3072] uint8 and fine labels [n] in 0..n_classes-1, or one clear UserError."""
    def bad(problem):
        return UserError(f"{what} is not a CIFAR-100 python batch ({problem}); pass the official "
                         f"cifar-100-python archive from {CIFAR100_URL}")
    if not isinstance(d, dict) or b"data" not in d or b"fine_labels" not in d:
        raise bad("expected a dict with b'data' and b'fine_labels'")
    x, y = d[b"data"], d[b"fine_labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        raise bad("b'data' must be a uint8 array of shape [n, 3072]")
    if not isinstance(y, (list, np.ndarray)) or len(y) != len(x):
        raise bad(f"b'fine_labels' must list one label per image ({len(x)})")
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in y):
        raise bad("b'fine_labels' must be whole numbers")
    y = np.asarray(y, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise bad(f"labels must be 0..{n_classes - 1}, one per class name")
    return x, y.astype(np.int32)


def _cifar100_python(path):
    path = Path(path)
    files = {}
    if path.is_dir():
        root = path / "cifar-100-python" if (path / "cifar-100-python").is_dir() else path
        for name in ("train", "test", "meta"):
            if not (root / name).is_file():
                raise UserError(f"{root} has no '{name}' file: pass the cifar-100-python folder or archive")
            files[name] = (root / name).read_bytes()
    else:
        try:
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    base = Path(member.name).name
                    if member.isfile() and base in ("train", "test", "meta"):
                        files[base] = tar.extractfile(member).read()
        except tarfile.TarError as e:  # tarfile's "could not be opened" lists a reason per compression
            why = "not a gzip, bzip2, xz or tar file" if "could not be opened" in str(e) else \
                (str(e).splitlines() or [type(e).__name__])[0]
            raise UserError(f"{path} is not a readable tar.gz archive ({why}): pass the official "
                            "cifar-100-python.tar.gz") from None
        missing = {"train", "test", "meta"} - set(files)
        if missing:
            raise UserError(f"{path} lacks {', '.join(sorted(missing))}: pass the official cifar-100-python archive")
    meta = _unpickle(files["meta"], f"{path}:meta")
    names = meta.get(b"fine_label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(n, (bytes, str)) and n for n in names):
        raise UserError(f"{path}:meta has no list of class names (b'fine_label_names'): pass the official "
                        f"cifar-100-python archive from {CIFAR100_URL}")
    names = [n.decode("utf-8", errors="replace") if isinstance(n, bytes) else n for n in names]
    xs, ys = [], []
    for name in ("train", "test"):
        x, y = _checked_batch(_unpickle(files[name], f"{path}:{name}"), f"{path}:{name}", len(names))
        xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(y)
    is_test = np.concatenate([np.zeros(len(ys[0]), bool), np.ones(len(ys[1]), bool)])
    return np.concatenate(xs), np.concatenate(ys), names, is_test


def _npz_arrays(path):
    """CIFAR-100 as NumPy arrays in an .npz: x_train, y_train (and x_test, y_test), as keras.datasets.cifar100
    returns them, or x and y alone; uint8 images [n, 32, 32, 3], integer labels (any shape [n] or [n, 1]).
    100 classes are named as CIFAR-100's fine classes, others class_0, class_1, ..."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if {"x_train", "y_train"} <= keys:
                parts = [(z["x_train"], z["y_train"], False)]
                if {"x_test", "y_test"} <= keys:
                    parts.append((z["x_test"], z["y_test"], True))
            elif {"x", "y"} <= keys:
                parts = [(z["x"], z["y"], False)]
            else:
                raise UserError(f"{path} holds {sorted(keys)}: an .npz of images needs x_train and y_train (and "
                                "x_test, y_test), as keras.datasets.cifar100.load_data() returns them, or x and y")
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable .npz file ({type(e).__name__})") from None
    xs, ys, flags = [], [], []
    for x, y, is_test in parts:
        y = np.asarray(y).reshape(-1)
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or len(x) != len(y):
            raise UserError(f"{path}: images must be [n, 32, 32, 3] with one label each, got {x.shape} and "
                            f"{len(y)} labels")
        if y.dtype.kind not in "iu" or (len(y) and y.min() < 0):
            raise UserError(f"{path}: labels must be whole numbers from 0")
        if x.dtype.kind not in "iu" or (x.size and (x.min() < 0 or x.max() > 255)):
            raise UserError(f"{path}: pixels must be whole numbers 0-255 (uint8, as keras.datasets returns them)")
        xs.append(x.astype(np.uint8))
        ys.append(y.astype(np.int64))
        flags.append(np.full(len(y), is_test))
    y = np.concatenate(ys)
    n_classes = int(y.max()) + 1 if len(y) else 0
    names = _CIFAR100_FINE_NAMES if n_classes == 100 else [f"class_{i}" for i in range(n_classes)]
    is_test = np.concatenate(flags) if len(parts) > 1 else None
    return np.concatenate(xs), y, list(names), is_test


def _image_folder(root, per_class=None):
    from PIL import Image  # Pillow: only for image files
    root = Path(root)
    splits = [root / s for s in ("train", "test") if (root / s).is_dir()] or [root]
    classes = sorted({d.name for s in splits for d in s.iterdir() if d.is_dir()})
    if len(classes) < 2:
        raise UserError(f"{root} is not an image-folder tree: expected ROOT/train/<class>/*.jpg "
                        "(and ROOT/test/<class>/) with at least two classes")
    files, labels, in_test = [], [], []
    has_test = any(s.name == "test" for s in splits)
    for c, name in enumerate(classes):
        for s in splits:  # per_class caps the train and the test images of a class each
            found = sorted(p for p in (s / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
                if (s / name).is_dir() else []
            found = found[:per_class] if per_class else found
            files += found
            labels += [c] * len(found)
            in_test += [s.name == "test" and has_test] * len(found)
    if not files:
        raise UserError(f"{root} holds no .jpg or .png images under <class>/ folders")
    x = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                x[i] = np.asarray(im if im.size == (32, 32) else im.resize((32, 32)))
        except Exception as e:
            raise UserError(f"cannot read image {f} ({type(e).__name__}): remove or replace it") from None
    return x, np.asarray(labels, dtype=np.int32), classes, np.asarray(in_test, bool) if has_test else None


def make_demo_images(per_class=60, n_classes=10, seed=0):
    """Generated 32x32 images: each class a shape and colour scheme with noise. Not real data."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    xs, ys = [], []
    for c in range(n_classes):
        base = rng.uniform(0.2, 0.9, 3)
        for _ in range(per_class):
            cx, cy, r = rng.uniform(10, 22), rng.uniform(10, 22), rng.uniform(5, 10)
            if c % 2 == 0:
                mask = (xx - cx) ** 2 + (yy - cy) ** 2 < r ** 2
            else:
                mask = (abs(xx - cx) < r) & (abs(yy - cy) < r * (0.5 + c / (2 * n_classes)))
            img = np.empty((32, 32, 3))
            img[:] = rng.uniform(0, 0.3, 3)
            img[mask] = base + rng.normal(0, 0.05, 3)
            img += rng.normal(0, 0.08, img.shape)
            xs.append(np.clip(img * 255, 0, 255).astype(np.uint8))
            ys.append(c)
    return np.stack(xs), np.asarray(ys, dtype=np.int32), [f"demo_class_{c}" for c in range(n_classes)]


def load_images(data=None, cache_dir="results/_cache", per_class=None, announce_demo=True, deferred_writes=None):
    """Every image of the source (cached as .npz for folders and archives; deferred_writes: as lyrics.load's)."""
    if data == "demo":
        if announce_demo:
            logger.info("NOTE: --data demo uses generated shapes, not real images; pass the CIFAR-100 archive for "
                        "the study")
        x, y, names = make_demo_images()
        return ImageSet(x, y, names, "generated demo images (not real data)", True,
                        content_fingerprint(x, y, names, None))
    if data is None:
        x, y, names, is_test = _keras_cifar100()
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
        x, y, names, is_test = _cifar100_python(path)
        if per_class:
            keep = _cap_per_class(y, is_test, per_class)
            x, y, is_test = x[keep], y[keep], is_test[keep]
    elif path.is_file() and path.suffix == ".npz":
        x, y, names, is_test = _npz_arrays(path)
        if per_class:
            keep = _cap_per_class(y, is_test if is_test is not None else np.zeros(len(y), bool), per_class)
            x, y, is_test = x[keep], y[keep], is_test[keep] if is_test is not None else None
    elif path.is_dir():
        x, y, names, is_test = _image_folder(path, per_class)
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
def draw_blocks(n_classes, seed):
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


def make_block(images, block, seed=42, test_fraction=0.2, val_fraction=0.2):
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
        if official:
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


_CIFAR100_FINE_NAMES = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish",
    "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange",
    "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine",
    "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk",
    "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm"]
