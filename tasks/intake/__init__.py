"""Intake: a contributor's drop found, read within its limits, gated (Great Expectations and the product's own
checks), reported, and staged in the standard schema."""
