from __future__ import annotations

import logging
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from halsosamtal.core.logging import RedactingFormatter, RedactPersonalNumbers, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resident 19880320-0016 imported", "resident 19880320-**** imported"),
        ("resident 198803200016", "resident 19880320-****"),
        ("short 880320-0016 and 880320+0016", "short 880320-**** and 880320-****"),
        ("order 1234 of 99", "order 1234 of 99"),
        ("SE2321000131-E000000000123", "SE2321000131-E000000000123"),
    ],
)
def test_personal_numbers_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_log_filter_masks_formatted_arguments(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("halsosamtal.test")
    handler_filter = RedactPersonalNumbers()
    record = logger.makeRecord("x", logging.INFO, "f", 1, "looked up %s", ("19880320-0016",), None)
    assert handler_filter.filter(record)
    assert record.getMessage() == "looked up 19880320-****"


def test_a_traceback_is_masked_too() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise ValueError("[parameters: (9223372036854775808, '198701010228')]")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, "f", 1, "unhandled error", (), sys.exc_info()
        )
    text = formatter.format(record)
    assert "Traceback" in text
    assert "198701010228" not in text
    assert "19870101-****" in text


async def test_database_errors_do_not_carry_the_values(engine: AsyncEngine) -> None:
    """The engine hides a statement's parameters, so an error does not list them. (A driver's
    own message can still quote a value it could not convert: the log formatter masks those.)"""
    with pytest.raises(DBAPIError) as caught:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1 / (length(:value) - 12)"), {"value": "198701010228"})
    assert "division by zero" in str(caught.value)
    assert "198701010228" not in str(caught.value)
