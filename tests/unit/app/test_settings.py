"""Settings from ZONEAPP_* variables: Kafka security pass-through and secrets handling."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from zoneapp.application import faust_credentials
from zoneapp.settings import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.broker == "kafka://127.0.0.1:9092" and s.security.protocol == "PLAINTEXT"
    assert faust_credentials(s.security) is None and s.security.aiokafka_kwargs() == {}


def test_sasl_ssl_with_password_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2-very-secret\n")
    s = Settings.from_env(
        {
            "ZONEAPP_BROKER": "kafka://b1:9093;kafka://b2:9093",
            "ZONEAPP_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "ZONEAPP_SASL_MECHANISM": "SCRAM-SHA-512",
            "ZONEAPP_SASL_USERNAME": "zoneapp",
            "ZONEAPP_SASL_PASSWORD_FILE": str(secret),
        }
    )
    creds = faust_credentials(s.security)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "zoneapp" and creds.password == "hunter2-very-secret"
    assert creds.ssl_context is not None
    kwargs = s.security.aiokafka_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert s.broker_urls() == ["b1:9093", "b2:9093"]
    assert "hunter2" not in repr(s)


def test_pin_from_env_or_file(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("123456\n")
    assert Settings.from_env({"ZONEAPP_PKCS11_PIN_FILE": str(pin)}).pkcs11_pin is not None
    s = Settings.from_env({"ZONEAPP_PKCS11_PIN": "654321"})
    assert s.pkcs11_pin is not None and s.pkcs11_pin.reveal() == b"654321"
    assert "654321" not in repr(s)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ZONEAPP_KAFKA_SECURITY_PROTOCOL": "TLS"}, "ZONEAPP_KAFKA_SECURITY_PROTOCOL"),
        ({"ZONEAPP_SASL_MECHANISM": "GSSAPI"}, "ZONEAPP_SASL_MECHANISM"),
        ({"ZONEAPP_WEB_PORT": "http"}, "ZONEAPP_WEB_PORT"),
        ({"ZONEAPP_BATCH_SIZE": "0"}, "ZONEAPP_BATCH_SIZE"),
        ({"ZONEAPP_PKCS11_PIN_FILE": "/nonexistent/pin"}, "ZONEAPP_PKCS11_PIN_FILE"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_sasl_without_credentials_is_refused() -> None:
    s = Settings.from_env({"ZONEAPP_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(SettingsError, match="SASL_USERNAME"):
        faust_credentials(s.security)


def test_web_security_settings(tmp_path: Path) -> None:
    cert, key, secret = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "cluster"
    cert.write_text("x")
    key.write_text("x")
    secret.write_text("a" * 64 + "\n")
    s = Settings.from_env(
        {
            "ZONEAPP_WEB_TLS_CERTFILE": str(cert),
            "ZONEAPP_WEB_TLS_KEYFILE": str(key),
            "ZONEAPP_CLUSTER_SECRET_FILE": str(secret),
            "ZONEAPP_CLUSTER_PEERS": "W1:6066, w2:6067",
            "ZONEAPP_METRICS_PUBLIC": "true",
        }
    )
    assert s.web_tls.enabled and s.web_tls.scheme == "https"
    assert s.cluster_peers == ("w1:6066", "w2:6067") and s.metrics_public
    assert s.cluster_secret is not None and "aaaa" not in repr(s)
    defaults = Settings.from_env({})
    assert not defaults.web_tls.enabled and defaults.web_tls.scheme == "http"
    assert defaults.cluster_secret is None and not defaults.metrics_public


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ZONEAPP_WEB_TLS_CERTFILE": "/nonexistent/cert.pem"}, "ZONEAPP_WEB_TLS_CERTFILE"),
        ({"ZONEAPP_CLUSTER_SECRET": "short"}, "at least 32 bytes"),
        ({"ZONEAPP_METRICS_PUBLIC": "maybe"}, "ZONEAPP_METRICS_PUBLIC"),
        ({"ZONEAPP_AUTH_RATE": "0"}, "ZONEAPP_AUTH_RATE"),
    ],
)
def test_bad_web_security_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_a_certificate_needs_its_key(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="go together"):
        Settings.from_env({"ZONEAPP_WEB_TLS_CERTFILE": str(cert)})
