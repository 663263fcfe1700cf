"""The shipped read-only role matches what doctor lists (a drift here would make doctor blind)."""

from __future__ import annotations

from importlib import resources

import yaml

from kubeshape.rbac import cluster_role, render
from kubeshape.sources.live import KINDS


def test_shipped_manifest_is_the_generated_one() -> None:
    shipped = (resources.files("kubeshape") / "deploy" / "kubeshape-reader.yaml").read_text()
    assert shipped == render(), "regenerate with: kubeshape rbac > src/kubeshape/deploy/kubeshape-reader.yaml"


def test_role_is_read_only_and_covers_every_listed_kind() -> None:
    role = cluster_role()
    verbs = {v for r in role["rules"] for v in r["verbs"]}
    assert verbs == {"get", "list"}
    granted = {(g, res) for r in role["rules"] for g in r["apiGroups"] for res in r["resources"]}
    for spec in KINDS:
        assert (spec.group, spec.plural) in granted, spec.kind
    assert ("", "secrets") not in granted  # configmaps are listed: KS703 reads Prometheus rule files in them
    assert [d["kind"] for d in yaml.safe_load_all(render())] == ["ServiceAccount", "ClusterRole",
                                                                 "ClusterRoleBinding"]
