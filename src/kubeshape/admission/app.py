"""The webhook as an ASGI app: ``POST /validate`` answers AdmissionReviews; ``/healthz``, ``/readyz`` and
``/metrics`` are served beside it, outside the limit on concurrent reviews.

Every answer comes inside the request's time budget (the ``timeout`` the apiserver sends, less a margin): a
registry look-up or an evaluation that is late is not waited for, and the object is allowed with a warning saying
what was not checked. The verdict itself never depends on a slow dependency.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from kubeshape.admission.evaluate import Verdict, evaluate_object, rules_for
from kubeshape.admission.registry_lookup import RegistryLookup
from kubeshape.admission.review import BadReview, Request, checked_objects, parse_request, response
from kubeshape.config import Config
from kubeshape.inventory import K8sObject, builtin_group, containers
from kubeshape.sources.watch import ClusterCache

log = logging.getLogger("kubeshape.webhook")

MAX_BODY = 8 * 1024 * 1024  # the apiserver sends at most ~3 MiB objects (twice, on UPDATE)
DEFAULT_TIMEOUT = 10.0  # seconds, when the apiserver sends no ?timeout=
MARGIN = 0.5  # seconds kept back for the answer to travel
MIN_BUDGET = 0.1
INLINE_BYTES = 256 * 1024  # smaller bodies are judged on the event loop; larger ones on a thread, with a deadline
INTERNAL_WARNING = "kubeshape: internal error while checking this object: it was not checked"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


@dataclass
class Settings:
    """How the webhook judges: the config, the cluster cache, the registry look-up, and its limits."""

    cfg: Config
    cache: ClusterCache | None = None
    registry: RegistryLookup | None = None
    max_inflight: int = 64
    timeout: float = DEFAULT_TIMEOUT
    allow_all: bool = False  # the baseline a benchmark compares against: same stack, no evaluation
    notes: list[str] = field(default_factory=list)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reviews = Counter("kubeshape_admission_reviews_total", "Admission reviews answered",
                               ["verdict", "dry_run"], registry=self.registry)
        self.findings = Counter("kubeshape_admission_findings_total", "Findings in admission reviews",
                                ["rule", "severity"], registry=self.registry)
        self.latency = Histogram("kubeshape_admission_review_seconds", "Time to answer a review",
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                 registry=self.registry)
        self.skipped = Counter("kubeshape_admission_checks_skipped_total",
                               "Reviews answered without a check that was late or unavailable", ["what"],
                               registry=self.registry)
        self.cache_ready = Gauge("kubeshape_admission_cache_ready", "1 when the cluster cache is listed",
                                 registry=self.registry)


def budget_of(query: str | None, default: float) -> float:
    """Seconds to answer in: the apiserver's ``?timeout=10s`` (or ``500ms``, ``1m``), less a margin."""
    seconds = default
    m = _DURATION.match(query or "")
    if m:
        value, unit = float(m.group(1)), m.group(2) or "s"
        seconds = value / 1000 if unit == "ms" else value * 60 if unit == "m" else value
    return max(min(seconds, default) - MARGIN, MIN_BUDGET)


