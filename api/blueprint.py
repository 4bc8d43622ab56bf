"""The API's Blueprint: flask-smorest's, reading JSON bodies with the strict parser."""

from __future__ import annotations

from typing import Any

import flask
import flask_smorest
from flask_smorest.utils import resolve_schema_instance
from marshmallow import Schema
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from api.json_body import InvalidJsonBody, NonStandardNumber, parse_body
from api.schemas.fast_dump import with_fast_dump


class StrictJsonParser(FlaskParser):
    """webargs' Flask parser with :func:`api.json_body.parse_body` for bodies.

    A body that cannot be parsed is 400 "invalid JSON body"; a ``NaN``/``Infinity``
    is 422 naming the member that holds it, like any other invalid value.
    """

    def load_json(self, req: flask.Request, schema: Schema) -> Any:
        """The parsed body, or ``missing`` when there is none (or it is not JSON)."""
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        if not raw:
            return core.missing
        try:
            return parse_body(raw.decode("utf-8"))
        except (UnicodeDecodeError, InvalidJsonBody) as exc:
            abort(400, exc=exc, message="invalid JSON body", messages={"json": [str(exc)]})
        except NonStandardNumber as exc:
            abort(422, exc=exc, messages={"json": {exc.field: [str(exc)]}})


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint: arguments through :class:`StrictJsonParser`, answers dumped fast.

    Response schemas dump through :func:`api.schemas.fast_dump.with_fast_dump` (the same
    JSON as marshmallow, without its per-field overhead on every row of a list).
    """

    ARGUMENTS_PARSER = StrictJsonParser()

    def response(self, status_code, schema=None, **kwargs):
        """flask-smorest's ``response``, with the schema's dump made fast."""
        return super().response(status_code, with_fast_dump(resolve_schema_instance(schema)), **kwargs)
