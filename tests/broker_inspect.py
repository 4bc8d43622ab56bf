"""Reading what was published to a queue, straight from Redis (no worker involved)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

import redis


@dataclass
class Published:
    task: str
    args: list


def published(client: redis.Redis, prefix: str, queue: str) -> list[Published]:
    """Every message waiting on ``queue`` under the run's key prefix, oldest first."""
    messages = []
    for raw in reversed(client.lrange(f"{prefix}{queue}", 0, -1)):
        envelope = json.loads(raw)
        body = json.loads(base64.b64decode(envelope["body"]))
        messages.append(Published(envelope["headers"]["task"], body[0]))
    return messages


def drain(client: redis.Redis, prefix: str, *queues: str) -> None:
    """Drop every message waiting on ``queues``."""
    for queue in queues:
        client.delete(f"{prefix}{queue}")
