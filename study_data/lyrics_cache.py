"""The lyrics data cache: a prepared data set's three splits, label names and tokenizer in one .npz file
(no pickles: texts are packed as UTF-8 bytes with offsets), written atomically."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from lyrics_cifar_search.suite_common import atomic

if TYPE_CHECKING:  # the types it stores (lyrics.py imports this module)
    from lyrics_cifar_search.study_data.lyrics import Split
    from lyrics_cifar_search.study_data.text import TextEncoder

SPLITS = ("train", "val", "test")


def _pack_texts(texts):
    encoded = [t.encode("utf-8") for t in texts]
    offsets = np.cumsum([0] + [len(b) for b in encoded]).astype(np.int64)
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack_texts(blob, offsets):
    data = blob.tobytes()
    return [data[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]


def write(path: str | Path, version: int, train: Split, val: Split, test: Split, label_names: list[str],
          encoder: TextEncoder, has_artist: bool, duplicates: Optional[dict], dropped: Optional[dict] = None) -> None:
    arrays: dict[str, Any] = {}  # name -> array (rows None in a split made before rows were kept)
    for name, s in zip(SPLITS, (train, val, test)):
        arrays[f"{name}_x"], arrays[f"{name}_y"], arrays[f"{name}_rows"] = s.x, s.y, s.rows
        arrays[f"{name}_texts"], arrays[f"{name}_texts_offsets"] = _pack_texts(s.texts)
        arrays[f"{name}_artists"], arrays[f"{name}_artists_offsets"] = _pack_texts(s.artists)
    meta = {"version": version, "label_names": label_names, "has_artist": has_artist,
            "encoder": encoder.to_json(), "duplicates": duplicates, "dropped": dropped}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic.write_bytes(path, buf.getvalue())


def read(path: str | Path, version: int) -> tuple[list[dict[str, Any]], list[str], str, bool, Optional[dict],
                                                    Optional[dict]]:
    """([the fields of each split], label names, the tokenizer's JSON, has_artist, duplicates, dropped: None in a
    cache written before it was kept); a ValueError if the file was written by another cache version."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        if meta.get("version") != version:
            raise ValueError("old cache version")
        fields = [{"x": z[f"{name}_x"], "y": z[f"{name}_y"], "rows": z[f"{name}_rows"],
                   "texts": _unpack_texts(z[f"{name}_texts"], z[f"{name}_texts_offsets"]),
                   "artists": _unpack_texts(z[f"{name}_artists"], z[f"{name}_artists_offsets"])} for name in SPLITS]
    return fields, meta["label_names"], meta["encoder"], meta["has_artist"], meta["duplicates"], meta.get("dropped")
