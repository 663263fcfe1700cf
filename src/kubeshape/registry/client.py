"""``RegistryClient``: the OCI distribution API of one registry host over a sync ``httpx.Client``.

Layers, as in httpx: this client (API calls and error mapping) → ``RegistryAuth`` (Basic/Bearer flow) →
``RetryTransport`` (back-off, Retry-After, request counting) → an ``httpx`` transport. Thread-safe: one client
may be shared by worker threads.
"""

from __future__ import annotations

import difflib
import ssl
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

from kubeshape import __version__
from kubeshape.registry.auth import RegistryAuth, TokenError
from kubeshape.registry.credentials import CredentialLookup, lookup_credentials
from kubeshape.registry.errors import (
    ManifestNotFound,
    RegistryConfigError,
    RegistryError,
    RegistryNotFound,
    RegistryProtocolError,
    RegistryUnreachable,
    RepositoryNotFound,
)
from kubeshape.registry.models import (
    ATTESTATION,
    CREATED_ANNOTATION,
    MANIFEST_ACCEPT,
    OCI_EMPTY,
    OCI_MANIFEST,
    REFERENCE_TYPE,
    REVISION_LABEL,
    Credentials,
    ImageInfo,
    Layer,
    Manifest,
    ManifestRef,
    TagDeletion,
    parse_created,
    sha256_digest,
)
from kubeshape.registry.names import (
    DOCKER_HUB,
    check_digest,
    check_host,
    check_reference,
    check_repository,
    is_digest,
    is_loopback,
)
from kubeshape.registry.responses import Context, auth_error, response_error, speaks_plain_http, transport_error
from kubeshape.registry.transport import RetryTransport

SUGGEST_PAGE = 1000  # one page of tags/repositories is "cheap" enough to suggest close names
MAX_CONFIG_BYTES = 4 << 20
_EMPTY_JSON = b"{}"


def _next_link(header: str | None) -> str | None:
    """Path and query of the ``rel="next"`` target of a ``Link`` header (the host is ours, whatever it says)."""
    for part in (header or "").split(","):
        url, _, params = part.partition(";")
        url = url.strip()
        if url.startswith("<") and url.endswith(">") and 'rel="next"' in params.replace(" ", "").replace("'", '"'):
            target = httpx.URL(url[1:-1])
            return target.raw_path.decode("ascii")
    return None


