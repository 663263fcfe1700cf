"""Push an artifact under the release tag and prove the tag resolves to what was pushed."""

from __future__ import annotations

from kubeshape.errors import InputError
from kubeshape.registry.client import RegistryClient
from kubeshape.registry.errors import ManifestNotFound, RegistryNotFound, RegistryProtocolError
from kubeshape.registry.models import sha256_digest
from kubeshape.release.artifact import Artifact


class TagTaken(InputError):
    """The release tag already names a different image: tags are immutable in the scheme."""


def existing_digest(client: RegistryClient, repo: str, tag: str) -> str | None:
    """The digest ``tag`` resolves to, or None when the tag (or the repository) does not exist yet."""
    try:
        return client.head_manifest(repo, tag, suggest=False).digest
    except (ManifestNotFound, RegistryNotFound):
        return None


def push(client: RegistryClient, repo: str, tag: str, art: Artifact) -> str:
    """Blobs the registry lacks, then child manifests by digest, then the manifest under ``tag``; its digest."""
    for digest in art.blob_digests:
        if not client.blob_exists(repo, digest):
            client.push_blob(repo, art.fetch(digest))
    for body, media_type in art.children:
        client.put_manifest(repo, sha256_digest(body), body, media_type)
    client.put_manifest(repo, tag, art.manifest, art.media_type)
    return art.digest


def verify(client: RegistryClient, repo: str, tag: str, digest: str) -> None:
    """HEAD ``tag``: raise unless it resolves to ``digest``."""
    got = client.head_manifest(repo, tag, suggest=False).digest
    if got != digest:
        raise RegistryProtocolError(f"{client.host}/{repo}:{tag} resolves to {got} right after pushing {digest}: "
                                    "someone else pushed the same tag, or a proxy rewrote the manifest",
                                    host=client.host, repository=repo, reference=tag)


def check_free(client: RegistryClient, repo: str, tag: str, digest: str) -> bool:
    """True when ``tag`` already names ``digest`` (nothing to push); raise TagTaken when it names another."""
    current = existing_digest(client, repo, tag)
    if current is None:
        return False
    if current != digest:
        raise TagTaken(f"{client.host}/{repo}:{tag} already exists with digest {current}, not {digest}: release "
                       "tags are never overwritten -- commit (a new SHA gives a new tag) or tag a new version")
    return True
