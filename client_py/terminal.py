"""What a peer's text may do to our terminal: nothing but appear.

A message is printed after its sender's name; left raw, its escape sequences
would drive the terminal (clear the screen, retitle the window, rewrite earlier
lines) and its line breaks and carriage returns would start lines that look
like another peer's message or one of our own notices. So every control
character but tab is shown as an escape (``\\x1b``, ``\\u202e``), bidi controls
too (they reorder what follows them: Unicode TR #9), and each line after a
message's first is indented, which no line of our own ever is by this much.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["CONTINUATION", "for_terminal"]

#: Printed before every continuation line of a multi-line text.
CONTINUATION: Final = "    "
#: C0 controls but tab and line feed, DEL, C1 controls, bidi marks, embeddings,
#: overrides and isolates, and the Unicode line and paragraph separators.
_UNSAFE: Final = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """``text`` safe to print: controls escaped, continuation lines indented."""
    return _UNSAFE.sub(_escape, text).replace("\n", "\n" + CONTINUATION)
