"""Data loading and preprocessing for the study: lyrics tables and image sets.

Nothing here imports Keras or TensorFlow, so the tokenizer and the splits are
the same on every Keras backend and for the scikit-learn families.
"""
