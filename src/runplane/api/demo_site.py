"""A tiny web shop for browser runs to test (the demo's target, and the tests' too)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route

PAGES: dict[str, str] = {
    "/": """<!doctype html><html><head><title>Shop home</title></head><body>
<h1>Welcome to the shop</h1><a href="login">Sign in</a>
</body></html>""",
    "/login": """<!doctype html><html><head><title>Sign in</title></head><body>
<h1>Sign in</h1>
<form action="welcome" method="get">
<label for="email">Email</label><input id="email" name="email" type="email">
<input name="password" type="password" placeholder="Password">
<button type="submit">Log in</button>
</form></body></html>""",
}


def welcome_page(email: str) -> str:
    return (
        "<!doctype html><html><head><title>Dashboard</title></head>"
        f"<body><h1>Welcome, {escape(email)}</h1></body></html>"
    )


def page(path: str, query: dict[str, str]) -> str | None:
    """The HTML of ``path``, or None for a page the shop does not have."""
    if path == "/welcome":
        return welcome_page(query.get("email") or "stranger")
    return PAGES.get(path)


async def _serve(request: Request) -> HTMLResponse | PlainTextResponse:
    html = page("/" + request.path_params.get("path", ""), dict(request.query_params))
    if html is None:
        return PlainTextResponse("Not found", status_code=404)
    return HTMLResponse(html)


def create_demo_site() -> Starlette:
    return Starlette(routes=[Route("/", _serve), Route("/{path:path}", _serve)])


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        html = page(url.path, dict(parse_qsl(url.query)))
        data = (html or "Not found").encode()
        # A browser may hang up early (after its favicon request, say): not an error.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(200 if html is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def serve_demo_site() -> Iterator[str]:
    """The shop on a real HTTP server of its own (tests, benchmarks): its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
