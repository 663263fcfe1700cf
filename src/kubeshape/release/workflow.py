"""``kubeshape release``: tag from git → build/copy/push → verify the tag → edit the manifest → commit → set the
image and change-cause on the live Deployment → watch → on failure, roll back in git and in the cluster.

Nothing in git or in the work tree changes until the image is in the registry under its tag; registry errors
abort with one line and leave both untouched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from kubeshape.errors import EXIT_INPUT, InputError, KubeshapeError
from kubeshape.imageref import ImageRef, InvalidReference, parse
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import RegistryError
from kubeshape.registry.models import format_created
from kubeshape.release import artifact as art_mod
from kubeshape.release import builders, push
from kubeshape.release.artifact import Artifact, LayoutError
from kubeshape.release.edit import Edit, plan_kustomization, plan_manifest
from kubeshape.release.gitrepo import GitRepo
from kubeshape.release.kube import Kube
from kubeshape.release.rollback import Target, rollback
from kubeshape.release.rollout import Outcome, record, watch
from kubeshape.release.tagging import GitState, ReleaseTag, compute_tag

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
EXIT_ROLLOUT_FAILED = 1


class Reporter(Protocol):
    """Where a release tells what it does: steps, warnings, rollout progress."""

    def step(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def progress(self, message: str) -> None: ...


class ReleaseError(KubeshapeError):
    """A release step failed; the one-line message says what was and was not changed."""

    def __init__(self, message: str, exit_code: int = EXIT_INPUT) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code


class ReleaseAborted(ReleaseError):
    """The release stopped before changing git, the work tree or the cluster."""


@dataclass
class ReleaseOptions:
    image: str
    path: Path = Path(".")
    push: bool = False
    from_image: str | None = None
    oci_layout: Path | None = None
    manifest: Path | None = None
    kustomization: Path | None = None
    container: str | None = None
    commit: bool = True
    watch: bool = False
    rollback_on_failure: bool = False
    kubeconfig: Path | None = None
    context: str | None = None
    namespace: str | None = None
    insecure_registry: bool = False
    allow_dirty: bool = False
    allow_unqualified: bool = False
    registry_timeout: float = 10.0
    registry_retries: int = 3
    poll: float = 1.0

    @property
    def cluster(self) -> bool:
        return self.kubeconfig is not None or self.context is not None


@dataclass
class ReleaseResult:
    tag: ReleaseTag
    image: str  # name:tag as deployed
    digest: str | None
    subject: str = ""  # the commit subject, also the change-cause
    edit: Edit | None = None
    commit: str | None = None
    targets: list[Target] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    rolled_back: bool = False
    revert_commit: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


def _check_options(opts: ReleaseOptions) -> ImageRef:
    try:
        ref = parse(opts.image)
    except InvalidReference as exc:
        raise InputError(f"--image {opts.image!r}: {exc.reason}") from None
    if ref.tag is not None or ref.digest is not None:
        raise InputError(f"--image {opts.image}: give the repository only (REGISTRY/REPO); the tag comes from git")
    if not ref.qualified and not opts.allow_unqualified:
        raise InputError(f"--image {opts.image} names no registry: nodes would pull it from docker.io or find it "
                         "only where it was built (ImagePullBackOff elsewhere) -- give REGISTRY/REPO")
    if opts.from_image and opts.oci_layout:
        raise InputError("--from-image and --oci-layout are two sources of the same image: give one")
    if opts.manifest and opts.kustomization:
        raise InputError("--manifest and --kustomization: give one file to edit")
    if (opts.push or opts.from_image or opts.oci_layout) and not ref.qualified:
        raise InputError(f"--push needs a registry in --image (REGISTRY/REPO), not {opts.image}")
    if opts.watch and not opts.cluster:
        raise InputError("--watch follows the rollout in a cluster: add --kubeconfig or --context")
    if opts.rollback_on_failure and not opts.watch:
        raise InputError("--rollback-on-failure acts on the watched rollout: add --watch")
    if opts.cluster and not (opts.manifest or opts.kustomization):
        raise InputError("--kubeconfig/--context update the Deployment the edited file deploys: add --manifest "
                         "or --kustomization")
    return ref


def _plan(opts: ReleaseOptions, ref: ImageRef, tag: str, digest: str | None) -> Edit | None:
    if opts.manifest is not None:
        return plan_manifest(opts.manifest, ref.name, f"{ref.name}:{tag}", opts.container)
    if opts.kustomization is not None:
        return plan_kustomization(opts.kustomization, ref.name, tag, digest)
    return None


def _labels(repo: GitRepo, state: GitState, tag: ReleaseTag) -> dict[str, str]:
    """OCI labels; ``created`` is the commit time (SOURCE_DATE_EPOCH style), so that pushing the same layout for
    the same commit again gives the same digest. A dirty build's revision says so."""
    created = datetime.fromtimestamp(state.commit_time, UTC)
    labels = {art_mod.REVISION: state.sha + ("-dirty" if tag.dirty else ""), art_mod.VERSION: tag.tag,
              art_mod.CREATED: format_created(created) or ""}
    if (source := repo.remote_url()) is not None:
        labels[art_mod.SOURCE] = source
    return labels


