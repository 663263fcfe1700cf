"""YAML reading: kubectl/Flux semantics, bounds against hostile files, errors with file/line/column."""

from __future__ import annotations

import codecs
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kubeshape.sources import yamlio
from kubeshape.sources.yamlio import (
    Document,
    LocalTagError,
    YamlSyntaxError,
    load_yaml_file,
    load_yaml_text,
    template_marker,
)

DEPLOY = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  template:
    spec:
      containers:
      - name: api
        image: registry.local:5000/api:1.0.0
        ports: [{containerPort: 80}]
"""

BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10)
)


def one(text: str, with_lines: bool = True) -> Document:
    (doc,) = load_yaml_text(text, "f.yaml", with_lines=with_lines)
    return doc


def test_documents_keep_their_start_line_and_the_line_of_every_field() -> None:
    docs = load_yaml_text("# comment\n" + DEPLOY + "---\nkind: Service\n", "a.yaml")
    assert [d.line for d in docs] == [2, 14]
    dep = docs[0]
    assert dep.lines["spec.template.spec.containers[0].image"] == 11
    assert dep.line_of("spec.template.spec.containers[0].ports[0].containerPort") == 12
    assert dep.line_of("spec.template.spec.containers[0].missing") == 10
    assert dep.warnings == []


def test_without_lines_the_data_is_the_same_and_the_index_empty() -> None:
    doc = one(DEPLOY, with_lines=False)
    assert doc.data == one(DEPLOY).data and doc.lines == {}


@pytest.mark.parametrize("text", ["op: =\n", "- matchType: =\n  name: severity\n"])
def test_a_plain_equals_sign_is_a_string(text: str) -> None:
    data = one(text).data
    assert (data["op"] if isinstance(data, dict) else data[0]["matchType"]) == "="


def test_implicit_types_are_still_resolved_as_by_pyyaml() -> None:
    assert one("a: yes\nb: 010\nc: 1.5\nd: ~\ne: '='\nf: ==\n").data == {
        "a": True, "b": 8, "c": 1.5, "d": None, "e": "=", "f": "==",
    }


def test_a_redefined_anchor_applies_to_later_aliases() -> None:
    doc = one("k1: &v one\nk2: *v\nk3: &v two\nk4: *v\n")
    assert doc.data == {"k1": "one", "k2": "one", "k3": "two", "k4": "two"}
    assert doc.lines == {"k1": 1, "k2": 2, "k3": 3, "k4": 4}


def test_redefined_anchors_keep_every_document_lines_and_limits() -> None:
    text = DEPLOY + "---\nx: &a {b: 1}\ny: *a\nx2: &a [1]\ny2: *a\nz: !!int '7'\n"
    first, second = load_yaml_text(text, "f.yaml")
    assert first.lines["spec.template.spec.containers[0].image"] == 10
    assert second.data == {"x": {"b": 1}, "y": {"b": 1}, "x2": [1], "y2": [1], "z": 7}
    assert second.line == 13 and second.lines["x2"] == 15
    with pytest.raises(YamlSyntaxError, match="nesting deeper than 1,000 levels"):
        load_yaml_text("k: &v 1\nk2: &v 2\nd: " + "[" * 1500 + "]" * 1500 + "\n", "f.yaml")


def test_duplicate_keys_warn_with_both_lines_and_the_last_value_wins() -> None:
    text = "kind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: y}\n  name: b\ndata: {}\nkind: Secret\n"
    doc = one(text)
    assert doc.data == {"kind": "Secret", "metadata": {"name": "b", "labels": {"x": "y"}}, "data": {}}
    assert doc.warnings == [
        "duplicate key 'kind' at line 7 (first at line 1); the last value is used",
        "duplicate key 'metadata.name' at line 5 (first at line 3); the last value is used",
    ]
    assert doc.lines["metadata.name"] == 5 and doc.lines["kind"] == 7
    assert one(text, with_lines=False).warnings == doc.warnings


def test_a_replaced_mapping_leaves_no_stale_lines() -> None:
    doc = one("spec:\n  old: 1\nspec:\n  new: 2\n")
    assert doc.data == {"spec": {"new": 2}}
    assert doc.lines == {"spec": 3, "spec.new": 4}


def test_merge_keys_and_differently_typed_keys_are_not_duplicates() -> None:
    doc = one("base: &b {image: x, tag: y}\nc:\n  <<: *b\n  tag: z\n  <<: {more: 1}\n1: int\n'1': str\n")
    assert doc.data["c"] == {"image": "x", "tag": "z", "more": 1}
    assert doc.data[1] == "int" and doc.data["1"] == "str"
    assert doc.warnings == []


def test_a_billion_laughs_file_is_refused_quickly() -> None:
    assert len(BOMB) < 1024
    start = time.monotonic()
    for with_lines in (True, False):
        with pytest.raises(YamlSyntaxError) as caught:
            load_yaml_text(BOMB, "bomb.yaml", with_lines=with_lines)
        assert caught.value.problem == "alias expansion exceeds 1,000,000 nodes (a YAML bomb?)"
        assert caught.value.file == "bomb.yaml" and caught.value.line > 1
    assert time.monotonic() - start < 5  # a hang guard, not a benchmark


def test_a_merge_key_bomb_is_refused_too() -> None:
    text = "a0: &a0 {k0: x}\n" + "".join(
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}], k{i}: x}}\n" for i in range(1, 10)
    )
    with pytest.raises(YamlSyntaxError, match="alias expansion exceeds"):
        load_yaml_text(text, "f.yaml")


def test_moderate_alias_reuse_is_fine_and_counts_across_documents() -> None:
    text = "r: &r {cpu: 1m, memory: 1Mi}\n" + "".join(f"c{i}: *r\n" for i in range(1000))
    assert one(text).data["c999"] == {"cpu": "1m", "memory": "1Mi"}
    big = "a: &a [" + ", ".join(["x"] * 2000) + "]\nb: [" + ", ".join(["*a"] * 300) + "]\n"
    load_yaml_text(big, "f.yaml")  # 600,000 expanded nodes
    with pytest.raises(YamlSyntaxError, match="alias expansion exceeds"):
        load_yaml_text(big + "---\n" + big, "f.yaml")


@pytest.mark.parametrize("text", ["a: &a [*a]\n", "a: &a {b: {c: *a}}\n"])
def test_a_recursive_alias_is_an_error(text: str) -> None:
    with pytest.raises(YamlSyntaxError, match=r"recursive alias"):
        load_yaml_text(text, "f.yaml")


def _deep_texts(depth: int) -> dict[str, str]:
    return {
        "flow sequences": "[" * depth + "]" * depth,
        "flow mappings": "{a: " * depth + "1" + "}" * depth,
        "block sequences": "- " * depth + "x\n",
        "single-pair mappings": "[a: " * depth + "1" + "]" * depth,
    }


@pytest.mark.parametrize("kind", list(_deep_texts(1)))
def test_ten_thousand_levels_of_nesting_are_a_syntax_error(kind: str) -> None:
    with pytest.raises(YamlSyntaxError, match=r"nesting deeper than 1,000 levels") as caught:
        load_yaml_text(_deep_texts(10_000)[kind], "deep.yaml")
    assert caught.value.line == 1 and caught.value.column > 1000


def test_indented_block_mappings_are_bounded_too() -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(1_200)) + " " * 1_200 + "v: 1\n"
    with pytest.raises(YamlSyntaxError, match=r"nesting deeper than 1,000 levels") as caught:
        load_yaml_text(text, "deep.yaml")
    assert caught.value.line in (1_000, 1_001)  # libyaml's own limit (PyYAML ≥ 6.0.4) stops one line earlier


def test_nesting_up_to_the_limit_loads() -> None:
    assert one("[" * 1000 + "]" * 1000)
    with pytest.raises(YamlSyntaxError):
        load_yaml_text("[" * 1001 + "]" * 1001, "f.yaml")


def test_nesting_that_would_overflow_libyamls_stack_does_not_crash() -> None:
    # libyaml's composer recurses in C: without the depth check this kills the interpreter (SIGSEGV)
    code = textwrap.dedent("""
        from kubeshape.sources.yamlio import YamlSyntaxError, load_yaml_text
        for text in ("[" * 200_000, "- " * 200_000 + "x", "{a: " * 100_000):
            try:
                load_yaml_text(text, "f.yaml")
            except YamlSyntaxError as exc:
                print(exc.problem)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["nesting deeper than 1,000 levels"] * 3


