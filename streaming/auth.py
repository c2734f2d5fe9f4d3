"""Access token for a server bound beyond loopback.

Bound to 127.0.0.1 (the default) the server needs no token. Bound to anything
else it refuses to start without one: `--token` or one generated here and
printed. Requests carry it as `Authorization: Bearer T`, `?token=T` (the page
link the server prints has it) or the `marionette_token` cookie: a request that
passes with `?token=` gets the cookie back, so the page's own scripts, styles and
thumbnails, which browsers fetch without the query, pass too. `/healthz` stays
open for probes; it reveals nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

OPEN_PATHS = frozenset({"/healthz"})
COOKIE = "marionette_token"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def generate_token() -> str:
    return secrets.token_urlsafe(24)


def required_token(host: str, token: str | None) -> tuple[str | None, bool]:
    """The token a server bound to `host` must use, and whether it was generated.
    Loopback needs none (but keeps one if given); anything else always has one."""
    if token:
        return token, False
    if is_loopback(host):
        return None, False
    return generate_token(), True


def request_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):].strip()
    return request.query.get("token") or request.cookies.get(COOKIE)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_middleware(token: str) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """aiohttp middleware: 401 unless the request carries `token`."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request_token(request)
            if given is None or not hmac.compare_digest(given.encode(), token.encode()):
                raise web.HTTPUnauthorized(
                    text="missing or wrong token: pass ?token=... or 'Authorization: Bearer ...'"
                )
        response = await handler(request)
        if "token" in request.query and request.cookies.get(COOKIE) != token:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check
