"""The report's sections on the data: what each search read, its split sizes and what it dropped, each CIFAR
block's classes, and each run's provenance (when, which command, versions, code and machine)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import pandas as pd

from lyrics_cifar_search.runners import best_store, trials_table

if TYPE_CHECKING:
    from lyrics_cifar_search.search_spaces import Family


def provenance_lines(folders: Sequence[tuple[Path, Family]]) -> list[str]:
    """When each search ran, by which command, with which versions, code and machine (search.json)."""
    rows = []
    for folder, _ in folders:
        for run in trials_table.run_record(folder).get("runs", []):
            v, m = run.get("versions", {}), run.get("machine", {})
            rows.append({"search": folder.name, "started": run.get("started_at"), "ended": run.get("ended_at"),
                         "versions": ", ".join(f"{k} {x}" for k, x in v.items()),
                         "commit": (run.get("git_commit") or "")[:12], "machine":
                         f"{m.get('cpu', '?')} x{m.get('cpu_count', '?')}" + (f", {', '.join(m['gpus'])}"
                                                                                if m.get("gpus") else "")})
    if not rows:
        return []
    return ["## Provenance", "", "Each run of each search (from its `search.json`; the command lines are there "
            "too).", "", pd.DataFrame(rows).to_markdown(index=False), ""]


def dropped_words(dropped: dict[str, Any]) -> str:
    """What a lyrics search dropped before splitting (meta.json's rows_dropped), in words: "3 without lyrics or
    genre; placeholder genres: Not Available 2; genres under 5 rows: Indie 1"."""
    said = []
    if dropped.get("without_lyrics_or_genre"):
        said.append(f"{dropped['without_lyrics_or_genre']} without lyrics or genre")
    for key, what in (("placeholder_genres", "placeholder genres"), ("small_genres", "genres under 5 rows")):
        if dropped.get(key):
            said.append(f"{what}: " + ", ".join(f"{g} {n}" for g, n in dropped[key].items()))
    if dropped.get("other_languages"):
        said.append(f"{dropped['other_languages']} in other languages")
    return "; ".join(said)


def split_lines(folders: Sequence[tuple[Path, Family]]) -> list[str]:
    """Each search's split sizes (train / validation / test rows or images), and each CIFAR block's classes."""
    rows, blocks = [], {}
    for folder, _ in folders:
        meta = best_store.best_meta(folder)
        if not meta:
            continue
        n = meta.get("data", {}).get("rows", {})
        repeats = meta.get("data", {}).get("duplicates") or {}
        dropped = meta.get("data", {}).get("rows_dropped") or {}
        coverage = meta.get("data", {}).get("artist_coverage")
        rows.append({"search": folder.name, "train": n.get("train"), "validation": n.get("val"), "test": n.get("test"),
                     "repeated songs removed": (repeats.get("removed", 0) + repeats.get("test_removed", 0))
                     if repeats else "",
                     "rows dropped": dropped_words(dropped),
                     "artists seen in training (val / test)": f"{coverage['val']:.0%} / {coverage['test']:.0%}"
                     if coverage else "",
                     "test split": meta.get("data", {}).get("test_split", "held out from --data, or --test-data")})
        if meta.get("blocks"):
            blocks[meta["blocks"]["block"]] = meta["label_names"]
    if not rows:
        return []
    lines = ["Split sizes (each search's best model records them). Songs whose lyrics are the same once cleaned "
             "are kept once, before splitting, so none sits in two splits:", "", pd.DataFrame(rows).to_markdown(index=False), ""]
    for block, names in sorted(blocks.items()):
        lines += [f"CIFAR block {block} ({len(names)} classes, labels 0..{len(names) - 1} in this order): "
                  + ", ".join(names) + ".", ""]
    return lines


def data_lines(tables: dict[str, pd.DataFrame], folders: Sequence[tuple[Path, Family]]) -> list[str]:
    """The data the searches ran on and their split sizes."""
    sources = set()
    for name in ("comparison_lyrics", "comparison_cifar"):
        if name in tables and "data" in tables[name]:
            sources |= set(tables[name]["data"].dropna())
    return ["## Data", ""] + [f"- {s}" + (" — **demo set, not real data**" if "not real data" in s else "")
                              for s in sorted(sources)] + [""] + split_lines(folders)
