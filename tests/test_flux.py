"""Flux post-build substitution as kustomize-controller does it: braced forms, defaults (nested), escapes."""

from __future__ import annotations

import pytest

from kubeshape.sources.flux import Variables, substitute, unresolved, variables

VALUES = {"APP": "echo", "REPLICAS": "3", "EMPTY": "", "ON": "true"}


@pytest.mark.parametrize(("text", "want"), [
    ("${APP}", "echo"),
    ("x-${APP}-y", "x-echo-y"),
    ("${GATUS_SUBDOMAIN:=${APP}}.lan", "echo.lan"),  # nested default: components reused by many apps
    ("${MISSING:-${ALSO_MISSING:=z}}", "z"),
    ("${MISSING}", "${MISSING}"),  # kept as written, reported as unresolved: never guessed
    ("${MISSING:=d}", "d"),
    ("${EMPTY:=d}", "d"),
    ("${EMPTY=d}", ""),
    ("$${APP}", "${APP}"),  # escaped
    ("$APP and $(shell)", "$APP and $(shell)"),  # only the braced form is substituted
    ("${REPLICAS}", 3),  # a value that was only a variable is parsed again, as Flux does
    ("${ON}", True),
    ("unclosed ${APP", "unclosed ${APP"),
])
def test_substitution(text: str, want: object) -> None:
    assert substitute({"v": text}, VALUES)["v"] == want


def test_disabled_by_label_or_annotation() -> None:
    obj = {"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}, "data": {"a": "${APP}"}}
    assert substitute(obj, VALUES) is obj


def test_unresolved_lists_variables_left() -> None:
    assert unresolved({"a": ["${X}", {"b": "${Y:=1} ${X}"}], "c": 3}) == ("X", "Y")
    assert unresolved({"a": "$${not} plain"}) == ("not",)  # an escaped one still reads as a variable here
    assert unresolved({"a": "none"}) == ()


def test_variables_inline_win_over_substitute_from_in_order() -> None:
    cm = {"kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "flux-system"},
          "data": {"TZ": "UTC", "DOMAIN": "a.lan"}}
    cm2 = {"kind": "ConfigMap", "metadata": {"name": "more", "namespace": "flux-system"}, "data": {"DOMAIN": "b.lan"}}
    secret = {"kind": "Secret", "metadata": {"name": "enc"}, "sops": {"version": "3"}, "data": {"K": "ENC[...]"}}
    spec = {"postBuild": {"substitute": {"TZ": "Europe/Madrid"},
                          "substituteFrom": [{"kind": "ConfigMap", "name": "settings"},
                                             {"kind": "ConfigMap", "name": "more"},
                                             {"kind": "Secret", "name": "enc"},
                                             {"kind": "Secret", "name": "absent", "optional": True},
                                             {"kind": "ConfigMap", "name": "gone"}]}}
    sources = {("ConfigMap", "settings"): [cm], ("ConfigMap", "more"): [cm2], ("Secret", "enc"): [secret]}
    got = variables(spec, "flux-system", sources)
    assert got == Variables(values={"TZ": "Europe/Madrid", "DOMAIN": "b.lan"},
                            unreadable=["Secret enc (encrypted with SOPS)", "ConfigMap gone (not in the repository)"])
