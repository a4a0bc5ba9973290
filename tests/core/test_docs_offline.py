"""The documentation pages (Swagger UI at /docs, ReDoc at /redoc) need nothing from outside the
service: every script, stylesheet and icon they name is the API's own and answers.

In-process and without a database: the pages and their assets touch neither. The browser test
beside this one renders /docs of a running server with the network closed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from services.api.app import create_app

# What the browser is told a file is, by its ending; anything else it would refuse to run or apply.
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


@pytest.fixture(scope="module")
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app()), base_url="http://testserver"
    ) as c:
        yield c


def _references(page: str) -> list[str]:
    """Every URL the page loads: src and href attributes, and the spec URL of either UI."""
    found = re.findall(r'\b(?:src|href|spec-url)="([^"]+)"', page)
    found += re.findall(r"\burl: '([^']+)'", page)
    return found


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
        ("/redoc", {"redoc.standalone.js", "favicon.png"}),
    ],
)
async def test_the_docs_page_names_no_cdn_and_every_asset_it_names_answers(
    client: httpx.AsyncClient, page: str, assets: set[str]
) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    # No absolute URL of any kind: not http(s), not protocol-relative.
    assert not re.search(r"https?:|[\"'(]//", html), html

    references = _references(html)
    assert {ref.rsplit("/", 1)[-1] for ref in references} >= assets | {"openapi.json"}, references
    for ref in references:
        assert ref.startswith("/"), ref
        asset = await client.get(ref)
        assert asset.status_code == 200, ref
        suffix = ref[ref.rfind(".") :]
        assert asset.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], (ref, asset.headers)
        assert len(asset.content) > 1000, ref


async def test_the_assets_are_the_real_bundles(client: httpx.AsyncClient) -> None:
    """Not placeholders: the scripts define what the pages call."""
    swagger = (await client.get("/docs-assets/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in swagger
    redoc = (await client.get("/docs-assets/redoc.standalone.js")).text
    assert "Redoc" in redoc


async def test_swagger_ui_asks_no_outside_validator(client: httpx.AsyncClient) -> None:
    """Swagger UI's default shows a badge image from validator.swagger.io."""
    assert '"validatorUrl": null' in (await client.get("/docs")).text


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_the_browser_is_told_to_load_nothing_from_outside_the_service(
    client: httpx.AsyncClient, page: str
) -> None:
    """ReDoc asks cdn.redoc.ly for a logo whatever it is told; the policy stops that request."""
    policy = (await client.get(page)).headers["content-security-policy"]
    assert policy == "default-src 'self' 'unsafe-inline' data: blob:"


async def test_the_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text


async def test_a_missing_asset_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs-assets/nothing-here.js")
    assert response.status_code == 404


def test_the_docs_routes_stay_out_of_the_openapi_document() -> None:
    paths = create_app().openapi()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
