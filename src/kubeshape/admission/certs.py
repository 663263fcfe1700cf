"""The webhook's TLS files: a private CA and the serving certificate it signs, created and renewed idempotently.

The apiserver trusts the webhook through the CA (the ``caBundle`` of the webhook configuration), so renewing the
serving certificate keeps the CA: only ``--force`` replaces it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubeshape.admission.defaults import CA_DAYS, DEFAULT_NAMESPACE, DEFAULT_SERVICE, check_dns_label
from kubeshape.errors import InputError

RENEW_WITHIN_DAYS = 30
CLOCK_SKEW = timedelta(minutes=5)  # backdate notBefore: a node whose clock is a little behind still accepts it
CA_NAME = "kubeshape webhook CA"

_DNS_NAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass
class CertFiles:
    """The four PEM files in the output directory, and what a run did to them (empty: nothing)."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    changed: list[str] = field(default_factory=list)

    @classmethod
    def under(cls, out: Path) -> CertFiles:
        return cls(out / "ca.crt", out / "ca.key", out / "tls.crt", out / "tls.key")


def parse_host(host: str) -> str:
    """A ``--host`` value in canonical form: an IP address, or a lowercase DNS name (``*.`` allowed)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(host.strip("[]")))
    name = host.lower().rstrip(".")
    if len(name) > 253 or not _DNS_NAME.fullmatch(name):
        raise InputError(f"--host {host!r}: not an IP address or DNS name -- give e.g. 127.0.0.1 or "
                         "webhook.example.com (no scheme or port)")
    return name


def serving_names(service: str, namespace: str, hosts: list[str]) -> list[str]:
    """The names the serving certificate must cover: the Service's in-cluster names, then ``hosts``."""
    check_dns_label(service, "--service")
    check_dns_label(namespace, "--namespace")
    names = [service, f"{service}.{namespace}", f"{service}.{namespace}.svc",
             f"{service}.{namespace}.svc.cluster.local", *(parse_host(h) for h in hosts)]
    return list(dict.fromkeys(names))


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_id(key: PrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def make_ca(days: int = CA_DAYS, now: datetime | None = None) -> tuple[x509.Certificate, PrivateKey]:
    """A new self-signed CA (ECDSA P-256) that may only sign certificates, valid for ``days``."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    usage = x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(_key_id(key), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_serving_cert(ca_cert: x509.Certificate, ca_key: PrivateKey, names: list[str], days: int,
                      now: datetime | None = None) -> tuple[x509.Certificate, PrivateKey]:
    """A new key and a server-auth certificate for ``names`` (DNS names and IP addresses), signed by the CA.

    It ends ``days`` from now, or when the CA does if that is sooner."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value \
        if _has_ext(ca_cert, x509.SubjectKeyIdentifier) else _key_id(ca_key)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(min(now + timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_key_id(key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _has_ext(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    try:
        cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return False
    return True


def cert_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses of the certificate's subjectAltName, in its order."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName), *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def is_ca(cert: x509.Certificate) -> bool:
    """True when the certificate may sign others (basicConstraints CA:TRUE)."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}) -- fix or remove it") from None


def load_cert(path: Path) -> x509.Certificate:
    """The PEM certificate in ``path``; an InputError naming the file when it is unreadable or not one."""
    try:
        return x509.load_pem_x509_certificate(_read(path))
    except ValueError:
        raise InputError(f"{path}: not a PEM certificate -- restore it, or run with --force to start over "
                         "(a new CA: re-apply the webhook manifests)") from None


def load_key(path: Path) -> PrivateKey:
    """The unencrypted PEM private key (ECDSA or RSA) in ``path``; an InputError naming the file otherwise."""
    try:
        key = serialization.load_pem_private_key(_read(path), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise InputError(f"{path}: not an unencrypted PEM private key -- restore it, or run with --force to "
                         "start over (a new CA: re-apply the webhook manifests)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InputError(f"{path}: unsupported key type -- use an ECDSA or RSA key, or run with --force")
    return key


def _public_der(key: PrivateKey | x509.Certificate) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _day(t: datetime) -> str:
    return t.strftime("%Y-%m-%d")


def renew_within(days: int) -> timedelta:
    """How close to its end a serving certificate is renewed: 30 days, a third of shorter lifetimes."""
    return timedelta(days=min(RENEW_WITHIN_DAYS, max(1, days // 3)))


def needs_renewal(cert: x509.Certificate, key: PrivateKey, ca_cert: x509.Certificate, names: list[str],
                  days: int = 365, now: datetime | None = None) -> list[str]:
    """Why the serving certificate must be renewed (empty: it is fine)."""
    now = now or datetime.now(UTC)
    reasons: list[str] = []
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        reasons.append("tls.crt was not signed by ca.crt")
    if _public_der(key) != _public_der(cert):
        reasons.append("tls.key did not match tls.crt")
    have, want = cert_names(cert), names
    if added := [n for n in want if n not in have]:
        reasons.append(f"names added: {', '.join(added)}")
    if dropped := [n for n in have if n not in want]:
        reasons.append(f"names dropped: {', '.join(dropped)}")
    end = cert.not_valid_after_utc
    if end <= now:
        reasons.append(f"tls.crt expired on {_day(end)}")
    elif end - now <= renew_within(days):
        reasons.append(f"tls.crt expires on {_day(end)}")
    return reasons


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically; the new file has ``mode`` from the start (a key is never world-readable)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: PrivateKey) -> None:
    """Write the key (mode 0600), then the certificate (0644), as PEM."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _check_ca(files: CertFiles, now: datetime) -> tuple[x509.Certificate, PrivateKey]:
    """The existing CA, if it can go on signing; else an InputError that says to use --force."""
    present = [p for p in (files.ca_cert, files.ca_key) if p.exists()]
    if len(present) == 1:
        missing = files.ca_key if present[0] == files.ca_cert else files.ca_cert
        raise InputError(f"{missing}: missing (its pair {present[0].name} is there) -- restore it, or run with "
                         "--force to make a new CA (then re-apply the webhook manifests)")
    ca_cert, ca_key = load_cert(files.ca_cert), load_key(files.ca_key)
    if not is_ca(ca_cert):
        raise InputError(f"{files.ca_cert}: not a CA certificate -- run with --force to make a new CA")
    if _public_der(ca_key) != _public_der(ca_cert):
        raise InputError(f"{files.ca_key}: does not belong to {files.ca_cert.name} -- restore the matching key, "
                         "or run with --force to make a new CA (then re-apply the webhook manifests)")
    if ca_cert.not_valid_after_utc - now <= timedelta(days=RENEW_WITHIN_DAYS):
        raise InputError(f"{files.ca_cert}: the CA expires on {_day(ca_cert.not_valid_after_utc)} -- run with "
                         "--force to make a new CA, then re-apply the webhook manifests with the new ca.crt")
    return ca_cert, ca_key


def _check_readable(files: CertFiles) -> None:
    """Every existing file reads as what it should be (before any of them is replaced)."""
    for path in (files.ca_cert, files.cert):
        if path.exists():
            load_cert(path)
    for path in (files.ca_key, files.key):
        if path.exists():
            load_key(path)


def _tighten(path: Path) -> str | None:
    """Make an existing key file private (0600); what was done, if anything."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077 == 0:
        return None
    path.chmod(0o600)
    return f"made {path.name} private (mode {mode:04o} -> 0600)"


def ensure_certs(out: Path, hosts: list[str], namespace: str = DEFAULT_NAMESPACE,
                 service: str = DEFAULT_SERVICE, days: int = 365, force: bool = False) -> CertFiles:
    """Create or renew the CA and serving certificate in ``out``; a no-op when they are already fine.

    Every existing file is read and checked before anything is written: a corrupt one is an InputError and
    nothing changes."""
    if days < 1:
        raise InputError(f"--days {days}: must be at least 1")
    names = serving_names(service, namespace, hosts)
    files = CertFiles.under(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: not a directory -- --out takes the directory for the certificate files")
    now = datetime.now(UTC)
    if not force:
        _check_readable(files)
    replacing = force and (files.ca_cert.exists() or files.ca_key.exists())
    new_ca = force or not (files.ca_cert.exists() or files.ca_key.exists())
    reasons: list[str] = []
    if new_ca:
        ca_cert, ca_key = make_ca(now=now)
    else:
        ca_cert, ca_key = _check_ca(files, now)
        if files.cert.exists() and files.key.exists():
            reasons = needs_renewal(load_cert(files.cert), load_key(files.key), ca_cert, names, days, now)
        else:
            reasons = [f"{p.name} was missing" for p in (files.cert, files.key) if not p.exists()]
    if not new_ca and not reasons:
        files.changed = [c for c in (_tighten(files.ca_key), _tighten(files.key)) if c]
        return files
    try:
        out.mkdir(mode=0o700, parents=True, exist_ok=True)
        if new_ca:
            write_pair(files.ca_cert, files.ca_key, ca_cert, ca_key)
            what = "replaced the CA" if replacing else "created a CA"
            files.changed.append(f"{what} (ca.crt, ca.key), valid until {_day(ca_cert.not_valid_after_utc)}")
        cert, key = make_serving_cert(ca_cert, ca_key, names, days, now)
        write_pair(files.cert, files.key, cert, key)
    except OSError as exc:
        raise InputError(f"{exc.filename or out}: cannot write ({exc.strerror})") from None
    until = f"valid until {_day(cert.not_valid_after_utc)}"
    if new_ca:
        files.changed.append(f"issued tls.crt, tls.key for {', '.join(names)}, {until}")
    else:
        files.changed.append(f"renewed tls.crt, tls.key with the same CA ({'; '.join(reasons)}), {until}")
    return files
