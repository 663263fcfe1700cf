"""In-place YAML edits for ``kubeshape fix``: the user's file changes only where the fix says.

Every expected text below is the input with exactly the intended lines replaced or inserted, so a test fails on
any other byte that moves: a lost comment or Flux setter marker, a changed quote, reordered keys, another
indentation, a lost CRLF or a newline added at the end. Edits the module cannot make safely raise ``EditError``
naming the file (and the line where there is one); the caller's text is then left as it was.
"""

from __future__ import annotations

import pytest

from kubeshape.actions.fix import yamledit as ye
from kubeshape.errors import EXIT_INPUT
from kubeshape.release.yamltext import EditError

F = "apps/web/deployment.yaml"

# A plain `kubectl apply -f` homelab manifest: comments, a Flux image-policy marker, mixed quoting.
WEB = """\
# web frontend (built on the NAS, see Makefile)
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: homelab
  annotations:
    owner: "platform"   # who to page
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
        - name: web
          image: web:1.4.2 # {"$imagepolicy": "flux-system:web"}
          imagePullPolicy: 'Never'  # loaded with k3s ctr images import
          ports:
            - containerPort: 8080

          env:
            - name: OTEL_EXPORTER_OTLP_ENDPOINT
              value: "http://otel-collector.homelab.svc:4317"
            - name: LOG_LEVEL
              value: info
        - name: metrics
          image: prom/statsd-exporter:v0.26.0
"""
WEB_C = ("spec", "template", "spec", "containers", {"name": "web"})
METRICS_C = ("spec", "template", "spec", "containers", {"name": "metrics"})

# The same kind of file as a 4-space, non-indented-sequence style (what some editors and Helm users write).
API4 = """\
apiVersion: apps/v1
kind: Deployment
metadata:
    name: api
spec:
    template:
        spec:
            containers:
            -   name: api
                image: api:2.0.1
                livenessProbe:
                    httpGet:
                        port: 8000
            -   name: worker
                image: api:2.0.1
                command: ["celery", "worker"]
"""
API4_C = ("spec", "template", "spec", "containers", {"name": "api"})

# Several documents, each with its own comments and separator comments.
MULTI = """\
# homelab-dashboard: the Deployment, its Service and the HPA for it
---
# the app
apiVersion: apps/v1
kind: Deployment
metadata:
  name: dashboard
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: dashboard
        image: dashboard:v3
---  # the Service in front of it
apiVersion: v1
kind: Service
metadata:
  name: dashboard
spec:
  ports:
  - port: 80
--- # autoscaler, left from the load test
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: dashboard
spec:
  maxReplicas: 3
"""


def replace_line(text: str, old: str, new: str) -> str:
    """``text`` with its one line ``old`` replaced by ``new`` (asserting the line is there exactly once)."""
    assert text.count(old + "\n") == 1, old
    return text.replace(old + "\n", new + "\n")


def insert_after(text: str, anchor: str, *lines: str) -> str:
    assert text.count(anchor + "\n") == 1, anchor
    return text.replace(anchor + "\n", anchor + "\n" + "".join(ln + "\n" for ln in lines))


# -- set_value: replacing a value -----------------------------------------------------------------------------

def test_replacing_the_image_keeps_the_flux_setter_marker_on_the_line() -> None:
    after = ye.set_value(WEB, F, 0, (*WEB_C, "image"), "registry.lan:5000/web:1.4.2", expect="web:1.4.2")
    assert after == replace_line(WEB, '          image: web:1.4.2 # {"$imagepolicy": "flux-system:web"}',
                                 '          image: registry.lan:5000/web:1.4.2 # {"$imagepolicy": "flux-system:web"}')


def test_replacing_a_value_keeps_its_single_quotes_and_trailing_comment() -> None:
    after = ye.set_value(WEB, F, 0, (*WEB_C, "imagePullPolicy"), "IfNotPresent", expect="Never")
    assert after == replace_line(WEB, "          imagePullPolicy: 'Never'  # loaded with k3s ctr images import",
                                 "          imagePullPolicy: 'IfNotPresent'  # loaded with k3s ctr images import")


def test_replacing_a_double_quoted_value_stays_double_quoted() -> None:
    after = ye.set_value(WEB, F, 0, (*WEB_C, "env", {"name": "OTEL_EXPORTER_OTLP_ENDPOINT"}, "value"),
                         "http://collector.monitoring.svc:4317")
    assert after == replace_line(WEB, '              value: "http://otel-collector.homelab.svc:4317"',
                                 '              value: "http://collector.monitoring.svc:4317"')


