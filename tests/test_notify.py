"""Notifier: the task log by default, a webhook or e-mail when configured, never failing the run.

Servers in these tests listen on 127.0.0.1 only (threads of this process).
"""
from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest

from crmtier.delivery import notify as notify_module
from crmtier.delivery.notify import failure_message, notify, run_message

pytestmark = pytest.mark.unit

ENV = ("CRMTIER_NOTIFY_WEBHOOK", "CRMTIER_NOTIFY_EMAIL_TO", "CRMTIER_NOTIFY_TIMEOUT", "CRMTIER_SMTP_HOST",
       "CRMTIER_SMTP_PORT", "CRMTIER_SMTP_USER", "CRMTIER_SMTP_PASSWORD", "CRMTIER_SMTP_STARTTLS", "CRMTIER_SMTP_SSL",
       "CRMTIER_NOTIFY_EMAIL_FROM", "CRMTIER_SMTP_SECURITY", "CRMTIER_SMTP_CA_FILE", "CRMTIER_SMTP_ALLOW_PLAINTEXT_AUTH")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
        status = self.server.status
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    server.received, server.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, f"http://127.0.0.1:{server.server_address[1]}/hook/secret-token"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MESSAGE = run_message("2026-11-01", "manual__1", {"wake_up_email": 3, "win_back_campaign": 1},
                      {"wake_up_email": 2}, "/var/outbox/2026-11-01", "/var/publish/crm.duckdb")


def test_default_is_the_task_log(caplog):
    with caplog.at_level(logging.INFO, logger="crmtier"):
        sent = notify(MESSAGE)
    assert sent == {"log": True}
    text = caplog.text
    assert "[crmtier] notify: crmtier run as of 2026-11-01 succeeded: 4 alerts" in text
    assert "wake_up_email: 3 alerts (2 new)" in text and "win_back_campaign: 1 alerts (0 new)" in text
    assert "/var/outbox/2026-11-01" in text


def test_webhook_gets_the_message_as_json(webhook, monkeypatch):
    server, url = webhook
    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", url)
    assert notify(MESSAGE) == {"log": True, "webhook": True}
    [request] = server.received
    assert request["path"] == "/hook/secret-token"
    assert request["headers"]["Content-Type"].startswith("application/json")
    body = request["json"]
    assert body["event"] == "run_succeeded" and body["as_of_date"] == "2026-11-01"
    assert body["alerts"] == {"wake_up_email": 3, "win_back_campaign": 1}
    assert body["new_alerts"] == {"wake_up_email": 2}
    assert body["outbox"] == "/var/outbox/2026-11-01"
    assert "wake_up_email: 3 alerts" in body["text"]


def test_webhook_down_or_failing_does_not_raise(webhook, monkeypatch, caplog):
    server, url = webhook
    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", f"http://127.0.0.1:{_closed_port()}/hook/secret-token")
    with caplog.at_level(logging.WARNING, logger="crmtier"):
        assert notify(MESSAGE) == {"log": True, "webhook": False}
    assert "not reachable" in caplog.text and "secret-token" not in caplog.text  # no token in the log
    server.status = 500
    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", url)
    assert notify(MESSAGE)["webhook"] is False
    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", "file:///etc/passwd")
    assert notify(MESSAGE)["webhook"] is False