class RegistryClient:
    """Talk to one registry host.

    ``insecure=True`` uses plain HTTP (say so explicitly for any non-loopback host). Without it, HTTPS is
    used; a loopback host that turns out to speak plain HTTP is retried over HTTP (as Docker treats
    127.0.0.0/8). ``credentials`` (``(user, password)``) override the Docker config file. ``requests`` counts
    every HTTP request sent, retries and token requests included.
    """

    def __init__(self, host: str, *, insecure: bool = False, ca_file: str | Path | None = None,
                 credentials: tuple[str, str] | Credentials | None = None, timeout: float | None = 10.0,
                 retries: int = 3, transport: httpx.BaseTransport | None = None, backoff: float = 0.25,
                 docker_config: Path | None = None) -> None:
        self.host = check_host(host)
        self.insecure = insecure
        self.timeout = timeout
        if isinstance(credentials, tuple):
            credentials = Credentials(*credentials)
        self._lookup = (CredentialLookup(credentials, "explicit credentials") if credentials is not None
                        else lookup_credentials(self.host, docker_config))
        api_host = "registry-1.docker.io" if self.host in DOCKER_HUB else self.host
        self._http_url = f"http://{api_host}"
        self._may_downgrade = not insecure and is_loopback(self.host)
        self._downgraded = False
        inner = transport or httpx.HTTPTransport(verify=self._ssl_context(ca_file), limits=httpx.Limits(
            max_connections=64, max_keepalive_connections=64))
        self._transport = RetryTransport(inner, retries=retries, backoff=backoff, deadline=timeout)
        self._auth = RegistryAuth(self.host, self._lookup.credentials)
        self._lock = threading.Lock()
        self._configs: dict[tuple[str, str], dict[str, Any]] = {}
        self._http = httpx.Client(
            base_url=self._http_url if insecure else f"https://{api_host}", auth=self._auth,
            transport=self._transport, timeout=timeout, follow_redirects=True,
            headers={"User-Agent": f"kubeshape/{__version__}"})

    def _ssl_context(self, ca_file: str | Path | None) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryConfigError(f"{self.host}: cannot load --ca-file {ca_file}: {exc}", host=self.host) from None

    # -- plumbing ---------------------------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (every attempt)."""
        return self._transport.requests

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ctx(self, op: str, repo: str | None = None, ref: str | None = None) -> Context:
        return Context(self.host, op, repo, ref, self._lookup.credentials is not None, self._lookup.source,
                       self._lookup.unsupported, self.timeout)

    def _send(self, method: str, url: str | httpx.URL, ctx: Context, *, ok: tuple[int, ...] = (200,),
              headers: Mapping[str, str] | None = None, content: bytes | None = None) -> httpx.Response:
        """Send one request (with auth and retries, all within ``timeout``); raise the mapped RegistryError unless
        its status is ``ok``."""
        try:
            with self._transport.budget():
                response = self._request(method, url, headers, content)
        except TokenError as exc:
            raise auth_error(ctx, exc.status or 401, str(exc)) from None
        except httpx.TransportError as exc:
            raise transport_error(exc, ctx) from None
        self._may_downgrade = False
        if response.status_code not in ok:
            raise response_error(response, ctx)
        return response

    def _request(self, method: str, url: str | httpx.URL, headers: Mapping[str, str] | None,
                 content: bytes | None) -> httpx.Response:
        try:
            return self._http.request(method, url, headers=headers, content=content)
        except httpx.ConnectError as exc:
            if not (speaks_plain_http(exc) and self._downgrade()):
                raise
            return self._http.request(method, url, headers=headers, content=content)

    def _downgrade(self) -> bool:
        """Switch a loopback client whose registry speaks plain HTTP to HTTP (once, for all threads)."""
        with self._lock:
            if self._may_downgrade:
                self._may_downgrade, self._downgraded = False, True
                self._http.base_url = httpx.URL(self._http_url)
            return self._downgraded

    def _json(self, response: httpx.Response, ctx: Context) -> dict[str, Any]:
        try:
            doc = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RegistryProtocolError(f"{ctx.where}: {ctx.op}: the registry did not answer JSON",
                                        **ctx.kw(response.status_code)) from None
        if not isinstance(doc, dict):
            raise RegistryProtocolError(f"{ctx.where}: {ctx.op}: expected a JSON object", **ctx.kw())
        return doc

    def _paginate(self, path: str, field: str, ctx: Context, page_size: int | None) -> Iterator[list[str]]:
        url = f"{path}?n={page_size}" if page_size else path
        last: str | None = None
        while True:
            response = self._send("GET", url, ctx)
            page = [str(x) for x in self._json(response, ctx).get(field) or []]
            yield page
            nxt = _next_link(response.headers.get("Link"))
            if not nxt or not page or page[-1] == last:
                return
            last, url = page[-1], nxt

    # -- listing ----------------------------------------------------------------------------------------------

    def ping(self) -> str | None:
        """``GET /v2/``: raise unless the registry answers (authenticating if asked); return its API version.

        Registries answer ``/v2/`` with 200 (or 401 until authenticated): any other status, or an HTML page, is
        ``RegistryUnreachable`` (exit 3) saying it is not a registry.
        """
        try:
            response = self._send("GET", "/v2/", self._ctx("ping /v2/"))
        except (RegistryNotFound, RegistryProtocolError) as exc:
            if exc.status is None or exc.status == 400:  # 400: an HTTPS registry asked in plain HTTP, said so
                raise
            raise self._not_a_registry(f"answered HTTP {exc.status} to GET /v2/", exc.status) from None
        head = response.content[:256].lstrip().lower()
        if "html" in response.headers.get("Content-Type", "").lower() or head.startswith(b"<"):
            raise self._not_a_registry("answered GET /v2/ with an HTML page", response.status_code)
        version = response.headers.get("Docker-Distribution-API-Version")
        return str(version) if version is not None else None

    def _not_a_registry(self, what: str, status: int) -> RegistryUnreachable:
        return RegistryUnreachable(f"{self.host}: {what}: not a registry (registries answer /v2/ with 200 or 401); "
                                   "check the host and port", host=self.host, status=status)

    def catalog(self, *, page_size: int | None = None) -> list[str]:
        """All repository names (``/v2/_catalog``, following ``Link`` pages of ``page_size``)."""
        ctx = self._ctx("list repositories (catalog)")
        return [name for page in self._paginate("/v2/_catalog", "repositories", ctx, page_size) for name in page]

    def tags(self, repo: str, *, page_size: int | None = None) -> list[str]:
        """All tags of ``repo`` (lexical order, as the registry lists them)."""
        check_repository(self.host, repo)
        ctx = self._ctx("list tags", repo)
        try:
            return [tag for page in self._paginate(f"/v2/{repo}/tags/list", "tags", ctx, page_size) for tag in page]
        except RepositoryNotFound as exc:
            raise self._repo_not_found(exc, repo) from None

    def _repo_not_found(self, exc: RepositoryNotFound, repo: str) -> RepositoryNotFound:
        try:
            names = next(self._paginate("/v2/_catalog", "repositories", self._ctx("catalog"), SUGGEST_PAGE))
        except (RegistryError, StopIteration):
            names = []
        close = difflib.get_close_matches(repo, names, n=3, cutoff=0.6)
        if not close:
            return exc
        return RepositoryNotFound(str(exc) + f" (did you mean {', '.join(close)}?)", host=self.host, repository=repo,
                                  status=404)

    def _manifest_not_found(self, repo: str, ref: str, exc: RegistryNotFound) -> RegistryNotFound:
        """Tell a missing repository from a missing tag (HEAD has no body), suggesting close tag names."""
        if is_digest(ref):
            return ManifestNotFound(f"{self.host}/{repo}@{ref}: digest not found (HTTP 404): it was deleted, or "
                                    "belongs to another repository", host=self.host, repository=repo, reference=ref,
                                    status=404)
        try:
            tags = next(self._paginate(f"/v2/{repo}/tags/list", "tags", self._ctx("list tags", repo), SUGGEST_PAGE))
        except RepositoryNotFound as missing:
            return self._repo_not_found(missing, repo)
        except (RegistryError, StopIteration):
            return exc
        close = difflib.get_close_matches(ref, tags, n=3, cutoff=0.5)
        count = f"{len(tags)}{'+' if len(tags) >= SUGGEST_PAGE else ''} tag{'s' if len(tags) != 1 else ''}"
        hint = f"close tags: {', '.join(close)}" if close else f"the repository has {count}"
        return ManifestNotFound(f"{self.host}/{repo}:{ref}: tag not found (HTTP 404): was it pushed? {hint}",
                                close_matches=close, host=self.host, repository=repo, reference=ref, status=404)

    # -- manifests --------------------------------------------------------------------------------------------

    def head_manifest(self, repo: str, ref: str, *, suggest: bool = True) -> ManifestRef:
        """Digest, media type and size of a tag or digest, from HEAD (``Docker-Content-Digest``)."""
        check_repository(self.host, repo)
        check_reference(self.host, repo, ref)
        ctx = self._ctx("HEAD manifest", repo, ref)
        try:
            response = self._send("HEAD", f"/v2/{repo}/manifests/{ref}", ctx, headers={"Accept": MANIFEST_ACCEPT})
        except RegistryNotFound as exc:
            raise (self._manifest_not_found(repo, ref, exc) if suggest else exc) from None
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:  # some registries omit it on HEAD: fetch and hash
            m = self.get_manifest(repo, ref, suggest=suggest)
            return ManifestRef(m.digest, m.media_type, m.size)
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return ManifestRef(digest, media_type, int(response.headers.get("Content-Length") or 0))

    def get_manifest(self, repo: str, ref: str, *, suggest: bool = True) -> Manifest:
        """Fetch a manifest or index; the digest is checked against ``ref`` when ``ref`` is a digest."""
        check_repository(self.host, repo)
        check_reference(self.host, repo, ref)
        ctx = self._ctx("GET manifest", repo, ref)
        try:
            response = self._send("GET", f"/v2/{repo}/manifests/{ref}", ctx, headers={"Accept": MANIFEST_ACCEPT})
        except RegistryNotFound as exc:
            raise (self._manifest_not_found(repo, ref, exc) if suggest else exc) from None
        body = response.content
        digest = sha256_digest(body)
        header = response.headers.get("Docker-Content-Digest")
        if header and not header.startswith("sha256:"):
            digest = header
        if is_digest(ref) and ref.startswith("sha256:") and digest != ref:
            raise RegistryProtocolError(f"{ctx.where}: manifest content does not match its digest ({digest})",
                                        **ctx.kw())
        data = self._json(response, ctx)
        media_type = str(data.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0].strip())
        return Manifest(digest, media_type, body, data)

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        """Upload a manifest under a tag or digest; returns its digest."""
        check_repository(self.host, repo)
        check_reference(self.host, repo, ref)
        ctx = self._ctx("push manifest", repo, ref)
        response = self._send("PUT", f"/v2/{repo}/manifests/{ref}", ctx, ok=(200, 201, 202),
                              headers={"Content-Type": media_type}, content=body)
        return response.headers.get("Docker-Content-Digest") or sha256_digest(body)

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest: this removes EVERY tag on it (the registry's semantics)."""
        check_repository(self.host, repo)
        check_digest(self.host, repo, digest)
        self._delete(repo, digest, self._ctx("delete manifest", repo, digest))

    def _delete(self, repo: str, digest: str, ctx: Context) -> None:
        try:
            self._send("DELETE", f"/v2/{repo}/manifests/{digest}", ctx, ok=(200, 202))
        except RegistryNotFound as exc:
            raise self._manifest_not_found(repo, digest, exc) from None

    # -- blobs ------------------------------------------------------------------------------------------------

    def get_blob(self, repo: str, digest: str) -> bytes:
        """Fetch a blob and check its digest."""
        check_repository(self.host, repo)
        check_digest(self.host, repo, digest)
        ctx = self._ctx("GET blob", repo, digest)
        data = self._send("GET", f"/v2/{repo}/blobs/{digest}", ctx).content
        if digest.startswith("sha256:") and sha256_digest(data) != digest:
            raise RegistryProtocolError(f"{ctx.where}: blob content does not match its digest", **ctx.kw())
        return data

    def blob_exists(self, repo: str, digest: str) -> bool:
        """HEAD a blob."""
        check_repository(self.host, repo)
        check_digest(self.host, repo, digest)
        try:
            self._send("HEAD", f"/v2/{repo}/blobs/{digest}", self._ctx("HEAD blob", repo, digest))
        except RegistryNotFound:
            return False
        return True

    def push_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` (monolithic POST + PUT) unless the registry has it; returns its digest."""
        digest = sha256_digest(data)
        if self.blob_exists(repo, digest):
            return digest
        ctx = self._ctx("push blob", repo, digest)
        started = self._send("POST", f"/v2/{repo}/blobs/uploads/", ctx, ok=(202,))
        location = started.headers.get("Location")
        if not location:
            raise RegistryProtocolError(f"{ctx.where}: upload started without a Location header", **ctx.kw())
        # copy_merge_params keeps the upload's own query (_state); params= would replace it
        url = httpx.URL(started.url).join(location).copy_merge_params({"digest": digest})
        self._send("PUT", url, ctx, ok=(201, 204), headers={"Content-Type": "application/octet-stream"},
                   content=data)
        return digest

    # -- images -----------------------------------------------------------------------------------------------

    def _config(self, repo: str, descriptor: Mapping[str, Any]) -> dict[str, Any]:
        digest = str(descriptor.get("digest") or "")
        if not is_digest(digest) or int(descriptor.get("size") or 0) > MAX_CONFIG_BYTES:
            return {}
        with self._lock:
            cached = self._configs.get((repo, digest))
        if cached is not None:
            return cached
        try:
            doc = orjson.loads(self.get_blob(repo, digest))
        except orjson.JSONDecodeError:
            doc = {}
        config = doc if isinstance(doc, dict) else {}
        with self._lock:
            if len(self._configs) > 10_000:
                self._configs.clear()
            self._configs[(repo, digest)] = config
        return config

    def _single(self, repo: str, m: Manifest) -> ImageInfo:
        """ImageInfo of one (non-index) manifest."""
        desc = m.data.get("config") or {}
        config = self._config(repo, desc)
        annotations = m.data.get("annotations") or {}
        labels = {str(k): str(v) for k, v in ((config.get("config") or {}).get("Labels") or {}).items()}
        layers = tuple(Layer(str(la.get("digest")), int(la.get("size") or 0)) for la in m.data.get("layers") or [])
        created = parse_created(config.get("created")) or parse_created(annotations.get(CREATED_ANNOTATION))
        revision = annotations.get(REVISION_LABEL) or labels.get(REVISION_LABEL)
        platform = "/".join(str(x) for x in (config.get("os"), config.get("architecture"), config.get("variant")) if x)
        size = int(desc.get("size") or 0) + sum(la.size for la in layers)
        return ImageInfo(m.digest, m.media_type, created, labels, revision, layers, size,
                         (platform,) if platform else ())

    def image_info(self, repo: str, ref: str) -> ImageInfo:
        """Created time, labels, revision, layers and size of a tag or digest (an index: its platform images)."""
        m = self.get_manifest(repo, ref)
        if not m.is_index:
            return self._single(repo, m)
        images: list[ImageInfo] = []
        blobs: dict[str, int] = {}  # digest -> size: blobs shared between platforms count once
        for d in m.data.get("manifests") or []:
            if (d.get("annotations") or {}).get(REFERENCE_TYPE) == ATTESTATION:
                continue
            child = self.get_manifest(repo, str(d.get("digest")), suggest=False)
            if child.is_index:  # nested indexes are not followed
                continue
            images.append(self._single(repo, child))
            cfg = child.data.get("config") or {}
            if cfg.get("digest"):
                blobs.setdefault(str(cfg["digest"]), int(cfg.get("size") or 0))
            for la in images[-1].layers:
                blobs.setdefault(la.digest, la.size)
        layers: dict[str, Layer] = {}
        labels: dict[str, str] = {}
        for img in images:  # first platform wins
            for la in img.layers:
                layers.setdefault(la.digest, la)
            for k, v in img.labels.items():
                labels.setdefault(k, v)
        created = max((i.created for i in images if i.created), default=None)
        revision = (m.data.get("annotations") or {}).get(REVISION_LABEL) or next(
            (i.revision for i in images if i.revision), None)
        return ImageInfo(m.digest, m.media_type, created, labels, revision, tuple(layers.values()),
                         sum(blobs.values()), tuple(p for i in images for p in i.platforms))

    # -- tag resolution and deletion --------------------------------------------------------------------------

    def resolve_tags(self, repo: str, tags: Iterable[str] | None = None, *, workers: int = 8,
                     page_size: int | None = None) -> dict[str, ManifestRef]:
        """HEAD every tag (all of ``repo``'s when ``tags`` is None) with ``workers`` threads; vanished tags are
        left out."""
        names = list(tags) if tags is not None else self.tags(repo, page_size=page_size)

        def head(tag: str) -> tuple[str, ManifestRef | None]:
            try:
                return tag, self.head_manifest(repo, tag, suggest=False)
            except ManifestNotFound:
                return tag, None

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return {tag: ref for tag, ref in pool.map(head, names) if ref is not None}

    def delete_tag(self, repo: str, tag: str, *, tag_digests: Mapping[str, str] | None = None) -> TagDeletion:
        """Remove ONE tag, keeping other tags on the same digest.

        When no other tag shares the digest, the manifest is deleted by digest. Otherwise (the regctl trick) a
        unique throw-away manifest is pushed to the tag and deleted by its digest, which takes only this tag
        with it. ``tag_digests`` (tag → digest, e.g. from a snapshot) saves resolving every tag of the repository.
        Space is reclaimed only by the registry's offline garbage-collect.
        """
        check_repository(self.host, repo)
        if is_digest(check_reference(self.host, repo, tag)):
            raise RegistryConfigError(f"{self.host}/{repo}: {tag!r} is a digest, not a tag: use delete_manifest",
                                      host=self.host, repository=repo, reference=tag)
        original = self.get_manifest(repo, tag)
        if tag_digests is None:
            tag_digests = {t: r.digest for t, r in self.resolve_tags(repo).items()}
        siblings = tuple(sorted(t for t, d in tag_digests.items() if d == original.digest and t != tag))
        if not siblings:
            self._delete(repo, original.digest, self._ctx("delete tag (its only tag, so by digest)", repo, tag))
            return TagDeletion(tag, original.digest, (), True)
        self._check_deletes_enabled(repo, tag)
        placeholder = orjson.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_EMPTY, "digest": sha256_digest(_EMPTY_JSON), "size": len(_EMPTY_JSON)},
            "layers": [{"mediaType": OCI_EMPTY, "digest": sha256_digest(_EMPTY_JSON), "size": len(_EMPTY_JSON)}],
            "annotations": {"io.kubeshape.delete-tag": tag, "io.kubeshape.nonce": uuid.uuid4().hex},
        })
        self.push_blob(repo, _EMPTY_JSON)
        throwaway = self.put_manifest(repo, tag, placeholder, OCI_MANIFEST)
        try:
            self.delete_manifest(repo, throwaway)
        except RegistryError:
            self.put_manifest(repo, tag, original.body, original.media_type)  # put the tag back as it was
            raise
        return TagDeletion(tag, original.digest, siblings, False)

    def _check_deletes_enabled(self, repo: str, tag: str) -> None:
        """DELETE a digest that cannot exist: 405/UNSUPPORTED means deletes are off; no side effects either way."""
        probe = sha256_digest(b"kubeshape delete probe " + uuid.uuid4().bytes)
        self._send("DELETE", f"/v2/{repo}/manifests/{probe}", self._ctx("delete tag", repo, tag), ok=(200, 202, 404))

