"""Put the release's image in the registry under its tag: build, copy or read a layout, stamp the OCI labels
that trace it to its commit, push, and verify that the tag resolves to what was pushed."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kubeshape.actions.registries import Target as RegistryTarget
from kubeshape.errors import InputError
from kubeshape.imageref import ImageRef, parse
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import RegistryError
from kubeshape.registry.models import format_created
from kubeshape.release import artifact as art_mod
from kubeshape.release import builders, push
from kubeshape.release.artifact import Artifact, LayoutError
from kubeshape.release.errors import ReleaseAborted
from kubeshape.release.gitrepo import GitRepo
from kubeshape.release.preflight import check_registry
from kubeshape.release.steps import Reporter
from kubeshape.release.tagging import GitState, ReleaseTag

if TYPE_CHECKING:
    from kubeshape.release.workflow import ReleaseOptions


def registry_target(opts: ReleaseOptions, ref: ImageRef) -> RegistryTarget | None:
    """``--registry REACH=NAME``: where to connect for images named NAME (None: connect to the name)."""
    if opts.registry is None:
        return None
    target = RegistryTarget.parse(opts.registry)
    if ref.domain != target.name:
        raise InputError(f"--registry {opts.registry}: --image {opts.image} names registry {ref.domain}, not "
                         f"{target.name} -- give REACH={ref.domain}")
    return target


def client_for(opts: ReleaseOptions, host: str) -> RegistryClient:
    """A client for the registry images call ``host`` (through REACH when --registry maps it)."""
    reach = host
    if opts.registry is not None:
        target = RegistryTarget.parse(opts.registry)
        reach = target.reach if target.name == host else host
    timeout = opts.timeout if opts.timeout is not None else opts.registry_timeout
    return RegistryClient(reach, insecure=opts.insecure_registry, timeout=timeout, retries=opts.registry_retries)


def ref_host(opts: ReleaseOptions, client: RegistryClient) -> str:
    """The registry name images use for what ``client`` reaches."""
    if opts.registry is not None:
        target = RegistryTarget.parse(opts.registry)
        if target.reach == client.host:
            return target.name
    return client.host


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
        if src.domain == ref_host(opts, client):
            art = art_mod.fetch_remote(client, src.path, src.digest or src.effective_tag or "latest")
        else:
            other = client_for(opts, str(src.domain))
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


def publish(opts: ReleaseOptions, ref: ImageRef, repo: GitRepo, state: GitState, tag: ReleaseTag,
            reporter: Reporter) -> tuple[str | None, list[str]]:
    """Push (or look up) the tag; the digest it resolves to."""
    if not ref.qualified:
        reporter.warn(f"{ref.name} names no registry: the tag was not checked and nodes must find the image "
                      "themselves")
        return None, []
    host = str(ref.domain)
    with _registry_phase(f"{host}/{ref.path}:{tag.tag}"), client_for(opts, host) as client:
        check_registry(client)
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
