"""Bounded input types: ids and counters that fit the database's 64-bit (ids) and 32-bit
(counters) integer columns, so an out-of-range number is a 422, never a database overflow; and
search/filter text that PostgreSQL can store (no NUL characters) and that stays short."""

from __future__ import annotations

from typing import Annotated, Any

from ninja import Query, Schema
from ninja.pagination import LimitOffsetPagination
from pydantic import Field

MAX_ID = 2**63 - 1
MAX_COUNTER = 2**31 - 1

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Counter = Annotated[int, Field(ge=0, le=MAX_COUNTER)]
# PostgreSQL refuses NUL in any text it is given, a filter value included: a 422, not a 500.
NO_NUL = r"^[^\x00]*$"
FilterText = Annotated[str, Field(max_length=200, pattern=NO_NUL)]


def filter_param(default: str = "") -> Any:
    """A text query parameter of a list endpoint, bounded like FilterText. (A plain default
    rather than the Annotated type: @paginate builds its model where string annotations
    cannot be resolved.)"""
    return Query(default, max_length=200, pattern=NO_NUL)


class Pagination(LimitOffsetPagination):
    """limit/offset paging with both bounded (ninja leaves the offset unbounded, and a huge
    offset overflows the database's integer)."""

    class Input(Schema):
        limit: int = Field(100, ge=1, le=1000)
        offset: int = Field(0, ge=0, le=MAX_COUNTER)
