"""kubeshape.registry against a real distribution registry on loopback, plus MockTransport/loopback fakes for
auth, retries and failures that a healthy registry cannot produce."""

from __future__ import annotations

import base64
import json
import math
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import orjson
import pytest

from kubeshape.errors import EXIT_INPUT, EXIT_UNREACHABLE, SourceUnreachable
from kubeshape.registry import (
    DeleteDisabled,
    ManifestNotFound,
    RegistryAuthError,
    RegistryClient,
    RegistryConfigError,
    RegistryConnectionError,
    RegistryServerError,
    RegistryTimeout,
    RegistryTLSError,
    RepositoryNotFound,
)
from kubeshape.registry.image import BuiltImage, BuiltIndex, build_image, build_index, push_image
from kubeshape.registry.snapshot import snapshot
from kubeshape.sources.bundle import parse_registry_snapshot
from testbed.procs import free_port
from testbed.registry import Registry, start_registry

REPO = "regtest/family-assistant"
REV = "org.opencontainers.image.revision"


def ts(day: int, hour: int = 10) -> datetime:
    return datetime(2025, 11, day, hour, 17, 28, tzinfo=UTC)


@dataclass
class Pushed:
    """What the module fixture pushed to REPO."""

    a: BuiltImage  # tags fixed, fixed-final, me-fixed (one digest)
    b: BuiltImage  # tags phase2, phase2-fixed (on a's layers)
    c: BuiltImage  # tag v1.0.0
    index: BuiltIndex  # tag multi: amd64 + arm64 (on amd64's layer) + attestations
    tags: dict[str, str]  # tag -> digest


@pytest.fixture(scope="module")
def client(registry: Registry) -> Iterator[RegistryClient]:
    with RegistryClient(registry.host, insecure=True) as c:
        yield c


@pytest.fixture(scope="module")
def pushed(client: RegistryClient) -> Pushed:
    a = build_image({"app/main.py": b"print('fixed')\n", "app/VERSION": b"1\n"}, created=ts(10),
                    labels={REV: "a" * 40, "org.opencontainers.image.source": "https://git.example/fa"})
    b = build_image({"app/extra.py": b"x = 2\n"}, created=ts(12), labels={REV: "b" * 40}, base=a)
    c = build_image({"app/main.py": b"print('v1')\n"}, created=ts(14))
    amd = build_image({"bin/app": b"\x7fELF amd64"}, created=ts(15), labels={"team": "home"})
    arm = build_image({"bin/arm": b"\x7fELF arm64"}, created=ts(16), architecture="arm64", base=amd)
    index = build_index([amd, arm], created=ts(16), annotations={REV: "c" * 40})
    tags: dict[str, str] = {}
    pairs: list[tuple[str, BuiltImage | BuiltIndex]] = [
        ("fixed", a), ("fixed-final", a), ("me-fixed", a), ("phase2", b), ("phase2-fixed", b), ("v1.0.0", c),
        ("multi", index)]
    for tag, image in pairs:
        tags[tag] = push_image(client, REPO, tag, image)
    return Pushed(a, b, c, index, tags)


# -- listing ------------------------------------------------------------------------------------------------


def test_loopback_without_insecure_falls_back_to_plain_http(registry: Registry) -> None:
    with RegistryClient(registry.host) as c:
        assert c.ping() == "registry/2.0"
        assert c.requests == 2  # one TLS attempt (the server speaks HTTP), then HTTP
        c.ping()
        assert c.requests == 3


def test_tags_paginate_with_link_header(client: RegistryClient, pushed: Pushed) -> None:
    before = client.requests
    tags = client.tags(REPO, page_size=2)
    assert tags == sorted(pushed.tags)
    assert client.requests - before == math.ceil(len(tags) / 2)  # 7 tags: 4 pages, the last without a Link
    assert client.tags(REPO) == tags


def test_catalog_paginates(client: RegistryClient, pushed: Pushed) -> None:
    for i in range(5):
        push_image(client, f"regtest/cat{i}", "1", pushed.c)
    everything = client.catalog()
    before = client.requests
    assert client.catalog(page_size=2) == everything
    assert client.requests - before >= math.ceil(len(everything) / 2) >= 3
    assert {REPO, *(f"regtest/cat{i}" for i in range(5))} <= set(everything)


# -- manifests and images -----------------------------------------------------------------------------------


