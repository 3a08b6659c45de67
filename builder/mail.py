"""Outgoing mail (issue 27: the reader's password-reset link). No Flask here.

``send_mail(settings, message)`` sends over SMTP with ``smtplib`` as the settings say (``smtp_host``/``smtp_port``,
``smtp_tls`` starttls | ssl | none, optional login); without ``smtp_host`` (development) the message is written to
``<data_dir>/outbox/<time>-<random>.eml`` instead. Texts are in Vietnamese and English, chosen by the reader's
language (``MAIL_TEXTS``).
"""
from __future__ import annotations

import logging
import os
import secrets
import smtplib
import ssl
import time
from concurrent.futures import Future, ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from .config import Settings

log = logging.getLogger("baonhung.mail")

SMTP_TIMEOUT_S = 10  # connect and each command; a mail server slower than this is down for our purpose
MAIL_TEXTS = {
    "password_reset": {
        "vi": ("Đặt lại mật khẩu Báo Nhúng",
               "Xin chào,\n\nAi đó (có thể là bạn) vừa yêu cầu đặt lại mật khẩu tài khoản bạn đọc Báo Nhúng của "
               "{email}.\n\nMở liên kết này để đặt mật khẩu mới (dùng được một lần, trong {minutes} phút):\n\n"
               "{link}\n\nNếu bạn không yêu cầu, hãy bỏ qua thư này: mật khẩu của bạn không thay đổi.\n\n"
               "— Báo Nhúng\n"),
        "en": ("Reset your Báo Nhúng password",
               "Hello,\n\nSomeone (perhaps you) asked to reset the password of the Báo Nhúng reader account of "
               "{email}.\n\nOpen this link to choose a new password (it works once, for {minutes} minutes):\n\n"
               "{link}\n\nIf you did not ask, ignore this message: your password has not changed.\n\n"
               "— Báo Nhúng\n"),
    },
}


class MailError(RuntimeError):
    """The message could not be handed to the mail server (or written to the outbox); carries the reason."""


def compose(settings: Settings, to: str, kind: str, lang: str, **values) -> EmailMessage:
    """A plain-text message of kind ``kind`` (a key of MAIL_TEXTS) in ``lang`` (vi default) to ``to``."""
    subject, body = MAIL_TEXTS[kind]["en" if lang == "en" else "vi"]
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(body.format(**values), charset="utf-8", cte="quoted-printable")
    message["Content-Language"] = "en" if lang == "en" else "vi"  # after set_content, which drops Content-* headers
    return message


def send_mail(settings: Settings, message: EmailMessage) -> str:
    """Hand ``message`` to the SMTP server of ``settings`` (returns "smtp"), or, without ``smtp_host``, write it to
    the outbox (returns the file's path). MailError when neither worked."""
    if not settings.smtp_host:
        return str(write_outbox(Path(settings.data_dir) / "outbox", message))
    try:
        if settings.smtp_tls == "ssl":
            server = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S,
                                      context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_S)
        with server:
            if settings.smtp_tls == "starttls":
                server.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                server.login(settings.smtp_user, settings.smtp_password)
            server.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:  # refused, timed out, TLS or login failed, recipient refused
        raise MailError(f"{type(exc).__name__}: {exc}") from exc
    return "smtp"


def write_outbox(outbox: Path, message: EmailMessage) -> Path:
    """Write ``message`` as ``<outbox>/<UTC time>-<random>.eml`` atomically (a reader of the folder never sees half a
    file)."""
    try:
        outbox.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}.eml"
        final = outbox / name
        partial = outbox / f".{name}.partial"
        partial.write_bytes(message.as_bytes())
        os.replace(partial, final)
    except OSError as exc:
        raise MailError(f"outbox {outbox}: {exc}") from exc
    return final


class MailSender:
    """Sends mail off the request thread, one message after the other: a request that mails (a reset for a real
    account) answers as fast as one that does not (no account enumeration by timing), and a slow or failing mail
    server never holds a request. A failure is logged with the recipient's domain only."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="baonhung-mail")

    def submit(self, message: EmailMessage) -> Future:
        return self._pool.submit(self._send, message)

    def _send(self, message: EmailMessage) -> str:
        domain = str(message["To"]).rpartition("@")[2]
        try:
            where = send_mail(self.settings, message)
        except MailError as exc:
            log.error("mail %r to a recipient at %s not sent: %s", str(message["Subject"]), domain, exc)
            return ""
        if where == "smtp":
            log.info("mail %r to a recipient at %s sent", str(message["Subject"]), domain)
        else:
            log.warning("no BAONHUNG_SMTP_HOST: mail %r written to %s", str(message["Subject"]), where)
        return where

    def close(self) -> None:
        self._pool.shutdown(wait=True)
