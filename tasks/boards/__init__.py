"""Leaderboards: built from the result records, with bootstrap intervals, written as JSON, CSV and the page;
the final snapshot and the results report."""
