"""Metrics as small pure functions (numpy in, numbers out)."""