@contextmanager
def _registry_phase(what: str) -> Iterator[None]:
    """Registry, build and layout errors abort the release in one line, before anything changed."""
    try:
        yield
    except (RegistryError, builders.BuildError, LayoutError, push.TagTaken) as exc:
        raise ReleaseAborted(f"release aborted, git and manifests untouched: {what}: {exc}", exc.exit_code) from None


def _source(opts: ReleaseOptions, client: RegistryClient, repo: GitRepo, state: GitState, tag: ReleaseTag,
            workdir: Path, reporter: Reporter) -> tuple[Artifact, list[str]]:
    """The image to push, stamped with the OCI labels when kubeshape builds it or pushes a layout."""
    notes: list[str] = []
    labels = _labels(repo, state, tag)
    if opts.from_image:
        src = parse(opts.from_image)
        if not src.qualified:
            raise InputError(f"--from-image {opts.from_image}: name its registry (REGISTRY/REPO:TAG)")
        reporter.step(f"copying {opts.from_image}")
        if src.domain == client.host:
            art = art_mod.fetch_remote(client, src.path, src.digest or src.effective_tag or "latest")
        else:
            other = RegistryClient(str(src.domain), insecure=opts.insecure_registry, timeout=opts.registry_timeout,
                                   retries=opts.registry_retries)
            art = art_mod.fetch_remote(other, src.path, src.digest or src.effective_tag or "latest")
        revision = art.revision()
        _check_revision(revision, state, f"--from-image {opts.from_image}")
        if revision is None:
            notes.append(f"{opts.from_image} has no {art_mod.REVISION} label in its config: the tag names commit "
                         f"{tag.short_sha}, but the image itself does not say which commit it was built from "
                         "(copied as is, digest unchanged)")
        return art, notes
    if opts.oci_layout is not None:
        art = art_mod.read_layout(opts.oci_layout)
        source = f"--oci-layout {opts.oci_layout}"
    else:
        builder = builders.detect()
        if builder is None:
            raise InputError("no image builder found (docker buildx with a daemon, podman, buildah): pass "
                             "--from-image REF or --oci-layout DIR")
        reporter.step(f"building {opts.path} with {builder.name}")
        art = art_mod.read_layout(builders.build(builder, opts.path, labels, workdir / "layout", tag.tag))
        source = f"the {builder.name} build"
    _check_revision(art.revision(), state, source)
    art, stamped = art_mod.stamp(art, labels)
    if stamped:
        notes.append(f"labelled the image config with {art_mod.REVISION}={state.sha} (and source/created/version); "
                     "the digest changed accordingly")
    elif art.is_index and art.revision() is None:
        notes.append(f"{source} is a multi-platform index without {art_mod.REVISION}: not relabelled (its "
                     "attestations would break) -- build with --label")
    return art, notes


