"""Keep secret values out of bundles, reports, logs and errors: the one redactor every exit uses.

API:

* :func:`redact_text` -- free text: log lines and tails, event and status messages, error messages, report text;
* :func:`redact_value` -- the value of an environment variable (or a ConfigMap key) given its name;
* :func:`redact_args` -- a container's ``command``/``args`` list;
* :func:`redact_object` -- a Kubernetes object, in place (env, args, status and event messages, ConfigMap data,
  the last-applied-configuration annotation);
* :func:`redact_report` -- a report with every string a renderer prints redacted (the final pass).

What counts as a secret name (:func:`is_secret_name`): one containing PASSWORD, PASSWD, PASSPHRASE, SECRET, TOKEN,
CREDENTIAL, COOKIE, DSN, CONN(ECTION)_STR or AUTH (not AUTHOR/AUTHORITY), or having KEY, PAT, PASS, PWD, PW or
CREDS as a word part (``API_KEY``, ``apiKey``, ``GITHUB_PAT``, ``DB_PASS``), or a glued ``APIKEY``/``ACCESSKEY``/...
Word parts keep ``PATH``, ``KEYCLOAK_URL``, ``monkey`` and ``BYPASS`` visible; the shell's own ``PWD`` is not secret.
Over-redaction is the accepted failure mode (``MAX_TOKENS`` and ``AUTH_URL`` values are hidden too).

In free text it masks: URL credentials (``postgres://user:<redacted>@host``), the credential of an
``Authorization``/``Proxy-Authorization`` header (the scheme word is kept) and of a bare ``Bearer``/``Basic``
token, ``key=value``, ``key: value``, ``key: "value"`` and ``'value'`` pairs and ``--flag value`` arguments whose
key looks secret, JWTs, PEM private keys and well-known token shapes (GitHub, GitLab, Slack, AWS key ids).
One exception keeps prose readable: after ``key:`` (colon, unquoted) a plain lower-case word survives
(``invalid token: expired``); with ``=`` or quotes every value is masked.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from kubeshape.report.model import Report

REDACTED = "<redacted>"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

_SECRET_SUBSTRING = re.compile(
    r"pass(?:word|wd|phrase)|secret|token|credential|cookie|dsn|conn(?:ection)?_?str|auth(?!or(?!i[sz]ation))"
    r"|(?:api|access|private|signing|encryption|master|client)_?key", re.I)
_SECRET_PARTS = frozenset({"key", "keys", "pat", "pass", "pwd", "pw", "creds"})
_WORD_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

# Cheap pre-tests on the lower-cased text decide which patterns run at all (most text needs none of them).
_NAME_HINT = re.compile(r"pass|pw|secret|token|key|auth|cred|pat(?![a-z])|dsn|cookie")
_ANY_HINT = re.compile(_NAME_HINT.pattern + r"|bearer|basic|://|eyj|gh[pousr]_|github_pat|glpat-|xox|akia")
_SHAPE_HINT = re.compile(r"eyj|gh[pousr]_|github_pat|glpat-|xox|akia")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S)
_TOKEN_SHAPES = re.compile(
    r"\beyJ[\w-]{5,}\.eyJ[\w-]{5,}\.[\w-]*"  # JWT: base64url('{"...') . base64url('{"...') . signature
    r"|\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[\w-]{20,}|xox[abprs]-[\w-]{10,}|AKIA[0-9A-Z]{16})\b")
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^/@:\s\"'<>]*):(?P<pw>[^\s/?#\"'<>]+)@", re.I)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"'\]]*[ \t]*[:=][ \t]*[\"'\[]*)"
    r"(?:(?P<scheme>bearer|basic|digest|token|negotiate|ntlm|apikey|\*+|<redacted>)[ \t]+)?"  # or masked already
    r"(?P<cred>[^\s\"',;\])}]+)", re.I)
_BARE_SCHEME = re.compile(r"\b(?P<head>(?:bearer|basic)[ \t]+)(?=[\w.~+/-]*\d)[\w.~+/-]{16,}=*", re.I)
_FLAG = re.compile(r"(?<![\w-])(?P<flag>--?[A-Za-z][\w.-]*)(?P<sp>[ \t]+)(?P<val>(?![-<])[^\s\"']+)")
_PAIR = re.compile(
    r"(?P<key>(?<![\w.-])\\?[\"']?-{0,2}[A-Za-z_][\w.-]*\\?[\"']?)(?P<sep>[ \t]*=[ \t]*|:[ \t]*)"
    r"(?:(?P<vq>\\?[\"'])(?P<quoted>.*?)(?P=vq)|(?P<bare>\\?[\"']?[^\s\"'&,;\])}\\]+))")
_PLAIN_WORD = re.compile(r"[a-z]+")
_AUTH_SCHEMES = frozenset({"bearer", "basic", "digest", "token", "negotiate", "ntlm", "apikey"})


@functools.lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """True for names that usually hold secrets: ``DB_PASSWORD``, ``apiKey``, ``GITHUB_PAT``, ``--token``, …"""
    if _SECRET_SUBSTRING.search(name):
        return True
    parts = [p.lower() for p in _WORD_PART.findall(name)]
    return parts != ["pwd"] and any(p in _SECRET_PARTS for p in parts)


def _pair(m: re.Match[str]) -> str:
    key, sep, bare = m["key"], m["sep"], m["bare"]
    value = m["quoted"] if m["vq"] else bare
    if not is_secret_name(key.strip("\\\"'-")):  # a pair may hide in the value: msg="login password=x"
        return f"{key}{sep}{m['vq'] or ''}{_PAIR.sub(_pair, value)}{m['vq'] or ''}"
    if not value or REDACTED in value or (bare and (bare.lstrip("[(").lower() in _AUTH_SCHEMES or (
            sep.startswith(":") and _PLAIN_WORD.fullmatch(bare)))):
        return m[0]
    return f"{key}{sep}{m['vq']}{REDACTED}{m['vq']}" if m["vq"] else f"{key}{sep}{REDACTED}"


def _flag(m: re.Match[str]) -> str:
    return f"{m['flag']}{m['sp']}{REDACTED}" if is_secret_name(m["flag"].lstrip("-")) else m[0]


def _auth(m: re.Match[str]) -> str:
    if not m["scheme"] and ":" in m["head"] and _PLAIN_WORD.fullmatch(m["cred"]):
        return m[0]  # prose: "... may require authorization: server message ..."
    return f"{m['head']}{m['scheme'] + ' ' if m['scheme'] else ''}{REDACTED}"


def redact_text(text: str) -> str:
    """``text`` with secret values replaced by ``<redacted>`` (see the module docstring for what is caught)."""
    low = text.lower()
    if not _ANY_HINT.search(low):
        return text
    if "private key-----" in low:
        text = _PRIVATE_KEY.sub(REDACTED, text)
        low = text.lower()
        if len(text) <= 1024 or "\n" not in text:
            return _redact_line(text, low)
    if len(text) > 1024 and "\n" in text:  # a log tail or a file: only the lines with a hint need the patterns
        return "\n".join(_redact_line(line, line.lower()) for line in text.split("\n"))
    return _redact_hinted(text, low)


def _redact_line(text: str, low: str) -> str:
    if not _ANY_HINT.search(low):
        return text
    return _redact_hinted(text, low)


def _redact_hinted(text: str, low: str) -> str:
    """``_redact_line`` once ``low`` is known to hold a hint."""
    if _SHAPE_HINT.search(low):
        text = _TOKEN_SHAPES.sub(REDACTED, text)
    if "://" in low and "@" in low:
        text = _URL_CREDENTIALS.sub(rf"\g<head>:{REDACTED}@", text)
    if "authorization" in low:
        text = _AUTH_HEADER.sub(_auth, text)
    if "bearer" in low or "basic" in low:
        text = _BARE_SCHEME.sub(rf"\g<head>{REDACTED}", text)
    if _NAME_HINT.search(low):
        text = _PAIR.sub(_pair, _FLAG.sub(_flag, text))
    return text


def redact_value(name: str, value: str) -> str:
    """The value to show for env var (or ConfigMap key) ``name``: all of it hidden when the name looks secret."""
    return REDACTED if is_secret_name(name) else redact_text(value)


def redact_args(args: list[Any], text: Callable[[str], str] = redact_text) -> list[Any]:
    """A ``command``/``args`` list with secrets masked: ``--password=x``, ``--token x`` (two items), inline text."""
    out: list[Any] = []
    hide_next = False
    for arg in args:
        if not isinstance(arg, str):
            out.append(arg)
        elif hide_next and not arg.startswith("-"):
            out.append(REDACTED)
        else:
            out.append(text(arg))
        hide_next = isinstance(arg, str) and arg.startswith("-") and "=" not in arg and is_secret_name(arg)
    return out


def _redact_containers(containers: Any, text: Callable[[str], str]) -> None:
    if not isinstance(containers, list):
        return
    for c in containers:
        if not isinstance(c, dict):
            continue
        for env in c.get("env") or ():
            if isinstance(env, dict) and isinstance(value := env.get("value"), str):
                env["value"] = REDACTED if is_secret_name(str(env.get("name", ""))) else text(value)
        if isinstance(command := c.get("command"), list):
            c["command"] = redact_args(command, text)
        if isinstance(args := c.get("args"), list):
            c["args"] = redact_args(args, text)


def _walk_pod_specs(node: Any, text: Callable[[str], str], depth: int = 0) -> None:
    if depth > 6 or not isinstance(node, dict):
        return
    for key in ("containers", "initContainers", "ephemeralContainers"):
        if key in node:
            _redact_containers(node[key], text)
    for key in ("spec", "template", "jobTemplate"):
        if key in node:
            _walk_pod_specs(node[key], text, depth + 1)


def _redact_key(node: Any, key: str, text: Callable[[str], str]) -> None:
    if isinstance(node, dict) and isinstance(value := node.get(key), str):
        node[key] = text(value)


def _redact_status(status: Any, text: Callable[[str], str]) -> None:
    # Runs on every listed object: the per-field test is written out, not a call per field.
    if not isinstance(status, dict):
        return
    if isinstance(value := status.get("message"), str):
        status["message"] = text(value)
    for cond in status.get("conditions") or ():
        if isinstance(cond, dict) and isinstance(value := cond.get("message"), str):
            cond["message"] = text(value)
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or ():
            if not isinstance(cs, dict):
                continue
            for state in (cs.get("state"), cs.get("lastState")):
                if isinstance(state, dict):
                    for phase in state.values():
                        if isinstance(phase, dict) and isinstance(value := phase.get("message"), str):
                            phase["message"] = text(value)


def _redact_last_applied(meta: Any, text: Callable[[str], str]) -> None:
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(ann, dict) or not isinstance(applied_text := ann.get(LAST_APPLIED), str):
        return
    try:
        applied = orjson.loads(applied_text)
    except orjson.JSONDecodeError:
        ann[LAST_APPLIED] = REDACTED
        return
    if not isinstance(applied, dict) or applied.get("kind") == "Secret":
        ann[LAST_APPLIED] = REDACTED
        return
    before = orjson.dumps(applied)
    _redact_object(applied, text)
    after = orjson.dumps(applied)
    if after != before:  # keep the API server's bytes when there was nothing to hide
        ann[LAST_APPLIED] = after.decode()


def redact_object(raw: dict[str, Any]) -> dict[str, Any]:
    """Redact ``raw`` in place and return it: env values and args of every pod spec or template, container
    status, condition and event messages, ConfigMap ``data`` and the last-applied-configuration annotation.
    Secrets are not handled here: they lose all values (``sources.bundle.strip_secret``)."""
    return _redact_object(raw, redact_text)


def _redact_object(raw: dict[str, Any], text: Callable[[str], str]) -> dict[str, Any]:
    _walk_pod_specs(raw, text)
    _redact_status(raw.get("status"), text)
    _redact_key(raw, "message", text)  # Event (core/v1)
    _redact_key(raw, "note", text)  # Event (events.k8s.io/v1)
    data = raw.get("data")
    if isinstance(data, dict):
        for k, v in data.items():
            if isinstance(v, str):
                data[k] = REDACTED if is_secret_name(str(k)) else text(v)
    _redact_last_applied(raw.get("metadata"), text)
    return raw


class ObjectRedactor:
    """:func:`redact_object` for many objects at once (a bundle, a live listing): alike objects -- the pods of one
    Deployment, repeated events -- carry the same env values and messages, so each short text is redacted once."""

    MAX_REMEMBERED = 256  # characters of a text worth remembering; longer ones are rarely repeated

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def text(self, value: str) -> str:
        """``redact_text(value)``, remembered."""
        if len(value) > self.MAX_REMEMBERED:
            return redact_text(value)
        out = self._seen.get(value)
        if out is None:
            out = self._seen[value] = redact_text(value)
        return out

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Redact ``raw`` in place, as :func:`redact_object` does, and return it."""
        return _redact_object(raw, self.text)


