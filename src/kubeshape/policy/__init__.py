"""The admission rules as policies the API server (or Kyverno) evaluates: export and install."""
