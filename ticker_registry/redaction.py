"""Secrets never reach a message: the one rule for hiding passwords in URIs and in text.

Every message, log line, report and bundle manifest that shows a tracking URI, a
sample-store URL or an error text that may quote one goes through here.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["redact_text", "redact_uri"]

_SECRET_QUERY = re.compile(r"pass|token|secret|key", re.I)
# scheme://user:password@  (inside any text)
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s@/]*@")


def redact_uri(uri: str) -> str:
    """``uri`` with its password (in the user info or a password/token query parameter)
    replaced by ``***``; anything that is not a URI comes back unchanged."""
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:
        return redact_text(uri)
    out = uri
    if password is not None:
        out = _USERINFO.sub(r"\1***@", out)
    if parts.query:
        pairs = [(k, "***" if _SECRET_QUERY.search(k) else v)
                 for k, v in parse_qsl(parts.query, keep_blank_values=True)]
        out = out.replace(f"?{parts.query}", f"?{urlencode(pairs, safe='*')}", 1)
    return out


def redact_text(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it replaced."""
    return _USERINFO.sub(r"\1***@", text)
