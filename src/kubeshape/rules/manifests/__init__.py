"""KS2xx manifests: the sources of truth (files, the live cluster, Flux) and how they disagree.

Importing the package registers every family-2 rule (``all_rules()`` imports it like any rule module).
"""

from kubeshape.rules.manifests import flux, sources_of_truth
from kubeshape.rules.manifests.sources_of_truth import CHANGE_CAUSE, IMPERATIVE_MANAGERS, REVISION

__all__ = ["CHANGE_CAUSE", "IMPERATIVE_MANAGERS", "REVISION", "flux", "sources_of_truth"]
