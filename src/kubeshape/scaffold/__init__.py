"""The CI files ``kubeshape init ci`` writes: Jinja2 templates, their renderer and the idempotent writer."""
