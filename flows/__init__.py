"""Prefect flows: one module per flow; each only wires steps from tasks/."""