def test_head_digests_match_pushed(client: RegistryClient, pushed: Pushed) -> None:
    refs = client.resolve_tags(REPO, workers=4)
    assert {t: r.digest for t, r in refs.items()} == pushed.tags
    assert pushed.tags["fixed"] == pushed.tags["me-fixed"] == pushed.a.digest
    assert refs["multi"].media_type == "application/vnd.oci.image.index.v1+json"
    assert refs["fixed"].media_type == "application/vnd.oci.image.manifest.v1+json"
    assert refs["fixed"].size == len(pushed.a.manifest)
    assert client.head_manifest(REPO, pushed.a.digest).digest == pushed.a.digest


def test_get_manifest_and_blob(client: RegistryClient, pushed: Pushed) -> None:
    m = client.get_manifest(REPO, "phase2")
    assert m.body == pushed.b.manifest and m.digest == pushed.b.digest and not m.is_index
    assert client.get_blob(REPO, pushed.b.config.digest) == pushed.b.config.data
    assert client.get_manifest(REPO, "multi").is_index


def test_image_info_single(client: RegistryClient, pushed: Pushed) -> None:
    info = client.image_info(REPO, "me-fixed")
    assert info.digest == pushed.a.digest
    assert info.created == ts(10)
    assert info.revision == "a" * 40
    assert info.labels["org.opencontainers.image.source"] == "https://git.example/fa"
    assert [(la.digest, la.size) for la in info.layers] == [(la.digest, la.size) for la in pushed.a.layers]
    assert info.size == pushed.a.size == pushed.a.config.size + pushed.a.layers[0].size
    assert info.platforms == ("linux/amd64",)


def test_image_info_with_base_layers(client: RegistryClient, pushed: Pushed) -> None:
    info = client.image_info(REPO, "phase2")
    assert info.created == ts(12) and info.revision == "b" * 40
    assert [la.digest for la in info.layers] == [pushed.a.layers[0].digest, pushed.b.layers[1].digest]
    assert info.size == pushed.b.config.size + sum(la.size for la in pushed.b.layers)


def test_image_info_index_skips_attestations_and_counts_shared_blobs_once(client: RegistryClient,
                                                                          pushed: Pushed) -> None:
    amd, att_amd, arm, _ = pushed.index.images
    assert arm.layers[0] == amd.layers[0]  # a blob shared by both platforms
    info = client.image_info(REPO, "multi")
    assert info.digest == pushed.index.digest
    assert info.platforms == ("linux/amd64", "linux/arm64")  # attestation manifests (unknown/unknown) skipped
    assert info.created == ts(16)
    assert info.revision == "c" * 40  # from the index annotation
    assert info.labels == {"team": "home"}
    assert [la.digest for la in info.layers] == [amd.layers[0].digest, arm.layers[1].digest]
    assert info.size == amd.config.size + arm.config.size + amd.layers[0].size + arm.layers[1].size
    assert att_amd.layers[0].media_type == "application/vnd.in-toto+json"


def test_builds_are_deterministic_and_push_skips_existing_blobs(client: RegistryClient, pushed: Pushed) -> None:
    again = build_image({"app/VERSION": b"1\n", "app/main.py": b"print('fixed')\n"}, created=ts(10),
                        labels={"org.opencontainers.image.source": "https://git.example/fa", REV: "a" * 40})
    assert again.digest == pushed.a.digest
    before = client.requests
    assert push_image(client, REPO, "fixed", again) == pushed.a.digest
    assert client.requests - before == 3  # HEAD config, HEAD layer (both exist), PUT manifest
    other = build_image({"app/main.py": b"print('fixed')\n"}, created=ts(10, hour=11))
    assert other.digest != pushed.a.digest


# -- deletes ------------------------------------------------------------------------------------------------


def test_delete_tag_keeps_siblings_on_the_same_digest(client: RegistryClient) -> None:
    repo = "regtest/delete-sibling"
    img = build_image({"f": b"sibling"}, created=ts(1))
    for tag in ("a", "b", "c"):
        push_image(client, repo, tag, img)
    result = client.delete_tag(repo, "b")
    assert result.digest == img.digest and result.siblings == ("a", "c") and not result.deleted_manifest
    assert client.tags(repo) == ["a", "c"]
    assert client.head_manifest(repo, "a").digest == img.digest
    assert client.head_manifest(repo, "c").digest == img.digest
    assert client.image_info(repo, "a").size == img.size
    with pytest.raises(ManifestNotFound):
        client.head_manifest(repo, "b")


