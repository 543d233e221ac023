"""Leak checks of a release: exact and near duplicates between train and test, identifying columns; per-row
hashes so they run in bounded memory."""
