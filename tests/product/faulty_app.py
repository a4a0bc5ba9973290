"""The real API with one extra route that fails, for ``uvicorn tests.product.faulty_app:app``.

A product test cannot make the real app fail on purpose; this module builds exactly the app
``halsosamtal api`` serves (``services.api.app.create_app``, its error handlers and middleware)
and adds a route that raises, so that what a real server does after an unexpected error (the
answer, the log, the connection) can be watched over a real socket.
"""

from __future__ import annotations

from services.api.app import create_app

FAILING_PATH = "/product-test/fail"  # outside /v1: no API key asked at the door
FAILURE_MESSAGE = "product test: a deliberate failure"

app = create_app()


@app.get(FAILING_PATH, include_in_schema=False)
async def fail() -> None:
    """Fail as a bug would."""
    raise RuntimeError(FAILURE_MESSAGE)
