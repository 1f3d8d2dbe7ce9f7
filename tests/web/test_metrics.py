"""``GET /metrics`` on the web listener of the real server, in Prometheus text format, read
with Prometheus's own parser; SQLite and PostgreSQL."""

from __future__ import annotations

import smtplib

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import DOMAIN, RunningServer, Sink, cli, list_table, make_message

MEMBERS = ["m1@x.example", "m2@x.example"]


def scrape(server: RunningServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert server.server.web is not None
    response = httpx.get(f"http://127.0.0.1:{server.server.web.port}/metrics", timeout=15)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_intake_deliveries_queues_and_heartbeats(
    start_server, sink: Sink, tmp_path
) -> None:
    sink.rcpt_reply[MEMBERS[1]] = "550 5.1.1 No such user"
    server = start_server(
        lists=[list_table("test")],
        web={"listen": "127.0.0.1:0", "secret_file": str(tmp_path / "web.secret")},
    )
    assert (
        cli(server.config_path, "members", "add", "test", "--no-welcome", *MEMBERS).exit_code == 0
    )
    before = scrape(server)
    server.send(MEMBERS[0], f"test@{DOMAIN}", make_message(MEMBERS[0]))
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        server.send(MEMBERS[0], f"nobody@{DOMAIN}", make_message(MEMBERS[0]))
    sink.wait_for_recipients({MEMBERS[0]})
    failed = ("listserv_deliveries_failed_total", ())
    server.wait_for_state(
        lambda: scrape(server).get(failed, 0) > before.get(failed, 0), "a failure counted"
    )
    after = scrape(server)

    def grew(name: str, labels: tuple = ()) -> float:
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    assert grew("listserv_intake_accepted_total") == 1
    assert grew("listserv_intake_refused_total", (("code", "550"),)) == 1
    assert grew("listserv_deliveries_sent_total") == 1
    assert grew("listserv_deliveries_failed_total") == 1
    assert after[("listserv_queue_recipients", (("state", "failed"),))] == 1
    assert after[("listserv_queue_recipients", (("state", "sent"),))] >= 1
    assert after[("listserv_inbox_messages", (("state", "done"),))] == 1
    beats = [k for k in after if k[0] == "listserv_process_heartbeat_timestamp_seconds"]
    assert [dict(labels)["instance"] for _, labels in beats] == [server.server.instance_id]
