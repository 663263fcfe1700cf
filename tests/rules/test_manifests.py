"""KS2xx: manifest fragmentation, drift and change-cause."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import check, deployment, inventory

DEP = """\
# {comment}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: homelab
spec:
  replicas: {replicas}
  template:
    spec:
      containers:
      - name: family-assistant
        image: {image}
        imagePullPolicy: {policy}
"""


def dep_yaml(name: str = "family-assistant-backend", image: str = "family-assistant:fixed", policy: str = "Never",
             replicas: int = 2) -> str:
    return DEP.format(comment=name, name=name, image=image, policy=policy, replicas=replicas)


SEED_FILES = {
    "infrastructure/kubernetes/family-assistant-backend.yaml": dep_yaml(),
    "family-assistant-backend.yaml": dep_yaml(image="100.81.76.55:30500/family-assistant:fixed-final",
                                              policy="Always"),
}


def test_ks201_duplicate_definitions_show_what_differs(tmp_path: Path) -> None:
    [f] = check("KS201", inventory(tmp_path, files=SEED_FILES))
    text = "\n".join(f.evidence)
    assert "defined in 2 files" in f.message
    assert "family-assistant.image, family-assistant.imagePullPolicy" in text
    assert "family-assistant-backend.yaml:2:" in text
    assert "infrastructure/kubernetes/family-assistant-backend.yaml:2:" in text
    assert "git rm " in f.fix


def test_ks201_keeps_the_file_closest_to_live(tmp_path: Path) -> None:
    live = deployment("family-assistant-backend", "100.81.76.55:30500/family-assistant:fixed-final",
                      replicas=2, imagePullPolicy="Always")
    live["spec"]["template"]["spec"]["containers"][0]["name"] = "family-assistant"
    [f] = check("KS201", inventory(tmp_path, files=SEED_FILES, objects=[live]))
    assert "# keep family-assistant-backend.yaml" in f.fix
    assert "git rm infrastructure/kubernetes/family-assistant-backend.yaml" in f.fix


def test_ks201_negative_distinct_namespaces(tmp_path: Path) -> None:
    files = {"a.yaml": dep_yaml(), "b.yaml": dep_yaml().replace("namespace: homelab", "namespace: staging")}
    assert check("KS201", inventory(tmp_path, files=files)) == []


def test_ks202_variant_sprawl(tmp_path: Path) -> None:
    files = {
        "a.yaml": dep_yaml(),
        "b.yaml": dep_yaml(name="family-assistant-enhancement", image="family-assistant:phase2"),
        "c.yaml": dep_yaml(name="family-assistant-enhanced", image="100.81.76.55:30500/family-assistant:x"),
    }
    [f] = check("KS202", inventory(tmp_path, files=files))
    assert "3 workloads in homelab run image family-assistant" in f.message
    assert f.data["files"] == ["a.yaml", "b.yaml", "c.yaml"]


def test_ks202_negative_unrelated_names_sharing_an_image(tmp_path: Path) -> None:
    files = {"a.yaml": dep_yaml(name="api", image="busybox:1.36"),
             "b.yaml": dep_yaml(name="worker", image="busybox:1.36")}
    assert check("KS202", inventory(tmp_path, files=files)) == []


def _live_backend(image: str) -> dict:  # type: ignore[type-arg]
    live = deployment("family-assistant-backend", image, replicas=2, imagePullPolicy="IfNotPresent")
    live["spec"]["template"]["spec"]["containers"][0]["name"] = "family-assistant"
    live["metadata"]["managedFields"] = [{"manager": "kubectl-set", "operation": "Update",
                                          "time": "2025-11-17T08:10:00Z"}]
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "62"}
    return live


def test_ks203_live_drift_names_the_imperative_change(tmp_path: Path) -> None:
    inv = inventory(tmp_path, files=SEED_FILES, objects=[_live_backend("family-assistant:phase2-mcp-logging-fix")])
    [f] = check("KS203", inv)
    text = "\n".join(f.evidence)
    assert "family-assistant.image=family-assistant:phase2-mcp-logging-fix" in text
    assert "changed imperatively by 'kubectl set' at 2025-11-17T08:10:00Z" in text
    assert "live revision 62" in text


def test_ks203_negative_live_matches_one_file(tmp_path: Path) -> None:
    live = _live_backend("family-assistant:fixed")
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    assert check("KS203", inventory(tmp_path, files=SEED_FILES, objects=[live])) == []


def test_ks204_live_not_in_repo(tmp_path: Path) -> None:
    inv = inventory(tmp_path, files=SEED_FILES, objects=[deployment("whisper", "a.io/w:1"),
                                                         deployment("coredns", "a.io/c:1", ns="kube-system")])
    [f] = check("KS204", inv)
    assert f.object is not None and f.object.name == "whisper"


def test_ks204_negative(tmp_path: Path) -> None:
    inv = inventory(tmp_path, files=SEED_FILES, objects=[_live_backend("family-assistant:fixed")])
    assert check("KS204", inv) == []


def _revisions(n: int, cause: bool) -> list[dict]:  # type: ignore[type-arg]
    dep = _live_backend("x.io/a:1")
    out = [dep]
    for rev in range(62 - n + 1, 63):
        ann = {"deployment.kubernetes.io/revision": str(rev)}
        if cause:
            ann["kubernetes.io/change-cause"] = f"release {rev}"
        out.append({"kind": "ReplicaSet", "metadata": {
            "name": f"fab-{rev}", "namespace": "homelab", "uid": f"rs-{rev}", "annotations": ann,
            "creationTimestamp": f"2025-11-{rev - 45:02d}T00:00:00Z",
            "ownerReferences": [{"kind": "Deployment", "name": "family-assistant-backend",
                                 "uid": dep["metadata"]["uid"], "controller": True}]}})
    return out


def test_ks205_revisions_without_change_cause() -> None:
    [f] = check("KS205", inventory(objects=_revisions(10, cause=False)))
    assert "revision 62" in f.message
    assert "10 of 10 retained ReplicaSets have no change-cause (revisions 53–62)" in f.evidence[1]
    assert "kubectl annotate deployment/family-assistant-backend -n homelab" in f.fix


def test_ks205_negative() -> None:
    assert check("KS205", inventory(objects=_revisions(10, cause=True))) == []


def test_ks209_broken_yaml_is_a_finding_with_line(tmp_path: Path) -> None:
    broken = "apiVersion: v1\nkind: ConfigMap\ndata:\n  a: [1,\n  b: 2\n"
    inv = inventory(tmp_path, files={"ok.yaml": dep_yaml(), "broken.yaml": broken, "notes.yaml": "a: [1,\nb: 2\n"})
    [f] = check("KS209", inv)  # notes.yaml is no manifest: skipped with a note, not an error
    assert (f.file, f.line) == ("broken.yaml", 6)
    assert inv.repo is not None and any("notes.yaml" in n for n in inv.repo.notes)
    assert check("KS209", inventory(tmp_path / "x", files={"ok.yaml": dep_yaml()})) == []
