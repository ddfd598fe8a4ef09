"""Chaos soak of a real Dandelion cluster (see README.md): run `python -m tests.soak --help`."""
