"""The command line (search.py, study.py) and the two engines behind it (keras/, optuna_engine.py)."""
