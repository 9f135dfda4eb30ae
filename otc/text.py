"""Free text from outside (a maker's reason, a trader's own id), made safe to store.

PostgreSQL refuses NUL in text and JSON, and control characters in a trail or a
log line can forge or hide what an auditor reads. So each service's edge refuses
them where it can answer the sender (a gateway, the REST edge), and cleans them
where it cannot (a Kafka consumer must not dead-letter a withdrawal for its
wording: the quote would stay visible).
"""

from __future__ import annotations

import unicodedata

MAX_REASON_LENGTH = 500


def control_character(value: str) -> str | None:
    """The first control character in `value`, as U+XXXX at its position, or None."""
    for position, char in enumerate(value):
        if unicodedata.category(char) == "Cc":
            return f"U+{ord(char):04X} at position {position}"
    return None


def refuse_control(value: str) -> str:
    """For validators: `value` unchanged, or ValueError naming the control character."""
    found = control_character(value)
    if found is not None:
        raise ValueError(f"must not contain control characters (found {found})")
    return value


def clean_text(value: str, max_length: int = MAX_REASON_LENGTH) -> str:
    """`value` with every control character dropped, cut to `max_length`."""
    if control_character(value) is not None:
        value = "".join(c for c in value if unicodedata.category(c) != "Cc")
    return value[:max_length]
