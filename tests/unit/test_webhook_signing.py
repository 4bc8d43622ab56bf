"""Signatures are Standard Webhooks signatures: the reference library verifies them, for every secret."""

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from shared.webhooks.signing import new_secret, signature_headers

BODY = '{"type":"message.received","data":{"text":"olá"}}'


def test_new_secret_is_whsec_with_24_random_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24
    assert new_secret() != secret


def test_headers_verify_with_each_of_two_secrets():
    new, old = new_secret(), new_secret()
    now = datetime.now(UTC)
    headers = signature_headers([new, old], "msg_123", now, BODY)

    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-id"] == "msg_123"
    assert headers["webhook-timestamp"] == str(int(now.timestamp()))
    signatures = headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(sig.startswith("v1,") for sig in signatures)

    for secret in (new, old):
        assert Webhook(secret).verify(BODY, headers) == {"type": "message.received", "data": {"text": "olá"}}
        assert Webhook(secret).verify(BODY.encode(), headers) is not None


def test_a_secret_not_used_for_signing_does_not_verify():
    headers = signature_headers([new_secret()], "msg_1", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_tampered_body_id_or_timestamp_fails_verification():
    secret = new_secret()
    now = datetime.now(UTC)
    headers = signature_headers([secret], "msg_1", now, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace("olá", "olé"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-timestamp": str(int(now.timestamp()) - 1)})


def test_non_utc_timestamp_signs_the_same_instant():
    secret = new_secret()
    now = datetime.now(UTC)
    in_sao_paulo = now.astimezone(timezone(timedelta(hours=-3)))
    headers = signature_headers([secret], "msg_tz", in_sao_paulo, BODY)
    assert headers == signature_headers([secret], "msg_tz", now, BODY)
    Webhook(secret).verify(BODY, headers)


def test_invalid_arguments_raise_value_error():
    with pytest.raises(ValueError, match="secret"):
        signature_headers([], "msg_1", datetime.now(UTC), BODY)
    with pytest.raises(ValueError, match="timezone-aware"):
        signature_headers([new_secret()], "msg_1", datetime.now(), BODY)
    with pytest.raises(ValueError, match="msg_id"):
        signature_headers([new_secret()], "msg 1\r\n", datetime.now(UTC), BODY)
    with pytest.raises(ValueError, match="empty"):
        signature_headers(["whsec_"], "msg_1", datetime.now(UTC), BODY)