def test_a_webhook_that_hangs_times_out(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", f"http://127.0.0.1:{listener.getsockname()[1]}/")
        monkeypatch.setenv("CRMTIER_NOTIFY_TIMEOUT", "0.5")
        started = time.monotonic()
        assert notify(MESSAGE)["webhook"] is False
        assert time.monotonic() - started < 60  # the 0.5 s timeout applied, not a hang (generous: loaded CI)
    finally:
        listener.close()


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP to accept one message."""

    def handle(self):
        self.wfile.write(b"220 localhost ESMTP test\r\n")
        while line := self.rfile.readline():
            verb = line.strip().split(b" ")[0].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 localhost\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    data += self.rfile.readline()
                self.server.messages.append(data.decode("utf-8", "replace"))
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


def test_email_is_sent_by_smtp_and_a_dead_server_does_not_raise(monkeypatch):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.messages = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CRMTIER_SMTP_SECURITY", "none")  # a plain relay, no password
        monkeypatch.setenv("CRMTIER_NOTIFY_EMAIL_TO", "ops@example.com, crm@example.com")
        monkeypatch.setenv("CRMTIER_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("CRMTIER_SMTP_PORT", str(server.server_address[1]))
        assert notify(MESSAGE) == {"log": True, "email": True}
        [mail] = server.messages
        assert "Subject: crmtier run as of 2026-11-01 succeeded: 4 alerts" in mail
        assert "ops@example.com, crm@example.com" in mail and "wake_up_email: 3 alerts" in mail
    finally:
        server.shutdown()
        server.server_close()
    monkeypatch.setenv("CRMTIER_SMTP_PORT", str(_closed_port()))
    assert notify(MESSAGE) == {"log": True, "email": False}


def test_failure_callback_notifies_once_with_the_error(webhook, monkeypatch):
    from crmtier.pipeline import on_failure

    server, url = webhook
    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", url)
    error = RuntimeError("gate drift failed: nothing downstream runs, nothing is published.\n"
                         "  FAIL history.customer_history [drift_change_shares] ...")
    task_context = {"exception": error, "task_instance": SimpleNamespace(task_id="gate_drift"),
                    "run_id": "manual__x", "ds": "2026-11-02"}
    on_failure(task_context)
    [request] = server.received
    body = request["json"]
    assert body["event"] == "task_failed" and body["task_id"] == "gate_drift" and body["as_of_date"] == "2026-11-02"
    assert "drift_change_shares" in body["error"] and "FAILED in task gate_drift" in body["title"]
    # the DAG-level callback after a task failure adds nothing: not sent twice
    on_failure({"run_id": "manual__x", "reason": "task_failure", "ds": "2026-11-02"})
    assert len(server.received) == 1
    # other DAG-level failures (e.g. a timeout) are sent
    on_failure({"run_id": "manual__x", "reason": "timed_out", "ds": "2026-11-02"})
    assert server.received[-1]["json"]["event"] == "run_failed"


def test_failure_callback_survives_a_dead_webhook(monkeypatch):
    from crmtier.pipeline import on_failure

    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", f"http://127.0.0.1:{_closed_port()}/")
    on_failure({"exception": ValueError("boom"), "task_instance": SimpleNamespace(task_id="publish"),
                "run_id": "r", "ds": "2026-11-02"})  # does not raise
    assert failure_message({"exception": None, "reason": "task_failure"}) is None


def test_notify_step_reports_the_outbox(webhook, monkeypatch, tmp_path):
    from crmtier import pipeline
    from crmtier.pipeline import notify_step

    server, url = webhook
    monkeypatch.setenv("CRMTIER_NOTIFY_WEBHOOK", url)
    monkeypatch.setenv("CRMTIER_HOME", str(tmp_path))
    # the run report needs a published snapshot (tests/test_report.py builds real ones): here, only its path
    monkeypatch.setattr(pipeline, "report_step", lambda as_of_date: str(tmp_path / "report.html"))
    result = notify_step("2026-11-01", "manual__1", {"outbox": str(tmp_path / "outbox" / "2026-11-01"),
                                                     "alerts": {"sms_offer": 2}, "new_alerts": {"sms_offer": 2}})
    assert result["sent"] == {"log": True, "webhook": True}
    body = server.received[0]["json"]
    assert body["alerts"] == {"sms_offer": 2} and body["outbox"].endswith("outbox/2026-11-01")
    assert notify_module.format_text(body).startswith("crmtier run as of 2026-11-01 succeeded: 2 alerts")


# --------------------------------------------------------------------------- SMTP with TLS (aiosmtpd on loopback)

def _certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 / localhost (made here, never shipped)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def _tls(server, session) -> bool:
    """STARTTLS sets session.ssl; implicit TLS (SMTPS) shows on the transport."""
    return session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None


class _Mailbox:
    def __init__(self):
        self.messages, self.logins = [], []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd API
        self.messages.append({"tls": _tls(server, session), "data": envelope.content.decode("utf-8", "replace")})
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append({"user": auth_data.login.decode(), "password": auth_data.password.decode(),
                            "tls": _tls(server, session)})
        return AuthResult(success=auth_data.password == b"s3cret")


@pytest.fixture
def smtp_server(tmp_path):
    """Start aiosmtpd on 127.0.0.1: mode `starttls` (offers and requires STARTTLS before AUTH),
    `ssl` (SMTPS), `plain` (no TLS at all, AUTH allowed in clear)."""
    import ssl

    from aiosmtpd.controller import Controller

    cert, key = _certificate(tmp_path)
    started = []

    def start(mode: str):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        box = _Mailbox()
        kw = dict(hostname="127.0.0.1", port=_closed_port(), authenticator=box.authenticate)
        if mode == "starttls":
            controller = Controller(box, tls_context=context, require_starttls=True, auth_require_tls=True, **kw)
        elif mode == "ssl":
            controller = Controller(box, ssl_context=context, auth_require_tls=False, **kw)  # implicit TLS
        else:
            controller = Controller(box, auth_require_tls=False, **kw)
        controller.start()
        started.append(controller)
        return box, controller.port

    yield start, cert
    for controller in started:
        controller.stop()


def _mail_env(monkeypatch, port, **extra):
    monkeypatch.setenv("CRMTIER_NOTIFY_EMAIL_TO", "ops@example.com")
    monkeypatch.setenv("CRMTIER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CRMTIER_SMTP_PORT", str(port))
    monkeypatch.setenv("CRMTIER_SMTP_USER", "crm")
    monkeypatch.setenv("CRMTIER_SMTP_PASSWORD", "s3cret")
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def test_smtp_defaults_to_starttls_and_logs_in_only_under_tls(smtp_server, monkeypatch, caplog):
    start, cert = smtp_server
    box, port = start("starttls")
    _mail_env(monkeypatch, port, CRMTIER_SMTP_CA_FILE=cert)  # no CRMTIER_SMTP_SECURITY: the default
    assert notify(MESSAGE) == {"log": True, "email": True}
    assert box.logins == [{"user": "crm", "password": "s3cret", "tls": True}]
    [mail] = box.messages
    assert mail["tls"] and "Subject: crmtier run as of 2026-11-01 succeeded: 4 alerts" in mail["data"]
    # a certificate nobody vouches for is refused: nothing sent, no password handed over
    box.logins.clear()
    monkeypatch.delenv("CRMTIER_SMTP_CA_FILE")
    with caplog.at_level(logging.WARNING, logger="crmtier"):
        assert notify(MESSAGE)["email"] is False
    assert box.logins == [] and len(box.messages) == 1
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text and "s3cret" not in caplog.text


def test_smtps_on_request(smtp_server, monkeypatch):
    start, cert = smtp_server
    box, port = start("ssl")
    _mail_env(monkeypatch, port, CRMTIER_SMTP_CA_FILE=cert, CRMTIER_SMTP_SECURITY="ssl")
    assert notify(MESSAGE)["email"] is True
    assert box.logins == [{"user": "crm", "password": "s3cret", "tls": True}] and box.messages[0]["tls"]


def test_a_server_without_starttls_gets_no_password_and_no_mail(smtp_server, monkeypatch, caplog):
    start, _cert = smtp_server
    box, port = start("plain")
    _mail_env(monkeypatch, port)
    with caplog.at_level(logging.WARNING, logger="crmtier"):
        assert notify(MESSAGE)["email"] is False  # default starttls: no silent fallback to clear text
    assert box.logins == [] and box.messages == []
    assert "STARTTLS" in caplog.text


def test_plain_text_login_only_when_explicitly_allowed(smtp_server, monkeypatch, caplog):
    start, _cert = smtp_server
    box, port = start("plain")
    _mail_env(monkeypatch, port, CRMTIER_SMTP_SECURITY="none")
    with caplog.at_level(logging.WARNING, logger="crmtier"):
        assert notify(MESSAGE)["email"] is False
    assert box.logins == [] and box.messages == []
    assert "CRMTIER_SMTP_ALLOW_PLAINTEXT_AUTH" in caplog.text
    monkeypatch.setenv("CRMTIER_SMTP_ALLOW_PLAINTEXT_AUTH", "true")
    assert notify(MESSAGE)["email"] is True
    assert box.logins == [{"user": "crm", "password": "s3cret", "tls": False}]
