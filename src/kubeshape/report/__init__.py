"""Renderers: the same report as terminal text, Markdown, JSON, SARIF or HTML."""