@pytest.mark.parametrize("tag", ["!env_var", "!secret", "!include", "!vault", "!reference"])
def test_local_tags_mean_not_a_kubernetes_manifest(tag: str) -> None:
    with pytest.raises(LocalTagError) as caught:
        load_yaml_text(f"sonarr:\n  api_key: {tag} SONARR_API_KEY\n", "recyclarr.yml")
    err = caught.value
    assert isinstance(err, YamlSyntaxError)
    assert (err.file, err.line, err.column, err.tag) == ("recyclarr.yml", 2, 12, tag)
    assert err.problem == f"uses the local tag '{tag}' (not a Kubernetes manifest)"


def test_a_program_specific_standard_tag_marks_a_file_that_is_not_a_manifest() -> None:
    with pytest.raises(LocalTagError) as caught:  # mkdocs.yml: `format: !!python/name:pymdownx.superfences.fence`
        load_yaml_text("a: !!python/name:os.system x\n", "f.yaml")
    assert caught.value.problem == "uses the tag '!!python/name:os.system' (not a Kubernetes manifest)"


@pytest.mark.parametrize(("text", "line", "column", "problem"), [
    ("a: 1\nb: [1, 2\n", 3, 1, "expected ',' or ']'"),
    ("a: 1\nn: " + "1" * 5000 + "\n", 2, 4, "integer of 5,000 characters is too large"),
    ("s: " + ":".join(["1"] * 3000) + "\n", 1, 4, "integer of 5,999 characters is too large"),
    ("a: !!bool maybe\n", 1, 4, "'maybe' is not a valid boolean"),
    ("a: !!timestamp soon\n", 1, 4, "'soon' is not a valid timestamp"),
    ("a: !!float x\n", 1, 4, "'x' is not a valid float"),
    ("a: 1\nb: \x01\n", 2, 4, "control characters are not allowed"),
    ("é: ü\nb: \x01\n", 2, 4, "control characters are not allowed"),
    ("a: '\ud800'\n", 1, 5, "not valid Unicode text"),
    ("a: *nope\n", 1, 4, "found undefined alias"),
    ("? [a]\n: b\n", 1, 3, "found unhashable key"),
])
def test_every_failure_is_a_yaml_syntax_error_with_a_position(text: str, line: int, column: int, problem: str) -> None:
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml_text(text, "f.yaml")
    err = caught.value
    assert (err.file, err.line, err.column) == ("f.yaml", line, column)
    assert problem in err.problem
    assert str(err).startswith(f"f.yaml:{line}:{column}: invalid YAML: ")


