"""Checks a release makes before its first side effect: permissions in the cluster, a registry that speaks the
distribution API, a clean file, and drift between the live Deployment and the file. Each refusal is one line."""

from __future__ import annotations

from kubeshape.errors import InputError
from kubeshape.imageref import InvalidReference, parse
from kubeshape.registry.client import RegistryClient
from kubeshape.release import history
from kubeshape.release.edit import Edit
from kubeshape.release.kube import Kube
from kubeshape.release.plan import Target

NEEDED = (("patch", "apps", "deployments"), ("list", "apps", "replicasets"), ("watch", "apps", "replicasets"),
          ("list", "", "pods"), ("watch", "", "pods"))
NEEDED_GITOPS = (("get", "apps", "deployments"), *NEEDED[1:])  # Flux changes the Deployment, kubeshape watches


class DriftError(InputError):
    """The live Deployment runs another image than the file names."""


def check_access(kube: Kube, targets: list[Target], gitops: bool = False) -> None:
    """Refuse unless the credentials may patch (through Flux: read) each Deployment and list/watch its
    ReplicaSets and pods."""
    does = "reads the Deployment" if gitops else "patches the Deployment"
    for t in targets:
        for verb, group, resource in NEEDED_GITOPS if gitops else NEEDED:
            name = t.name if resource == "deployments" else None
            if not kube.allowed(verb, group, resource, t.namespace, name):
                what = f"deployments/{t.name}" if name else resource
                raise InputError(f"context '{kube.context}' may not {verb} {what} in namespace {t.namespace}: a "
                                 f"release {does} and lists/watches its ReplicaSets and pods -- use "
                                 "credentials with those rights (nothing was pushed or committed)")


def check_registry(client: RegistryClient) -> None:
    """``GET /v2/`` answered as a registry does (else SourceUnreachable: "not a registry")."""
    client.ping()


def same_image(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        ra, rb = parse(a), parse(b)
    except InvalidReference:
        return False
    return (ra.normalized_name, ra.effective_tag, ra.digest) == (rb.normalized_name, rb.effective_tag, rb.digest)


def check_drift(targets: list[Target], edit: Edit, adopt_live: bool, from_file: bool) -> str | None:
    """The live image to adopt into the file (``--adopt-live``), or None; refuse on drift without a choice."""
    if adopt_live and from_file:
        raise InputError("--adopt-live and --from-file are two answers to the same question: give one")
    for t in targets:
        for container, live in t.before.items():
            if same_image(live, edit.image_before):
                continue
            if adopt_live:
                return live
            if from_file:
                return None
            raise DriftError(f"drift: Deployment {t.namespace}/{t.name} container {container} runs {live}, but "
                             f"{edit.path} names {edit.image_before} -- pass --adopt-live (write {live} into the "
                             "file first) or --from-file (the file is the truth)")
    return None


def last_known_good(kube: Kube, t: Target) -> str | None:
    """Fill in ``t``'s last known good from ``history``; a note when history names none."""
    found = history.from_live(kube, t.namespace, t.name).last_known_good
    if found is None or not all(c in found.containers for c in t.before):
        return (f"history names no last known good for Deployment {t.namespace}/{t.name}: a rollback returns "
                f"to what runs now ({', '.join(sorted(set(t.before.values())))})")
    t.lkg = {c: found.containers[c] for c in t.before}
    t.lkg_digest, t.lkg_revision = found.digest, found.revision
    return None
