"""Scoring: uploads listed and admitted (window, quota, size), validated against the release, scored on the
public and private parts; result records, feedback, notes, FINAL picks, team histories."""
