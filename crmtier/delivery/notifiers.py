"""Airflow notifiers (`BaseNotifier`) that send run outcomes through Airflow Connections:

* ``crmtier_webhook`` (an HTTP connection): the message is POSTed as JSON, e.g.
  ``AIRFLOW_CONN_CRMTIER_WEBHOOK='{"conn_type": "http", "host": "https://hooks.example.com/services/T/B/X"}'``;
* ``crmtier_smtp`` (an SMTP connection, sent with the SMTP provider's ``SmtpNotifier``) to the addresses in
  the connection's extra ``to`` or in ``CRMTIER_NOTIFY_EMAIL_TO``, e.g.
  ``AIRFLOW_CONN_CRMTIER_SMTP='smtp://user:pass@smtp.example.com:587?to=team%40example.com&from_email=crm%40example.com'``.

A connection that is not defined is skipped; one that cannot be reached is logged and never fails the
run. The environment-variable channels of `crmtier.delivery.notify` (used by `crmtier run`) stay as they are.
"""
from __future__ import annotations

import logging
import os

from airflow.sdk.bases.notifier import BaseNotifier

from crmtier.delivery.notify import failure_message, format_text, send_webhook

log = logging.getLogger("crmtier")

WEBHOOK_CONN_ID = "crmtier_webhook"
SMTP_CONN_ID = "crmtier_smtp"


def _connection(conn_id: str):
    from airflow.sdk import Connection

    try:
        return Connection.get(conn_id)
    except Exception:  # noqa: BLE001 - not defined: this channel is off
        return None


def webhook_url(conn) -> str:
    """The URL of an HTTP connection: its host when it holds a whole URL, else scheme://host:port/path."""
    host = conn.host or ""
    if host.startswith(("http://", "https://")):
        return host.rstrip("/") + (f"/{conn.schema}" if conn.schema else "")
    scheme = "https" if conn.conn_type == "https" else "http"
    return f"{scheme}://{host}{f':{conn.port}' if conn.port else ''}/{conn.schema or ''}"


def success_message(context) -> dict:
    from crmtier.delivery.notify import run_message

    ti = context.get("ti") or context.get("task_instance")
    try:  # DAG-level callbacks (DAG processor, dag.test()) run outside a task: no XCom access there
        handed_over = (ti.xcom_pull(task_ids="outbox") if ti is not None else None) or {}
    except Exception:  # noqa: BLE001 - the message goes out without the alert counts
        handed_over = {}
    as_of = context.get("ds") or str(context.get("logical_date", ""))[:10]
    return run_message(as_of, context.get("run_id"), handed_over.get("alerts") or {},
                       handed_over.get("new_alerts"), handed_over.get("outbox"))


class ConnectionsNotifier(BaseNotifier):
    """A run's outcome ("success" or "failure") to the crmtier_webhook and crmtier_smtp connections."""

    def __init__(self, outcome: str):
        super().__init__()
        if outcome not in ("success", "failure"):
            raise ValueError(f"outcome is success or failure, not {outcome!r}")
        self.outcome = outcome

    def render_template_fields(self, context, jinja_env=None) -> None:
        """Nothing to render (no template fields); and the DAG-level callbacks of `dag.test()` pass a
        SerializedDAG, which has no template environment to render with."""

    def notify(self, context) -> None:
        message = success_message(context) if self.outcome == "success" else failure_message(context)
        if not message:
            return
        sent = {}
        if (conn := _connection(WEBHOOK_CONN_ID)) is not None:
            sent["webhook"] = send_webhook(webhook_url(conn), message)
        if (conn := _connection(SMTP_CONN_ID)) is not None:
            sent["email"] = self._send_email(conn, message)
        if sent:
            log.info("[crmtier] notify (connections): %s %s", message.get("title"), sent)

    @staticmethod
    def _send_email(conn, message: dict) -> bool:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        extra = conn.extra_dejson or {}
        recipients = extra.get("to") or os.environ.get("CRMTIER_NOTIFY_EMAIL_TO", "")
        if not recipients:
            log.warning("[crmtier] notify: connection %s has no `to` (extra) and CRMTIER_NOTIFY_EMAIL_TO is empty",
                        SMTP_CONN_ID)
            return False
        body = "<pre>" + format_text(message).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
        try:
            SmtpNotifier(to=recipients, subject=message.get("title"), html_content=body,
                         smtp_conn_id=SMTP_CONN_ID).notify({})
            return True
        except Exception as exc:  # noqa: BLE001 - a notifier never fails the run
            log.warning("[crmtier] notify: e-mail through connection %s failed (%s); the run goes on",
                        SMTP_CONN_ID, exc)
            return False
