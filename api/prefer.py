"""RFC 7240 ``Prefer: wait=N`` on routes that answer a job: the finished job at once, if quick.

A client that sends ``Prefer: wait=10`` with ``POST /session/cleanup`` gets ``200`` with
the finished job when it finishes within those seconds, else ``202`` with the job as it
is then (to follow with ``GET /jobs/<id>``), as without the header. The wait is bounded
like ``GET /jobs/<id>?wait=`` (``JOB_WAIT_MAX_SECONDS``), and the wait actually applied is
named in ``Preference-Applied``. A preference that cannot be read is ignored, as the RFC
asks, rather than refused: the answer is then the plain ``202``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import request

from api.extensions import state, unit_of_work
from shared.jobs import FINISHED_JOB_STATUSES
from shared.models import Job
from shared.services.jobs import await_job

# flask-smorest's (body, status, headers): the status and headers override the route's.
JobAnswer = Job | tuple[Job, int, dict[str, str]]


def preferred_wait(headers: Iterable[str], longest: float) -> int | None:
    """The ``wait`` preference of ``Prefer`` header values in seconds, at most ``longest``;
    ``None`` when there is none, it is not a number of seconds, or it is zero.

    Preferences are comma-separated, each ``name[=value]`` with ``;`` parameters; names
    are case-insensitive and the first occurrence of one counts (RFC 7240, section 2).
    """
    for header in headers:
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() != "wait":
                continue
            value = value.strip().strip('"')
            # delta-seconds: digits only (no sign, no fraction, no exponent).
            if not value.isascii() or not value.isdigit():
                return None
            seconds = min(int(value), int(longest))
            return seconds or None
    return None


def answer_job(job: Job) -> JobAnswer:
    """``job`` as the route's ``202``, or, under ``Prefer: wait=N``, waited for up to N seconds
    and answered ``200`` when it finished (``202`` when it has not)."""
    settings = state().settings
    wait = preferred_wait(request.headers.getlist("Prefer"), settings.JOB_WAIT_MAX_SECONDS)
    if wait is None:
        return job
    # No lock, transaction or connection of the request is held while waiting (a coalesced
    # request still holds its company's row lock): the request's unit of work ends here.
    unit_of_work().close()
    waited = await_job(settings, job.company_id, job.id, wait)
    status = 200 if waited.status in FINISHED_JOB_STATUSES else 202
    return waited, status, {"Preference-Applied": f"wait={wait}"}
