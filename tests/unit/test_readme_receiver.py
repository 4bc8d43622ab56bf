"""The README's five-line webhook receiver verifies a real ZapHub signature, and nothing else."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from shared.webhooks.signing import new_secret, signature_headers

README = Path(__file__).resolve().parents[2] / "README.md"


def receiver_app(secret: str):
    """The README's receiver, run as written with ``secret`` put in."""
    text = README.read_text()
    code = re.search(r"verifies a delivery in five lines.*?```python\n(.*?)```", text, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    scope: dict = {"__name__": "readme_receiver"}
    exec(code.replace('"whsec_P2c…"', repr(secret)), scope)  # noqa: S102 - our own README
    return scope["app"]


def test_the_readme_receiver_accepts_a_signed_delivery_and_refuses_a_forged_one(capsys):
    secret = new_secret()
    client = receiver_app(secret).test_client()
    body = '{"id":"01KB4X2M7Q8C2Y9N3E5W6T7R8S","type":"session.status","seq":7,"data":{}}'
    headers = signature_headers([secret], "01KB4X2M7Q8C2Y9N3E5W6T7R8S", datetime.now(UTC), body)
    assert client.post("/zaphub", data=body, headers=headers).status_code == 204
    assert capsys.readouterr().out == "session.status 7\n"
    forged = client.post("/zaphub", data=body.replace('"seq":7', '"seq":8'), headers=headers)
    assert forged.status_code == 500
    other = signature_headers([new_secret()], "01KB4X2M7Q8C2Y9N3E5W6T7R8S", datetime.now(UTC), body)
    assert client.post("/zaphub", data=body, headers=other).status_code == 500