def _check_revision(revision: str | None, state: GitState, what: str) -> None:
    revision = revision.removesuffix("-dirty") if revision else revision
    if revision and not state.sha.startswith(revision) and not revision.startswith(state.sha[:7]):
        raise InputError(f"{what} was built from commit {revision[:12]}, but HEAD is {state.sha[:12]}: the tag "
                         "would name the wrong commit -- check out that commit or release a matching image")


def _publish(opts: ReleaseOptions, ref: ImageRef, repo: GitRepo, state: GitState, tag: ReleaseTag,
             reporter: Reporter) -> tuple[str | None, list[str]]:
    """Push (or look up) the tag; the digest it resolves to."""
    if not ref.qualified:
        reporter.warn(f"{ref.name} names no registry: the tag was not checked and nodes must find the image "
                      "themselves")
        return None, []
    host = str(ref.domain)
    with _registry_phase(f"{host}/{ref.path}:{tag.tag}"), RegistryClient(
            host, insecure=opts.insecure_registry, timeout=opts.registry_timeout,
            retries=opts.registry_retries) as client:
        if not (opts.push or opts.from_image or opts.oci_layout):
            digest = push.existing_digest(client, ref.path, tag.tag)
            if digest is None:
                raise ReleaseAborted(f"release aborted, git and manifests untouched: {host}/{ref.path}:{tag.tag} "
                                     "does not exist: pass --push (with --from-image/--oci-layout, or a builder)")
            reporter.step(f"{host}/{ref.path}:{tag.tag} exists: {digest}")
            return digest, []
        with tempfile.TemporaryDirectory(prefix="kubeshape-release-") as tmp:
            art, notes = _source(opts, client, repo, state, tag, Path(tmp), reporter)
            if push.check_free(client, ref.path, tag.tag, art.digest):
                reporter.step(f"{host}/{ref.path}:{tag.tag} already holds {art.digest}: nothing to push")
            else:
                reporter.step(f"pushing {host}/{ref.path}:{tag.tag}")
                push.push(client, ref.path, tag.tag, art)
            push.verify(client, ref.path, tag.tag, art.digest)
        reporter.step(f"verified: {host}/{ref.path}:{tag.tag} resolves to {art.digest}")
        return art.digest, notes


def subject(service: str, tag: ReleaseTag, digest: str | None) -> str:
    """``release family-assistant 1.4.2 (sha256:…) from abc1234``: the commit subject and the change-cause."""
    dirty = " (dirty work tree, not traceable)" if tag.dirty else ""
    return f"release {service} {tag.tag} ({digest or 'digest unknown'}) from {tag.short_sha}{dirty}"


def commit_message(result: ReleaseResult, edit: Edit) -> str:
    """The subject, then the image, digest, full commit SHA and the file's change."""
    tag, digest, image = result.tag, result.digest, result.image
    body = [f"image: {image}", f"digest: {digest or 'unknown (not checked in a registry)'}",
            f"commit: {tag.commit}",
            f"file: {edit.path.name} ({edit.image_before or 'new entry'} -> {edit.image_after})"]
    return result.subject + "\n\n" + "\n".join(body) + "\n"


def _targets(opts: ReleaseOptions, kube: Kube, edit: Edit) -> list[Target]:
    """The live Deployments the file deploys, with their current images (what a rollback restores)."""
    deployments = [w for w in edit.workloads if w.kind == "Deployment"]
    if not deployments:
        found = ", ".join(str(w) for w in edit.workloads) or "no workload running the image"
        raise InputError(f"{edit.path}: deploys no Deployment running the image ({found}): nothing to update "
                         "in the cluster")
    out = []
    for w in deployments:
        ns = opts.namespace or w.namespace or kube.default_namespace
        dep = kube.deployment(ns, w.name)
        live = {str(c.get("name")): str(c.get("image")) for c in dep["spec"]["template"]["spec"]["containers"]}
        missing = [c for c in w.containers if c not in live]
        if missing:
            raise InputError(f"Deployment {ns}/{w.name} in context '{kube.context}' has no container "
                             f"{', '.join(missing)} (it has {', '.join(live)})")
        out.append(Target(ns, w.name, {c: live[c] for c in w.containers}, {c: edit.image_after for c in w.containers}))
    return out


