"""Releases: staged tasks split without leakage, de-identified, written as CSV and Parquet with their card,
manifest and Croissant, uploaded and verified; latest.json."""
