from __future__ import annotations

import logging

import pytest

from halsosamtal.core.logging import RedactPersonalNumbers, redact


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
