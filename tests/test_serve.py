"""The output HTTP server over real sockets on 127.0.0.1:0: types, validators, gzip, safety."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from aggregator.metrics import Metrics
from aggregator.serve import GzipCache, OutputServer, make_server, start_server

pytestmark = pytest.mark.slow

ATOM = (
    b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    + b"<title>\xe6\x97\xa5\xe6\x9c\xac</title>" * 40
    + b"</feed>\n"
)
RSS = b'<?xml version="1.0"?>\n<rss version="2.0"><channel>' + b"<item/>" * 60 + b"</channel></rss>"
JSON = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [{}] * 80}).encode()
MTIME = 1_700_000_000
SECRET = b"TOPSECRET-do-not-serve"


class Probe:
    """A health callable whose answer the test sets."""

    def __init__(self) -> None:
        self.answer: tuple[bool, str] = (True, "fine")
        self.error: Exception | None = None

    def __call__(self) -> tuple[bool, str]:
        if self.error is not None:
            raise self.error
        return self.answer


Response = tuple[int, dict[str, str], bytes]


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    (out / "markdown" / "feed").mkdir(parents=True)
    for name, data in (("feed.atom", ATOM), ("feed.rss", RSS), ("feed.json", JSON)):
        (out / name).write_bytes(data)
        os.utime(out / name, (MTIME, MTIME))
    (out / "markdown" / "feed" / "post.md").write_bytes(b"# Post\n\nbody\n")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    return out


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def server(out_dir: Path, probe: Probe, metrics: Metrics) -> Iterator[OutputServer]:
    srv = make_server(out_dir, host="127.0.0.1", port=0, health=probe, registry=metrics.registry)
    thread = threading.Thread(target=srv.serve_forever)
    thread.start()
    assert srv.wait_ready()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client(server: OutputServer) -> Iterator[httpx.Client]:
    host, port = server.server_address[:2]
    base = f"http://{host!s}:{port}"
    with httpx.Client(base_url=base, headers={"Accept-Encoding": "identity"}) as http:
        yield http


def raw(
    server: OutputServer, method: str, path: str, headers: dict[str, str] | None = None
) -> Response:
    """One request over http.client: the path is sent as is, the body is not decoded."""
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        conn.close()


def replace(path: Path, data: bytes, mtime: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.utime(tmp, (mtime, mtime))
    os.replace(tmp, path)


# Content types and validators


@pytest.mark.parametrize(
    ("path", "content_type", "data"),
    [
        ("/feed.atom", "application/atom+xml; charset=utf-8", ATOM),
        ("/feed.rss", "application/rss+xml; charset=utf-8", RSS),
        ("/feed.json", "application/feed+json; charset=utf-8", JSON),
    ],
)
def test_feeds_have_content_type_with_charset(
    client: httpx.Client, path: str, content_type: str, data: bytes
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["vary"] == "Accept-Encoding"


def test_markdown_posts_are_served_and_queries_ignored(client: httpx.Client) -> None:
    response = client.get("/markdown/feed/post.md?utm_source=x")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/markdown; charset=utf-8"
    assert response.content == b"# Post\n\nbody\n"


def test_strong_etag_and_last_modified(client: httpx.Client) -> None:
    response = client.get("/feed.atom")
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert len(etag) == 34
    assert response.headers["last-modified"] == formatdate(MTIME, usegmt=True)
    assert client.get("/feed.atom").headers["etag"] == etag
    assert client.get("/feed.rss").headers["etag"] != etag


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", '"nope", {etag}', "*", "W/{etag}", '"a",W/"b" , W/{etag}'],
)
def test_if_none_match_gives_304(client: httpx.Client, if_none_match: str) -> None:
    etag = client.get("/feed.atom").headers["etag"]
    response = client.get("/feed.atom", headers={"If-None-Match": if_none_match.format(etag=etag)})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["last-modified"] == formatdate(MTIME, usegmt=True)
    assert response.headers["cache-control"] == "no-cache"
    assert "content-type" not in response.headers


def test_if_none_match_other_tag_gives_200(client: httpx.Client) -> None:
    response = client.get("/feed.atom", headers={"If-None-Match": '"0123", W/"abcd"'})
    assert response.status_code == 200
    assert response.content == ATOM


def test_if_modified_since(client: httpx.Client) -> None:
    def status(since: str, **extra: str) -> int:
        return client.get("/feed.atom", headers={"If-Modified-Since": since, **extra}).status_code

    assert status(formatdate(MTIME, usegmt=True)) == 304
    assert status(formatdate(MTIME + 3600, usegmt=True)) == 304
    assert status(formatdate(MTIME - 1, usegmt=True)) == 200
    assert status("not a date") == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2)
    assert status(formatdate(MTIME, usegmt=True), **{"If-None-Match": '"other"'}) == 200


def test_changed_file_gives_200_with_new_validators(client: httpx.Client, out_dir: Path) -> None:
    first = client.get("/feed.atom")
    replace(out_dir / "feed.atom", ATOM + b"<!-- more -->\n", MTIME + 60)
    etag_check = client.get("/feed.atom", headers={"If-None-Match": first.headers["etag"]})
    date_check = client.get(
        "/feed.atom", headers={"If-Modified-Since": first.headers["last-modified"]}
    )
    for response in (etag_check, date_check):
        assert response.status_code == 200
        assert response.content == ATOM + b"<!-- more -->\n"
        assert response.headers["etag"] != first.headers["etag"]
        assert response.headers["last-modified"] == formatdate(MTIME + 60, usegmt=True)


# gzip


def test_gzip_when_accepted(server: OutputServer) -> None:
    _, plain, _ = raw(server, "GET", "/feed.atom")
    status, headers, body = raw(server, "GET", "/feed.atom", {"Accept-Encoding": "br, gzip"})
    assert status == 200
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept-Encoding"
    assert headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert headers["content-length"] == str(len(body))
    assert gzip.decompress(body) == ATOM
    assert len(body) < len(ATOM)
    assert headers["etag"] != plain["etag"]
    assert headers["etag"].endswith('-gzip"')
    assert raw(server, "GET", "/feed.atom", {"Accept-Encoding": "gzip"})[2] == body


def test_gzip_etag_matches_for_304(server: OutputServer) -> None:
    accept = {"Accept-Encoding": "gzip"}
    etag = raw(server, "GET", "/feed.atom", accept)[1]["etag"]
    status, headers, body = raw(server, "GET", "/feed.atom", {**accept, "If-None-Match": etag})
    assert (status, body) == (304, b"")
    assert headers["etag"] == etag
    assert headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize("accept", ["gzip;q=0", "identity", "br", "*;q=0", "gzip; q=0.0, br"])
def test_no_gzip_when_not_accepted(server: OutputServer, accept: str) -> None:
    status, headers, body = raw(server, "GET", "/feed.atom", {"Accept-Encoding": accept})
    assert status == 200
    assert "content-encoding" not in headers
    assert headers["vary"] == "Accept-Encoding"
    assert body == ATOM


def test_no_gzip_without_accept_encoding(server: OutputServer) -> None:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.putrequest("GET", "/feed.atom", skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        assert response.getheader("Content-Encoding") is None
        assert response.read() == ATOM
    finally:
        conn.close()


@pytest.mark.parametrize("accept", ["*", "deflate, gzip;q=0.5", "GZIP"])
def test_gzip_accepted_forms(server: OutputServer, accept: str) -> None:
    headers = raw(server, "GET", "/feed.atom", {"Accept-Encoding": accept})[1]
    assert headers["content-encoding"] == "gzip"


def test_tiny_bodies_are_not_gzipped(server: OutputServer) -> None:
    status, headers, body = raw(
        server, "GET", "/markdown/feed/post.md", {"Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert "content-encoding" not in headers
    assert body == b"# Post\n\nbody\n"


def test_gzip_cache_is_bounded_and_deterministic() -> None:
    cache = GzipCache(max_entries=2)
    first = cache.compress('"a"', ATOM)
    assert cache.compress('"a"', ATOM) is first
    cache.compress('"b"', RSS)
    cache.compress('"c"', JSON)  # evicts "a", the least recently used
    again = cache.compress('"a"', ATOM)
    assert again is not first
    assert again == first == gzip.compress(ATOM, mtime=0)


# HEAD and methods


@pytest.mark.parametrize("accept", ["identity", "gzip"])
def test_head_has_get_headers_without_body(server: OutputServer, accept: str) -> None:
    get_status, get_headers, get_body = raw(server, "GET", "/feed.rss", {"Accept-Encoding": accept})
    status, headers, body = raw(server, "HEAD", "/feed.rss", {"Accept-Encoding": accept})
    assert (status, body) == (get_status, b"")
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    for name in ("content-type", "etag", "last-modified", "vary", "cache-control"):
        assert headers[name] == get_headers[name]


def test_head_of_missing_file_is_404_without_body(server: OutputServer) -> None:
    status, headers, body = raw(server, "HEAD", "/missing.atom")
    assert (status, body) == (404, b"")
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(client: httpx.Client, method: str) -> None:
    response = client.request(method, "/feed.atom", content=b"payload")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["connection"] == "close"


def test_unknown_method_is_501(server: OutputServer) -> None:
    assert raw(server, "BREW", "/feed.atom")[0] == 501


# Paths


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/../etc/passwd",
        "/%2e%2e/secret.txt",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/markdown/../../secret.txt",
        "/markdown/%2e%2e/%2e%2e/secret.txt",
        "/..\\secret.txt",
        "/%5c..%5csecret.txt",
        "//etc/passwd",
        "/etc/passwd",
        "/feed.atom%00",
        "/%00/../secret.txt",
        "/%ff%fe",
        "/.hidden.tmp",
        "http://example.invalid/../secret.txt",
    ],
)
def test_traversal_never_leaks(server: OutputServer, path: str) -> None:
    status, _, body = raw(server, "GET", path)
    assert status in (400, 404)
    assert SECRET not in body
    assert b"root:" not in body


def test_absolute_form_target_is_accepted(server: OutputServer) -> None:
    status, _, body = raw(server, "GET", "http://example.invalid/feed.rss?x=1")
    assert (status, body) == (200, RSS)


def test_symlinks_leading_outside_are_404(server: OutputServer, out_dir: Path) -> None:
    (out_dir / "leak.atom").symlink_to(out_dir.parent / "secret.txt")
    (out_dir / "outside").symlink_to(out_dir.parent, target_is_directory=True)
    (out_dir / "loop.atom").symlink_to(out_dir / "loop.atom")
    for path in ("/leak.atom", "/outside/secret.txt", "/loop.atom"):
        status, _, body = raw(server, "GET", path)
        assert status == 404, path
        assert SECRET not in body


def test_symlinks_inside_are_served(client: httpx.Client, out_dir: Path) -> None:
    (out_dir / "alias.atom").symlink_to(out_dir / "feed.atom")
    assert client.get("/alias.atom").content == ATOM


def test_hidden_and_temp_files_are_404(client: httpx.Client, out_dir: Path) -> None:
    (out_dir / ".feed.atom.x1y2.tmp").write_bytes(b"partial")
    response = client.get("/.feed.atom.x1y2.tmp")
    assert response.status_code == 404
    assert b"partial" not in response.content


@pytest.mark.parametrize("path", ["/markdown", "/markdown/", "/markdown/feed/"])
def test_directories_are_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert b"post.md" not in response.content


def test_missing_file_is_404_with_short_text(client: httpx.Client) -> None:
    response = client.get("/nope.rss")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "not found\n"


def test_unknown_suffix_is_octet_stream(client: httpx.Client, out_dir: Path) -> None:
    (out_dir / "data.bin").write_bytes(b"\x00\x01")
    assert client.get("/data.bin").headers["content-type"] == "application/octet-stream"


# Index, health, metrics


def test_index_lists_top_level_files(client: httpx.Client, out_dir: Path) -> None:
    (out_dir / "a<b>&c.json").write_bytes(b"{}")
    (out_dir / ".feed.atom.tmp").write_bytes(b"")
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    for name in ("feed.atom", "feed.rss", "feed.json"):
        assert f'<a href="{name}">{name}</a>' in page
    assert '<a href="a%3Cb%3E%26c.json">a&lt;b&gt;&amp;c.json</a>' in page
    assert "markdown" not in page
    assert ".feed.atom.tmp" not in page
    etag = response.headers["etag"]
    assert client.get("/", headers={"If-None-Match": etag}).status_code == 304


def test_index_html_is_served_when_present(client: httpx.Client, out_dir: Path) -> None:
    (out_dir / "index.html").write_bytes(b"<h1>mine</h1>")
    response = client.get("/")
    assert response.content == b"<h1>mine</h1>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def test_healthz_ok(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok: fine\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"


def test_healthz_unhealthy(client: httpx.Client, probe: Probe) -> None:
    probe.answer = (False, "last tick 900s ago")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.text == "unhealthy: last tick 900s ago\n"
    assert response.headers["cache-control"] == "no-store"


def test_healthz_when_probe_raises(
    client: httpx.Client, probe: Probe, caplog: pytest.LogCaptureFixture
) -> None:
    probe.error = RuntimeError("database is locked")
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.text == "unhealthy: database is locked\n"
    assert any(record.exc_info for record in caplog.records)


def test_metrics(client: httpx.Client, metrics: Metrics) -> None:
    metrics.ticks.inc()
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "aggregator_ticks_total 1.0" in response.text
    assert response.headers["cache-control"] == "no-store"


# Server behaviour


def test_requests_logged_at_debug_not_stderr(
    client: httpx.Client,
    server: OutputServer,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aggregator.serve")
    client.get("/feed.atom")
    client.get("/missing")
    server.shutdown()  # the fixture's second shutdown is a no-op
    assert capsys.readouterr().err == ""
    messages = [r.getMessage() for r in caplog.records if r.name == "aggregator.serve"]
    assert any("GET /feed.atom" in m and "200" in m for m in messages)


def test_client_disconnect_is_quiet(
    server: OutputServer, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (out_dir / "big.json").write_bytes(os.urandom(4 << 20))
    host, port = server.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=5) as sock:
        sock.sendall(b"GET /big.json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: identity\r\n\r\n")
        sock.recv(1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    assert raw(server, "GET", "/feed.rss")[0] == 200
    server.shutdown()
    server.server_close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_keep_alive_serves_several_requests(server: OutputServer) -> None:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        for path in ("/feed.atom", "/missing", "/feed.rss"):
            conn.request("GET", path)
            conn.getresponse().read()
        assert conn.sock is not None  # the same connection was reused
    finally:
        conn.close()


def test_start_server_runs_in_a_daemon_thread(
    out_dir: Path, probe: Probe, metrics: Metrics
) -> None:
    srv, thread = start_server(
        out_dir, host="127.0.0.1", port=0, health=probe, registry=metrics.registry
    )
    try:
        assert thread.daemon and thread.is_alive()
        port = srv.server_address[1]
        assert port != 0
        assert raw(srv, "GET", "/healthz")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
    assert not thread.is_alive()
