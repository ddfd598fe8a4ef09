"""Scheduling decisions: parent scoring and piece assignment."""
