#!/usr/bin/env python
"""The README's first command, timed: `python runners/search.py lyrics_lstm` (10 trials of up to 20 epochs on
the generated demo set) from an empty results folder, as a new user runs it. Prints the wall time of the whole
command (start-up, data, trials and the closing summary) and the trials' own seconds.

    python bench/first_run.py
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

with tempfile.TemporaryDirectory() as tmp:
    start = time.time()
    subprocess.run([sys.executable, "-m", "lyrics_cifar_search.runners.search",
                    "lyrics_lstm", "--results-dir", tmp], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.time() - start
    trials = pd.read_csv(Path(tmp) / "lyrics_lstm" / "trials.csv")
print(f"lyrics_lstm, 10 trials on the demo set: {wall:.1f} s wall ({wall / 60:.2f} min), trials "
      f"{trials['duration_s'].sum():.1f} s, epochs {int(trials['epochs_run'].sum())}, "
      f"best val_accuracy {trials['val_accuracy'].max():.4f} vs baseline {trials['val_accuracy'][0]:.4f}")
