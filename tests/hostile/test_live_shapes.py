"""Objects the live API returns in an unexpected shape are skipped with a note; the rest is analysed."""

from __future__ import annotations

from kubeshape.analysis import analyse
from kubeshape.config import Config
from kubeshape.inventory import Inventory
from kubeshape.sources.live import KINDS, Collection, to_cluster

POD = {"metadata": {"name": "ok", "namespace": "d"},
       "spec": {"containers": [{"name": "c", "image": "family-assistant:fixed"}]},
       "status": {"phase": "Running", "containerStatuses": [{"name": "c", "restartCount": 3}]}}


def test_malformed_live_objects_are_skipped_with_a_note() -> None:
    pods = next(k for k in KINDS if k.kind == "Pod")
    bad_status = {**POD, "metadata": {"name": "odd", "namespace": "d"}, "status": "Running"}
    bad_meta = {**POD, "metadata": ["not", "an", "object"]}
    col = Collection(context="lab", server="https://127.0.0.1:6443",
                     lists={pods: {"items": [POD, bad_status, bad_meta]}})
    cluster = to_cluster(col)
    assert [p.name for p in cluster.objects["Pod"]] == ["ok"]
    [note] = [n for n in cluster.notes if n.startswith("Pod:")]
    assert note == "Pod: skipped 2 object(s) the API server returned in an unexpected shape " \
                   "(first: odd: status: expected an object, got a string)"
    report, _ = analyse(Inventory(cluster=cluster), Config())
    assert all(f.rule != "KS000" for f in report.findings)
    assert note in report.notes
