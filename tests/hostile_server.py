"""A hostile HTTP server on 127.0.0.1 for the fault suite (issue #11): one route per attack.

Raw sockets, one thread per connection, so a route controls every byte it sends: headers one
byte a second, a Content-Length that lies, a chunked body that never ends, an answer that never
comes. ``HostileServer`` listens on one or more ports of 127.0.0.1 (the daemon caps and gives up
per ``host:port``, so a slow route gets a port of its own when it must not hold back others),
records every request, and answers from ``routes`` (path -> ``Route``), which a test may change
between polls. ``hostile_routes`` is the whole catalogue; the documents are built by the
functions below it.

Nothing runs forever: every loop of a route ends after ``LIFETIME_S``, when the peer goes away,
or as soon as the server closes (``close`` wakes every waiting route and shuts every socket).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

LIFETIME_S = 30.0  # no route keeps a connection longer than this
HEAD_LIMIT = 64 * 1024  # a request head longer than this is dropped
REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 304: "Not Modified",
           404: "Not Found", 410: "Gone", 429: "Too Many Requests"}  # fmt: skip
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # dates in the documents count back from here


@dataclass(frozen=True)
class Seen:
    """One request as it arrived."""

    path: str
    port: int
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)  # when its head had arrived


class Exchange:
    """One request and the socket to answer it on; what a ``Route`` works with."""

    def __init__(self, server: HostileServer, conn: socket.socket, seen: Seen) -> None:
        self.server = server
        self.conn = conn
        self.path = seen.path
        self.port = seen.port
        self.headers = seen.headers
        self.ends_at = time.monotonic() + LIFETIME_S

    def alive(self) -> bool:
        """May a loop of this route go on (server open, lifetime not over)?"""
        return not self.server.stopping.is_set() and time.monotonic() < self.ends_at

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` (the route's own pace, not a test's timing); False once closing."""
        return not self.server.stopping.wait(seconds) and self.alive()

    def send(self, data: bytes) -> bool:
        """Send ``data``; False when the peer has gone (it hung up, or cut us off at a cap)."""
        try:
            self.conn.sendall(data)
        except OSError:
            return False
        return True

    def head(self, status: int, headers: dict[str, str] | None = None) -> bytes:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Whatever')}"]
        lines += [f"{k}: {v}" for k, v in {"Connection": "close", **(headers or {})}.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """A complete, honest response (Content-Length is the body's), then the socket closes."""
        self.send(self.head(status, {**(headers or {}), "Content-Length": str(len(body))}) + body)


Route = Callable[[Exchange], None]


@dataclass
class HostileServer:
    """Serves ``routes`` on ``ports`` listening sockets of 127.0.0.1; logs every request."""

    ports: int = 1
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._arrived: dict[str, threading.Event] = {}
        self._listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(self.ports)]
        self.port_numbers = [s.getsockname()[1] for s in self._listeners]

    def url(self, path: str, port: int = 0) -> str:
        """The URL of ``path`` on the ``port``-th listening socket."""
        return f"http://127.0.0.1:{self.port_numbers[port]}{path}"

    def arrived(self, path: str) -> threading.Event:
        """Set once a request for ``path`` has arrived."""
        with self._lock:
            return self._arrived.setdefault(path, threading.Event())

    def count(self, path_prefix: str) -> int:
        """Requests whose path starts with ``path_prefix``."""
        with self._lock:
            return sum(1 for r in self.requests if r.path.startswith(path_prefix))

    # -- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        for listener in self._listeners:
            listener.settimeout(0.1)  # the accept loop looks at ``stopping`` this often
            self._spawn(self._accept, listener)

    def close(self) -> None:
        self.stopping.set()
        for listener in self._listeners:
            listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # wakes a route blocked in sendall or a reader blocked in recv
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        port = listener.getsockname()[1]
        while not self.stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            with self._lock:
                self._conns.add(conn)
            self._spawn(self._serve, conn, port)

    def _serve(self, conn: socket.socket, port: int) -> None:
        try:
            seen = _read_head(conn, port)
            if seen is None:
                return
            with self._lock:
                self.requests.append(seen)
                route = self.routes.get(seen.path)
            self.arrived(seen.path).set()
            exchange = Exchange(self, conn, seen)
            if route is None:
                exchange.respond(404, b"not found")
            else:
                route(exchange)
        except OSError:
            pass  # the client hung up: that is its right
        finally:
            with self._lock:
                self._conns.discard(conn)
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


