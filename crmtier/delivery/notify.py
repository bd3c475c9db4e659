"""Tell people how a run went: alert counts per action and the outbox folder, or what failed.

Where messages go (environment variables):

* always: the task log (one ``[crmtier] notify:`` line, which `crmtier run` also prints);
* ``CRMTIER_NOTIFY_WEBHOOK``: an http(s) URL; the message is POSTed as JSON (Slack/Teams/DingTalk/
  WeCom style bridges, or your own endpoint). ``CRMTIER_NOTIFY_TIMEOUT`` seconds (default 10);
* ``CRMTIER_NOTIFY_EMAIL_TO``: comma-separated addresses, sent with smtplib through
  ``CRMTIER_SMTP_HOST`` (default localhost), sender ``CRMTIER_NOTIFY_EMAIL_FROM`` (default
  crmtier@localhost), optional ``CRMTIER_SMTP_USER`` / ``CRMTIER_SMTP_PASSWORD``.
  Encrypted by default: ``CRMTIER_SMTP_SECURITY`` is ``starttls`` (default; port 587; a server that
  does not offer STARTTLS gets nothing, no fallback to plain text), ``ssl`` (SMTPS, port 465; also
  the legacy ``CRMTIER_SMTP_SSL=true``) or ``none`` (port 25). The server's certificate is verified
  (system CAs, or ``CRMTIER_SMTP_CA_FILE`` for an internal CA). With ``none``, a user and password
  are never sent unless ``CRMTIER_SMTP_ALLOW_PLAINTEXT_AUTH=true`` says so explicitly (a local relay
  on loopback); otherwise the mail is not sent and the log says why. ``CRMTIER_SMTP_PORT`` overrides
  the port.

A notifier never fails the run: a webhook or mail server that is down is logged as a warning.
"""
from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage

log = logging.getLogger("crmtier")

DEFAULT_TIMEOUT = 10.0
MAX_ERROR_LINES = 20


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def format_text(message: dict) -> str:
    """A few human-readable lines for the log, e-mail body and chat webhooks."""
    lines = [message.get("title", "crmtier")]
    if message.get("alerts") is not None:
        alerts, new = message["alerts"], message.get("new_alerts") or {}
        if alerts:
            for action, n in alerts.items():
                lines.append(f"  {action}: {n} alerts ({new.get(action, 0)} new)")
        else:
            lines.append("  no alerts")
    for key in ("outbox", "snapshot", "report"):
        if message.get(key):
            lines.append(f"  {key}: {message[key]}")
    if message.get("error"):
        lines.append("  " + message["error"].replace("\n", "\n  "))
    return "\n".join(lines)


def send_webhook(url: str, message: dict, timeout: float | None = None) -> bool:
    """POST the message as JSON; False (and a warning) when it cannot be delivered."""
    if not url.lower().startswith(("http://", "https://")):
        log.warning("[crmtier] notify: webhook %r is not an http(s) URL: not sent", url)
        return False
    timeout = timeout if timeout is not None else float(os.environ.get("CRMTIER_NOTIFY_TIMEOUT", DEFAULT_TIMEOUT))
    body = json.dumps({**message, "text": format_text(message)}, ensure_ascii=False, default=str).encode("utf-8")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "User-Agent": "crmtier-notify"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            response.read()
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("[crmtier] notify: webhook %s not reachable (%s); the run goes on", _redact(url), exc)
        return False


SMTP_SECURITY = {"starttls": 587, "ssl": 465, "none": 25}


def smtp_security() -> str:
    """starttls (default), ssl or none; the legacy CRMTIER_SMTP_SSL=true means ssl."""
    security = os.environ.get("CRMTIER_SMTP_SECURITY", "").strip().lower()
    if not security:
        security = "ssl" if _truthy("CRMTIER_SMTP_SSL") else "starttls"
    if security not in SMTP_SECURITY:
        raise ValueError(f"CRMTIER_SMTP_SECURITY={security!r}: use one of {', '.join(SMTP_SECURITY)}")
    return security


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=os.environ.get("CRMTIER_SMTP_CA_FILE") or None)


