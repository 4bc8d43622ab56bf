"""``GET /jobs/<id>``: follow a job of the caller's company."""

from api.auth import authenticate_request, company_id
from api.blueprint import Blueprint
from api.extensions import read_only, unit_of_work
from api.schemas.jobs import JobSchema, JobWaitArgsSchema
from shared.services.jobs import get_job

blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Jobs enqueued by the API")
blp.before_request(authenticate_request)


@blp.route("/<string:job_id>")
@blp.arguments(JobWaitArgsSchema, location="query")
@blp.response(200, JobSchema)
@read_only
def job(args, job_id: str):
    """One job: its status, result or error, and the worker that ran it.

    ``?wait=<seconds>`` holds the answer until the job finishes (at most that long), so a
    client gets the result as soon as it exists without polling.
    """
    return get_job(unit_of_work(), company_id(), job_id, wait=args["wait"])