def test_a_plain_value_that_would_read_as_another_type_is_quoted() -> None:
    after = ye.set_value(WEB, F, 0, (*WEB_C, "env", {"name": "LOG_LEVEL"}, "value"), "true")
    assert after == replace_line(WEB, "              value: info", '              value: "true"')


def test_lists_are_addressed_by_item_name_not_position() -> None:
    after = ye.set_value(WEB, F, 0, (*METRICS_C, "image"), "registry.lan:5000/statsd-exporter:v0.26.0")
    assert after == replace_line(WEB, "          image: prom/statsd-exporter:v0.26.0",
                                 "          image: registry.lan:5000/statsd-exporter:v0.26.0")


def test_a_value_inside_a_flow_mapping_is_replaced_in_place() -> None:
    text = "spec:\n  selector: {matchLabels: {app: web}}\n  replicas: 1\n"
    after = ye.set_value(text, F, 0, ("spec", "selector", "matchLabels", "app"), "web-v2")
    assert after == "spec:\n  selector: {matchLabels: {app: web-v2}}\n  replicas: 1\n"


def test_only_the_named_document_changes() -> None:
    after = ye.set_value(MULTI, F, 1, ("spec", "ports", 0, "port"), 8080)
    assert after == replace_line(MULTI, "  - port: 80", "  - port: 8080")


# -- set_value: adding keys -----------------------------------------------------------------------------------

def test_a_new_key_goes_right_after_its_named_sibling_in_the_parents_indentation() -> None:
    after = ye.set_value(WEB, F, 0, ("spec", "revisionHistoryLimit"), 3, near="replicas")
    assert after == insert_after(WEB, "  replicas: 2", "  revisionHistoryLimit: 3")


def test_a_new_key_without_sibling_goes_after_the_last_line_of_its_mapping() -> None:
    after = ye.set_value(WEB, F, 0, (*METRICS_C, "imagePullPolicy"), "IfNotPresent")
    assert after == WEB + "          imagePullPolicy: IfNotPresent\n"


def test_new_nested_keys_follow_a_four_space_file() -> None:
    after = ye.set_value(API4, F, 0, (*API4_C, "livenessProbe", "httpGet", "path"), "/healthz")
    after = ye.set_value(after, F, 0, (*API4_C, "readinessProbe", "httpGet", "path"), "/readyz")
    assert after == insert_after(API4, "                        port: 8000",
                                 "                        path: /healthz",
                                 "                readinessProbe:",
                                 "                    httpGet:",
                                 "                        path: /readyz")


def test_a_key_added_after_a_block_scalar_goes_after_the_scalars_last_line() -> None:
    text = ("spec:\n  containers:\n    - name: job\n      image: job:1\n      command:\n        - sh\n"
            "      args: |\n        set -e\n        run-job\n\n    - name: other\n      image: other:1\n")
    after = ye.set_value(text, F, 0, ("spec", "containers", {"name": "job"}, "imagePullPolicy"), "IfNotPresent")
    assert after == text.replace("        run-job\n", "        run-job\n      imagePullPolicy: IfNotPresent\n")


def test_adding_to_a_flow_mapping_is_refused() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: web:1\n    resources: {limits: {memory: 1Gi}}\n"
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml:5: the mapping is written in flow style"):
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "resources", "requests", "cpu"), "50m")


# -- set_value: refusals --------------------------------------------------------------------------------------

def test_a_flux_variable_is_not_overwritten_with_what_it_was_substituted_to() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: ${WEB_IMAGE}  # set in cluster-settings\n"
    with pytest.raises(EditError, match=r"the file sets '\$\{WEB_IMAGE\}' here, not 'web:1.4.2'") as err:
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"), "registry.lan:5000/web:1.4.2",
                     expect="web:1.4.2")
    assert str(err.value).startswith(F) and err.value.exit_code == EXIT_INPUT


def test_a_variable_inside_the_value_is_not_overwritten_either() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: web:${WEB_TAG}\n"
    with pytest.raises(EditError, match="substituted or patched elsewhere"):
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"), "registry.lan:5000/web:1.4.2",
                     expect="web:1.4.2")


def test_the_value_is_replaced_when_the_file_holds_what_was_expected() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: web:${WEB_TAG}\n"
    after = ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"),
                         "registry.lan:5000/web:${WEB_TAG}", expect="web:${WEB_TAG}")
    assert after == "spec:\n  containers:\n  - name: web\n    image: registry.lan:5000/web:${WEB_TAG}\n"