def _read_head(conn: socket.socket, port: int) -> Seen | None:
    conn.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > HEAD_LIMIT:
            return None
        data += chunk
    conn.settimeout(None)
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Seen(parts[1] if len(parts) > 1 else "/", port, headers)


@contextmanager
def running_hostile_server(ports: int = 1) -> Iterator[HostileServer]:
    server = HostileServer(ports)
    server.start()
    try:
        yield server
    finally:
        server.close()


# -- routes ---------------------------------------------------------------------------------------


def document(
    body: bytes | Callable[[Exchange], bytes],
    *,
    content_type: str = "application/rss+xml",
    conditional: bool = True,
    delay_s: float = 0.0,
    after: str | None = None,
    headers: dict[str, str] | None = None,
) -> Route:
    """A document with an ETag (a 304 when the request names it); ``body`` may be built per
    request. ``delay_s``: the server takes this long to answer (a busy but honest server);
    ``after``: it answers only once a request for that path has arrived (at most 10 s)."""

    def route(x: Exchange) -> None:
        if after is not None:
            x.server.arrived(after).wait(10)
        if delay_s and not x.pause(delay_s):
            return
        data = body(x) if callable(body) else body
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        extra = {"ETag": etag, **(headers or {})}
        if conditional and x.headers.get("if-none-match") == etag:
            return x.respond(304, b"", extra)
        x.respond(200, data, {"Content-Type": content_type, **extra})

    return route


def status(code: int, headers: dict[str, str] | None = None) -> Route:
    return lambda x: x.respond(code, b"", headers)


def redirect(location: str | Callable[[Exchange], str], code: int = 302) -> Route:
    return lambda x: x.respond(
        code, b"", {"Location": location(x) if callable(location) else location}
    )


def encoded(body: bytes, encoding: str) -> Route:
    """``body`` already compressed, sent with ``Content-Encoding: encoding`` (a bomb)."""
    return lambda x: x.respond(200, body, {"Content-Type": "application/rss+xml",
                                           "Content-Encoding": encoding})  # fmt: skip


def endless(*, chunk: int = 64 * 1024, every_s: float = 0.0) -> Route:
    """A chunked RSS body that never ends: ``chunk`` bytes of items, every ``every_s``."""
    filler = b"<item><title>more</title></item>"
    piece = filler * max(1, chunk // len(filler))

    def route(x: Exchange) -> None:
        head = x.head(200, {"Content-Type": "application/rss+xml", "Transfer-Encoding": "chunked"})
        if not x.send(head + _chunk(b'<rss version="2.0"><channel><title>endless</title>')):
            return
        while x.alive() and x.send(_chunk(piece)):
            if every_s and not x.pause(every_s):
                return

    return route


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def length_lie(body: bytes, declared: int, *, then: bytes = b"") -> Route:
    """Declares ``declared`` bytes, sends ``body`` (+ ``then``) and closes."""
    return lambda x: x.send(
        x.head(200, {"Content-Type": "application/rss+xml", "Content-Length": str(declared)})
        + body + then
    )  # fmt: skip


def raw(response: bytes) -> Route:
    """``response`` as it is, status line and headers included, then the socket closes."""

    def route(x: Exchange) -> None:
        x.send(response)

    return route


# An error status whose reason phrase is terminal escapes: clear the screen, retitle the window.
ESCAPES = b"\x1b[2J\x1b]0;owned\x07\x1b[31mred"


def drip(*, every_s: float = 1.0) -> Route:
    """The status line and headers one byte every ``every_s``, never reaching the body."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n" + b"X-Slow: " + b"z" * 4096

    def route(x: Exchange) -> None:
        for byte in head:
            if not (x.send(bytes([byte])) and x.pause(every_s)):
                return

    return route


def silent() -> Route:
    """Reads the request and never answers (the connection stays open until we close)."""

    def route(x: Exchange) -> None:
        x.pause(LIFETIME_S)

    return route


def fickle_guids(items: int = 3) -> Route:
    """The same stories with new guids on every request (a CMS that makes them up)."""
    counter = iter(range(10**9))

    def body(x: Exchange) -> bytes:
        poll = next(counter)
        entries = [(f"poll{poll}-{n}", f"Fickle story number {n}", f"https://fickle.example/{n}")
                   for n in range(items)]  # fmt: skip
        return rss("Fickle", entries)

    return document(body, conditional=False)


# -- documents ------------------------------------------------------------------------------------


def rss(title: str, items: list[tuple[str, str, str]], *, extra: str = "",
        encoding: str = "utf-8") -> bytes:  # fmt: skip
    """A small RSS 2.0 document; ``items`` are (guid, title, link), dated an hour apart."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>{link}</link>"
        f"<description>&lt;p&gt;{t}&lt;/p&gt;</description>"
        f"<pubDate>{_rfc822(T0 - timedelta(hours=i))}</pubDate></item>"
        for i, (g, t, link) in enumerate(items)
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?><rss version="2.0"><channel>'
        f"<title>{title}</title><link>https://hostile.example/</link>{extra}{body}</channel></rss>"
    ).encode(encoding)


