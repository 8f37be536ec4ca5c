"""Only a platform superuser changes a project's Pod Security level and quotas (admin site);
the namespace follows at once."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.test import Client

from k8x_core import kube
from k8x_core.models import Project
from k8x_core.runs.namespaces import QUOTA_NAME, project_namespace_ensure

pytestmark = pytest.mark.cluster


def _form(project: Project, **changes: str) -> dict[str, str]:
    data = {
        "slug": project.slug,
        "name": project.name,
        "description": "",
        "namespace": project.namespace,
        "pod_security_level": project.pod_security_level,
        "quota": "{}",
        "limits": "{}",
    }
    data.update(changes)
    return data


def _client(*, is_superuser: bool) -> Client:
    user = User.objects.create_user(
        username=f"staff-{is_superuser}",
        password="admin-test-pw-1",
        is_staff=True,
        is_superuser=is_superuser,
    )
    client = Client()
    client.force_login(user)
    return client


def test_superuser_lowers_the_level_and_the_namespace_follows(project: Project) -> None:
    project_namespace_ensure(project=project)
    url = f"/admin/k8x_core/project/{project.pk}/change/"

    staff = _client(is_superuser=False)
    response = staff.get(url)
    if response.status_code == 200:
        # A staff member may see the project, but the level is not a form field for them.
        assert 'name="pod_security_level"' not in response.content.decode()

    root = _client(is_superuser=True)
    assert 'name="pod_security_level"' in root.get(url).content.decode()
    page = root.post(url, _form(project, pod_security_level="privileged"))
    assert page.status_code == 200 and "privileged is not one of the available choices" in page.content.decode()
    response = root.post(url, _form(project, pod_security_level="baseline", quota='{"pods": "5"}'))
    assert response.status_code == 302, response.content.decode()[-3000:]
    project.refresh_from_db()
    assert (project.pod_security_level, project.quota) == ("baseline", {"pods": "5"})
    ns = kube.call("GET", f"/api/v1/namespaces/{project.namespace}")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    quota = kube.call("GET", f"/api/v1/namespaces/{project.namespace}/resourcequotas/{QUOTA_NAME}")
    assert quota["spec"]["hard"]["pods"] == "5"


def test_the_database_refuses_privileged(project: Project) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Project.objects.filter(pk=project.pk).update(pod_security_level="privileged")
