"""kubeshape: make Kubernetes deployments boring again."""

__version__ = "0.1.0"
