"""Tests for kubeshape.imageref."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from kubeshape.imageref import ImageRef, InvalidReference, is_valid_tag, parse

SHA256 = "sha256:" + "a" * 64
SHA512 = "sha512:" + "0123456789abcdef" * 8
IPV4 = "100.81.76.55"
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")  # independent oracle for the tag grammar

# (reference, domain, path, tag, digest)
VALID: list[tuple[str, str | None, str, str | None, str | None]] = [
    ("nginx", None, "nginx", None, None),
    ("nginx:latest", None, "nginx", "latest", None),
    ("app", None, "app", None, None),
    ("app:latest", None, "app", "latest", None),
    ("foo/bar", None, "foo/bar", None, None),
    ("foo/bar/baz:1.2.3", None, "foo/bar/baz", "1.2.3", None),
    ("family-assistant:phase2-mcp-logging-fix", None, "family-assistant", "phase2-mcp-logging-fix", None),
    (
        f"{IPV4}:30500/family-assistant:me-fixed",
        f"{IPV4}:30500",
        "family-assistant",
        "me-fixed",
        None,
    ),
    (
        "ghcr.io/pesuga/homelab/homelab-dashboard:v1",
        "ghcr.io",
        "pesuga/homelab/homelab-dashboard",
        "v1",
        None,
    ),
    ("registry.local:5000/app:1.0", "registry.local:5000", "app", "1.0", None),
    ("registry:5000/app", "registry:5000", "app", None, None),
    ("registry:5000/app:5000", "registry:5000", "app", "5000", None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
    # docker's reading: no "/" means no domain, so ":5000" is a tag.
    ("registry:5000", None, "registry", "5000", None),
    ("localhost:5000", None, "localhost", "5000", None),
    ("localhost", None, "localhost", None, None),
    ("ghcr.io", None, "ghcr.io", None, None),  # no "/": a one-component path, as in docker
    ("[::1]/app", "[::1]", "app", None, None),
    ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None),
    ("[2001:db8::1]:443/ns/app", "[2001:db8::1]:443", "ns/app", None, None),
    ("[FE80::A]:5000/app", "[FE80::A]:5000", "app", None, None),
    (f"{IPV4}/app", IPV4, "app", None, None),
    ("docker.io/nginx", "docker.io", "nginx", None, None),
    ("index.docker.io/library/nginx", "index.docker.io", "library/nginx", None, None),
    ("Registry.Example.COM/app", "Registry.Example.COM", "app", None, None),
    ("Foo/bar", "Foo", "bar", None, None),  # uppercase first component is a domain
    ("my-registry--x.example.com/a", "my-registry--x.example.com", "a", None, None),
    ("a.b/c__d/e---f/g.h/i_j", "a.b", "c__d/e---f/g.h/i_j", None, None),
    ("foo_bar/baz", None, "foo_bar/baz", None, None),
    ("nginx:Latest", None, "nginx", "Latest", None),
    ("nginx:_x", None, "nginx", "_x", None),
    ("nginx:" + "t" * 128, None, "nginx", "t" * 128, None),
    (f"nginx@{SHA256}", None, "nginx", None, SHA256),
    (f"nginx:1.25@{SHA256}", None, "nginx", "1.25", SHA256),
    (f"ghcr.io/x/y:v1@{SHA512}", "ghcr.io", "x/y", "v1", SHA512),
    (f"registry:5000/app@{SHA256}", "registry:5000", "app", None, SHA256),
    ("nginx@sha384:" + "b" * 96, None, "nginx", None, "sha384:" + "b" * 96),
    ("nginx@multihash+base58:" + "Qm" * 20, None, "nginx", None, "multihash+base58:" + "Qm" * 20),
    ("nginx@blake3:" + "A-_=" * 8, None, "nginx", None, "blake3:" + "A-_=" * 8),
    ("a" * 255, None, "a" * 255, None, None),
    ("a.io/" + "b" * 250, "a.io", "b" * 250, None, None),
    ("a" * 255 + ":tag", None, "a" * 255, "tag", None),
    ("0" * 63, None, "0" * 63, None, None),
    ("0" * 64 + ":tag", None, "0" * 64, "tag", None),
]


@pytest.mark.parametrize(("ref", "domain", "path", "tag", "digest"), VALID)
def test_parse_valid(ref: str, domain: str | None, path: str, tag: str | None, digest: str | None) -> None:
    parsed = parse(ref)
    assert (parsed.raw, parsed.domain, parsed.path, parsed.tag, parsed.digest) == (
        ref,
        domain,
        path,
        tag,
        digest,
    )
    assert parsed.qualified is (domain is not None)
    assert parsed.name == (f"{domain}/{path}" if domain else path)
    assert str(parsed) == ref


# (reference, expected reason; a regex when it starts with "re:")
INVALID: list[tuple[str, str]] = [
    ("", "empty reference"),
    (" nginx", "leading or trailing whitespace"),
    ("nginx ", "leading or trailing whitespace"),
    ("nginx\n", "leading or trailing whitespace"),
    ("\tnginx:1", "leading or trailing whitespace"),
    (":tag", "missing repository name"),
    (":", "missing repository name"),
    (f"@{SHA256}", "missing repository name"),
    (f":v1@{SHA256}", "missing repository name"),
    ("nginx:", "invalid tag ''"),
    ("nginx:-dash", "invalid tag '-dash'"),
    ("nginx:.dot", "invalid tag '.dot'"),
    ("nginx:" + "t" * 129, "re:invalid tag"),
    ("nginx:t\u00e9", "re:invalid tag"),
    ("nginx:a+b", "invalid tag 'a+b'"),
    ("Foo:1", "repository name must be lowercase"),
    ("Nginx", "repository name must be lowercase"),
    ("foo/Bar", "repository name must be lowercase"),
    ("ghcr.io/Org/app", "repository name must be lowercase"),
    ("Foo/Bar", "repository name must be lowercase"),
    ("Foo_Bar/baz", "repository name must be lowercase"),
    ("a" * 256, "repository name must not be more than 255 characters"),
    ("a.io/" + "b" * 251, "repository name must not be more than 255 characters"),
    ("a" * 256 + ":tag", "repository name must not be more than 255 characters"),
    ("0" * 64, "re:64-character hexadecimal"),
    ("[fe80::1%eth0]/app", "invalid registry domain '[fe80::1%eth0]'"),
    ("[fe80::1%eth0]:5000/app", "re:invalid registry domain"),
    ("[::ffff:1.2.3.4]/app", "re:invalid registry domain"),
    ("::1/app", "invalid registry domain '::1'"),
    ("[::1]", "invalid repository path '[:'"),  # "1]" after the last ":" is split off as the tag
    ("[::1]:5000", "invalid repository path '[::1]'"),
    ("[]/app", "invalid repository path '[]/app'"),  # "[]" does not look like a domain
    ("registry:port/app", "invalid registry domain 'registry:port'"),
    ("registry:/app", "invalid registry domain 'registry:'"),
    ("-bad.io/app", "re:invalid registry domain"),
    ("bad-.io/app", "re:invalid registry domain"),
    ("a..io/app", "re:invalid registry domain"),
    ("under_score.io/app", "re:invalid registry domain"),
    ("ghcr.io/", "invalid repository path ''"),
    ("foo//bar", "invalid repository path 'foo//bar'"),
    ("/foo", "invalid repository path '/foo'"),
    ("foo/", "invalid repository path 'foo/'"),
    ("-foo", "re:invalid repository path"),
    ("foo-", "re:invalid repository path"),
    ("foo..bar", "re:invalid repository path"),
    ("foo___bar", "re:invalid repository path"),
    ("foo._bar", "re:invalid repository path"),
    ("foo bar", "re:invalid repository path"),
    ("nginx:1:2", "re:invalid repository path 'nginx:1'"),
    ("nginx@", "invalid digest ''"),
    ("nginx@sha256", "re:invalid digest"),
    ("nginx@sha256:", "re:invalid digest"),
    ("nginx@sha256:abc", "re:invalid digest"),
    ("nginx@sha256:" + "a" * 63, "invalid sha256 digest: expected 64 lowercase hex characters"),
    ("nginx@sha256:" + "a" * 65, "invalid sha256 digest: expected 64 lowercase hex characters"),
    ("nginx@sha256:" + "A" * 64, "invalid sha256 digest: expected 64 lowercase hex characters"),
    ("nginx@sha256:" + "g" * 64, "invalid sha256 digest: expected 64 lowercase hex characters"),
    ("nginx@sha512:" + "a" * 64, "invalid sha512 digest: expected 128 lowercase hex characters"),
    ("nginx@SHA256:" + "a" * 64, "re:invalid digest"),
    ("nginx@-sha:" + "a" * 64, "re:invalid digest"),
    ("nginx@sha++x:" + "a" * 64, "re:invalid digest"),
    ("nginx@foo:" + "a" * 31, "re:invalid digest"),
    ("nginx@foo:" + "a" * 31 + "/", "re:invalid digest"),
    (f"nginx@{SHA256}@{SHA256}", "re:invalid digest"),
    (f"nginx@{SHA256}:v1", "re:invalid digest"),
]


@pytest.mark.parametrize(("ref", "reason"), INVALID)
def test_parse_invalid(ref: str, reason: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse(ref)
    exc = info.value
    assert exc.reference == ref
    if reason.startswith("re:"):
        assert re.search(reason[3:], exc.reason), exc.reason
    else:
        assert exc.reason == reason
    assert str(exc) == f"invalid reference {ref!r}: {exc.reason}"
    assert "\n" not in str(exc).replace(repr(ref), "")
    assert isinstance(exc, ValueError)


def test_error_message_example() -> None:
    with pytest.raises(
        InvalidReference, match=r"^invalid reference 'Foo:1': repository name must be lowercase$"
    ):
        parse("Foo:1")


def test_invalid_reference_pickles() -> None:
    exc = InvalidReference("x y", "bad")
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.reference, copy.reason, str(copy)) == ("x y", "bad", str(exc))


@pytest.mark.parametrize(
    ("ref", "normalized", "registry"),
    [
        ("nginx", "docker.io/library/nginx", "docker.io"),
        ("nginx:1@" + SHA256, "docker.io/library/nginx", "docker.io"),
        ("foo/bar", "docker.io/foo/bar", "docker.io"),
        ("docker.io/nginx", "docker.io/library/nginx", "docker.io"),
        ("docker.io/foo/bar", "docker.io/foo/bar", "docker.io"),
        ("index.docker.io/nginx", "docker.io/library/nginx", "index.docker.io"),
        ("ghcr.io/x/y", "ghcr.io/x/y", "ghcr.io"),
        ("ghcr.io/y", "ghcr.io/y", "ghcr.io"),
        ("localhost/app", "localhost/app", "localhost"),
        (f"{IPV4}:30500/family-assistant:me-fixed", f"{IPV4}:30500/family-assistant", f"{IPV4}:30500"),
        ("[::1]:5000/app", "[::1]:5000/app", "[::1]:5000"),
    ],
)
def test_normalized_name(ref: str, normalized: str, registry: str) -> None:
    parsed = parse(ref)
    assert parsed.normalized_name == normalized
    assert parsed.registry == registry


@pytest.mark.parametrize(
    ("ref", "mutable", "effective_tag"),
    [
        ("app", True, "latest"),
        ("app:latest", True, "latest"),
        ("app:v1", False, "v1"),
        ("app:Latest", False, "Latest"),
        (f"app@{SHA256}", False, None),
        (f"app:latest@{SHA256}", False, "latest"),
        ("registry:5000/app", True, "latest"),
        ("family-assistant:phase2-mcp-logging-fix", False, "phase2-mcp-logging-fix"),
    ],
)
def test_mutable_and_effective_tag(ref: str, mutable: bool, effective_tag: str | None) -> None:
    parsed = parse(ref)
    assert parsed.mutable is mutable
    assert parsed.effective_tag == effective_tag


def test_qualified() -> None:
    assert parse(f"{IPV4}:30500/family-assistant:me-fixed").qualified
    assert not parse("family-assistant:phase2-mcp-logging-fix").qualified
    assert parse("localhost/app").qualified
    assert not parse("library/nginx").qualified


def test_with_tag() -> None:
    parsed = parse(f"registry:5000/app:1@{SHA256}")
    retagged = parsed.with_tag("2.0")
    assert retagged == ImageRef("registry:5000/app:2.0", "registry:5000", "app", "2.0", None)
    assert str(retagged) == retagged.raw
    assert parse(str(retagged)) == retagged
    with pytest.raises(InvalidReference) as info:
        parsed.with_tag("bad tag")
    assert info.value.reason == "invalid tag 'bad tag'"
    assert info.value.reference == "registry:5000/app:bad tag"


def test_immutable_and_cached() -> None:
    parsed = parse("nginx:1")
    with pytest.raises(AttributeError):
        parsed.tag = "2"  # type: ignore[misc]
    assert parse("nginx:1") is parsed


def test_errors_are_fresh_each_time() -> None:
    errors = []
    for _ in range(2):
        with pytest.raises(InvalidReference) as info:
            parse("Bad")
        errors.append(info.value)
    assert errors[0] is not errors[1]


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("_", True),
        ("0", True),
        ("v1.2.3-rc_1", True),
        ("A" * 128, True),
        ("A" * 129, False),
        ("", False),
        ("-x", False),
        (".x", False),
        ("x/y", False),
        ("x:y", False),
        ("x@y", False),
        ("\u00e9", False),
        ("\u0663", False),  # a Unicode digit is not \w in Go's ASCII regexp
        ("x\n", False),
    ],
)
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid


# --- property tests ---------------------------------------------------------------------------------

ALNUM = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def path_components(draw: st.DrawFn) -> str:
    parts = [draw(ALNUM)]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(SEPARATOR), draw(ALNUM)]
    return "".join(parts)


PATHS = st.lists(path_components(), min_size=1, max_size=4).map("/".join)
PORTS = st.one_of(st.just(""), st.integers(0, 99999).map(lambda p: f":{p}"))
DOMAIN_COMPONENT = st.from_regex(r"[a-zA-Z0-9]{1,5}(-{1,2}[a-zA-Z0-9]{1,5}){0,2}", fullmatch=True)
HOSTNAMES = st.lists(DOMAIN_COMPONENT, min_size=2, max_size=4).map(".".join)
IPV4S = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(lambda xs: ".".join(map(str, xs)))
IPV6S = st.ip_addresses(v=6).map(lambda ip: f"[{ip.compressed}]").filter(lambda s: "." not in s)
DOMAINS = st.one_of(
    st.tuples(HOSTNAMES, PORTS).map("".join),
    st.tuples(IPV4S, PORTS).map("".join),
    st.tuples(IPV6S, PORTS).map("".join),
    st.tuples(st.just("localhost"), PORTS).map("".join),
    st.tuples(DOMAIN_COMPONENT, st.integers(1, 65535)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.from_regex(r"[a-z0-9]{0,3}[A-Z][a-zA-Z0-9]{0,4}", fullmatch=True),  # uppercase => domain
)
TAGS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
DIGESTS = st.one_of(
    st.from_regex(r"[a-f0-9]{64}", fullmatch=True).map(lambda h: f"sha256:{h}"),
    st.from_regex(r"[a-f0-9]{128}", fullmatch=True).map(lambda h: f"sha512:{h}"),
    st.tuples(
        st.from_regex(r"[a-z0-9]{1,5}([+._-][a-z0-9]{1,5}){0,2}", fullmatch=True),
        st.from_regex(r"[a-zA-Z0-9=_-]{32,40}", fullmatch=True),
    )
    .filter(lambda t: t[0] not in ("sha256", "sha384", "sha512"))
    .map(":".join),
)


@given(
    domain=st.none() | DOMAINS,
    path=PATHS,
    tag=st.none() | TAGS,
    digest=st.none() | DIGESTS,
)
def test_roundtrip_from_components(
    domain: str | None, path: str, tag: str | None, digest: str | None
) -> None:
    ref = path if domain is None else f"{domain}/{path}"
    if domain is None:
        # Without an explicit domain, a first component that looks like one would become it.
        first = path.split("/")[0]
        assume("/" not in path or not ("." in first or first == "localhost"))
    assume(len(ref) <= 255)
    assume(not (tag is None and digest is None and re.fullmatch(r"[a-f0-9]{64}", ref)))
    if tag is not None:
        ref += f":{tag}"
    if digest is not None:
        ref += f"@{digest}"
    parsed = parse(ref)
    assert str(parsed) == ref
    assert parsed.raw == ref
    assert (parsed.domain, parsed.path, parsed.tag, parsed.digest) == (domain, path, tag, digest)
    assert parsed.qualified is (domain is not None)
    assert parsed.normalized_name.endswith(path)
    assert parsed.mutable is (digest is None and tag in (None, "latest"))


@given(ref=st.text(alphabet="aZ0.:/@_-[]", max_size=40) | st.text(max_size=40))
def test_parse_never_crashes(ref: str) -> None:
    try:
        parsed = parse(ref)
    except InvalidReference as exc:
        assert exc.reference == ref
        assert exc.reason
    else:
        assert str(parsed) == ref
        assert parse(str(parsed)) == parsed


@given(ref=st.tuples(st.none() | DOMAINS, PATHS).map(lambda t: t[1] if t[0] is None else f"{t[0]}/{t[1]}"))
def test_uppercase_path_rejected(ref: str) -> None:
    assume(len(ref) <= 255)
    domain, slash, path = ref.rpartition("/")
    upper = f"{domain}{slash}{path.upper()}"
    assume(upper != ref)
    with pytest.raises(InvalidReference):
        parse(upper)


@given(tag=st.text(max_size=140).filter(lambda t: TAG_PATTERN.fullmatch(t) is None))
def test_invalid_tags_rejected(tag: str) -> None:
    assert not is_valid_tag(tag)
    with pytest.raises(InvalidReference):
        parse("nginx").with_tag(tag)
    try:
        parsed = parse(f"nginx:{tag}")
    except InvalidReference:
        return
    assert parsed.tag != tag


@given(domain=st.none() | DOMAINS, path=PATHS, old=st.none() | TAGS, digest=st.none() | DIGESTS, new=TAGS)
def test_with_tag_keeps_name(
    domain: str | None, path: str, old: str | None, digest: str | None, new: str
) -> None:
    parsed = ImageRef("", domain, path, old, digest)
    retagged = parsed.with_tag(new)
    assert retagged.name == parsed.name
    assert (retagged.domain, retagged.path, retagged.tag, retagged.digest) == (domain, path, new, None)
    assert str(retagged) == f"{parsed.name}:{new}"


@given(n=st.integers(1, 300), domain=st.none() | st.just("reg.io:5000"))
def test_name_length_limit(n: int, domain: str | None) -> None:
    ref = "a" * n if domain is None else f"{domain}/{'a' * n}"
    if len(ref) <= 255:
        assert parse(ref + ":t").path == "a" * n
    else:
        with pytest.raises(InvalidReference, match="must not be more than 255 characters"):
            parse(ref + ":t")