def run_release(opts: ReleaseOptions, reporter: Reporter) -> ReleaseResult:
    """Run the whole release; raise KubeshapeError (nothing changed) or return the result."""
    ref = _check_options(opts)
    repo = GitRepo.discover(opts.path)
    state = repo.state()
    tag = compute_tag(state, allow_dirty=opts.allow_dirty)
    reporter.step(f"tag {tag.tag} (commit {state.sha[:12]}{', release ' + tag.version if tag.version else ''})")
    if tag.dirty:
        reporter.warn(f"dirty work tree: {tag.tag} is NOT traceable to commit {tag.short_sha}")
    planned = _plan(opts, ref, tag.tag, PLACEHOLDER_DIGEST)  # fail on the file before pushing anything
    if planned is not None and opts.commit and repo.dirty_files(planned.path):
        raise InputError(f"{planned.path} has uncommitted changes: commit or stash them first")
    kube = Kube.connect(opts.kubeconfig, opts.context) if opts.cluster else None
    try:
        targets = _targets(opts, kube, planned) if kube and planned else []  # read before anything changes
        digest, notes = _publish(opts, ref, repo, state, tag, reporter)
        edit = _plan(opts, ref, tag.tag, digest) if planned is not None else None
        for t in targets:
            t.after = {c: edit.image_after if edit else t.after[c] for c in t.after}
        image = f"{ref.name}:{tag.tag}"
        result = ReleaseResult(tag, image, digest, subject(ref.path.rsplit("/", 1)[-1], tag, digest), edit,
                               targets=targets, notes=notes)
        if edit is not None:
            _write_and_commit(opts, repo, result, edit, reporter)
        if kube is not None:
            _deploy(opts, kube, repo, result, reporter)
        return result
    finally:
        if kube is not None:
            kube.close()


def _write_and_commit(opts: ReleaseOptions, repo: GitRepo, result: ReleaseResult, edit: Edit,
                      reporter: Reporter) -> None:
    if not edit.changed:
        reporter.step(f"{edit.path} already points at {edit.image_after}: nothing to edit")
        return
    edit.write()
    reporter.step(f"edited {edit.path}: {edit.image_before or '(new entry)'} -> {edit.image_after}")
    for m in edit.markers:
        result.notes.append(f"{edit.path} line carries the Flux setter marker {m}: kept; Flux image automation "
                            "will keep writing this field -- make its ImagePolicy select this scheme's tags")
    if not opts.commit:
        result.notes.append(f"--no-commit: {edit.path} is edited but not committed")
        return
    message = commit_message(result, edit)
    try:
        result.commit = repo.commit_file(edit.path, message)
    except KubeshapeError:
        edit.restore()
        raise
    reporter.step(f"committed {result.commit[:12]}: {message.splitlines()[0]}")


def _deploy(opts: ReleaseOptions, kube: Kube, repo: GitRepo, result: ReleaseResult, reporter: Reporter) -> None:
    cause = result.subject
    for t in result.targets:
        try:
            kube.set_images(t.namespace, t.name, t.after, cause)
        except KubeshapeError as exc:
            done = f"committed {result.commit[:12]}" if result.commit else "pushed"
            raise ReleaseError(f"release {done}, but Deployment {t.namespace}/{t.name} was not updated: {exc}",
                               exc.exit_code) from None
        reporter.step(f"Deployment {t.namespace}/{t.name}: image {', '.join(sorted(set(t.after.values())))}, "
                      f"change-cause {cause!r}")
    if not opts.watch:
        return
    failed: list[tuple[Target, Outcome]] = []
    for t in result.targets:
        reporter.step(f"watching Deployment {t.namespace}/{t.name} (progress deadline from its spec)")
        outcome = watch(kube, t.namespace, t.name, reporter.progress, poll=opts.poll)
        result.outcomes.append(outcome)
        record(kube, outcome)
        if not outcome.ok:
            failed.append((t, outcome))
    if failed and opts.rollback_on_failure:
        rollback(kube, repo, result, failed, reporter, opts.poll)

