from __future__ import annotations

from services.api.openapi import OPENAPI_PATH, document, render


def test_committed_openapi_document_matches_the_app() -> None:
    assert OPENAPI_PATH.exists(), "run `make openapi` to write openapi/openapi.json"
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render(), (
        "openapi/openapi.json is out of date: run `make openapi` and commit it"
    )


def test_every_operation_has_a_stable_id_a_description_and_problem_responses() -> None:
    ids = []
    for path, operations in document()["paths"].items():
        for method, op in operations.items():
            assert op.get("operationId"), f"{method} {path} has no operation_id"
            assert op.get("description") or op.get("summary"), f"{method} {path} has no docstring"
            ids.append(op["operationId"])
            if path not in ("/healthz", "/readyz"):
                for status in ("401", "403"):
                    content = op["responses"][status]["content"]
                    assert "application/problem+json" in content, f"{method} {path} {status}"
    assert len(ids) == len(set(ids))
