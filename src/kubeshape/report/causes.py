"""Which rules can explain which: the causal links that group findings into incidents, as data.

A link ``Link("KS106", "KS105", "image")`` reads "an image that exists on some nodes only (KS106) explains pods
that cannot pull it (KS105)" and holds only when both findings are about the same *subject* of that kind (the
same image here). Subjects come from a finding's object and its structured ``data``, never from its wording.
A ``peer`` link joins two findings that share a root cause without one explaining the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeshape.findings import Finding

WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod",
                            "Rollout", "HelmRelease"})


@dataclass(frozen=True, slots=True)
class Link:
    cause: str
    effect: str
    subject: str
    peer: bool = False


LINKS: tuple[Link, ...] = (
    # 1 images: pods cannot pull ← the image is on some nodes only ← never pushed ← unqualified / Never
    Link("KS106", "KS105", "image"),
    Link("KS404", "KS105", "image"),
    Link("KS104", "KS105", "image"),
    Link("KS101", "KS105", "image"),
    Link("KS101", "KS106", "image"),
    Link("KS101", "KS404", "image"),
    Link("KS102", "KS105", "workload"),
    Link("KS102", "KS101", "container", peer=True),
    # 2 manifests: live drift ← several definitions / variants; revisions without a cause ~ imperative edits
    Link("KS201", "KS203", "workload"),
    Link("KS202", "KS201", "workload", peer=True),
    Link("KS202", "KS203", "workload"),
    Link("KS205", "KS203", "workload", peer=True),
    # a change made behind Flux (kubectl set image/edit of what Flux applies) explains what it broke; the image it
    # set shares its root cause with an unqualified name (built on a node, never pushed)
    Link("KS211", "KS101", "workload-image", peer=True),
    Link("KS211", "KS102", "workload-image"),
    Link("KS211", "KS104", "workload-image"),
    Link("KS211", "KS106", "workload-image"),
    Link("KS211", "KS105", "pod-template"),
    Link("KS211", "KS503", "pod-template"),
    Link("KS211", "KS501", "pod-template"),
    # 3 pipeline: every pipeline finding has the same root cause, images built by hand
    Link("KS302", "KS303", "pipeline"),
    Link("KS302", "KS301", "pipeline"),
    Link("KS303", "KS301", "pipeline"),
    # 4 registry: one registry without a tag scheme or retention
    Link("KS403", "KS401", "registry"),
    Link("KS402", "KS401", "registry", peer=True),
    Link("KS402", "KS403", "registry", peer=True),
    # 5 stability: restarts ← probes answered 429 / crashes; 429s ← the app's own rate-limit answers
    Link("KS502", "KS501", "workload"),
    Link("KS503", "KS501", "workload"),
    Link("KS504", "KS502", "answers-429"),
    # 7 observability: a log flood of failed exports ← the collector Service does not exist
    Link("KS701", "KS504", "service"),
    Link("KS703", "KS702", "observability", peer=True),
)


def _workload(f: Finding) -> set[str]:
    o = f.object
    return {f"{o.namespace}/{o.kind}/{o.name}"} if o is not None and o.kind in WORKLOAD_KINDS else set()


def _images(f: Finding) -> set[str]:
    out = {str(i) for i in f.data.get("images") or [] if i}
    if f.data.get("image"):
        out.add(str(f.data["image"]))
    return out


def _workload_images(f: Finding) -> set[str]:
    return {f"{w}|{i}" for w in _workload(f) for i in _images(f)}


def _pod_template(f: Finding) -> set[str]:
    """The workload, for a change behind Flux only when it touched the pod template (or which fields is unknown)."""
    if f.rule == "KS211" and not f.data.get("pod_template"):
        return set()
    return _workload(f)


def _container(f: Finding) -> set[str]:
    name = f.data.get("container")
    return {f"{w}|{name}|{f.file or ''}" for w in _workload(f)} if name else set()


def _registry(f: Finding) -> set[str]:
    o = f.object
    return {o.namespace} if o is not None and o.kind in ("Repository", "Image") and o.namespace else set()


def _services(f: Finding) -> set[str]:
    out = {str(s) for s in f.data.get("services") or []}
    if f.data.get("service") and f.data.get("namespace"):
        out.add(f"{f.data['namespace']}/{f.data['service']}")
    return out


def _answers_429(f: Finding) -> set[str]:
    if f.rule == "KS504" and 429 not in (f.data.get("http_statuses") or []):
        return set()
    return _workload(f)


def _constant(name: str) -> Callable[[Finding], set[str]]:
    return lambda f: {name}


SUBJECTS: dict[str, Callable[[Finding], set[str]]] = {
    "workload": _workload,
    "image": _images,
    "workload-image": _workload_images,
    "pod-template": _pod_template,
    "container": _container,
    "registry": _registry,
    "service": _services,
    "answers-429": _answers_429,
    "pipeline": _constant("pipeline"),
    "observability": _constant("observability"),
}


@dataclass(frozen=True, slots=True)
class Wording:
    """How an incident speaks about a rule's findings.

    ``phrase`` is one link of a causal chain and ``title`` heads an incident of several such findings; both are
    format strings over the merged ``data`` of the findings plus ``n`` (their count), ``names`` (their objects)
    and ``nodes``. ``action`` names the plan step that fixes it, ``phase`` where that step goes
    (stop, foundation, excellence), and ``mitigates`` marks a fix that stops the damage while the cause is fixed.
    """

    phrase: str
    action: str
    phase: str
    title: str = ""
    mitigates: bool = False


WORDING: dict[str, Wording] = {
    "KS101": Wording("{n} unqualified image name{s}", "Push node-local images and deploy registry-qualified names",
                     "stop", "{n} containers use unqualified image names ({images})"),
    "KS102": Wording("imagePullPolicy: Never", "Let the kubelet pull the image (drop imagePullPolicy: Never)",
                     "stop"),
    "KS103": Wording("mutable tag{s} (latest or none)", "Deploy tags that name one build", "foundation",
                     "{n} containers use a mutable tag ({names})"),
    "KS104": Wording("tag missing from the registry", "Push the missing tags or deploy ones that exist", "stop"),
    "KS105": Wording("ImagePullBackOff on {nodes}", "Push the image and deploy it by its "
                     "registry name", "stop"),
    "KS106": Wording("image only in {nodes}'s local store", "Push node-local images to the registry", "stop"),
    "KS107": Wording("image from a registry not allowed", "Deploy images from allowed registries", "foundation"),
    "KS108": Wording("invalid image reference", "Fix the image references", "stop"),
    "KS201": Wording("{n_files} files define it and disagree", "Keep one definition per object", "stop"),
    "KS202": Wording("{n_workloads} variants of one service", "Consolidate the variants into one service",
                     "foundation"),
    "KS203": Wording("live state matches no file", "Bring the repo and the cluster back in line", "foundation",
                     "{n} live workloads match none of their files ({names})"),
    "KS204": Wording("not defined in the repo", "Commit the live workloads the repo lacks", "foundation"),
    "KS205": Wording("{without_cause} revisions without a change-cause", "Record a change-cause on every rollout",
                     "foundation"),
    "KS206": Wording("Flux object{s} not ready", "Fix what Flux fails to reconcile", "stop",
                     "{n} Flux objects fail to reconcile ({names})"),
    "KS207": Wording("Flux reconciliation suspended", "Resume the suspended Flux objects", "foundation",
                     "{n} Flux objects are suspended ({names})"),
    "KS208": Wording("behind the latest commit", "Let Flux apply the latest commit", "foundation",
                     "{n} Kustomizations run an older commit ({names})"),
    "KS209": Wording("unreadable manifest{s}", "Fix the unreadable manifests", "stop"),
    "KS210": Wording("not applied by Flux", "Commit or delete what Flux does not apply", "foundation",
                     "{n} objects in Flux-managed namespaces are not applied by Flux ({names})"),
    "KS211": Wording("changed behind Flux", "Commit the changes made behind Flux", "stop",
                     "{n} Flux-managed objects were changed behind Flux ({names})"),
    "KS301": Wording("{n} deployed tag{s} name no commit", "Build and tag images in CI from a commit",
                     "foundation", "{n} deployed image tags name no commit or release ({images})"),
    "KS302": Wording("{n} Dockerfile{s} not built by CI", "Build and tag images in CI from a commit",
                     "foundation", "{n} Dockerfiles no CI workflow builds"),
    "KS303": Wording("image{s} built by hand", "Build and tag images in CI from a commit", "foundation"),
    "KS401": Wording("{tags} tags (limit {limit})", "Set a retention policy and prune unused tags", "foundation"),
    "KS402": Wording("{untraceable} untraceable tags", "Set a retention policy and prune unused tags",
                     "foundation", "{untraceable} registry tags cannot be traced to a commit"),
    "KS403": Wording("{unused} unused tags", "Set a retention policy and prune unused tags",
                     "foundation", "{unused} registry tags nothing deploys"),
    "KS404": Wording("never pushed", "Push node-local images to the registry", "stop"),
    "KS501": Wording("{restarts} restarts", "Stop the restart storm", "stop",
                     "{n} workloads restart {restarts} times ({names})"),
    "KS502": Wording("probes answered HTTP 429 {failures} times", "Move the probes off the rate-limited endpoint",
                     "stop"),
    "KS503": Wording("crash loop", "Fix the crashing containers", "stop", "{n} workloads crash-loop ({names})"),
    "KS504": Wording("log flood: {template}", "Stop the log flood", "stop", "{n} workloads flood their logs ({names})",
                     mitigates=True),
    "KS601": Wording("HPA target missing", "Delete the orphaned autoscalers", "stop",
                     "{n} HPAs scale workloads that do not exist ({names})"),
    "KS602": Wording("{idle} old ReplicaSets", "Trim old ReplicaSets and revisionHistoryLimit", "foundation",
                     "{n} Deployments keep {idle} old ReplicaSets ({names})"),
    "KS603": Wording("PDB selects no pods", "Fix or delete PodDisruptionBudgets that select nothing",
                     "foundation", "{n} PodDisruptionBudgets select no pods ({names})"),
    "KS604": Wording("Service selects no pods", "Fix or delete Services that select nothing", "foundation",
                     "{n} Services select no pods ({names})"),
    "KS701": Wording("collector Service {service}.{namespace} missing", "Deploy the collector the apps export to",
                     "foundation", "{n} workloads export to {service}.{namespace}, which does not exist"),
    "KS702": Wording("{n} workload{s} not scraped", "Scrape every workload's metrics", "excellence",
                     "{n} workloads no Prometheus scrape configuration covers"),
    "KS703": Wording("no alerts on {missing}", "Alert on restarts, unavailable replicas and pull failures",
                     "excellence"),
}

DEFAULT_WORDING = Wording("{rule}", "Fix {rule}", "foundation")


def wording(rule_id: str) -> Wording:
    return WORDING.get(rule_id, DEFAULT_WORDING)


_NOT_ADDED = frozenset({"limit", "keep", "revision", "per_day", "lines"})  # thresholds and rates: keep the largest


def merged_data(findings: list[Finding]) -> dict[str, Any]:
    """The ``data`` of several findings of one rule as one: counts add up, lists join, text keeps the first."""
    out: dict[str, Any] = {}
    for f in findings:
        for key, value in f.data.items():
            if isinstance(value, bool) or not isinstance(value, int | float | list | str):
                continue
            have = out.get(key)
            if have is None:
                out[key] = list(value) if isinstance(value, list) else value
            elif isinstance(value, int | float) and isinstance(have, int | float) and not isinstance(have, bool):
                out[key] = max(have, value) if key in _NOT_ADDED else have + value
            elif isinstance(value, list) and isinstance(have, list):
                out[key] = have + [v for v in value if v not in have]
    return out
