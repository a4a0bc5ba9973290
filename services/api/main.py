"""ASGI entry point: ``uvicorn services.api.main:app``."""

from halsosamtal.core.logging import configure_logging
from halsosamtal.core.settings import get_settings
from services.api.app import create_app

# Before the server's own first lines ("Started server process", ...), so they are shaped and
# masked like every other (JSON with HALSOSAMTAL_LOG_FORMAT=json).
configure_logging(get_settings())
app = create_app()
