"""The command line (search.py, study.py) and the two engines behind it (keras_search/, optuna_engine.py), and the
record every trial of both lives in (record.py: one Optuna study per search)."""
