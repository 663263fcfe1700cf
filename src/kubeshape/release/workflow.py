"""``kubeshape release``: tag from git → preflight → build/copy/push → verify the tag → edit the manifest →
commit → set the image and change-cause on the live Deployment (``--gitops flux``: push the commit and wait until
Flux applied it) → watch; on failure, compensate every step taken (back to the last known good) or say what was
left.

Nothing in git, the work tree or the cluster changes until preflight passed and the image is in the registry
under its tag; until then errors abort with one line and leave everything untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubeshape.errors import InputError, KubeshapeError
from kubeshape.imageref import ImageRef, InvalidReference, parse
from kubeshape.release.edit import Edit, plan_kustomization, plan_manifest
from kubeshape.release.errors import ReleaseAborted, ReleaseError
from kubeshape.release.flux import FluxTarget
from kubeshape.release.fluxcheck import flux_preflight
from kubeshape.release.gitrepo import GitRepo
from kubeshape.release.interrupt import Interrupted, abort_on_signals
from kubeshape.release.journal import Journal
from kubeshape.release.kube import Kube
from kubeshape.release.plan import Plan, Target
from kubeshape.release.preflight import check_access, check_drift, last_known_good
from kubeshape.release.publish import publish, registry_target
from kubeshape.release.rollout import STALL_AFTER
from kubeshape.release.steps import Reporter, Txn
from kubeshape.release.tagging import ReleaseTag, compute_tag
from kubeshape.release.transaction import ReleaseResult, compensate, execute

__all__ = ["EXIT_ROLLOUT_FAILED", "ReleaseAborted", "ReleaseError", "ReleaseOptions", "ReleaseResult",
           "Reporter", "abort_release", "resume_release", "run_release"]

PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
EXIT_ROLLOUT_FAILED = 1


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
    timeout: float | None = None  # bounds each registry operation (retries included) and the watch
    registry: str | None = None  # REACH=NAME: push through REACH, write NAME
    adopt_live: bool = False
    from_file: bool = False
    gitops: str | None = None  # "flux": push the commit, let Flux apply it
    flux_source: str | None = None  # NAMESPACE/NAME of the GitRepository
    flux_kustomization: str | None = None  # NAMESPACE/NAME of the Kustomization
    stall_after: float | None = STALL_AFTER  # seconds of failed pulls on new pods that fail the rollout

    @property
    def cluster(self) -> bool:
        return self.kubeconfig is not None or self.context is not None


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
    if (opts.adopt_live or opts.from_file) and not opts.cluster:
        raise InputError("--adopt-live/--from-file answer a drift between the cluster and the file: add "
                         "--kubeconfig or --context")
    if opts.adopt_live and opts.kustomization:
        raise InputError("--adopt-live writes the live image into a --manifest; for a kustomization set its "
                         "images: entry to the live image and commit it, then release")
    if opts.timeout is not None and opts.timeout <= 0:
        raise InputError(f"--timeout {opts.timeout:g}: give a positive number of seconds")
    if opts.cluster and not (opts.manifest or opts.kustomization):
        raise InputError("--kubeconfig/--context update the Deployment the edited file deploys: add --manifest "
                         "or --kustomization")
    if opts.stall_after is not None and opts.stall_after < 0:
        raise InputError(f"--stall-after {opts.stall_after:g}: give seconds (0: wait for the progress deadline)")
    _check_gitops(opts)
    return ref


def _check_gitops(opts: ReleaseOptions) -> None:
    if opts.gitops is None:
        if opts.flux_source or opts.flux_kustomization:
            raise InputError("--flux-source/--flux-kustomization choose the Flux objects of a release through "
                             "Flux: add --gitops flux")
        return
    if opts.gitops != "flux":
        raise InputError(f"--gitops {opts.gitops}: only flux is supported")
    if not opts.cluster:
        raise InputError("--gitops flux waits for Flux in the cluster: add --kubeconfig or --context")
    if not (opts.manifest or opts.kustomization):
        raise InputError("--gitops flux releases by pushing an edited file: add --manifest or --kustomization")
    if not opts.commit:
        raise InputError("--gitops flux pushes the release commit for Flux to apply: drop --no-commit")


def _plan(opts: ReleaseOptions, ref: ImageRef, tag: str, digest: str | None) -> Edit | None:
    if opts.manifest is not None:
        return plan_manifest(opts.manifest, ref.name, f"{ref.name}:{tag}", opts.container)
    if opts.kustomization is not None:
        return plan_kustomization(opts.kustomization, ref.name, tag, digest)
    return None




def subject(service: str, tag: ReleaseTag, digest: str | None) -> str:
    """``release family-assistant 1.4.2 (sha256:…) from abc1234``: the commit subject and the change-cause."""
    dirty = " (dirty work tree, not traceable)" if tag.dirty else ""
    return f"release {service} {tag.tag} ({digest or 'digest unknown'}) from {tag.short_sha}{dirty}"


def _targets(opts: ReleaseOptions, kube: Kube, edit: Edit, namespaces: dict[str, str]) -> list[Target]:
    """The live Deployments the file deploys (in ``namespaces`` where Flux put them), with their current
    images."""
    deployments = [w for w in edit.workloads if w.kind == "Deployment"]
    if not deployments:
        found = ", ".join(str(w) for w in edit.workloads) or "no workload running the image"
        raise InputError(f"{edit.path}: deploys no Deployment running the image ({found}): nothing to update "
                         "in the cluster")
    out = []
    for w in deployments:
        ns = opts.namespace or namespaces.get(w.name) or w.namespace or kube.default_namespace
        dep = kube.deployment(ns, w.name)
        live = {str(c.get("name")): str(c.get("image")) for c in dep["spec"]["template"]["spec"]["containers"]}
        missing = [c for c in w.containers if c not in live]
        if missing:
            raise InputError(f"Deployment {ns}/{w.name} in context '{kube.context}' has no container "
                             f"{', '.join(missing)} (it has {', '.join(live)})")
        out.append(Target(ns, w.name, {c: live[c] for c in w.containers}, {c: edit.image_after for c in w.containers}))
    return out


def _preflight(opts: ReleaseOptions, kube: Kube, planned: Edit, reporter: Reporter,
               flux: FluxTarget | None) -> tuple[list[Target], str | None, list[str]]:
    """Targets (with their last known good), the live image to adopt, notes; refuse before any side effect."""
    targets = _targets(opts, kube, planned, flux.namespaces if flux else {})
    adopt = check_drift(targets, planned, opts.adopt_live, opts.from_file)
    check_access(kube, targets, gitops=flux is not None)
    notes = [n for t in targets if (n := last_known_good(kube, t)) is not None]
    for t in targets:
        if t.lkg:
            reporter.step(f"Deployment {t.namespace}/{t.name}: last known good is revision {t.lkg_revision} "
                          f"({', '.join(sorted(set(t.lkg.values())))})")
    return targets, adopt, notes


def run_release(opts: ReleaseOptions, reporter: Reporter) -> ReleaseResult:
    """Preflight, push, then the journaled steps; raise KubeshapeError when nothing changed, else the result."""
    ref = _check_options(opts)
    registry_target(opts, ref)
    repo = GitRepo.discover(opts.path)
    state = repo.state()
    tag = compute_tag(state, allow_dirty=opts.allow_dirty)
    reporter.step(f"tag {tag.tag} (commit {state.sha[:12]}{', release ' + tag.version if tag.version else ''})")
    if tag.dirty:
        reporter.warn(f"dirty work tree: {tag.tag} is NOT traceable to commit {tag.short_sha}")
    planned = _plan(opts, ref, tag.tag, PLACEHOLDER_DIGEST)  # fail on the file before pushing anything
    if planned is not None and (opts.commit or opts.cluster) and repo.dirty_files(planned.path):
        raise InputError(f"{planned.path} has uncommitted changes: commit or stash them first")
    kube = Kube.connect(opts.kubeconfig, opts.context) if opts.cluster else None
    try:
        flux = flux_preflight(kube, repo, state.branch, planned, opts.namespace, opts.flux_source,
                              opts.flux_kustomization, reporter) if opts.gitops and kube and planned else None
        targets, adopt, notes = _preflight(opts, kube, planned, reporter, flux) if kube and planned else ([], None,
                                                                                                       [])
        container = planned.workloads[0].containers[0] if planned and planned.workloads else opts.container
        plan = Plan(ref.path.rsplit("/", 1)[-1], tag.tag, state.sha, f"{ref.name}:{tag.tag}", ref.name,
                    file=str(planned.path) if planned else None, kind=planned.kind if planned else None,
                    container=container, commit=opts.commit, adopt=adopt, targets=targets,
                    kubeconfig=str(opts.kubeconfig) if opts.kubeconfig else None, context=opts.context,
                    watch=opts.watch, rollback_on_failure=opts.rollback_on_failure, poll=opts.poll,
                    timeout=opts.timeout, notes=notes, stall_after=opts.stall_after or None)
        if flux is not None:
            plan.gitops, plan.flux_source, plan.git_remote, plan.git_branch = "flux", flux.source.key, flux.remote, \
                flux.branch
            plan.flux_kustomizations = [k.key for k in flux.kustomizations]
        journal = Journal.create(repo, plan.to_json())
        try:
            journal.begin("push")
            with abort_on_signals():
                digest, pushed_notes = publish(opts, ref, repo, state, tag, reporter)
        except (KubeshapeError, Interrupted):
            journal.close()  # nothing changed yet
            raise
        plan.digest, plan.subject = digest, subject(plan.service, tag, digest)
        plan.notes += pushed_notes
        if planned is not None:
            image_after = _plan(opts, ref, tag.tag, digest)
            plan.image = image_after.image_after if image_after else plan.image
        for t in plan.targets:
            t.after = {c: plan.image for c in t.after}
        journal.data["plan"] = plan.to_json()
        journal.finish("push", digest=digest)
        journal.finish("verify")
        return execute(Txn(plan, repo, kube, journal, reporter))
    finally:
        if kube is not None:
            kube.close()


def _recorded(path: Path) -> tuple[GitRepo, Journal, Plan, Kube | None]:
    repo = GitRepo.discover(path)
    journal = Journal.load(repo)
    plan = Plan.from_json(journal.plan)
    kube = Kube.connect(Path(plan.kubeconfig) if plan.kubeconfig else None, plan.context) if plan.targets else None
    return repo, journal, plan, kube


def resume_release(path: Path, reporter: Reporter) -> ReleaseResult:
    """Continue the release the journal under ``path``'s repository records."""
    repo, journal, plan, kube = _recorded(path)
    try:
        if not journal.done("push"):
            journal.close()
            raise ReleaseAborted("the recorded release stopped before its image was pushed: nothing else was "
                                 "changed -- run the release again")
        reporter.step(f"resuming release {plan.tag} after: "
                      f"{', '.join(s['name'] for s in journal.steps if s['state'] == 'done')}")
        return execute(Txn(plan, repo, kube, journal, reporter))
    finally:
        if kube is not None:
            kube.close()


def abort_release(path: Path, reporter: Reporter) -> ReleaseResult:
    """Undo every step the journal records (back to the last known good)."""
    repo, journal, plan, kube = _recorded(path)
    try:
        reporter.step(f"aborting release {plan.tag}: undoing "
                      f"{', '.join(s['name'] for s in reversed(journal.steps)) or 'nothing'}")
        with abort_on_signals(second_kills=True):
            return compensate(Txn(plan, repo, kube, journal, reporter), None)
    finally:
        if kube is not None:
            kube.close()