@pytest.mark.parametrize("value", ["|\n      web:1.4.2\n", ">-\n      web:1.4.2\n", "web:1.4.2\n      continued\n"])
def test_multi_line_values_are_refused(value: str) -> None:
    text = f"spec:\n  containers:\n  - name: web\n    image: {value}"
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml(:\d+)?: "):
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"), "registry.lan:5000/web:1.4.2")


def test_an_anchored_scalar_is_refused() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: &img web:1.4.2\n  - name: init\n    image: *img\n"
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml:4: the value is a multi-line, anchored"):
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"), "registry.lan:5000/web:1.4.2")
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml:4: .*anchored"):  # the alias names line 4
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "init"}, "image"), "registry.lan:5000/web:1.4.2")


def test_a_value_under_an_anchored_mapping_is_refused_even_through_the_alias() -> None:
    text = ("x-resources: &res\n  limits:\n    memory: 1Gi\nspec:\n  containers:\n  - name: web\n    resources: *res\n"
            "  - name: worker\n    resources: *res\n")
    path = ("spec", "containers", {"name": "web"}, "resources", "limits", "memory")
    with pytest.raises(EditError, match=r"shared through the anchor &res.*every alias"):
        ye.set_value(text, F, 0, path, "2Gi")
    with pytest.raises(EditError, match=r"shared through the anchor &res"):
        ye.set_value(text, F, 0, ("x-resources", "limits", "memory"), "2Gi")


def test_a_key_that_comes_from_a_merge_key_is_refused() -> None:
    text = ("x-app: &app\n  image: web:1.4.2\n  imagePullPolicy: Never\nspec:\n  containers:\n"
            "  - <<: *app\n    name: web\n")
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml:\d+: image comes from a merge key"):
        ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"), "registry.lan:5000/web:1.4.2")


def test_a_missing_list_item_or_an_empty_value_is_refused() -> None:
    with pytest.raises(EditError, match=r"no list item with \{'name': 'api'\}"):
        ye.set_value(WEB, F, 0, ("spec", "template", "spec", "containers", {"name": "api"}, "image"), "x")
    text = "spec:\n  template:\n    spec:\n      containers:\n"
    with pytest.raises(EditError, match="expected a mapping or list"):
        ye.set_value(text, F, 0, ("spec", "template", "spec", "containers", {"name": "web"}, "image"), "x")


# -- ensure_env -----------------------------------------------------------------------------------------------

def test_an_env_var_is_added_as_the_last_block_item() -> None:
    after = ye.ensure_env(WEB, F, 0, WEB_C, "OTEL_SDK_DISABLED", "true")
    assert after == insert_after(WEB, "              value: info",
                                 "            - name: OTEL_SDK_DISABLED", '              value: "true"')


def test_an_env_var_is_added_as_a_flow_item_when_its_neighbours_are() -> None:
    text = """\
spec:
  template:
    spec:
      containers:
        - name: backend
          image: 100.81.76.55:30500/family-assistant:fixed-final
          env:
            - {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: "http://otel-collector.homelab.svc.cluster.local:4317"}
            - {name: TZ, value: Europe/Berlin}   # household timezone
          resources: {}
"""
    after = ye.ensure_env(text, F, 0, ("spec", "template", "spec", "containers", {"name": "backend"}),
                          "OTEL_SDK_DISABLED", "true")
    assert after == insert_after(text, "            - {name: TZ, value: Europe/Berlin}   # household timezone",
                                 '            - {name: OTEL_SDK_DISABLED, value: "true"}')


def test_an_existing_env_var_is_changed_in_place() -> None:
    text = WEB.replace("            - name: LOG_LEVEL\n              value: info\n",
                       "            - name: OTEL_SDK_DISABLED\n              value: 'false'  # on for now\n")
    after = ye.ensure_env(text, F, 0, WEB_C, "OTEL_SDK_DISABLED", "true")
    assert after == replace_line(text, "              value: 'false'  # on for now",
                                 "              value: 'true'  # on for now")


def test_an_env_list_is_added_in_the_files_sequence_style() -> None:
    after = ye.ensure_env(API4, F, 0, API4_C, "OTEL_SDK_DISABLED", "true")
    assert after == insert_after(API4, "                        port: 8000",
                                 "                env:",
                                 "                -   name: OTEL_SDK_DISABLED",
                                 '                    value: "true"')
    indented = ye.ensure_env(WEB, F, 0, METRICS_C, "OTEL_SDK_DISABLED", "true")
    assert indented == WEB + "          env:\n            - name: OTEL_SDK_DISABLED\n              value: \"true\"\n"


