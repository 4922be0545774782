"""Shared fixtures. Actors follow the house style: alice annotates, bob reviews, carol adjudicates,
dave authors tasks, erin administers, mallory is an outsider with no role."""
