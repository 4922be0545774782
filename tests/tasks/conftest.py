import pytest


@pytest.fixture
def demo_repository(db):
    from marlin.demo.load import ensure_demo_repository

    return ensure_demo_repository()


@pytest.fixture
def project(erin):
    from marlin.tasks.actions import do_create_project

    return do_create_project(erin, "Pilot", min_rationale_chars=40)
