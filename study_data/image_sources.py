"""Where images come from, each read into (x uint8 [n, 32, 32, 3], y int, class names, is_test): keras.datasets'
CIFAR-100, the cifar-100-python archive or folder (unpickled arrays only), an .npz, an image-folder tree, and the
generated demo images. study_data/images.py loads, caches and splits them (bad input: one UserError)."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path
from typing import Optional

import numpy as np

from lyrics_cifar_search.suite_common import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# what each reader returns: images [n, h, w, 3] uint8, labels [n] int32, class names, and which rows are the
# source's own test split (None where it has none)
ImageArrays = tuple[np.ndarray, np.ndarray, list[str], Optional[np.ndarray]]
CifarArrays = tuple[np.ndarray, np.ndarray, list[str], np.ndarray]  # CIFAR-100's own: train and test

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


def keras_cifar100() -> CifarArrays:
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


def cifar100_python(path: str | Path) -> CifarArrays:
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
                    handle = tar.extractfile(member) if member.isfile() else None  # None: not a file
                    if handle is not None and base in ("train", "test", "meta"):
                        files[base] = handle.read()
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


def npz_arrays(path: str | Path) -> ImageArrays:
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
    test_rows = np.concatenate(flags) if len(parts) > 1 else None
    return np.concatenate(xs), y, list(names), test_rows


def image_folder(root: str | Path, per_class: Optional[int] = None) -> ImageArrays:
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
                rgb = im.convert("RGB")
                x[i] = np.asarray(rgb if rgb.size == (32, 32) else rgb.resize((32, 32)))
        except Exception as e:
            raise UserError(f"cannot read image {f} ({type(e).__name__}): remove or replace it") from None
    return x, np.asarray(labels, dtype=np.int32), classes, np.asarray(in_test, bool) if has_test else None


def make_demo_images(per_class: int = 60, n_classes: int = 10, seed: int = 0) -> tuple:
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
