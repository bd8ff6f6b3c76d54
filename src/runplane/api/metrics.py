"""``GET /metrics``: Prometheus exposition of runs (from the database) and of HTTP traffic.

Two sources, one page:

* run and webhook figures are read from the database at scrape time
  (``services.metrics``), so every API process reports the same, wherever runs executed;
* HTTP request counts and latencies are this process's own, counted by
  ``HttpMetricsMiddleware`` in a registry of this app (not prometheus_client's global
  one: tests build many apps in one process).

The endpoint sits behind the Sample Platform gate (bearer token, rate limit, the
``{code, message, details}`` envelope) and needs the ``metrics:read`` scope.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client import Histogram as HistogramMetric
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Send
from starlette.types import Scope as AsgiScope

from runplane.api.gate import Gate, GateState
from runplane.api.sample_platform.errors import domain_error_response
from runplane.api.sample_platform.policy import SAMPLE_PLATFORM_GATE
from runplane.domain.errors import MissingScope
from runplane.domain.permissions import Scope
from runplane.domain.types import Principal
from runplane.services import metrics
from runplane.store.metrics import Histogram

PATH = "/metrics"
#: The route label of a request no route matched (unknown paths, and requests a
#: dialect's gate answered before routing: 401, 429): raw paths would be unbounded.
UNMATCHED = "unmatched"
#: Any other method a client makes up is counted as ``OTHER``, for the same reason.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: prometheus_client's default bounds less three: one series per route, method and
#: status makes each bucket count.
HTTP_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HttpMetrics:
    """This process's HTTP counters, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.requests = Counter(
            "runplane_http_requests",
            "HTTP requests answered, by route template, method and status code.",
            labels,
            registry=self.registry,
        )
        self.duration = HistogramMetric(
            "runplane_http_request_duration_seconds",
            "Time from request to the end of the response (a stream counts until it ends).",
            labels,
            registry=self.registry,
            buckets=HTTP_BUCKETS_SECONDS,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route, str(status)).observe(seconds)


class HttpMetricsMiddleware:
    """Counts every HTTP request; pure ASGI, so streamed responses pass through as sent."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception before the response starts becomes ServerErrorMiddleware's 500.
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # Routing has filled in ``scope`` by now (the router updates it in place).
            self.metrics.observe(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


def route_template(scope: AsgiScope) -> str:
    """The path template that served the request (``/api/v1/runs/{run_id}``), after the fact.

    ``scope["route"]`` is the innermost FastAPI route, its path relative to the mount
    (``root_path``, e.g. ``/api/v1``) and, for routers included with a prefix (the
    Tester Army's ``/v1`` and ``/api/v1``), without that prefix: the prefix is recovered
    from the path. Plain Starlette routes (docs, OpenAPI, ``/metrics``) only leave their
    endpoint in the scope; they are found in the app that routed them.
    """
    root: str = scope.get("root_path", "")
    path: str = scope.get("path", "")
    rest = path[len(root) :] if root and path.startswith(root) else path
    route = scope.get("route")
    if isinstance(route, Route):
        return root + _include_prefix(rest, route) + route.path
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return UNMATCHED
    for candidate in getattr(scope.get("app"), "routes", ()):
        if isinstance(candidate, Route) and candidate.endpoint is endpoint:
            if candidate.path_regex.match(rest):
                return root + candidate.path
        elif isinstance(candidate, Mount) and candidate.app is endpoint:
            # A mounted plain ASGI app (static files): the mount is as deep as we can see.
            return root + "/{path}"
    return UNMATCHED


def _include_prefix(rest: str, route: Route) -> str:
    """The part of ``rest`` before what ``route`` matched: an include prefix, or ``""``.

    Include prefixes are literal in runplane (``/v1``, ``/api/v1``); one with a path
    parameter would put its raw value in the label here.
    """
    if route.path_regex.match(rest):
        return ""
    for index in range(1, len(rest)):
        if rest[index] == "/" and route.path_regex.match(rest[index:]):
            return rest[:index]
    return ""


# ---- the database's figures as Prometheus families ---------------------------------------


def _histogram_family(name: str, documentation: str, histogram: Histogram) -> Metric:
    buckets = [
        (repr(float(bound)), float(count))
        for bound, count in zip(histogram.bounds, histogram.cumulative, strict=True)
    ]
    buckets.append(("+Inf", float(histogram.count)))
    return HistogramMetricFamily(
        name, documentation, buckets=buckets, sum_value=histogram.sum_seconds
    )


def run_families(snapshot: metrics.RunMetrics) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "runplane_runs",
        "Runs by internal status and project repository.",
        labels=("status", "project"),
    )
    for (status, repository), count in sorted(snapshot.runs.items()):
        runs.add_metric((status, repository), count)
    yield runs
    yield GaugeMetricFamily(
        "runplane_queue_depth", "Runs waiting for a worker.", value=snapshot.queue_depth
    )
    yield GaugeMetricFamily(
        "runplane_runs_running",
        "Runs a worker is executing (running or canceling).",
        value=snapshot.running,
    )
    yield _histogram_family(
        "runplane_run_queue_seconds",
        "Time from submission (or restart) to a worker starting the run.",
        snapshot.queue_seconds,
    )
    yield _histogram_family(
        "runplane_run_duration_seconds",
        "Time from a worker starting a run to its verdict.",
        snapshot.duration_seconds,
    )
    yield _histogram_family(
        "runplane_cancel_latency_seconds",
        "Time from the cancel of a running run to the run being stopped.",
        snapshot.cancel_latency_seconds,
    )
    deliveries = GaugeMetricFamily(
        "runplane_webhook_deliveries", "Webhook deliveries by state.", labels=("status",)
    )
    for state, count in sorted(snapshot.webhook_deliveries.items()):
        deliveries.add_metric((state,), count)
    yield deliveries


class _Page:
    """One scrape's collector: the database snapshot and this process's HTTP metrics."""

    def __init__(self, http: HttpMetrics, snapshot: metrics.RunMetrics) -> None:
        self.http = http
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        yield from run_families(self.snapshot)
        yield from self.http.registry.collect()


class MetricsEndpoint:
    """The ASGI app behind the gate: the scope check, then the page."""

    def __init__(self, state: GateState, http: HttpMetrics) -> None:
        self.state = state
        self.http = http

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        principal: Principal | None = scope.get("state", {}).get("principal")
        ctx = self.state.ctx
        if principal is None or ctx is None:
            # The gate answers 401 before this app, and starts only with a runtime.
            raise RuntimeError("/metrics reached without a principal or a runtime")
        response: Response
        if Scope.METRICS_READ not in principal.scopes:
            response = domain_error_response(
                MissingScope([Scope.METRICS_READ.value], [s.value for s in principal.scopes])
            )
        else:
            snapshot = await metrics.snapshot(ctx)
            encode, content_type = choose_encoder(Headers(scope=scope).get("accept", ""))
            response = Response(
                encode(_Page(self.http, snapshot)),
                headers={"Content-Type": content_type, "Cache-Control": "no-store"},
            )
        await response(scope, receive, send)


def metrics_route(state: GateState, http: HttpMetrics) -> Route:
    """``GET /metrics`` behind the Sample Platform gate."""
    endpoint = Gate(MetricsEndpoint(state, http), state, SAMPLE_PLATFORM_GATE)
    return Route(PATH, endpoint, methods=["GET"], include_in_schema=False)
