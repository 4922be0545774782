"""Unified diffs: parse a patch into files, hunks and lines (`parse`), render them as escaped,
highlighted HTML rows (`render`). Plain Python: no Django, so the agents, the review pages, the
exports and the benchmarks share one parser."""
