from __future__ import annotations

import uuid

import pytest

from k8x_core.apikeys import apikey_create
from k8x_core.projects import project_ensure
from tests.k8x_core.ingest.kafka_support import topic_create, topic_delete


@pytest.fixture
def topic(settings):
    """A topic of this test's own; the bridge produces to it."""
    name = f"test.events.{uuid.uuid4().hex}"
    topic_create(name)
    settings.K8X_EVENTS_TOPIC = name
    yield name
    topic_delete(name)


@pytest.fixture
def project(db):
    return project_ensure(slug=f"p-{uuid.uuid4().hex[:8]}")[0]


@pytest.fixture
def other_project(db):
    return project_ensure(slug=f"o-{uuid.uuid4().hex[:8]}")[0]


@pytest.fixture
def api_key(project):
    """The raw key of a key of ``project``."""
    return apikey_create(project=project, name="test")[1]
