"""KS4xx: registry tag sprawl, untraceable tags, unused tags and local-only images."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from kubeshape.config import DEFAULT_TAG_SCHEME
from kubeshape.rules.registry import EXAMPLE_TAG, human_bytes
from tests.helpers import check, config, deployment, inventory

HOST = "100.81.76.55:30500"
PRIVATE = config(f"registries: {{private: ['{HOST}']}}")
GIB = 1024**3
SEED_TAGS = [
    "latest", "fixed", "fixed-final", "fixed-v2", "fixed-v3", "fixed-v4", "fixed-v5", "phase2", "phase2-fixed",
    "phase2-mcp-logging", "mcp-working", "mcp-fixed", "mcp-system", "mcp-deps-fixed", "jwt-auth",
    "jwt-auth-fixed", "auth-complete", "complete", "deps-complete", "structure-fixed", "me-fixed",
    "import-fixed", "pythonpath-fixed", "permission-fixed",
    *[f"wip-{i}" for i in range(21)],
]  # 45 tags, none of them traceable; phase2-mcp-logging-fix was never pushed


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def tag(name: str, n: int, *, day: int = 1, layers: list[tuple[int, int]] | None = None,
        size: int | None = None, revision: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"tag": name, "digest": digest(n), "created": f"2025-10-{day:02d}T08:00:00Z"}
    if layers is not None:
        out["layers"] = [{"digest": digest(1000 + d), "size": s} for d, s in layers]
    if size is not None:
        out["size"] = size
    if revision:
        out["revision"] = revision
    return out


def registry(tags: list[dict[str, Any]], host: str = HOST, name: str = "family-assistant",
             more: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"collectedAt": "2025-11-17T10:00:00Z",
            "registries": [{"host": host, "repositories": [{"name": name, "tags": tags}]}, *(more or [])]}


def seed_registry() -> dict[str, Any]:
    return registry([tag(t, i, day=1 + i % 28) for i, t in enumerate(SEED_TAGS)])


def pod(name: str, image: str, node: str, *, owner: str | None = None, waiting: str | None = None,
        image_id: str = "", ns: str = "homelab") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-pod-{name}"}
    if owner:
        meta["ownerReferences"] = [{"kind": "Deployment", "name": owner, "uid": f"uid-{ns}-{owner}",
                                    "controller": True}]
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {"kind": "Pod", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": image}]},
            "status": {"containerStatuses": [{"name": "app", "imageID": image_id, "state": state}]}}


def node(name: str, images: list[tuple[list[str], int]]) -> dict[str, Any]:
    return {"kind": "Node", "metadata": {"name": name},
            "status": {"images": [{"names": names, "sizeBytes": size} for names, size in images]}}


# -- KS401 -----------------------------------------------------------------------


def test_ks401_reports_the_seed_45_tags_with_ages_and_prune_fix() -> None:
    [f] = check("KS401", inventory(registry=seed_registry()))
    text = "\n".join(f.evidence)
    assert f.message == f"{HOST}/family-assistant has 45 tags (limit 10)"
    assert (f.object.kind, f.object.namespace, f.object.name) == ("Repository", HOST, "family-assistant")
    assert "45 tags in 100.81.76.55:30500/family-assistant; the limit is 10" in text
    assert "oldest: latest, created 2025-10-01T08:00:00Z (47d2h ago)" in text
    assert "newest: wip-3, created 2025-10-28T08:00:00Z (20d2h ago)" in text
    assert "(+37 more)" in text
    assert f"kubeshape registry prune --repository {HOST}/family-assistant --repo . --kubeconfig" in f.fix
    assert f.fix.count("--apply") == 1
    assert f"repository: {HOST}/family-assistant" in f.fix and "keep_last: 10" in f.fix
    assert "garbage-collect" in f.fix


def test_ks401_respects_the_threshold() -> None:
    tags = [tag(f"1.0.{i}", i) for i in range(10)]
    assert check("KS401", inventory(registry=registry(tags))) == []
    [f] = check("KS401", inventory(registry=registry(tags)), config("thresholds: {max_tags_per_repository: 5}"))
    assert "limit 5" in f.message


# -- KS402 -----------------------------------------------------------------------


def test_example_tag_follows_the_default_scheme() -> None:
    assert re.search(DEFAULT_TAG_SCHEME, EXAMPLE_TAG)


def test_ks402_lists_untraceable_tags_and_the_deployed_ones_to_retag_first() -> None:
    tags = [tag("fixed", 1), tag("fixed-final", 2, day=2), tag("fixed-v5", 3, day=3),
            tag("me-fixed", 4, day=4, revision="3f2a9c1d0e"), tag("1.4.2", 5, day=5),
            tag("1.4.3-20251117T100000Z.gabc1234", 6, day=6), tag("main-abc1234-1763373600", 7, day=7)]
    live = [deployment("family-assistant-backend", f"{HOST}/family-assistant:me-fixed")]
    [f] = check("KS402", inventory(objects=live, registry=registry(tags)))
    text = "\n".join(f.evidence)
    assert f.message == f"4 tags of {HOST}/family-assistant cannot be traced to a commit"
    assert "examples: fixed, fixed-final, fixed-v5, me-fixed" in text
    assert "deployed, retag first: me-fixed used by homelab/Deployment/family-assistant-backend (live)" in text
    assert EXAMPLE_TAG in f.fix and "kubeshape release" in f.fix
    assert "git rev-parse --short=7 HEAD" in f.fix
    assert "me-fixed (built from commit 3f2a9c1" in f.fix
    assert "NEW=sha-3f2a9c1" in f.fix
    assert f"docker tag {HOST}/family-assistant:me-fixed {HOST}/family-assistant:$NEW" in f.fix
    assert f.data["deployed"] == ["me-fixed"]


def test_ks402_deployed_tag_without_revision_must_be_rebuilt(tmp_path: Path) -> None:
    files = {"app.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: homelab}\n"
                         "spec:\n  template:\n    spec:\n      containers:\n"
                         "      - {name: app, image: family-assistant:fixed}\n"}
    inv = inventory(tmp_path, files=files, registry=registry([tag("fixed", 1), tag("1.0.0", 2)]))
    [f] = check("KS402", inv, PRIVATE)
    assert "fixed used by homelab/Deployment/app in app.yaml" in "\n".join(f.evidence)
    assert "its commit is unknown -- rebuild it" in f.fix


def test_ks402_without_repo_or_cluster_says_deployment_was_not_checked() -> None:
    [f] = check("KS402", inventory(registry=registry([tag("fixed", 1)])))
    assert "which of them are deployed was not checked" in "\n".join(f.evidence)


def test_ks402_traceable_tags_pass() -> None:
    tags = [tag("1.4.2", 1), tag("v2.0.0", 2), tag("1.4.3-20251117T100000Z.gabc1234", 3),
            tag("main-0123abc-1763373600", 4), tag("sha-0123abcd", 5), tag("0123abcdef", 6)]
    assert check("KS402", inventory(registry=registry(tags))) == []


def test_ks402_uses_the_configured_scheme() -> None:
    inv = inventory(registry=registry([tag("release-7", 1), tag("1.4.2", 2)]))
    [f] = check("KS402", inv, config("tag_scheme: '^release-[0-9]+$'"))
    assert "examples: 1.4.2" in "\n".join(f.evidence)
    assert "tag_scheme `^release-[0-9]+$`" in f.fix


# -- KS403 -----------------------------------------------------------------------


def test_ks403_counts_unique_blobs_only_unused_images_hold() -> None:
    tags = [
        tag("me-fixed", 1, layers=[(1, 5 * GIB), (2, GIB)]),           # used
        tag("fixed", 2, layers=[(1, 5 * GIB), (3, 2 * GIB)]),          # blob 1 kept, blob 3 freed
        tag("fixed-v5", 3, layers=[(3, 2 * GIB), (4, 3 * GIB)]),       # blob 3 shared: counted once
        tag("fixed-alias", 1, layers=[(1, 5 * GIB), (2, GIB)]),        # same digest as me-fixed: frees nothing
        tag("old", 5, size=GIB // 2),                                  # no layer data: its own size
    ]
    objs = [deployment("family-assistant-backend", f"{HOST}/family-assistant:me-fixed")]
    [f] = check("KS403", inventory(objects=objs, registry=registry(tags)))
    text = "\n".join(f.evidence)
    assert f.message == f"4 of 5 tags of {HOST}/family-assistant are not used (5.5 GiB reclaimable)"
    assert "4 of 5 tags are referenced by no live pod or workload" in text
    assert "reclaimable: 5.5 GiB (2 layer blobs only unused images hold" in text
    assert "in use: me-fixed by homelab/Deployment/family-assistant-backend (live)" in text
    assert "garbage-collect" in text and "--dry-run" in f.fix
    assert f.data["reclaimable_bytes"] == 5 * GIB + GIB // 2


def test_ks403_matches_digests_unqualified_names_and_repo_files(tmp_path: Path) -> None:
    tags = [tag("me-fixed", 1, size=GIB), tag("fixed", 2, size=GIB), tag("pinned", 3, size=GIB),
            tag("old", 4, size=3 * GIB)]
    files = {"app.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app, namespace: homelab}\n"
                         "spec:\n  template:\n    spec:\n      containers:\n"
                         "      - {name: app, image: family-assistant:fixed}\n"}
    objs = [pod("runner-1", f"{HOST}/family-assistant:me-fixed", "pesubuntu"),
            pod("pinned-1", f"{HOST}/family-assistant@{digest(3)}", "asuna")]
    [f] = check("KS403", inventory(tmp_path, files=files, objects=objs, registry=registry(tags)), PRIVATE)
    assert f.data["unused"] == 1
    assert "unused: old" in f.evidence[1]
    assert "no live pod or workload and no manifest in the repo" in f.evidence[0]
    assert "in use: fixed by homelab/Deployment/app in app.yaml" in "\n".join(f.evidence)


def test_ks403_running_digest_from_image_id_keeps_sibling_tags() -> None:
    tags = [tag("me-fixed", 1, size=GIB), tag("fixed-v5", 1, size=GIB), tag("old", 2, size=GIB)]
    objs = [pod("runner-1", "family-assistant:me-fixed", "pesubuntu",
                image_id=f"docker-pullable://{HOST}/family-assistant@{digest(1)}")]
    [f] = check("KS403", inventory(objects=objs, registry=registry(tags)))
    assert f.data["unused"] == 1 and f.data["reclaimable_bytes"] == GIB


def test_ks403_unqualified_name_is_ignored_when_two_private_registries_have_it() -> None:
    other = {"host": "10.0.0.9:5000", "repositories": [{"name": "family-assistant", "tags": [tag("x", 9)]}]}
    reg = registry([tag("fixed", 1)], more=[other])
    objs = [deployment("app", "family-assistant:fixed")]
    cfg = config(f"registries: {{private: ['{HOST}', '10.0.0.9:5000']}}")
    assert {f.object.namespace for f in check("KS403", inventory(objects=objs, registry=reg), cfg)} == {
        HOST, "10.0.0.9:5000"}
    assert [f.object.namespace for f in check("KS403", inventory(objects=objs, registry=reg), PRIVATE)] == [
        "10.0.0.9:5000"]


def test_ks403_needs_the_repo_or_the_cluster_and_passes_when_all_tags_are_used() -> None:
    reg = registry([tag("1.0.0", 1), tag("1.0.1", 2)])
    assert check("KS403", inventory(registry=reg)) == []
    objs = [deployment("a", f"{HOST}/family-assistant:1.0.0"), deployment("b", f"{HOST}/family-assistant:1.0.1")]
    assert check("KS403", inventory(objects=objs, registry=reg)) == []


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (512, 1536, int(12.3 * GIB), 3 * 1024 * GIB)] == [
        "512 B", "1.5 KiB", "12.3 GiB", "3.0 TiB"]


# -- KS404 -----------------------------------------------------------------------

LOCAL = "docker.io/library/family-assistant:phase2-mcp-logging-fix"


def seed_cluster() -> list[dict[str, Any]]:
    return [
        node("pesubuntu", [([LOCAL, "docker.io/library/family-assistant:phase3-try"], int(1.5 * GIB)),
                           ([f"{HOST}/family-assistant:me-fixed", f"{HOST}/family-assistant@{digest(20)}"], GIB)]),
        node("asuna", [(["docker.io/library/nginx:1.27", f"docker.io/library/nginx@{digest(99)}"], 10**8)]),
        deployment("family-assistant-backend", "family-assistant:phase2-mcp-logging-fix"),
        pod("family-assistant-backend-7fccb9956b-9g4wb", "family-assistant:phase2-mcp-logging-fix", "asuna",
            owner="family-assistant-backend", waiting="ImagePullBackOff"),
    ]


def test_ks404_local_only_image_on_pesubuntu_with_push_commands() -> None:
    findings = check("KS404", inventory(objects=seed_cluster(), registry=seed_registry()), PRIVATE)
    [f] = [f for f in findings if f.severity.label == "error"]
    text = "\n".join(f.evidence)
    assert f.message == ("family-assistant:phase2-mcp-logging-fix exists only on pesubuntu; it was never pushed "
                         f"to {HOST}/family-assistant")
    assert "node pesubuntu has family-assistant:phase2-mcp-logging-fix (1.5 GiB)" in text
    assert f"{HOST}/family-assistant has 45 tags, not phase2-mcp-logging-fix" in text
    assert "never pulled" in text
    assert "used by homelab/Deployment/family-assistant-backend (live)" in text
    assert "pod homelab/family-assistant-backend-7fccb9956b-9g4wb on asuna: ImagePullBackOff" in text
    assert (f"docker tag family-assistant:phase2-mcp-logging-fix "
            f"{HOST}/family-assistant:phase2-mcp-logging-fix") in f.fix
    assert f"docker push {HOST}/family-assistant:phase2-mcp-logging-fix" in f.fix
    assert (f"kubectl set image deployment/family-assistant-backend family-assistant-backend="
            f"{HOST}/family-assistant:phase2-mcp-logging-fix -n homelab") in f.fix


def test_ks404_unused_local_tags_are_one_warning_per_repository() -> None:
    findings = check("KS404", inventory(objects=seed_cluster(), registry=seed_registry()), PRIVATE)
    [w] = [f for f in findings if f.severity.label == "warning"]
    assert w.data["tags"] == ["phase3-try"] and w.data["nodes"] == ["pesubuntu"]


BACKEND_FILE = ("apiVersion: apps/v1\nkind: Deployment\n"
                "metadata: {name: family-assistant-backend, namespace: homelab}\n"
                "spec:\n  template:\n    spec:\n      containers:\n      - name: family-assistant-backend\n"
                "        image: family-assistant:{tag}\n")


def test_ks404_names_the_manifest_line_to_qualify(tmp_path: Path) -> None:
    files = {"backend.yaml": BACKEND_FILE.replace("{tag}", "phase2-mcp-logging-fix")}
    objs = [node("pesubuntu", [([LOCAL], GIB)])]
    [f] = check("KS404", inventory(tmp_path, files=files, objects=objs, registry=seed_registry()), PRIVATE)
    assert (f"  backend.yaml:9: image: {HOST}/family-assistant:phase2-mcp-logging-fix   # container "
            "family-assistant-backend of homelab/Deployment/family-assistant-backend\n"
            "  then `kubectl apply -f backend.yaml`") in f.fix


def test_ks404_live_workload_defined_in_two_files_gets_both_lines_not_set_image(tmp_path: Path) -> None:
    files = {"a/backend.yaml": BACKEND_FILE.replace("{tag}", "fixed"),
             "backend.yaml": BACKEND_FILE.replace("{tag}", "fixed-final")}
    inv = inventory(tmp_path, files=files, objects=seed_cluster(), registry=seed_registry())
    [f] = [f for f in check("KS404", inv, PRIVATE) if f.severity.label == "error"]
    assert f"  a/backend.yaml:9: image: {HOST}/family-assistant:phase2-mcp-logging-fix" in f.fix
    assert f"  backend.yaml:9: image: {HOST}/family-assistant:phase2-mcp-logging-fix" in f.fix
    assert "then apply the one you deploy from (2 files define it" in f.fix
    assert "kubectl set image" not in f.fix


def test_ks404_pushed_and_unrelated_images_pass() -> None:
    objs = [node("pesubuntu", [([f"{HOST}/family-assistant:me-fixed"], GIB),
                               (["docker.io/library/family-assistant:me-fixed"], GIB),
                               (["docker.io/library/nginx:1.27"], 10**8), (["ghcr.io/pesuga/dash:latest"], 10**8),
                               # pulled from Docker Hub (it has a repo digest), not built here
                               (["docker.io/library/family-assistant:hub",
                                 f"docker.io/library/family-assistant@{digest(7)}"], GIB)]),
            deployment("family-assistant-backend", f"{HOST}/family-assistant:me-fixed")]
    assert check("KS404", inventory(objects=objs, registry=seed_registry()), PRIVATE) == []
