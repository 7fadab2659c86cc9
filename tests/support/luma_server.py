"""A local stand-in for lu.ma calendar pages (stdlib HTTP server on a loopback port the OS picks).

Use it from a test::

    with LumaServer() as luma:
        luma.publish("fruteroclub", [luma_event("hack-cdmx", "Hack Night", start)])
        events = fetch_calendar("fruteroclub", luma.base_url)

`render_calendar_page` builds the HTML alone (for parser tests), `luma_event` one schema.org Event
shaped like Luma's JSON-LD.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = ["LumaServer", "luma_event", "render_calendar_page"]

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} · Events Calendar</title>
<meta property="og:title" content="{title}">
<script async src="/_next/static/chunks/main-4f2a.js"></script>
<script type="application/ld+json">{organization}</script>
<script type="application/ld+json">{events}</script>
<script>window.dataLayer = window.dataLayer || []; if (1 < 2) {{ document.title = "</div>"; }}</script>
</head>
<body>
<div id="__next"><div class="calendar-page"><h1>{title}</h1>
<div class="content-card"><a href="/hack-night">Upcoming events</a></div></div></div>
<script id="__NEXT_DATA__" type="application/json">{next_data}</script>
</body>
</html>
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a <script> element (no ``</`` can close it)."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def render_calendar_page(events: list[dict[str, Any]], calendar: str = "Frutero Club") -> str:
    """A calendar page like lu.ma's: the events as an ``ItemList`` in JSON-LD, among other scripts."""
    organization = {"@context": "https://schema.org", "@type": "Organization", "name": calendar,
                    "url": "https://lu.ma/fruteroclub"}
    item_list = {
        "@context": "https://schema.org",
        "@type": "ItemList",
        "itemListElement": [
            {"@type": "ListItem", "position": position, "item": event}
            for position, event in enumerate(events, start=1)
        ],
    }
    next_data = {"props": {"pageProps": {"initialData": {"calendar": {"name": calendar}}}}}
    return _PAGE.format(
        title=calendar,
        organization=_script_json(organization),
        events=_script_json(item_list),
        next_data=_script_json(next_data),
    )


def luma_event(
    id: str, title: str, start: datetime, end: datetime | None = None, **overrides: Any
) -> dict[str, Any]:
    """A schema.org Event like Luma's JSON-LD for ``https://lu.ma/<id>``.

    `end` defaults to two hours after `start`. `overrides` replace top-level keys; an override of
    None removes the key (``endDate=None`` gives an event without end).
    """
    url = f"https://lu.ma/{id}"
    event: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "@id": url,
        "url": url,
        "name": title,
        "description": f"{title}: builders, fruit and demos. Bring your laptop.",
        "startDate": start.isoformat(),
        "endDate": (end or start + timedelta(hours=2)).isoformat(),
        "eventAttendanceMode": "https://schema.org/OfflineEventAttendanceMode",
        "eventStatus": "https://schema.org/EventScheduled",
        "image": [f"https://images.lumacdn.com/event-covers/{id}.png",
                  f"https://images.lumacdn.com/event-covers/{id}-square.png"],
        "location": {
            "@type": "Place",
            "name": "Frutero Club HQ",
            "address": {
                "@type": "PostalAddress",
                "streetAddress": "Av. Álvaro Obregón 99",
                "addressLocality": "Ciudad de México",
                "addressRegion": "CDMX",
                "postalCode": "06700",
                "addressCountry": {"@type": "Country", "name": "MX"},
            },
            "geo": {"@type": "GeoCoordinates", "latitude": 19.4194, "longitude": -99.1617},
        },
        "organizer": [
            {"@type": "Organization", "name": "Frutero Club", "url": "https://lu.ma/fruteroclub"},
            {"@type": "Person", "name": "Mel Guerrero"},
        ],
        "offers": [{
            "@type": "Offer",
            "price": 0,
            "priceCurrency": "USD",
            "availability": "https://schema.org/InStock",
            "url": url,
        }],
        "maximumAttendeeCapacity": 80,
        "remainingAttendeeCapacity": 38,
    }
    for key, value in overrides.items():
        if value is None:
            event.pop(key, None)
        else:
            event[key] = value
    return event


class LumaServer:
    """Serves ``/<slug>`` pages on ``127.0.0.1``; counts the GETs per slug in `requests`."""

    def __init__(self) -> None:
        self._pages: dict[str, tuple[int, str]] = {}
        self._requests: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="luma-server", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> dict[str, int]:
        """GETs received so far, per slug (a copy)."""
        with self._lock:
            return dict(self._requests)

    def publish(self, slug: str, events: list[dict[str, Any]]) -> None:
        """Serve a calendar page listing `events` (schema.org dicts, see `luma_event`) at ``/<slug>``."""
        self.serve_raw(slug, render_calendar_page(events))

    def serve_raw(self, slug: str, body: str, status: int = 200) -> None:
        """Serve `body` as-is with `status` at ``/<slug>``."""
        with self._lock:
            self._pages[slug] = (status, body)

    def _answer(self, slug: str) -> tuple[int, str]:
        with self._lock:
            self._requests[slug] = self._requests.get(slug, 0) + 1
            return self._pages.get(slug, (404, "<html><body><h1>Page not found</h1></body></html>"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = server._answer(self.path.split("?", 1)[0].strip("/"))
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read `requests` instead."""

        return Handler

    def __enter__(self) -> LumaServer:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