def test_an_env_var_after_a_folded_value_goes_after_its_last_line() -> None:
    text = ("spec:\n  containers:\n  - name: web\n    env:\n    - name: BANNER\n      value: >-\n"
            "        Welcome to the\n        family dashboard\n    ports:\n    - containerPort: 80\n")
    after = ye.ensure_env(text, F, 0, ("spec", "containers", {"name": "web"}), "OTEL_SDK_DISABLED", "true")
    assert after == text.replace("        family dashboard\n",
                                 "        family dashboard\n    - name: OTEL_SDK_DISABLED\n      value: \"true\"\n")


@pytest.mark.parametrize(("text", "message"), [
    ("spec:\n  containers:\n  - name: web\n    env: [{name: A, value: b}]\n", r":4: the env list is written in flow"),
    ("spec:\n  containers:\n  - name: web\n    env: []\n", r":4: the env list is written in flow"),
    ("spec:\n  containers:\n  - {name: web, image: web:1}\n", r":3: the container is written in flow style"),
    ("spec:\n  containers:\n  - name: web\n    env:\n    # - name: A\n", r":4: env is empty"),
    ("spec:\n  containers:\n  - name: web\n    env:\n    - name: OTEL_SDK_DISABLED\n      valueFrom:\n"
     "        configMapKeyRef: {name: otel, key: disabled}\n", r"takes its value from elsewhere \(valueFrom\)"),
])
def test_env_edits_it_cannot_make_are_refused(text: str, message: str) -> None:
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml(:\d+)?" if message.startswith(":") else F):
        ye.ensure_env(text, F, 0, ("spec", "containers", {"name": "web"}), "OTEL_SDK_DISABLED", "true")
    with pytest.raises(EditError, match=message):
        ye.ensure_env(text, F, 0, ("spec", "containers", {"name": "web"}), "OTEL_SDK_DISABLED", "true")


def test_an_env_var_set_from_a_variable_is_not_overwritten() -> None:
    text = "spec:\n  containers:\n  - name: web\n    env:\n    - name: OTEL_EXPORTER_OTLP_ENDPOINT\n" \
           "      value: ${OTEL_ENDPOINT}\n"
    with pytest.raises(EditError, match="substituted or patched elsewhere"):
        ye.ensure_env(text, F, 0, ("spec", "containers", {"name": "web"}), "OTEL_EXPORTER_OTLP_ENDPOINT",
                      "http://collector.monitoring.svc:4317", expect="http://otel.homelab.svc:4317")


# -- line endings and the end of the file ---------------------------------------------------------------------

def test_crlf_files_keep_crlf_on_every_line_edited_or_added() -> None:
    crlf = WEB.replace("\n", "\r\n")
    replaced = ye.set_value(crlf, F, 0, (*WEB_C, "image"), "registry.lan:5000/web:1.4.2")
    assert replaced == crlf.replace("image: web:1.4.2 #", "image: registry.lan:5000/web:1.4.2 #")
    added = ye.ensure_env(crlf, F, 0, WEB_C, "OTEL_SDK_DISABLED", "true")
    assert added == insert_after(WEB, "              value: info", "            - name: OTEL_SDK_DISABLED",
                                 '              value: "true"').replace("\n", "\r\n")
    key = ye.set_value(crlf, F, 0, ("spec", "revisionHistoryLimit"), 3, near="replicas")
    assert key == insert_after(WEB, "  replicas: 2", "  revisionHistoryLimit: 3").replace("\n", "\r\n")
    multi = MULTI.replace("\n", "\r\n")
    assert ye.delete_document(multi, F, 2) == MULTI[:MULTI.index("--- # autoscaler")].replace("\n", "\r\n")


def test_a_file_without_final_newline_gets_none_added_by_a_replacement() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: web:1.4.2"
    after = ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "image"), "registry.lan:5000/web:1.4.2")
    assert after == "spec:\n  containers:\n  - name: web\n    image: registry.lan:5000/web:1.4.2"


