"""Bounded input types: ids and counters that fit the database's 64-bit (ids) and 32-bit
(counters) integer columns, so an out-of-range number is a 422, never a database overflow."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_ID = 2**63 - 1
MAX_COUNTER = 2**31 - 1
MAX_SECONDS = 7 * 24 * 3600

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Seconds = Annotated[int, Field(ge=0, le=MAX_SECONDS)]
Counter = Annotated[int, Field(ge=0, le=MAX_COUNTER)]