def create_app(settings: Settings) -> Starlette:
    """The webhook's ASGI app."""
    metrics = Metrics()
    gate = asyncio.Semaphore(max(1, settings.max_inflight))
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="evaluate")

    async def validate(request: HttpRequest) -> Response:
        start = time.monotonic()
        budget = budget_of(request.query_params.get("timeout"), settings.timeout)
        body = await _read_body(request)
        if body is None:
            return _json(response("", allowed=False, code=413, message=f"request body over {MAX_BODY} bytes"), 413)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _json(response("", allowed=False, code=400, message="the body is not JSON"), 400)
        try:
            req = parse_request(doc)
        except BadReview as exc:
            metrics.reviews.labels("malformed", "false").inc()
            return _json(response(exc.uid, allowed=False, code=400, message=f"malformed AdmissionReview: {exc}"))
        try:
            answer = await _review(req, start + budget, len(body))
        except Exception:  # a defect must not turn into a 500 the apiserver cannot read
            log.exception("reviewing %s failed", req.subject)
            metrics.skipped.labels("error").inc()
            answer = response(req.uid, allowed=True, warnings=[INTERNAL_WARNING])
        metrics.reviews.labels("allowed" if answer["response"]["allowed"] else "denied",
                               str(req.dry_run).lower()).inc()
        metrics.latency.observe(time.monotonic() - start)
        return _json(answer)

    async def _review(req: Request, deadline: float, size: int) -> dict[str, Any]:
        if settings.allow_all or req.object is None or req.operation not in ("CREATE", "UPDATE"):
            return response(req.uid, allowed=True)
        if not builtin_group(req.group) or not rules_for(req.kind):
            return response(req.uid, allowed=True)
        try:
            checked_objects(req)
        except BadReview as exc:
            return response(req.uid, allowed=False, code=400, message=f"malformed AdmissionReview: {exc}")
        try:
            if gate.locked():  # full: wait for a slot, but not past the deadline
                await asyncio.wait_for(gate.acquire(), max(deadline - time.monotonic(), 0.001))
            else:
                await gate.acquire()
        except TimeoutError:
            metrics.skipped.labels("overloaded").inc()
            return response(req.uid, allowed=True, warnings=["kubeshape: too many reviews at once: this object "
                                                             "was not checked"])
        try:
            return await _judge(req, deadline, size)
        finally:
            gate.release()

    async def _judge(req: Request, deadline: float, size: int) -> dict[str, Any]:
        assert req.object is not None
        notes: list[str] = []
        cluster = None
        if settings.cache is not None:
            if settings.cache.ready:
                cluster = settings.cache.snapshot()
            else:
                notes.append("kubeshape: the cluster cache is still loading: checks that need other objects "
                             "(HPA targets, Services) were skipped")
                metrics.skipped.labels("cache").inc()
        snapshot = None
        if settings.registry is not None:
            images = [c.image for c in containers(K8sObject.from_raw(req.object, "cluster", kind=req.kind))]
            snapshot, late = await settings.registry.snapshot(images, deadline - time.monotonic() - 0.05)
            if late:
                metrics.skipped.labels("registry").inc()
            notes += [f"kubeshape: {w}" for w in late]

        def run() -> Verdict:
            return evaluate_object(req.object or {}, settings.cfg, operation=req.operation, old=req.old_object,
                                   cluster=cluster, registry=snapshot, namespace=req.namespace)

        try:
            if size < INLINE_BYTES:  # judged in well under a millisecond: a thread hop would cost more
                verdict = run()
            else:
                verdict = await asyncio.wait_for(_in_thread(pool, run), max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            metrics.skipped.labels("evaluation").inc()
            return response(req.uid, allowed=True,
                            warnings=[*notes, "kubeshape: checking this object took too long: it was not checked"])
        for f in verdict.findings:
            metrics.findings.labels(f.rule, f.severity.name.lower()).inc()
        if not verdict.allowed:
            log.info("denied %s%s: %s", req.subject, " (dry run)" if req.dry_run else "",
                     verdict.message.split("\n", 1)[0])
        return response(req.uid, allowed=verdict.allowed, message=verdict.message,
                        warnings=[*verdict.warnings, *notes])

    async def healthz(_: HttpRequest) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: HttpRequest) -> Response:
        cache = settings.cache
        if cache is None or cache.ready:
            problems = cache.problems() if cache else {}
            text = "ok\n" + "".join(f"not watched: {k}: {v}\n" for k, v in problems.items())
            return PlainTextResponse(text)
        return PlainTextResponse("the cluster cache is still loading\n", status_code=503)

    async def metrics_endpoint(_: HttpRequest) -> Response:
        metrics.cache_ready.set(1 if settings.cache is None or settings.cache.ready else 0)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[
        Route("/validate", validate, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ])


async def _read_body(request: HttpRequest) -> bytes | None:
    """The body, or None when it is larger than :data:`MAX_BODY` (never held in memory past that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > MAX_BODY:
        return None
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY:
            return None
    return bytes(chunks)


async def _in_thread(pool: ThreadPoolExecutor, fn: Callable[[], Verdict]) -> Verdict:
    return await asyncio.get_running_loop().run_in_executor(pool, fn)


def _json(doc: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")