def _redact_data(value: Any, text: Callable[[str], str]) -> Any:
    """Strings anywhere inside ``Finding.data`` (dicts, lists, sets), by key name where there is one; ``value``
    itself when nothing changed."""
    if isinstance(value, str):
        return text(value)
    if isinstance(value, dict):
        new = {k: redact_value(k, v) if isinstance(k, str) and isinstance(v, str) else _redact_data(v, text)
               for k, v in value.items()}
        return value if all(new[k] is v for k, v in value.items()) else new
    if isinstance(value, list | tuple | set | frozenset):
        items = [_redact_data(v, text) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
    return value


def redact_report(report: Report) -> Report:
    """``report`` with every string a renderer prints passed through :func:`redact_text`: findings' message,
    evidence, root cause, fix and data; metric details; sources; blind spots; notes. Unchanged findings are
    shared with the input, which is never modified."""
    seen: dict[str, str | None] = {}  # rules repeat fixes and evidence lines; None: nothing to hide

    def text(s: str) -> str:
        if s not in seen:
            out = redact_text(s)
            seen[s] = None if out == s else out
        return seen[s] or s

    findings = []
    for f in report.findings:
        new = {"message": text(f.message), "evidence": [text(e) for e in f.evidence],
               "root_cause": text(f.root_cause), "fix": text(f.fix), "data": _redact_data(f.data, text)}
        same = (new["message"] is f.message and new["root_cause"] is f.root_cause and new["fix"] is f.fix
                and new["data"] is f.data and all(a is b for a, b in zip(new["evidence"], f.evidence, strict=True)))
        findings.append(f if same else dataclasses.replace(f, **new))
    return dataclasses.replace(
        report, findings=findings, metrics=[dataclasses.replace(m, detail=text(m.detail)) for m in report.metrics],
        sources={k: text(v) for k, v in report.sources.items()}, blind_spots=[text(b) for b in report.blind_spots],
        notes=[text(n) for n in report.notes])
