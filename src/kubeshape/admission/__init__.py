"""Admission control: the validating webhook and its deployment."""
