"""The console's files are public and locked down by CSP; ``GET /me`` tells the caller's role."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/sse.js", "text/javascript"),
        ("/console/i18n.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ],
)
def test_console_files_are_served_without_a_token_and_with_a_strict_csp(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_console_serves_nothing_outside_its_folder(client):
    assert client.get("/console/../app.py").status_code == 404
    assert client.get("/console/%2e%2e/console.py").status_code == 404
    assert client.get("/console/missing.js").status_code == 404


def test_console_page_loads_only_local_modules(client):
    html = client.get("/console").get_data(as_text=True)
    assert 'src="/console/app.js"' in html and "://" not in html


def test_me_tells_who_the_token_belongs_to(client, tenant):
    admin = client.get("/me", headers=tenant.admin).get_json()
    assert admin == {"email": "admin@acme.test", "role": "admin", "company": tenant.company_id}
    assert client.get("/me", headers=tenant.agent).get_json()["role"] == "agent"
    assert client.get("/me").status_code == 401
