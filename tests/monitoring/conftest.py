# Fixtures other tests own: a Redis database of the test's own (1-15, emptied afterwards) and a
# `marlin serve` site on a free port with its own data directory and SQLite file.
from tests.checks.test_rq import redis_url  # noqa: F401
from tests.management.test_serve import site  # noqa: F401
