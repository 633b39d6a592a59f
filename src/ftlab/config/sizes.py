"""Memory sizes as users write them (`512MiB`, `2GiB`, `1536KiB`, `1048576`), in bytes.

Only binary units, and only whole numbers of them: `512MB` is refused rather than read as
512 x 10^6 or 512 x 2^20 (people write both meaning either, and a budget that is 5 % off
decides what fits), and `0.5GiB` is refused in favour of `512MiB`, which says the same
without rounding.
"""

from __future__ import annotations

import re

from ftlab.errors import ConfigError

UNITS = {"b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"(\d+)\s*([a-z]*)")
MAX_BYTES = 2**50
"""A petabyte: more than any device holds; larger is a typo."""


def parse_size(text: object, key: str) -> int:
    """Bytes in `text`: a whole number with an optional binary unit (B, KiB, MiB, GiB, TiB;
    any case). `key` names the setting in the error."""
    written = str(text).strip()
    match = _SIZE.fullmatch(written.lower())
    if isinstance(text, bool) or match is None or match[2] not in ("", *UNITS):
        raise ConfigError(f"{key}={written!r} is not a memory size: write a whole number of "
                          "B, KiB, MiB, GiB or TiB, e.g. 512MiB or 2GiB (decimal MB/GB and "
                          "fractions are not accepted: 0.5GiB is 512MiB)")
    size = int(match[1]) * UNITS[match[2] or "b"]
    if not 0 < size <= MAX_BYTES:
        raise ConfigError(f"{key}={written!r} is not a usable memory size: it must be more "
                          "than 0 and at most 1024TiB")
    return size


def format_size(size: float) -> str:
    """`size` bytes in the largest binary unit that keeps it at least 1 (`512 MiB`)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(size) >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if float(value).is_integer() else f"{value:.1f} {unit}"
    return f"{size:.0f} B"
