"""ConnectionsNotifier: run outcomes through Airflow Connections (an HTTP webhook, SMTP), to real local servers."""
from __future__ import annotations

import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from crmtier.delivery.notifiers import ConnectionsNotifier

pytestmark = pytest.mark.unit


class FailedTask:
    task_id = "gate_raw"


FAILURE = {"exception": RuntimeError("gate raw failed: broken.csv has no amount column"), "ti": FailedTask(),
           "ds": "2011-03-01", "run_id": "scheduled__2011-03-01"}


@pytest.fixture
def webhook_server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port, received
    server.shutdown()


def test_failure_goes_to_the_webhook_connection(webhook_server, monkeypatch):
    port, received = webhook_server
    monkeypatch.setenv("AIRFLOW_CONN_CRMTIER_WEBHOOK",
                       json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/hooks/crm"}))
    monkeypatch.delenv("AIRFLOW_CONN_CRMTIER_SMTP", raising=False)
    ConnectionsNotifier("failure")(dict(FAILURE))
    assert len(received) == 1
    assert received[0]["title"] == "crmtier run as of 2011-03-01 FAILED in task gate_raw"
    assert "broken.csv has no amount column" in received[0]["text"]


def test_failure_goes_to_the_smtp_connection(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import asyncore
        import smtpd

    mails = []

    class Server(smtpd.SMTPServer):
        def process_message(self, peer, mailfrom, rcpttos, data, **kwargs):
            mails.append((mailfrom, rcpttos, data))

    server = Server(("127.0.0.1", 0), None)
    threading.Thread(target=asyncore.loop, kwargs={"timeout": 0.05, "count": 200}, daemon=True).start()
    monkeypatch.setenv("AIRFLOW_CONN_CRMTIER_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": server.socket.getsockname()[1],
        "extra": {"to": "data-team@example.com", "from_email": "crm@example.com", "disable_tls": True,
                  "disable_ssl": True}}))
    monkeypatch.delenv("AIRFLOW_CONN_CRMTIER_WEBHOOK", raising=False)
    try:
        ConnectionsNotifier("failure")(dict(FAILURE))
    finally:
        server.close()
    assert len(mails) == 1
    sender, recipients, data = mails[0]
    assert sender == "crm@example.com" and recipients == ["data-team@example.com"]
    assert b"Subject: crmtier run as of 2011-03-01 FAILED in task gate_raw" in data


def test_no_connection_no_message_and_no_error(monkeypatch, webhook_server):
    port, received = webhook_server
    monkeypatch.delenv("AIRFLOW_CONN_CRMTIER_WEBHOOK", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_CRMTIER_SMTP", raising=False)
    ConnectionsNotifier("success")({"ds": "2011-03-01", "run_id": "r"})
    assert received == []
    with pytest.raises(ValueError):
        ConnectionsNotifier("maybe")


def test_dag_level_callback_without_a_template_environment(webhook_server, monkeypatch):
    """DAG-level callbacks of dag.test() get a SerializedDAG (no get_template_env): still sent."""
    port, received = webhook_server
    monkeypatch.setenv("AIRFLOW_CONN_CRMTIER_WEBHOOK",
                       json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{port}/hooks/crm"}))
    monkeypatch.delenv("AIRFLOW_CONN_CRMTIER_SMTP", raising=False)
    ConnectionsNotifier("success")({"dag": object(), "ds": "2011-03-01", "run_id": "r"})
    assert [m["title"] for m in received] == ["crmtier run as of 2011-03-01 succeeded: 0 alerts"]
