"""``GET /metrics`` in the Prometheus text format, on the web listener.

Queue depths and process heartbeats are read from the database at each scrape, so any
process serving the web shows the whole installation; the counters (intake accepted and
refused, deliveries sent, deferred and failed) are those of this process since it started,
as Prometheus counters are. ``metrics_routes(app)`` is a list any Starlette app mounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from listserv.app import App
from listserv.delivery.queue_admin import queue_counts
from listserv.store.models import InboxMessage, Instance

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseCollector(Collector):
    """Gauges read from the database when scraped."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "listserv_queue_recipients", "Recipients of outgoing mail by state", labels=["state"]
        )
        for state, count in queue_counts(self.app).items():
            queue.add_metric([state], count)
        yield queue
        inbox = GaugeMetricFamily(
            "listserv_inbox_messages", "Received messages by state", labels=["state"]
        )
        beats = GaugeMetricFamily(
            "listserv_process_heartbeat_timestamp_seconds",
            "Last heartbeat of each running serve process",
            labels=["instance", "host", "pid"],
        )
        with self.app.sessions() as session:
            counts = session.execute(
                select(InboxMessage.status, func.count()).group_by(InboxMessage.status)
            )
            for status, count in counts:
                inbox.add_metric([status], count)
            for instance in session.scalars(select(Instance)):
                labels = [instance.id, instance.hostname, str(instance.pid)]
                beats.add_metric(labels, instance.heartbeat_at.timestamp())
        yield inbox
        yield beats


def exposition(app: App) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(app))
    return generate_latest(registry) + generate_latest(REGISTRY)


def metrics_routes(app: App) -> list[Route]:
    async def metrics(request: Request) -> Response:
        body = await asyncio.to_thread(exposition, app)
        return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})

    return [Route("/metrics", metrics, methods=["GET"])]
