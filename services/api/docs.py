"""The API's documentation pages, Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with every
asset served by the API itself.

FastAPI's own pages load their JavaScript, CSS and favicon from a CDN, so they render blank in a
closed regional network. This follows FastAPI's recipe "Self-hosting JavaScript and CSS for
docs": the stock pages are turned off (``docs_url=None, redoc_url=None`` in the app factory) and
rebuilt here on top of the files that the PyPI package ``fastapi-offline`` ships in its
``static`` folder (Swagger UI's ``swagger-ui-bundle.js`` and ``swagger-ui.css``, ReDoc's
``redoc.standalone.js``, FastAPI's ``favicon.png``). Updating that package updates the assets.

Nothing on the pages reaches outside the service: Swagger UI's online validator badge (an image
from validator.swagger.io) is turned off, ReDoc's Google Fonts stylesheet is left out, and a
Content-Security-Policy lets the pages load only from the service itself. ReDoc's side menu
always asks cdn.redoc.ly for a "Redocly" logo (ReDoc 2.5 has no option to turn it off); the
policy stops that request in the browser, and ReDoc hides the image when it does not load.

The pages are public like FastAPI's own (the OpenAPI document they read is too) and stay out of
the OpenAPI document, so ``openapi/openapi.json`` does not change.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs-assets"
# The package and the folder inside it that hold the files; StaticFiles checks the folder exists
# when the app is built, so a package that moved its files fails at start-up, not in a browser.
ASSETS_PACKAGE = ("fastapi_offline", "static")

SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"

# Swagger UI shows a badge loaded from validator.swagger.io unless this is null.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}

# Only the service's own URLs, plus what the UIs make in the page: their inline start-up script
# and styles, data: images and blob: workers. Nothing is fetched from, or told to, anyone else.
CONTENT_SECURITY_POLICY = "default-src 'self' 'unsafe-inline' data: blob:"


def _own_assets_only(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, its OAuth2 redirect page and ``/redoc`` from assets the API serves itself.

    The app must be built with ``docs_url=None`` and ``redoc_url=None`` so that FastAPI's
    CDN-backed pages are not registered first."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the documentation pages need the app's OpenAPI document")
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"
    parameters = {**SWAGGER_UI_PARAMETERS, **(app.swagger_ui_parameters or {})}

    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    def prefix(request: Request) -> str:
        # URLs are relative to the server, under a proxy's prefix when there is one, as in
        # FastAPI's own pages.
        return str(request.scope.get("root_path", "")).rstrip("/")

    def asset(request: Request, name: str) -> str:
        return f"{prefix(request)}{ASSETS_URL}/{name}"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return _own_assets_only(
            get_swagger_ui_html(
                openapi_url=f"{prefix(request)}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=f"{prefix(request)}{redirect_url}",
                swagger_js_url=asset(request, SWAGGER_JS),
                swagger_css_url=asset(request, SWAGGER_CSS),
                swagger_favicon_url=asset(request, FAVICON),
                swagger_ui_parameters=parameters,
            )
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _own_assets_only(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return _own_assets_only(
            get_redoc_html(
                openapi_url=f"{prefix(request)}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=asset(request, REDOC_JS),
                redoc_favicon_url=asset(request, FAVICON),
                with_google_fonts=False,
            )
        )
