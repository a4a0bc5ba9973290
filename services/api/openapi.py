"""Write the OpenAPI document to ``openapi/openapi.json``: ``python -m services.api.openapi``.

A test fails when the committed file differs from what the app generates."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from halsosamtal.core.settings import PROJECT_ROOT
from services.api.app import create_app

OPENAPI_PATH = PROJECT_ROOT / "openapi" / "openapi.json"


def document() -> dict[str, Any]:
    return create_app().openapi()


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main(path: Path = OPENAPI_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {path.relative_to(PROJECT_ROOT)}\n")


if __name__ == "__main__":
    main()