def send_email(recipients: list[str], message: dict) -> bool:
    """Send the message by SMTP, encrypted unless configured otherwise; False (and a warning) when
    it cannot be sent, or would have to send a password in clear text."""
    mail = EmailMessage()
    mail["Subject"] = message.get("title", "crmtier")
    mail["From"] = os.environ.get("CRMTIER_NOTIFY_EMAIL_FROM", "crmtier@localhost")
    mail["To"] = ", ".join(recipients)
    mail.set_content(format_text(message))
    host = os.environ.get("CRMTIER_SMTP_HOST", "localhost")
    try:
        security = smtp_security()
    except ValueError as exc:
        log.warning("[crmtier] notify: e-mail not sent: %s", exc)
        return False
    port = int(os.environ.get("CRMTIER_SMTP_PORT", SMTP_SECURITY[security]))
    timeout = float(os.environ.get("CRMTIER_NOTIFY_TIMEOUT", DEFAULT_TIMEOUT))
    user = os.environ.get("CRMTIER_SMTP_USER", "")
    if user and security == "none" and not _truthy("CRMTIER_SMTP_ALLOW_PLAINTEXT_AUTH"):
        log.warning("[crmtier] notify: e-mail not sent: CRMTIER_SMTP_SECURITY=none would send the SMTP password "
                    "unencrypted to %s:%s; use starttls or ssl, or set CRMTIER_SMTP_ALLOW_PLAINTEXT_AUTH=true "
                    "for a trusted relay; the run goes on", host, port)
        return False
    try:
        if security == "ssl":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_tls_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            if security == "starttls":
                smtp.starttls(context=_tls_context())  # raises when the server does not offer it
            if user:
                smtp.login(user, os.environ.get("CRMTIER_SMTP_PASSWORD", ""))
            smtp.send_message(mail)
        return True
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        log.warning("[crmtier] notify: e-mail to %s via %s:%s (%s) failed (%s); the run goes on",
                    mail["To"], host, port, security, exc)
        return False


def notify(message: dict) -> dict[str, bool]:
    """Send a message to the task log and every configured channel; never raises."""
    sent = {"log": True}
    log.info("[crmtier] notify: %s", format_text(message))
    try:
        url = os.environ.get("CRMTIER_NOTIFY_WEBHOOK", "").strip()
        if url:
            sent["webhook"] = send_webhook(url, message)
        recipients = [a.strip() for a in os.environ.get("CRMTIER_NOTIFY_EMAIL_TO", "").split(",") if a.strip()]
        if recipients:
            sent["email"] = send_email(recipients, message)
    except Exception as exc:  # noqa: BLE001 - a notifier must never fail the run
        log.warning("[crmtier] notify: failed (%s); the run goes on", exc)
    return sent


def run_message(as_of_date: str, run_id: str, alerts: dict[str, int], new_alerts: dict[str, int] | None = None,
                outbox: str | None = None, snapshot: str | None = None) -> dict:
    total = sum(alerts.values())
    return {
        "event": "run_succeeded",
        "title": f"crmtier run as of {as_of_date} succeeded: {total} alerts",
        "as_of_date": as_of_date,
        "run_id": run_id,
        "alerts": dict(alerts),
        "new_alerts": dict(new_alerts or {}),
        "outbox": outbox,
        "snapshot": snapshot,
    }


def failure_message(context: dict) -> dict | None:
    """The message for an Airflow failure callback context, or None when another callback already told.

    Task-level callbacks carry the exception (e.g. the gate's message); the DAG-level callback that
    follows a task failure (reason `task_failure`) adds nothing and is not sent again.
    """
    exc = context.get("exception")
    ti = context.get("task_instance") or context.get("ti")
    reason = context.get("reason")
    if exc is None and reason == "task_failure":
        return None
    as_of = context.get("ds")
    if as_of is None and context.get("logical_date") is not None:
        as_of = str(context["logical_date"])[:10]
    task_id = getattr(ti, "task_id", None)
    if exc is not None:
        error = "\n".join(str(exc).splitlines()[:MAX_ERROR_LINES]) or type(exc).__name__
    else:
        error = str(reason or "the run failed")
    return {
        "event": "task_failed" if task_id else "run_failed",
        "title": f"crmtier run as of {as_of} FAILED" + (f" in task {task_id}" if task_id else ""),
        "as_of_date": as_of,
        "run_id": context.get("run_id"),
        "task_id": task_id,
        "error": error,
    }


def notify_failure(context: dict) -> dict[str, bool]:
    try:
        message = failure_message(context)
    except Exception as exc:  # noqa: BLE001
        log.warning("[crmtier] notify: could not describe the failure (%s)", exc)
        return {}
    return notify(message) if message else {}


def _redact(url: str) -> str:
    """A webhook URL without its path and query (tokens often live there)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/..."