def _rfc822(when: datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S GMT")


def plain_feed(name: str, n: int = 2) -> bytes:
    return rss(name, [(f"{name}-{i}", f"{name} story {i}", f"https://{name}.example/{i}")
                      for i in range(n)])  # fmt: skip


@functools.cache
def billion_laughs() -> bytes:
    """Nine levels of ten: 10**9 "lol"s (3 GB) if entities were expanded."""
    decls = ['<!ENTITY lol "lol">', '<!ENTITY lol1 "' + "&lol;" * 10 + '">']
    decls += [f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">' for i in range(2, 10)]
    # Twice: declarations on lines of their own, and all on one line (feedparser strips only
    # the declarations that start a line; the rest must be refused by the XML parser itself).
    return _with_doctype("\n".join(decls), "Laughs &lol9; end", "&lol9;")


@functools.cache
def billion_laughs_one_line() -> bytes:
    decls = ['<!ENTITY lol "lol">', '<!ENTITY lol1 "' + "&lol;" * 10 + '">']
    decls += [f'<!ENTITY lol{i} "' + f"&lol{i - 1};" * 10 + '">' for i in range(2, 10)]
    return _with_doctype("".join(decls), "Laughs &lol9; end", "&lol9;", newline="")


def external_entity(system_id: str, *, newline: str = "\n") -> bytes:
    """An external general entity (``file:`` or ``http:``) used in a title and a description."""
    decl = f'<!ENTITY xxe SYSTEM "{system_id}">'
    return _with_doctype(decl, "Entity [&xxe;] here", "&xxe;", newline=newline)


def external_dtd(dtd_url: str, pe_url: str) -> bytes:
    """An external DTD subset and an external parameter entity, both on our own server."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE rss SYSTEM "{dtd_url}" [\n'
        f'<!ENTITY % remote SYSTEM "{pe_url}">\n%remote;\n]>\n'
        '<rss version="2.0"><channel><title>dtd</title><item><guid>dtd-1</guid>'
        "<title>DTD story &fromdtd;</title></item></channel></rss>"
    ).encode()


def _with_doctype(decls: str, title: str, description: str, *, newline: str = "\n") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{newline}<!DOCTYPE rss [{newline}{decls}'
        f"{newline}]>{newline}"
        f'<rss version="2.0"><channel><title>xml attack</title><item><guid>x-1</guid>'
        f"<title>{title}</title><description>{description}</description>"
        f"<link>https://xml.example/1</link></item></channel></rss>"
    ).encode()


@functools.cache
def deep_xml(depth: int = 100_000) -> bytes:
    """An item with ``depth`` nested unknown elements."""
    nest = "<x>" * depth + "deep" + "</x>" * depth
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>deep</title>'
        f"<item><guid>deep-1</guid><title>Deep story</title>{nest}</item></channel></rss>"
    ).encode()


@functools.cache
def flood(n: int = 20_000) -> bytes:
    """``n`` tiny entries, dated in a shuffled order: entry i is ``flood_age_min(i)`` old."""
    items = "".join(
        f"<item><guid>fl-{i}</guid><title>t{i}</title>"
        f"<pubDate>{_rfc822(T0 - timedelta(minutes=flood_age_min(i, n)))}</pubDate></item>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>flood</title>'
        f"{items}</channel></rss>"
    ).encode()


def flood_age_min(i: int, n: int = 20_000) -> int:
    return (i * 7919) % n  # 7919 is prime: a permutation of 0..n-1 (n not a multiple of it)


@functools.cache
def huge_entry(size: int = 3 * 1024 * 1024) -> bytes:
    """One entry whose HTML is ``size`` bytes of paragraphs."""
    para = "<p>" + "words " * 30 + "</p>"
    html = para * (size // len(para) + 1)
    return _one_entry("huge-1", "Huge story", html)


@functools.cache
def deep_divs(depth: int = 100_000) -> bytes:
    return _one_entry("divs-1", "Div story", "<div>" * depth + "deep words" + "</div>" * depth)


def _one_entry(guid: str, title: str, html: str, *, feed_title: str = "one entry") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{feed_title}</title><item><guid>{guid}</guid><title>{title}</title>"
        f"<link>https://one.example/{guid}</link><description><![CDATA[{html}]]></description>"
        f"<pubDate>{_rfc822(T0)}</pubDate></item></channel></rss>"
    ).encode()


UTF8_TEXT = "Grüße aus Köln — Ærøskøbing, Zürich, São Paulo, Łódź, Ελληνικά, Русский текст"


@functools.cache
def invalid_utf8(bad: bytes = b"\xff\xfe and a cut-off \xc3") -> bytes:
    """Declared UTF-8 and mostly UTF-8, with ``bad`` bytes (no UTF-8 decoder accepts them) in
    the title and description of one of its four entries."""
    items = [(f"u-{i}", f"{UTF8_TEXT} {i}", f"https://utf.example/{i}") for i in range(3)]
    items.append(("u-bad", "BAD_BYTES", "https://utf.example/bad"))
    return rss("Broken bytes", items).replace(b"BAD_BYTES", b"Bad " + bad + b" bytes")


# Six invalid sequences where the one above has three: 192 valid multi-byte characters to 12.
DENSE_BAD_BYTES = b"\xff\xfe \xc3\x28 \xed\xa0\x80"


def html_page() -> bytes:
    return (
        b"<!DOCTYPE html>\n<html><head><title>Welcome</title></head><body><h1>Our blog</h1>"
        b"<p>This is a web page, not a feed.</p></body></html>"
    )


def json_items_not_a_list() -> bytes:
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": 42,
                       "items": {"id": "1", "title": "not a list"}}).encode()  # fmt: skip


@functools.cache
def json_wrong_types() -> bytes:
    """Items whose every field has the wrong type, and one good item among them."""
    bad = {
        "id": 12345, "title": 42, "url": ["https://json.example/1"], "content_html": {"a": 1},
        "content_text": 3.5, "summary": None, "date_published": "yesterday-ish",
        "date_modified": 1700000000, "tags": "not-a-list", "authors": 7, "author": "x",
        "image": 99, "attachments": {"url": "https://json.example/a.mp3"}, "external_url": True,
    }  # fmt: skip
    garbage = ["a string", 17, None, [1, 2], {"id": None, "title": ["t"], "date_published": []}]
    good = {"id": "json-good", "title": "The good one", "url": "https://json.example/good",
            "content_html": "<p>fine</p>", "date_published": "2026-11-25T10:00:00Z"}  # fmt: skip
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": ["x"],
                       "home_page_url": 5, "items": [bad, *garbage, good]}).encode()  # fmt: skip


# Every way of running script we know of, in the places each format carries it.
XSS_HTML = (
    "<p>Hello</p><script>alert('script')</script>"
    '<img src="x" onerror="alert(\'onerror\')">'
    "<a href=\"javascript:alert('js')\">js</a>"
    "<a href=\" JaVaScRiPt:alert('js2')\">js2</a>"
    "<a href=\"java&#x09;script:alert('js3')\">js3</a>"
    "<a href=\"vbscript:msgbox('vb')\">vb</a>"
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>'
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">'
    "<iframe src=\"javascript:alert('iframe')\"></iframe>"
    "<svg onload=\"alert('svg')\"><script>alert(1)</script></svg>"
    '<object data="javascript:alert(1)"></object><embed src="javascript:alert(1)">'
    '<form action="javascript:alert(1)"><button formaction="javascript:alert(1)">b</button></form>'
    '<div style="background:url(javascript:alert(1))" onclick="alert(\'click\')">styled</div>'
    '<math><mtext><table><mglyph><style><img src=x onerror=alert("mxss")></style></mglyph>'
    "</table></mtext></math>"
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'
    '<base href="javascript:alert(1)//"><link rel="stylesheet" href="javascript:alert(1)">'
    '<video poster="javascript:alert(1)" src="javascript:alert(1)"></video>'
    "<p>After <b onmouseover=\"alert('b')\">bold</b></p>"
)
XSS_TEXT = "<script>alert('t')</script><img src=x onerror=alert('t')>Story"
XSS_URLS = ("javascript:alert('u')", "vbscript:msgbox('u')",
            "data:text/html,<script>alert('u')</script>")  # fmt: skip


def _x(text: str) -> str:
    """Escaped for XML text and attributes."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


@functools.cache
def xss_rss() -> bytes:
    items = []
    for n, url in enumerate(XSS_URLS):
        items.append(
            f"<item><guid>xss-rss-{n}</guid><title>{_x(XSS_TEXT)} rss {n}</title>"
            f"<link>{_x(url)}</link><author>{_x(XSS_TEXT)}</author>"
            f"<dc:creator>{_x(XSS_TEXT)}</dc:creator>"
            f"<category>{_x(XSS_TEXT)}</category><category>{_x(url)}</category>"
            f"<description>{_x(XSS_HTML)}</description>"
            f"<content:encoded><![CDATA[{XSS_HTML}]]></content:encoded>"
            f'<enclosure url="{_x(url)}" type="audio/mpeg" length="1"/>'
            f'<media:thumbnail url="{_x(url)}"/><media:content url="{_x(url)}" medium="image"/>'
            f"<pubDate>{_rfc822(T0 - timedelta(minutes=n))}</pubDate></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/">'
        f"<channel><title>{_x(XSS_TEXT)} channel</title><link>{_x(XSS_URLS[0])}</link>"
        f"<image><url>{_x(XSS_URLS[0])}</url><title>i</title><link>{_x(XSS_URLS[0])}</link></image>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


@functools.cache
def xss_atom() -> bytes:
    entries = []
    for n, url in enumerate(XSS_URLS):
        entries.append(
            f'<entry><id>urn:xss:atom:{n}</id><title type="html">{_x(XSS_TEXT)} atom {n}</title>'
            f'<link rel="alternate" href="{_x(url)}"/><link rel="enclosure" href="{_x(url)}" '
            f'type="video/mp4"/><author><name>{_x(XSS_TEXT)}</name><uri>{_x(url)}</uri></author>'
            f'<category term="{_x(XSS_TEXT)}" label="{_x(XSS_TEXT)}"/>'
            f'<summary type="html">{_x(XSS_HTML)}</summary>'
            f'<content type="html">{_x(XSS_HTML)}</content>'
            f'<media:thumbnail url="{_x(url)}"/>'
            f"<updated>{(T0 - timedelta(minutes=10 + n)).isoformat()}</updated></entry>"
        )
    entries.append(
        '<entry><id>urn:xss:atom:xhtml</id><title type="xhtml"><div '
        'xmlns="http://www.w3.org/1999/xhtml">X<script>alert(1)</script>html title</div></title>'
        '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><p onclick="alert(1)">'
        'xhtml</p><script>alert("xhtml")</script><a href="javascript:alert(1)">x</a></div>'
        f"</content><updated>{(T0 - timedelta(minutes=20)).isoformat()}</updated></entry>"
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:media="http://search.yahoo.com/mrss/" xml:base="javascript:alert(\'base\')//">'
        f'<id>urn:xss:atom</id><title type="html">{_x(XSS_TEXT)} atom feed</title>'
        f'<link rel="alternate" href="{_x(XSS_URLS[1])}"/><logo>{_x(XSS_URLS[0])}</logo>'
        f"<updated>{T0.isoformat()}</updated>{''.join(entries)}</feed>"
    ).encode()


@functools.cache
def xss_json() -> bytes:
    items = [
        {
            "id": f"xss-json-{n}",
            "url": url,
            "external_url": url,
            "title": f"{XSS_TEXT} json {n}",
            "content_html": XSS_HTML,
            "summary": XSS_TEXT,
            "image": url,
            "banner_image": url,
            "tags": [XSS_TEXT, url],
            "authors": [{"name": XSS_TEXT, "url": url, "avatar": url}],
            "attachments": [{"url": url, "mime_type": "audio/mpeg"}],
            "date_published": (T0 - timedelta(minutes=30 + n)).isoformat(),
        }
        for n, url in enumerate(XSS_URLS)
    ]
    return json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": f"{XSS_TEXT} json feed",
        "home_page_url": XSS_URLS[0], "feed_url": XSS_URLS[1], "icon": XSS_URLS[2],
        "authors": [{"name": XSS_TEXT}], "items": items,
    }).encode()  # fmt: skip


# U+007F DEL, U+202E RIGHT-TO-LEFT OVERRIDE ... U+202C POP DIRECTIONAL FORMATTING, U+200B ZWSP.
BIDI_TITLE = "Invoice\u007f \u202egnp.exe\u202c paid\u200b now \u2066isolated\u2069"
BIDI_CHARS = ("\u007f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u200b",
              "\u2066", "\u2067", "\u2068", "\u2069")  # fmt: skip


@functools.cache
def bidi() -> bytes:
    return rss(
        f"Feed {BIDI_TITLE}",
        [("bidi-1", BIDI_TITLE, "https://bidi.example/1")],
        extra=f"<category>{BIDI_TITLE}</category>",
    ).replace(b"</title><link>https://bidi.example/1",
              f"</title><author>{BIDI_TITLE}</author><category>{BIDI_TITLE}</category>"
              "<link>https://bidi.example/1".encode())  # fmt: skip


GB18030_TITLE = "你好世界：中文标题的测试"
GB18030_TEXT = "这是一个用国标编码的中文订阅源，声明却是统一码。我们应该正确地读出它的内容。"


@functools.cache
def gb18030_declared_utf8() -> bytes:
    """GB18030 bytes under an XML declaration (and a Content-Type) saying UTF-8."""
    items = [(f"gb-{i}", f"{GB18030_TITLE}{i}", f"https://gb.example/{i}") for i in range(3)]
    doc = rss("中文订阅源", items).decode("utf-8")
    doc = doc.replace("&lt;p&gt;", "&lt;p&gt;" + GB18030_TEXT)
    return doc.encode("gb18030")


# -- bombs ----------------------------------------------------------------------------------------


@functools.cache
def gzip_bomb(decoded: int = 16 * 1024 * 1024) -> bytes:
    return _compress(zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS), decoded)


