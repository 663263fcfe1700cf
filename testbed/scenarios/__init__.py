"""Scenarios: data (YAML) plus a loader that creates it for real on the test bed."""
