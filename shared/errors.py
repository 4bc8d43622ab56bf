"""Domain errors raised by services; the API turns each into one HTTP status."""

from __future__ import annotations


class ZapHubError(Exception):
    """Base of every domain error; ``message`` is safe to show to a client."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ZapHubError):
    """The thing does not exist for this company (or at all: the two look alike)."""

    status_code = 404


class Conflict(ZapHubError):
    """The request collides with the current state (duplicate name, wrong status)."""

    status_code = 409


class InvalidInput(ZapHubError):
    """A value is not acceptable; ``field`` names it, ``location`` says where it came from."""

    status_code = 422

    def __init__(self, field: str, message: str, location: str = "json") -> None:
        super().__init__(message)
        self.field = field
        self.location = location


class Unavailable(ZapHubError):
    """A dependency (broker, database) cannot be reached right now."""

    status_code = 503