def test_delete_tag_alone_on_its_digest_deletes_the_manifest(client: RegistryClient) -> None:
    repo = "regtest/delete-solo"
    solo = build_image({"f": b"solo"}, created=ts(2))
    keep = build_image({"f": b"keep"}, created=ts(2))
    push_image(client, repo, "solo", solo)
    push_image(client, repo, "keep", keep)
    before = client.requests
    result = client.delete_tag(repo, "solo", tag_digests={"solo": solo.digest, "keep": keep.digest})
    assert result.deleted_manifest and result.siblings == ()
    assert client.requests - before == 2  # GET the manifest, DELETE its digest
    assert client.tags(repo) == ["keep"]
    with pytest.raises(ManifestNotFound, match="digest not found"):
        client.get_manifest(repo, solo.digest)


def test_delete_manifest_removes_every_tag_on_it(client: RegistryClient) -> None:
    repo = "regtest/delete-digest"
    img = build_image({"f": b"all"}, created=ts(3))
    for tag in ("x", "y"):
        push_image(client, repo, tag, img)
    client.delete_manifest(repo, img.digest)
    assert client.tags(repo) == []
    with pytest.raises(RegistryConfigError, match="not a digest"):
        client.delete_manifest(repo, "x")


def test_deletes_disabled(tmp_path: Path) -> None:
    reg = start_registry(tmp_path / "ro", delete_enabled=False)
    try:
        with RegistryClient(reg.host, insecure=True) as c:
            img = build_image({"f": b"keep me"}, created=ts(4))
            for tag in ("one", "two"):
                push_image(c, "app", tag, img)
            push_image(c, "app", "alone", build_image({"f": b"alone"}, created=ts(4)))
            with pytest.raises(DeleteDisabled) as exc:
                c.delete_manifest("app", img.digest)
            msg = str(exc.value)
            assert "REGISTRY_STORAGE_DELETE_ENABLED=true" in msg and f"{reg.host}/app@{img.digest}" in msg
            assert "HTTP 405 UNSUPPORTED" in msg and exc.value.exit_code == EXIT_INPUT
            with pytest.raises(DeleteDisabled, match=r"app:two.*REGISTRY_STORAGE_DELETE_ENABLED=true"):
                c.delete_tag("app", "two")  # detected before the tag is touched
            assert c.head_manifest("app", "two").digest == img.digest
            with pytest.raises(DeleteDisabled, match="app:alone"):
                c.delete_tag("app", "alone")
            assert c.tags("app") == ["alone", "one", "two"]
    finally:
        reg.stop()


# -- errors -------------------------------------------------------------------------------------------------


def test_not_found_messages(client: RegistryClient, pushed: Pushed, registry: Registry) -> None:
    with pytest.raises(ManifestNotFound) as exc:
        client.head_manifest(REPO, "fixed-v5")
    msg = str(exc.value)
    assert msg.startswith(f"{registry.host}/{REPO}:fixed-v5: tag not found")
    assert "fixed-final" in exc.value.close_matches and "close tags:" in msg
    assert exc.value.exit_code == EXIT_INPUT
    with pytest.raises(ManifestNotFound, match="the repository has 7 tags"):
        client.get_manifest(REPO, "zzzzzzzz")
    with pytest.raises(RepositoryNotFound, match=r"repository 'regtest/family-asistant' not found.*did you mean "
                                                   r"regtest/family-assistant"):
        client.head_manifest("regtest/family-asistant", "fixed")
    with pytest.raises(RepositoryNotFound, match="NAME_UNKNOWN"):
        client.tags("regtest/nope-nothing-here")
    with pytest.raises(ManifestNotFound, match="digest not found"):
        client.head_manifest(REPO, "sha256:" + "0" * 64)


def test_invalid_names_fail_before_any_request(client: RegistryClient) -> None:
    before = client.requests
    with pytest.raises(RegistryConfigError, match=r"invalid tag 'bad\+tag'.*no '\+'"):
        client.head_manifest(REPO, "bad+tag")
    with pytest.raises(RegistryConfigError, match="must be lowercase"):
        client.tags("Family-Assistant")
    with pytest.raises(RegistryConfigError, match="without host"):
        client.tags("family-assistant:latest")
    assert client.requests == before
    with pytest.raises(RegistryConfigError, match=r"host\[:port\]"):
        RegistryClient("http://127.0.0.1:5000")


