"""/health and the token gate."""

from __future__ import annotations

from collections.abc import Callable

import httpx


async def test_health_reports_database_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_health_is_503_when_the_database_is_unreachable(serve: Callable[..., str], tmp_path) -> None:
    from haunt_fm.app import create_app
    from tests.conftest import make_settings
    from tests.support.live_server import LiveServer

    dead = "postgresql://postgres:s3cret@127.0.0.1:1/nothing"
    app = create_app(make_settings(tmp_path, dead), database_url=dead, start_background=False)
    with LiveServer(app) as server:
        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.get(server.url + "/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["database"] and body["database"] != "ok"
    assert "s3cret" not in response.text


async def test_token_protects_api_but_not_health(serve: Callable[..., str]) -> None:
    url = serve(api_token="let-me-in")
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/health")).status_code == 200
        denied = await http.get("/api/profiles")
        assert denied.status_code == 401
        assert "Bearer" in denied.json()["detail"]
        wrong = await http.get("/api/profiles", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await http.get("/api/profiles", headers={"Authorization": "Bearer let-me-in"})
        assert ok.status_code == 200
        assert "let-me-in" not in ok.text


async def test_openapi_docs_are_served(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    for path in (
        "/health",
        "/api/history/webhook",
        "/api/history/recent",
        "/api/profiles",
        "/api/profiles/{name}",
        "/api/profiles/{name}/speakers",
        "/api/status",
    ):
        assert path in spec["paths"], path
    assert (await client.get("/docs")).status_code == 200


async def test_a_wrong_method_gets_405_with_every_allowed_method(client: httpx.AsyncClient) -> None:
    r = await client.delete("/api/feedback")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["error"] == "method_not_allowed"
    r = await client.post("/api/profiles/default")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, GET"


async def test_openapi_documents_the_token_and_every_error_body(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/openapi.json")).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "HAUNTFM_API_TOKEN, when it is set; without it the API is open.",
    }
    feedback = doc["paths"]["/api/feedback"]["post"]
    assert feedback["security"] == [{"bearer": []}, {}]
    for code in ("401", "404", "413", "422", "500", "503"):
        assert "content" in feedback["responses"][code], code
    assert feedback["responses"]["503"]["headers"]["Retry-After"]
    vibe = next(p for p in doc["paths"]["/api/recommendations"]["get"]["parameters"] if p["name"] == "vibe")
    assert vibe["schema"]["anyOf"][0]["maxLength"] == 200  # the limit the server enforces


async def test_docs_work_without_internet(client: httpx.AsyncClient) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        html = (await client.get(page)).text
        # Every script and stylesheet comes from this server: nothing on a CDN.
        assert "http://" not in html.replace(str(client.base_url), "") and "https://" not in html
        assert f"/static-offline-docs/{asset}" in html
        served = await client.get(f"/static-offline-docs/{asset}")
        assert served.status_code == 200 and len(served.content) > 100_000
