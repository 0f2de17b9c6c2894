"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served with
their scripts and styles from this server, so that they work without internet.

FastAPI's own pages load Swagger UI and ReDoc from a CDN; a server on a machine without
internet (or a browser that blocks third-party scripts) then shows a blank page. The
assets come from the `fastapi-offline` package, which ships them; only its files are
used, through FastAPI's documented hooks for self-hosted docs.
"""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "install_docs"]

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_PREFIX = "/docs-assets"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _redoc_script() -> bytes:
    """ReDoc's script with its one outside address pointed at a file of ours."""
    script = (DOCS_ASSETS / "redoc.standalone.js").read_bytes()
    return script.replace(_REDOC_LOGO, f"{_PREFIX}/favicon.png".encode())


def install_docs(app: FastAPI) -> None:
    """Add /docs and /redoc to `app` (made with `docs_url=None, redoc_url=None`)."""
    app.mount(_PREFIX, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{_PREFIX}/favicon.png",
        )

    @app.get("/docs-redoc.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(_redoc_script(), media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            redoc_js_url="/docs-redoc.js",
            redoc_favicon_url=f"{_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
