"""Security headers on every response of the Flask app, set once (:func:`install`).

- ``Content-Security-Policy``: scripts, styles and requests from this site only, no inline
  script or style (the simulator's code lives in ``bot/web/static``), no plugins, and no page may
  frame ours (``frame-ancestors 'none'``, with ``X-Frame-Options`` for old browsers);
- ``X-Content-Type-Options: nosniff``: a file is what its content type says;
- ``Referrer-Policy: no-referrer``: our addresses are not passed on to other sites;
- ``Strict-Transport-Security`` only behind HTTPS (``[server] public_url`` starts with
  ``https://``, or the request itself is secure): sent over plain HTTP it would lock a
  ``make run`` on localhost out of the browser.
"""

from __future__ import annotations

from typing import Final

from flask import Flask, Response, request

from bot.config import Config

__all__ = ["CONTENT_SECURITY_POLICY", "HSTS", "install"]

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
#: A year; not ``includeSubDomains``: the city's other sites are not ours to decide for.
HSTS: Final = "max-age=31536000"
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def install(app: Flask, config: Config) -> None:
    """Add the headers to every response ``app`` gives, error pages included."""
    behind_https = config.server.public_url.lower().startswith("https://")

    @app.after_request
    def security_headers(response: Response) -> Response:
        for name, value in _HEADERS.items():
            response.headers.setdefault(name, value)
        if behind_https or request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        return response
