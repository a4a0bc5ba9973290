"""SMS sizing by GSM 03.38 (3GPP TS 23.038) and the phone numbers an SMS can reach.

A message is sent in the GSM 7-bit default alphabet when every character is in its basic table
or its extension table (an extension character costs two septets: ESC + the character).
Otherwise the whole message goes as UCS-2, 16 bits per UTF-16 code unit, so a character outside
the Basic Multilingual Plane (most emoji) costs two units. A single SMS holds 160 septets or 70
units; a concatenated one loses room to the user data header and holds 153 septets or 67 units
per segment. Phones do not split an escape pair or a surrogate pair across segments, so the
segment count is found by packing, not by dividing the length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

# The basic table in code-point order (0x00-0x7F). 0x1B is the escape to the extension table
# and is not a character of its own, so it is left out of the set below.
_GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
GSM7_BASIC = frozenset(_GSM7_BASIC_TABLE) - {"\x1b"}
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

SINGLE_GSM7 = 160
SINGLE_UCS2 = 70
SEGMENT_GSM7 = 153
SEGMENT_UCS2 = 67
DEFAULT_MAX_SEGMENTS = 3
"""Three concatenated segments: long enough for a useful message, short enough to stay cheap."""

Encoding = Literal["gsm7", "ucs2"]


@dataclass(frozen=True, slots=True)
class SmsSize:
    """How a text goes over the air: its encoding, its length in that encoding's units, segments."""

    encoding: Encoding
    units: int
    """Septets for GSM-7, UTF-16 code units for UCS-2."""
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _weights(text: str, encoding: Encoding) -> list[int]:
    if encoding == "gsm7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_size(text: str) -> SmsSize:
    """Encoding, length and number of segments of ``text`` as an SMS."""
    encoding: Encoding = "gsm7" if is_gsm7(text) else "ucs2"
    weights = _weights(text, encoding)
    units = sum(weights)
    single, per_segment = (SINGLE_GSM7, SEGMENT_GSM7) if encoding == "gsm7" else (SINGLE_UCS2, SEGMENT_UCS2)
    if units <= single:
        return SmsSize(encoding, units, 1 if units else 0)
    segments, used = 1, 0
    for weight in weights:
        # A two-unit character that would straddle the boundary moves whole to the next segment.
        if used + weight > per_segment:
            segments, used = segments + 1, 0
        used += weight
    return SmsSize(encoding, units, segments)


def fits_sms(text: str, max_segments: int = DEFAULT_MAX_SEGMENTS) -> bool:
    """True when ``text`` is non-blank and goes in at most ``max_segments`` segments."""
    return bool(text.strip()) and sms_size(text).segments <= max_segments


_SEPARATORS = re.compile(r"[\s\-()./]")


def sms_number(phone: str | None) -> str | None:
    """The number in E.164 form (``+46701234567``) when an SMS can reach it, else None.

    Swedish numbers must be mobile (07...): a landline in the register (08-..., 031-...) cannot
    take an SMS, and sending to it would look delivered at the gateway but never arrive.
    Foreign numbers in international form are accepted as they are; we cannot tell their kind.
    """
    if phone is None:
        return None
    compact = _SEPARATORS.sub("", phone)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.startswith("0"):
        compact = "+46" + compact[1:]
    if compact.startswith("+460"):
        compact = "+46" + compact[4:]  # "+46 (0)70 ...": the trunk zero is not dialled from abroad
    if not (compact.startswith("+") and compact[1:].isdigit()):
        return None
    digits = compact[1:]
    if digits.startswith("46"):
        # Swedish mobiles: 07X XXX XX XX, i.e. +46 7 followed by eight digits.
        national = digits[2:]
        return compact if len(national) == 9 and national.startswith("7") else None
    return compact if 8 <= len(digits) <= 15 else None
