"""Swagger UI at /docs works with no internet: headless Chromium sees the operations."""

from __future__ import annotations

from playwright.sync_api import sync_playwright

from tests.live_server import LiveServer
from workers.browser.runtime import CHROMIUM_ARGS, find_chromium


def test_docs_page_lists_the_operations_offline(app):
    requested: list[str] = []
    with LiveServer(app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(f"{server.url}/docs", wait_until="networkidle")
            page.wait_for_selector(".opblock-summary-path", timeout=15000)
            paths = set(page.locator(".opblock-summary-path").all_inner_texts())
            title = page.locator(".title").first.inner_text()
        finally:
            browser.close()
    assert "ZapHub" in title
    expected = {
        "/session",
        "/session/stats",
        "/session/cleanup",
        "/session/sync",
        "/session/{name}",
        "/session/{name}/details",
        "/session/{name}/restart",
        "/session/{name}/qr",
        "/jobs/{job_id}",
        "/health",
    }
    assert expected <= {p.replace("\u200b", "") for p in paths}
    assert requested and all(url.startswith(server.url) for url in requested)


def test_openapi_document_describes_auth_and_routes(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "/session/{name}/qr" in spec["paths"]
    assert set(spec["paths"]["/session"]) >= {"get", "post"}
    assert "422" in spec["paths"]["/session"]["post"]["responses"]
