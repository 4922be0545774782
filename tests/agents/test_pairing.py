"""The pair sampler (properties over many pools and seeds) and pairing a project's tasks."""

from __future__ import annotations

import random
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marlin.agents import actions
from marlin.agents.models import Provider, Run
from marlin.agents.pairing import (
    PairingError,
    PairSampler,
    choose_pair,
    do_pair_task,
    do_pair_tasks,
    pair_key,
    project_pair_counts,
)
from marlin.audit.models import AuditEvent
from marlin.tasks import actions as task_actions

pools = st.lists(st.integers(min_value=1, max_value=10_000), min_size=2, max_size=8, unique=True)


@given(pool=pools, seed=st.integers(), draws=st.integers(min_value=1, max_value=200))
@settings(max_examples=150, deadline=None)
def test_it_never_pairs_an_agent_with_itself_and_keeps_pairs_balanced_within_one(
    pool: list[int], seed: int, draws: int
) -> None:
    sampler = PairSampler(pool, seed=seed)
    for _ in range(draws):
        a, b = sampler.draw()
        assert a != b and a in pool and b in pool
    all_pairs = [pair_key(a, b) for a, b in combinations(pool, 2)]
    counts = [sampler.counts[p] for p in all_pairs]
    assert max(counts) - min(counts) <= 1
    assert sum(counts) == draws


@given(pool=pools, seed=st.integers(), draws=st.integers(min_value=1, max_value=50))
@settings(max_examples=100, deadline=None)
def test_the_same_seed_gives_the_same_choices(pool: list[int], seed: int, draws: int) -> None:
    first = PairSampler(pool, seed=seed)
    second = PairSampler(list(reversed(pool)), seed=seed)
    assert [first.draw() for _ in range(draws)] == [second.draw() for _ in range(draws)]


@given(
    pool=pools,
    history=st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), max_size=40),
    seed=st.integers(),
)
@settings(max_examples=100, deadline=None)
def test_it_takes_a_least_compared_pair_given_any_history(
    pool: list[int], history: list[tuple[int, int]], seed: int
) -> None:
    counts: dict[tuple[int, int], int] = {}
    for i, j in history:
        a, b = pool[i % len(pool)], pool[j % len(pool)]
        if a != b:
            counts[pair_key(a, b)] = counts.get(pair_key(a, b), 0) + 1
    chosen = pair_key(*choose_pair(pool, counts, random.Random(seed)))
    fewest = min(counts.get(pair_key(a, b), 0) for a, b in combinations(pool, 2))
    assert counts.get(chosen, 0) == fewest


def test_pairs_to_avoid_are_skipped_while_others_remain() -> None:
    rng = random.Random(1)
    for _ in range(20):
        assert pair_key(*choose_pair([1, 2, 3], {}, rng, avoid=[(1, 2), (1, 3)])) == (2, 3)
    # Only when every pair is to be avoided does one of them come back.
    assert pair_key(*choose_pair([1, 2], {}, rng, avoid=[(1, 2)])) == (1, 2)


def test_a_pool_of_fewer_than_two_agents_is_refused_with_a_reason() -> None:
    with pytest.raises(PairingError, match="add at least two"):
        choose_pair([7, 7], {}, random.Random(0))


@pytest.fixture
def project_with_pool(db, erin, dave):
    from marlin.demo.load import ensure_demo_repository

    repository = ensure_demo_repository()
    project = task_actions.do_create_project(erin, "Pairing")
    agents = [
        actions.do_create_agent(
            dave, name=f"agent-{n}", provider=Provider.COMMAND, settings={"argv": ["true"]}
        )
        for n in range(3)
    ]
    actions.do_set_agent_pool(erin, project, agents, reason="three agents")
    tasks = [
        task_actions.do_create_task(
            dave,
            project,
            repository=repository,
            base_ref="main",
            base_commit="0" * 40,
            title=f"task {n}",
            kind="feature",
            prompt=f"Do thing {n}.",
            checks=[],
        )
        for n in range(6)
    ]
    return project, agents, tasks


def test_pairing_a_task_starts_two_partner_runs_of_different_agents(
    project_with_pool, dave
) -> None:
    project, agents, tasks = project_with_pool
    first, second = do_pair_task(dave, tasks[0], seed=3)
    assert first.agent_id != second.agent_id
    assert first.partner_id == second.pk and second.partner_id == first.pk
    assert first.turns.get().prompt == "Do thing 0."
    assert AuditEvent.objects.filter(verb="project.pair_tasks").count() == 1


def test_pairing_many_tasks_balances_the_pairs_and_repeats_with_the_seed(
    project_with_pool, dave
) -> None:
    project, agents, tasks = project_with_pool
    pairs = do_pair_tasks(dave, project, tasks, seed=11)
    counts = project_pair_counts(project)
    assert sorted(counts.values()) == [2, 2, 2]  # 6 tasks over 3 possible pairs
    chosen = [(a.agent_id, b.agent_id) for a, b in pairs]
    # Same history and seed: the same choices.
    Run.objects.all().delete()
    again = [(a.agent_id, b.agent_id) for a, b in do_pair_tasks(dave, project, tasks, seed=11)]
    assert again == chosen


def test_import_agents_cannot_join_a_pool(project_with_pool, erin, dave) -> None:
    from django.core.exceptions import ValidationError

    project, agents, _ = project_with_pool
    label = actions.do_create_agent(dave, name="preds", provider=Provider.IMPORT, settings={})
    with pytest.raises(ValidationError, match="Import agents cannot be in a pool"):
        actions.do_set_agent_pool(erin, project, [*agents, label])


def test_only_authors_pair_tasks(project_with_pool, alice) -> None:
    from django.core.exceptions import PermissionDenied

    _, _, tasks = project_with_pool
    with pytest.raises(PermissionDenied):
        do_pair_task(alice, tasks[0])
