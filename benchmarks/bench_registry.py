#!/usr/bin/env python3
"""Benchmark kubeshape's registry client against a real distribution registry on loopback.

    python benchmarks/bench_registry.py                  # 10,000 tags
    python benchmarks/bench_registry.py --tags 2000 --workers 16 --page-size 1000

Starts a registry (testbed), pushes ONE tiny image, PUTs its manifest under N tag names (threaded), then times:

* list: every tag, paginated with ``n=<page-size>`` and the ``Link`` header;
* resolve: HEAD every tag for its digest (``resolve_tags``, ``--workers`` threads);
* snapshot: ``kubeshape.registry.snapshot.snapshot`` of that repository (list + HEADs + one image_info per digest).

Each phase prints tags/s and the HTTP requests it took (``RegistryClient.requests``). Always exits 0: it reports.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the testbed package lives at the repo root

from kubeshape.registry.client import RegistryClient
from kubeshape.registry.image import build_image, push_image
from kubeshape.registry.snapshot import snapshot
from kubeshape.sources.bundle import parse_registry_snapshot
from testbed.registry import start_registry

REPO = "bench/family-assistant"
T = TypeVar("T")


def phase(name: str, client: RegistryClient, tags: int, fn: Callable[[], T]) -> T:
    """Run ``fn``, print its wall time, tags/s and request count."""
    before = client.requests
    t0 = time.perf_counter()
    result = fn()
    took = time.perf_counter() - t0
    reqs = client.requests - before
    print(f"{name:<34} {took:8.2f}s  {tags / took:10,.0f} tags/s  {reqs:7,d} requests  "
          f"({reqs / took:,.0f} req/s)")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--page-size", type=int, default=1000)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ks-bench-registry-") as tmp:
        reg = start_registry(Path(tmp))
        try:
            run(reg.host, args.tags, args.workers, args.page_size)
        finally:
            reg.stop()
    return 0


def run(host: str, n: int, workers: int, page_size: int) -> None:
    print(f"registry {host}: {n:,} tags on one image, {workers} workers, page size {page_size}")
    with RegistryClient(host, insecure=True) as client:
        created = datetime(2025, 11, 15, 10, 17, 28, tzinfo=UTC)
        image = build_image({"app/main.py": b"print('hello')\n"}, created=created,
                            labels={"org.opencontainers.image.revision": "0" * 40})
        digest = push_image(client, REPO, "seed", image)
        names = [f"t{i:05d}" for i in range(n - 1)]  # plus "seed"

        def put_all() -> None:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda t: client.put_manifest(REPO, t, image.manifest, image.media_type), names))

        phase(f"create tags (PUT, {workers} threads)", client, len(names), put_all)
        listed = phase(f"list tags (n={page_size})", client, n, lambda: client.tags(REPO, page_size=page_size))
        assert len(listed) == n, len(listed)
        unpaged = phase("list tags (registry default n)", client, n, lambda: client.tags(REPO))
        assert len(unpaged) == n, len(unpaged)
        refs = phase(f"resolve digests (HEAD, {workers} threads)", client, n,
                     lambda: client.resolve_tags(REPO, listed, workers=workers))
        assert len(refs) == n and {r.digest for r in refs.values()} == {digest}

    with RegistryClient(host, insecure=True) as fresh:
        doc = phase(f"snapshot() ({workers} workers)", fresh, n,
                    lambda: snapshot([host], clients={host: fresh}, repositories=[REPO], workers=workers))
    repo = parse_registry_snapshot(doc, "bench").repo(host, REPO)
    assert repo is not None and len(repo.tags) == n
    assert {t.digest for t in repo.tags.values()} == {digest}


if __name__ == "__main__":
    sys.exit(main())