def test_lines_added_after_a_last_line_without_newline_are_well_formed() -> None:
    text = "spec:\n  containers:\n  - name: web\n    image: web:1.4.2"
    after = ye.set_value(text, F, 0, ("spec", "containers", {"name": "web"}, "imagePullPolicy"), "IfNotPresent")
    assert after == "spec:\n  containers:\n  - name: web\n    image: web:1.4.2\n    imagePullPolicy: IfNotPresent\n"
    env = ye.ensure_env(text, F, 0, ("spec", "containers", {"name": "web"}), "OTEL_SDK_DISABLED", "true")
    assert env == text + "\n    env:\n    - name: OTEL_SDK_DISABLED\n      value: \"true\"\n"


# -- documents ------------------------------------------------------------------------------------------------

def test_find_documents_by_kind_name_and_namespace() -> None:
    assert ye.find_documents(MULTI, F, "Service", "dashboard") == [1]
    assert ye.find_documents(MULTI, F, "Deployment", "dashboard", "homelab") == [0]  # no namespace written
    assert ye.find_documents(WEB, F, "Deployment", "web", "media") == []  # written for homelab
    assert ye.find_documents(MULTI, F, "Deployment", "web") == []


def test_a_name_written_with_a_flux_variable_is_found_by_its_substituted_name() -> None:
    text = ("apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: ${APP}\n---\n"
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: ${APP}-metrics\n")
    assert ye.find_documents(text, F, "HelmRelease", "sonarr") == [0]
    assert ye.find_documents(text, F, "Service", "sonarr-metrics") == [1]
    assert ye.find_documents(text, F, "Service", "sonarr") == []
    both = text + "---\nkind: HelmRelease\nmetadata:\n  name: sonarr\n"
    assert ye.find_documents(both, F, "HelmRelease", "sonarr") == [2]  # the literal name wins


def test_delete_the_first_document_keeps_the_file_header_and_the_other_documents() -> None:
    after = ye.delete_document(MULTI, F, 0)
    start, end = MULTI.index("---\n# the app"), MULTI.index("---  # the Service")
    assert after == MULTI[:start] + MULTI[end:]
    assert ye.find_documents(after, F, "Service", "dashboard") == [0]


def test_delete_the_first_document_of_a_file_that_starts_with_it() -> None:
    text = "# the app\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# b\nkind: ConfigMap\n" \
           "metadata:\n  name: b\n"
    assert ye.delete_document(text, F, 0) == "---\n# b\nkind: ConfigMap\nmetadata:\n  name: b\n"


def test_delete_a_middle_document_takes_its_separator_and_comment() -> None:
    after = ye.delete_document(MULTI, F, 1)
    start, end = MULTI.index("---  # the Service"), MULTI.index("--- # autoscaler")
    assert after == MULTI[:start] + MULTI[end:]


def test_delete_the_last_document_leaves_the_rest_byte_for_byte() -> None:
    after = ye.delete_document(MULTI, F, 2)
    assert after == MULTI[:MULTI.index("--- # autoscaler")]
    assert ye.has_documents(after, F)


def test_delete_the_last_document_of_a_file_without_final_newline() -> None:
    text = "kind: A\nmetadata:\n  name: a\n---\nkind: B\nmetadata:\n  name: b"
    assert ye.delete_document(text, F, 1) == "kind: A\nmetadata:\n  name: a\n"
    assert ye.delete_document(text, F, 0) == "---\nkind: B\nmetadata:\n  name: b"


def test_delete_the_only_document_leaves_no_document() -> None:
    text = "# autoscaler for the enhanced variant\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\n" \
           "metadata:\n  name: family-assistant-enhanced-hpa\n"
    after = ye.delete_document(text, F, 0)
    assert after == "" and not ye.has_documents(after, F)
    assert not ye.has_documents("---\n# nothing left\n---\n", F)


def test_document_indexes_count_empty_documents_as_the_reader_does() -> None:
    text = "---\n---\nkind: A\nmetadata:\n  name: a\n---\nkind: B\nmetadata:\n  name: b\n"
    assert ye.find_documents(text, F, "B", "b") == [2]
    assert ye.delete_document(text, F, 2) == "---\n---\nkind: A\nmetadata:\n  name: a\n"
    with pytest.raises(EditError, match="cannot locate document 1"):
        ye.delete_document(text, F, 0)


def test_invalid_yaml_is_reported_with_file_and_line() -> None:
    with pytest.raises(EditError, match=r"^apps/web/deployment.yaml:3: not valid YAML"):
        ye.find_documents("kind: A\nmetadata:\n  name: a: b\nspec: {}\n", F, "A", "a")
