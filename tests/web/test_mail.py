"""builder.mail: a real SMTP server on loopback, the outbox without one, failures as MailError, and the sender thread
logging (not raising) a failure."""
from __future__ import annotations

import email
import email.policy
import logging
import time
from dataclasses import replace

import pytest

from builder.config import Settings
from builder.mail import MailError, MailSender, compose, send_mail
from tests.web.smtp_server import free_port, smtp_server


def settings_for(tmp_path, **changes) -> Settings:
    return replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(tmp_path / "data")}), **changes)


def reset_message(settings, lang="vi"):
    return compose(settings, "ban.doc@example.vn", "password_reset", lang, email="ban.doc@example.vn",
                   link="https://bao.example.vn/reader/reset?token=abc&lang=" + lang, minutes=60)


def test_a_message_is_handed_to_the_smtp_server_in_the_readers_language(tmp_path):
    with smtp_server() as (inbox, port):
        settings = settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none",
                                mail_from="Báo Nhúng <no-reply@bao.example.vn>")
        assert send_mail(settings, reset_message(settings, "en")) == "smtp"
        assert send_mail(settings, reset_message(settings, "vi")) == "smtp"
        (sender, rcpts, en), (_, _, vi) = inbox.wait_for(2)
    assert sender == "no-reply@bao.example.vn" and rcpts == ["ban.doc@example.vn"]
    assert en["Subject"] == "Reset your Báo Nhúng password" and en["Content-Language"] == "en"
    assert "https://bao.example.vn/reader/reset?token=abc&lang=en" in en.get_content()
    assert vi["Subject"] == "Đặt lại mật khẩu Báo Nhúng" and "Xin chào" in vi.get_content()
    assert "@bao.example.vn>" in vi["Message-ID"]
    assert not (tmp_path / "data" / "outbox").exists()  # sent, not written


def test_without_an_smtp_host_the_message_is_written_to_the_outbox(tmp_path):
    settings = settings_for(tmp_path)
    assert settings.smtp_host == ""
    where = send_mail(settings, reset_message(settings))
    outbox = tmp_path / "data" / "outbox"
    files = list(outbox.iterdir())
    assert [str(f) for f in files] == [where] and files[0].suffix == ".eml"
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["To"] == "ban.doc@example.vn"
    assert "https://bao.example.vn/reader/reset?token=abc&lang=vi" in message.get_content()


def test_an_unreachable_server_is_a_mail_error(tmp_path):
    settings = settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none")
    with pytest.raises(MailError, match="ConnectionRefused"):
        send_mail(settings, reset_message(settings))


def test_starttls_refused_by_a_plain_server_is_a_mail_error_and_sends_nothing(tmp_path):
    with smtp_server() as (inbox, port):
        settings = settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="starttls")
        with pytest.raises(MailError, match="STARTTLS"):
            send_mail(settings, reset_message(settings))
        time.sleep(0.2)
        assert inbox.messages == []  # never sent in clear when TLS was asked for


def test_the_sender_thread_logs_a_failure_and_carries_on(tmp_path, caplog):
    dead = settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none")
    sender = MailSender(dead)
    try:
        with caplog.at_level(logging.INFO, logger="baonhung.mail"):
            assert sender.submit(reset_message(dead)).result(timeout=15) == ""
        failures = [r for r in caplog.records if r.name == "baonhung.mail" and r.levelno == logging.ERROR]
        assert len(failures) == 1 and "example.vn" in failures[0].getMessage()
        assert "ban.doc" not in failures[0].getMessage()  # the domain only, not the address
    finally:
        sender.close()
    with smtp_server() as (inbox, port):
        live = MailSender(replace(dead, smtp_port=port))
        try:
            assert live.submit(reset_message(dead)).result(timeout=15) == "smtp"
        finally:
            live.close()
        assert len(inbox.wait_for(1)) == 1