def test_dates_stay_strings_as_in_the_json_kubernetes_sees() -> None:
    assert one("a: 2024-01-01\nb: 2024-13-01\nc: 2001-12-14t21:59:43.10-05:00\n").data == {
        "a": "2024-01-01", "b": "2024-13-01", "c": "2001-12-14t21:59:43.10-05:00"}


def test_huge_values_python_can_hold_are_kept() -> None:
    assert one("n: " + "9" * 400 + "\nf: .nan\ng: 1e999\n").data["n"] == int("9" * 400)


@pytest.mark.parametrize(("text", "reason"), [
    ("{% if prod %}\nreplicas: 3\n{% endif %}\n", "Jinja template markers ({% ... %})"),
    ("{# set by ansible #}\nreplicas: 3\n", "Jinja template markers ({# ... #})"),
    ("kind: {{ .Values.kind }}\n", "template markers ({{ ... }})"),
    ("image:\n  tag: \"{{ .Chart.AppVersion }}\"\n", "template markers ({{ ... }})"),
    ("a: '{{'\nb: '}}'\n", None),
    ("a: {b: {c: d}}\n", None),
    (DEPLOY, None),
])
def test_template_marker(text: str, reason: str | None) -> None:
    assert template_marker(text) == reason


def test_files_are_utf8_with_or_without_bom_or_utf16_with_bom(tmp_path: Path) -> None:
    expected = one(DEPLOY)
    for name, raw in [
        ("plain.yaml", DEPLOY.encode()),
        ("bom.yaml", codecs.BOM_UTF8 + DEPLOY.encode()),
        ("le.yaml", codecs.BOM_UTF16_LE + DEPLOY.encode("utf-16-le")),
        ("be.yaml", codecs.BOM_UTF16_BE + DEPLOY.encode("utf-16-be")),
    ]:
        (tmp_path / name).write_bytes(raw)
        (doc,) = load_yaml_file(tmp_path / name)
        assert (doc.data, doc.line, doc.lines) == (expected.data, expected.line, expected.lines), name


def test_undecodable_files_are_syntax_errors(tmp_path: Path) -> None:
    (tmp_path / "latin1.yaml").write_bytes(b"a: 1\nname: caf\xe9\n")
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml_file(tmp_path / "latin1.yaml", "repo/latin1.yaml")
    assert (caught.value.file, caught.value.line) == ("repo/latin1.yaml", 2)
    assert caught.value.problem.startswith("not UTF-8 text")
    (tmp_path / "odd.yaml").write_bytes(codecs.BOM_UTF16_LE + b"a\x00:\x00 ")
    with pytest.raises(YamlSyntaxError, match="not UTF-16 text"):
        load_yaml_file(tmp_path / "odd.yaml")


def test_oversized_files_are_refused_before_parsing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert yamlio.MAX_FILE_BYTES == 16 * 2**20
    monkeypatch.setattr(yamlio, "MAX_FILE_BYTES", 2**20)
    path = tmp_path / "big.yaml"
    path.write_text("a: [" + "1, " * 700_000 + "1]\n")
    with pytest.raises(YamlSyntaxError) as caught:
        load_yaml_file(path, "big.yaml")
    assert caught.value.problem == "file is 2.0 MiB, over the 1 MiB limit"
