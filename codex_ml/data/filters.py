"""Content filters: which documents are not text worth training on, and why."""

from __future__ import annotations

# Control bytes that do not occur in ordinary text (tab, LF, VT, FF, CR and ESC are allowed).
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
BINARY_CONTROL_SHARE = 0.10


def reject_reason(data: bytes) -> str | None:
    """The reason `data` is not a usable text document, or None when it is.

    Reasons: `empty` (nothing but whitespace), `binary` (a NUL byte, or more than 10% control bytes),
    `invalid_utf8` (does not decode as UTF-8).
    """
    if not data.strip():
        return "empty"
    if b"\x00" in data:
        return "binary"
    controls = len(data) - len(data.translate(None, _CONTROL))
    if controls > BINARY_CONTROL_SHARE * len(data):
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    return None


# Every reason a document can be rejected for, so metrics always list all of them (zeros included).
REJECT_REASONS = ("binary", "empty", "invalid_utf8", "malformed_jsonl", "symlink_loop",
                  "symlink_outside_root", "too_large", "unreadable")
