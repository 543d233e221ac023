"""Baselines: one scikit-learn model per task trained on the public release and submitted as team baseline."""
