"""Page-number pagination shared by every paginated list: its arguments and its answer."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

# Deep pages cost the database a scan of every row before them, and a page number
# near 2**63 overflows the OFFSET: pages reach this many rows in, no further.
MAX_LIST_OFFSET = 100_000


class PageArgsSchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_LIST_OFFSET + 1))
    per_page = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))

    @validates_schema
    def page_within_reach(self, data, **_kwargs):
        if (data["page"] - 1) * data["per_page"] > MAX_LIST_OFFSET:
            raise ValidationError(
                f"page is too far: pages may start at most {MAX_LIST_OFFSET} rows in", "page"
            )


class PageSchema(Schema):
    """The answer's page fields; a list's schema adds its ``items``."""

    total = fields.Integer(dump_only=True)
    page = fields.Integer(dump_only=True)
    per_page = fields.Integer(dump_only=True)
    pages = fields.Function(lambda p: -(-p.total // p.per_page), dump_only=True)