@functools.cache
def deflate_bomb(decoded: int = 16 * 1024 * 1024) -> bytes:
    return _compress(zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS), decoded)


@functools.cache
def brotli_bomb(decoded: int = 64 * 1024 * 1024) -> bytes:
    import brotli  # a dependency of the project (httpx decodes br with it)

    compressor = brotli.Compressor(quality=5)
    zeros = b"\0" * (1 << 20)
    out = [compressor.process(b'<rss version="2.0"><channel><title>')]
    out += [compressor.process(zeros) for _ in range(decoded >> 20)]
    return b"".join(out) + compressor.finish()


def _compress(compressor: Any, decoded: int) -> bytes:
    zeros = b"\0" * (1 << 20)
    out = [compressor.compress(b'<rss version="2.0"><channel><title>')]
    out += [compressor.compress(zeros) for _ in range(decoded >> 20)]
    return b"".join(out) + compressor.flush()


def data_url_feed() -> str:
    return "data:application/rss+xml;base64," + base64.b64encode(plain_feed("dataurl")).decode()


# -- the catalogue --------------------------------------------------------------------------------

# Routes that take a timeout's worth of time: each on a port (a host) of its own in the whole
# set, so the tick's "give the host up after a timeout" does not defer the others.
SLOW = ("/transport/drip-headers", "/transport/silent", "/transport/endless-slow")


