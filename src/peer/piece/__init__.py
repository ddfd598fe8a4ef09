"""Fetching pieces from parents: grouping, transfer, verification, failure classification."""
