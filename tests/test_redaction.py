"""One rule hides secrets in URIs and in text (messages, logs, the report, bundle manifests)."""

from __future__ import annotations

import pytest

from ticker_registry import RegistryError, SampleStore, StoreError
from ticker_registry.redaction import redact_text, redact_uri
from ticker_registry.store.retry import translate_errors


@pytest.mark.parametrize("uri, shown", [
    ("http://user:pw@host:5000/x", "http://user:***@host:5000/x"),
    ("postgresql+psycopg2://u:s3cr%40t@db:5432/mlflow", "postgresql+psycopg2://u:***@db:5432/mlflow"),
    ("https://host/api?token=abc&x=1", "https://host/api?token=***&x=1"),
    ("sqlite:////var/lib/mlflow.db", "sqlite:////var/lib/mlflow.db"),
    ("http://host:5000", "http://host:5000"),
])
def test_redact_uri(uri, shown):
    assert redact_uri(uri) == shown


def test_redact_text_finds_every_uri():
    text = "could not reach http://a:b@h1/ nor postgresql://c:d@h2/db"
    assert redact_text(text) == "could not reach http://a:***@h1/ nor postgresql://c:***@h2/db"


def test_registry_and_store_errors_never_show_a_password():
    with pytest.raises(RegistryError) as caught, translate_errors("http://user:hunter2@127.0.0.1:9"):
        raise ConnectionError("Connection refused by http://user:hunter2@127.0.0.1:9/api")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(StoreError) as stored:
        SampleStore("postgresql+psycopg2://u:hunter2@127.0.0.1:9/x").count()
    assert "hunter2" not in str(stored.value)