def test_connection_refused(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there any more
    with RegistryClient(f"127.0.0.1:{port}", insecure=True, retries=2, backoff=0) as c:
        with pytest.raises(RegistryConnectionError) as exc:
            c.tags("app")
        assert c.requests == 3
    msg = str(exc.value)
    assert msg == (f"127.0.0.1:{port}: connection refused during list tags (3 attempts): nothing listens on port "
                   f"{port}; is the registry running?")
    assert isinstance(exc.value, SourceUnreachable) and exc.value.exit_code == EXIT_UNREACHABLE


# -- MockTransport: retries, Retry-After, timeouts, TLS ------------------------------------------------------

HOST = "registry.mock.invalid:5000"  # MockTransport: nothing leaves the process


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> tuple[RegistryClient,
                                                                                             list[float]]:
    sleeps: list[float] = []
    c = RegistryClient(HOST, transport=httpx.MockTransport(handler), docker_config=Path("/nonexistent"),
                       **kw)  # type: ignore[arg-type]
    c._transport.sleep = sleeps.append
    return c, sleeps


def tags_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"name": "app", "tags": ["1.0.0"]})


def test_retries_503_then_succeeds_with_exponential_backoff() -> None:
    answers = iter([503, 502, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return tags_ok(request) if status == 200 else httpx.Response(status)

    c, sleeps = mock_client(handler, backoff=0.5)
    assert c.tags("app") == ["1.0.0"]
    assert sleeps == [0.5, 1.0] and c.requests == 3


def test_retry_after_is_honoured() -> None:
    answers = iter([429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        if next(answers) == 429:
            return httpx.Response(429, headers={"Retry-After": "0"})
        return tags_ok(request)

    c, sleeps = mock_client(handler, backoff=5)
    assert c.tags("app") == ["1.0.0"]
    assert sleeps == [0.0]


def test_long_retry_after_and_persistent_5xx_give_up_with_exit_3() -> None:
    c, sleeps = mock_client(lambda r: httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(RegistryServerError, match=r"rate limited \(HTTP 429\).*after 1 attempt: retry in 120s"):
        c.tags("app")
    assert sleeps == []
    c, sleeps = mock_client(lambda r: httpx.Response(500, json={"errors": [{"code": "UNKNOWN", "message": "boom"}]}),
                            retries=3, backoff=0.1)
    with pytest.raises(RegistryServerError) as exc:
        c.head_manifest("app", "1.0.0")
    assert str(exc.value) == (f"{HOST}/app:1.0.0: server error HTTP 500 on HEAD manifest after 4 attempts: "
                              "UNKNOWN boom: check the registry's logs and retry")
    assert exc.value.exit_code == EXIT_UNREACHABLE and sleeps == [0.1, 0.2, 0.4]


def test_timeouts_are_retried_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    c, _ = mock_client(handler, retries=1, backoff=0, timeout=2)
    with pytest.raises(RegistryTimeout, match=r"timed out after 2s during list tags \(2 attempts\)"):
        c.tags("app")
    assert c.requests == 2


def test_tls_errors_are_not_retried_and_say_what_to_do() -> None:
    def verify_failed(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                                "self-signed certificate (_ssl.c:1006)")
        raise httpx.ConnectError("handshake", request=request) from cause

    c, _ = mock_client(verify_failed)
    with pytest.raises(RegistryTLSError, match=r"certificate verify failed: self-signed certificate.*--ca-file"):
        c.ping()
    assert c.requests == 1

    def plain_http(request: httpx.Request) -> httpx.Response:
        cause = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
        raise httpx.ConnectError("handshake", request=request) from cause

    c, _ = mock_client(plain_http)
    with pytest.raises(RegistryTLSError, match="answers plain HTTP, not HTTPS: pass --insecure-registry"):
        c.ping()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI to make a certificate")
def test_tls_on_loopback_needs_the_ca_file(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with serve(lambda h: h.reply(200, b"{}"), ssl_context=ctx) as host:
        with RegistryClient(host, retries=0) as c, pytest.raises(RegistryTLSError) as exc:
            c.ping()
        assert "--ca-file" in str(exc.value) and "--insecure-registry" in str(exc.value)
        with RegistryClient(host, ca_file=cert) as c:
            c.ping()
            assert str(c._http.base_url).startswith("https://")


# -- auth ---------------------------------------------------------------------------------------------------

SECRET = "s3cr3t-pa55"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BearerRegistry:
    """A fake registry + token service (MockTransport handler) in the style of distribution's token auth."""

    def __init__(self, user: str = "me", password: str = SECRET) -> None:
        self.good = basic(user, password)
        self.token_requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.mock.invalid":
            self.token_requests.append(request)
            if request.headers.get("Authorization") != self.good:
                return httpx.Response(401, json={"details": "bad credentials"})
            scope = request.url.params.get("scope", "")
            return httpx.Response(200, json={"token": f"tok-{SECRET}-{scope}", "expires_in": 300})
        repo = request.url.path.split("/")[2]
        action = "pull" if request.method in ("GET", "HEAD") else "push,pull"
        scope = f"repository:{repo}:{action}"
        if request.headers.get("Authorization") != f"Bearer tok-{SECRET}-{scope}":
            return httpx.Response(401, headers={"WWW-Authenticate": f'Bearer realm="https://auth.mock.invalid/token",'
                                                                      f'service="mock",scope="{scope}"'})
        return tags_ok(request)


def test_bearer_flow_fetches_a_token_once_per_scope() -> None:
    fake = BearerRegistry()
    c, _ = mock_client(fake, credentials=("me", SECRET))
    assert c.tags("app") == ["1.0.0"]
    assert c.requests == 3  # 401, token, retry
    assert c.tags("app") == ["1.0.0"]
    assert c.requests == 4  # token cached for the route: sent up front
    assert len(fake.token_requests) == 1
    tr = fake.token_requests[0]
    assert tr.url.params["scope"] == "repository:app:pull" and tr.url.params["service"] == "mock"
    c.tags("other")
    assert len(fake.token_requests) == 2  # another scope, another token


def test_bearer_flow_with_wrong_or_missing_credentials() -> None:
    c, _ = mock_client(BearerRegistry(), credentials=("me", "wrong-" + SECRET))
    with pytest.raises(RegistryAuthError) as exc:
        c.tags("app")
    msg = str(exc.value)
    assert msg.startswith(f"{HOST}/app: the registry rejected the credentials from explicit credentials")
    assert "token service auth.mock.invalid rejected the credentials (HTTP 401)" in msg
    assert f"docker login {HOST}" in msg and SECRET not in msg and exc.value.exit_code == EXIT_INPUT
    c, _ = mock_client(BearerRegistry())
    with pytest.raises(RegistryAuthError, match=r"authentication required"):
        c.tags("app")


def test_bearer_flow_against_a_loopback_token_server() -> None:
    def handle(h: Handler) -> None:
        if h.path.startswith("/token"):
            ok = h.headers.get("Authorization") == basic("me", SECRET)
            h.reply(200 if ok else 401, orjson.dumps({"token": "loopback-token"} if ok else {}))
        elif h.headers.get("Authorization") == "Bearer loopback-token":
            h.reply(200, orjson.dumps({"name": "app", "tags": ["a", "b"]}))
        else:
            h.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {
                "WWW-Authenticate": f'Bearer realm="http://{h.server_host}/token",service="loop",'
                                    'scope="repository:app:pull"'})

    with serve(handle) as host, RegistryClient(host, insecure=True, credentials=("me", SECRET)) as c:
        assert c.tags("app") == ["a", "b"]
        assert c.tags("app") == ["a", "b"]
        assert c.requests == 4


def test_basic_auth_challenge_then_up_front() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") != basic("me", SECRET):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="Registry Realm"'})
        return tags_ok(request)

    c, _ = mock_client(handler, credentials=("me", SECRET))
    c.tags("app")
    c.tags("app")
    assert seen == [None, basic("me", SECRET), basic("me", SECRET)]


def test_credentials_from_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = base64.b64encode(f"me:{SECRET}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"https://{HOST}/v1/": {"auth": auth}}}))
    fake = BearerRegistry()
    c = RegistryClient(HOST, transport=httpx.MockTransport(fake))
    assert c.tags("app") == ["1.0.0"]

    (tmp_path / "config.json").write_text(json.dumps({"auths": {HOST: {}}, "credHelpers": {HOST: "gcloud"}}))
    c = RegistryClient(HOST, transport=httpx.MockTransport(BearerRegistry()))
    with pytest.raises(RegistryAuthError) as exc:
        c.tags("app")
    assert f"uses credHelpers['{HOST}'] = 'gcloud', which kubeshape does not support yet" in str(exc.value)
    c = RegistryClient(HOST, transport=httpx.MockTransport(BearerRegistry()), credentials=("me", SECRET))
    assert c.tags("app") == ["1.0.0"]  # explicit credentials win over the helper

    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "desktop"}))
    c = RegistryClient(HOST, transport=httpx.MockTransport(BearerRegistry()))
    with pytest.raises(RegistryAuthError, match="credsStore = 'desktop'"):
        c.tags("app")
    assert "password" not in repr(c._lookup)


def test_created_times_and_hosts() -> None:
    from kubeshape.registry.models import format_created, parse_created
    from kubeshape.registry.names import is_loopback

    nanos = parse_created("2025-11-15T10:17:28.123456789Z")  # Go writes nanoseconds
    assert format_created(nanos) == "2025-11-15T10:17:28.123456Z"
    assert format_created(parse_created("2025-11-15T12:17:28+02:00")) == "2025-11-15T10:17:28Z"
    assert parse_created("yesterday") is None
    assert [is_loopback(h) for h in ("127.0.0.1:5000", "[::1]:5000", "localhost", "100.81.76.55:30500")] == [
        True, True, True, False]


# -- snapshot -----------------------------------------------------------------------------------------------


def test_snapshot_is_the_registry_json_document(pushed: Pushed, registry: Registry) -> None:
    with RegistryClient(registry.host, insecure=True) as client:  # fresh: no cached configs
        doc = snapshot([registry.host], clients={registry.host: client}, repositories=[REPO], workers=4)
    # 1 tag list + 7 HEADs + one image_info per distinct digest: 3 images x (manifest + config) and the index
    # (index + 2 platform manifests + 2 configs); the three tags on one digest are inspected once
    assert client.requests == 1 + 7 + 3 * 2 + 5
    snap = parse_registry_snapshot(orjson.loads(orjson.dumps(doc)), "snapshot")
    repo = snap.repo(registry.host, REPO)
    assert repo is not None and sorted(repo.tags) == sorted(pushed.tags)
    for tag, digest in pushed.tags.items():
        assert repo.tags[tag].digest == digest
    fixed = repo.tags["fixed"]
    assert fixed.created == ts(10) and fixed.revision == "a" * 40 and fixed.size == pushed.a.size
    assert fixed.layers == [(la.digest, la.size) for la in pushed.a.layers]
    assert repo.tags["phase2"].layers[0] == fixed.layers[0]  # the shared base layer
    assert repo.tags["v1.0.0"].revision is None
    multi = repo.tags["multi"]
    assert multi.created == ts(16) and multi.revision == "c" * 40 and len(multi.layers) == 2
    entry = doc["registries"][0]["repositories"][0]["tags"][0]
    assert list(entry) == ["tag", "digest", "size", "created", "revision", "layers"]
    assert entry["created"] == "2025-11-10T10:17:28Z"
    assert snap.collected_at is not None


def test_snapshot_of_the_whole_catalog_with_its_own_clients(registry: Registry, pushed: Pushed) -> None:
    doc = snapshot([registry.host], insecure=True, workers=2)
    names = [r["name"] for r in doc["registries"][0]["repositories"]]
    assert REPO in names and names == sorted(names)
    again = snapshot([registry.host], insecure=True, workers=16)
    assert again["registries"] == doc["registries"]
    missing = snapshot([registry.host], insecure=True, repositories=["regtest/never-pushed"])
    assert missing["registries"][0]["repositories"] == [{"name": "regtest/never-pushed", "tags": []}]


def test_snapshot_of_an_unreachable_registry_is_exit_3() -> None:
    host = f"127.0.0.1:{free_port()}"
    with RegistryClient(host, insecure=True, retries=0) as c, pytest.raises(SourceUnreachable) as exc:
        snapshot([host], clients={host: c})
    assert exc.value.exit_code == EXIT_UNREACHABLE and host in str(exc.value)


# -- a tiny loopback HTTP server for the flows above ----------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """Dispatches every request to ``server.handle(self)``."""

    server_host = ""

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server_host = self.server.host_port  # type: ignore[attr-defined]
        self.server.handle(self)  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:
        pass


class serve:
    """Run ``handle`` on 127.0.0.1 (optionally over TLS) for the ``with`` block; yields ``host:port``."""

    def __init__(self, handle: Callable[[Handler], None], ssl_context: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle = handle  # type: ignore[attr-defined]
        self.server.host_port = f"127.0.0.1:{self.server.server_address[1]}"  # type: ignore[attr-defined]
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return str(self.server.host_port)  # type: ignore[attr-defined]

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
