"""A bare Celery task for the webhook benchmark's baseline: POST a body to a URL, nothing else.

Run by ``celery -A tests.bench_celery worker`` on the run's broker (the settings come from
the environment, like the webhook worker's), it measures what a publish → broker → thread
pool → POST round trip costs without the outbox, the claim, the signing and the record.
"""

from __future__ import annotations

import urllib3

from shared.celery_factory import create_celery
from shared.config import get_settings

BARE_POST_TASK = "zaphub.bench.bare_post"
BARE_QUEUE = "bench-bare"

app = create_celery(get_settings(), include=[])


def post_fresh(url: str, body: str, message_id: str) -> int:
    """One POST on a connection of its own (a webhook attempt opens one each time); the status."""
    parsed = urllib3.util.parse_url(url)
    pool = urllib3.HTTPConnectionPool(
        parsed.host, parsed.port, maxsize=1, retries=False, timeout=urllib3.Timeout(connect=1, read=2)
    )
    try:
        response = pool.request(
            "POST",
            parsed.request_uri,
            body=body.encode(),
            headers={"content-type": "application/json", "webhook-id": message_id},
        )
        return response.status
    finally:
        pool.close()


@app.task(name=BARE_POST_TASK)
def bare_post(url: str, body: str, message_id: str) -> None:
    """The whole task: one POST."""
    post_fresh(url, body, message_id)