def hostile_routes(server: HostileServer) -> dict[str, Route]:
    """Every attack, by path. Routes that point at the server use its first port."""
    url = server.url
    chain = {f"/redirect/chain10/{n}": redirect(url(f"/redirect/chain10/{n - 1}"))
             for n in range(1, 11)}  # fmt: skip
    chain |= {f"/redirect/chain5/{n}": redirect(url(f"/redirect/chain5/{n - 1}"))
              for n in range(1, 6)}  # fmt: skip
    return {
        "/control": document(plain_feed("control")),
        # XML
        "/xml/billion-laughs": document(billion_laughs()),
        "/xml/billion-laughs-one-line": document(billion_laughs_one_line()),
        "/xml/xxe-file": document(external_entity("file:///etc/passwd")),
        "/xml/xxe-file-one-line": document(external_entity("file:///etc/passwd", newline="")),
        "/xml/xxe-url": document(lambda x: external_entity(x.server.url("/canary/xxe"))),
        "/xml/external-dtd": document(
            lambda x: external_dtd(x.server.url("/canary/dtd"), x.server.url("/canary/pe"))
        ),
        "/xml/deep": document(deep_xml()),
        # transport
        "/transport/gzip-bomb": encoded(gzip_bomb(), "gzip"),
        "/transport/deflate-bomb": encoded(deflate_bomb(), "deflate"),
        "/transport/brotli-bomb": encoded(brotli_bomb(), "br"),
        "/transport/endless": endless(),
        "/transport/endless-slow": endless(chunk=256, every_s=0.1),
        "/transport/length-more": length_lie(plain_feed("more"), 100_000),
        "/transport/length-less": length_lie(
            plain_feed("less"), len(plain_feed("less")), then=SMUGGLED
        ),
        "/transport/drip-headers": drip(),
        "/transport/escape-reason": raw(
            b"HTTP/1.1 500 " + ESCAPES + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        "/transport/silent": silent(),
        "/redirect/loop/a": redirect(url("/redirect/loop/b")),
        "/redirect/loop/b": redirect(url("/redirect/loop/a")),
        **chain,
        "/redirect/chain10/0": document(plain_feed("chain10")),
        "/redirect/chain5/0": document(plain_feed("chain5")),
        "/redirect/to-file": redirect("file:///etc/passwd"),
        "/redirect/to-data": redirect(data_url_feed()),
        "/redirect/to-ftp": redirect(f"ftp://127.0.0.1:{server.port_numbers[0]}/canary/ftp"),
        "/redirect/to-gopher": redirect(
            f"gopher://127.0.0.1:{server.port_numbers[0]}/_GET%20/canary/gopher%20HTTP/1.0%0D%0A"
        ),
        # content
        "/content/flood": document(flood()),
        "/content/huge-entry": document(huge_entry()),
        "/content/deep-divs": document(deep_divs()),
        "/content/invalid-utf8": document(
            invalid_utf8(), content_type="application/rss+xml; charset=utf-8"
        ),
        "/content/invalid-utf8-dense": document(
            invalid_utf8(DENSE_BAD_BYTES), content_type="application/rss+xml; charset=utf-8"
        ),
        "/content/html-page": document(html_page(), content_type="text/html; charset=utf-8"),
        "/content/json-items-not-a-list": document(
            json_items_not_a_list(), content_type="application/feed+json"
        ),
        "/content/json-wrong-types": document(
            json_wrong_types(), content_type="application/feed+json"
        ),
        "/content/fickle-guids": fickle_guids(),
        # XSS and text hygiene
        "/xss/rss": document(xss_rss()),
        "/xss/atom": document(xss_atom(), content_type="application/atom+xml"),
        "/xss/json": document(xss_json(), content_type="application/feed+json"),
        "/text/bidi": document(bidi()),
        "/text/gb18030": document(
            gb18030_declared_utf8(), content_type="application/rss+xml; charset=utf-8"
        ),
        # politeness
        "/status/gone": status(410),
        "/status/busy": status(429, {"Retry-After": "3600"}),
    }


# Bytes past the declared Content-Length: a whole second "response" with an entry of its own.
SMUGGLED = (
    b"<item><guid>smuggled</guid><title>SMUGGLED entry</title></item>"
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nowned"
)
