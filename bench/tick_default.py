"""Measure daemon ticks over the default config's seeds, served over HTTP on 127.0.0.1.

    python bench/tick_default.py [--rounds 3]

Cold tick (empty database), then a warm tick with nothing changed: counts the requests sent,
their answers, what was parsed and which outputs were written. Also the offline first tick.
Bounded: the server stops with the script.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aggregator.config import load_config, parse_config
from aggregator.scheduler import build_scheduler
from aggregator.store import open_store

ROOT = Path(__file__).resolve().parent.parent


def serve(files: dict[str, bytes], answers: Counter[int]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self._send(404, {}, b"")
                return
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self._send(304, {"ETag": etag}, b"")
            else:
                self._send(200, {"ETag": etag}, body)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            answers[status] += 1
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def http_round(workdir: Path) -> dict[str, object]:
    default = load_config(ROOT / "config" / "aggregator.toml")
    files: dict[str, bytes] = {}
    for s in default.sources:
        assert s.fixture is not None
        if s.fixture.is_file():
            files[f"/{s.id}"] = s.fixture.read_bytes()
    answers: Counter[int] = Counter()
    httpd = serve(files, answers)
    port = httpd.server_address[1]
    config = parse_config(
        {
            "storage": {"url": f"sqlite:///{workdir / 'db.sqlite'}"},
            "output": {
                "dir": str(workdir / "public"),
                "formats": ["atom", "rss", "json", "markdown"],
            },
            "poll": {"jitter": 0},
            "sources": [{"id": p[1:], "url": f"http://127.0.0.1:{port}{p}"} for p in files],
        },
        path=workdir / "c.toml",
    )
    now = datetime(2026, 11, 26, tzinfo=UTC)
    clock = [now]
    store = open_store(config.storage.url)
    sched = build_scheduler(config, store, clock=lambda: clock[0])
    sched.start()
    t0 = time.perf_counter()
    cold = sched.tick()
    assert cold.due == len(files), cold.summary()
    cold_s = time.perf_counter() - t0
    cold_answers = dict(answers)
    answers.clear()
    mtimes = {p: p.stat().st_mtime_ns for p in (workdir / "public").rglob("*") if p.is_file()}
    clock[0] = now + timedelta(days=2)  # past every interval and backoff
    t0 = time.perf_counter()
    warm = sched.tick()
    warm_s = time.perf_counter() - t0
    rewritten = sum(1 for p, m in mtimes.items() if p.stat().st_mtime_ns != m)
    sched.close()
    store.close()
    httpd.shutdown()
    httpd.server_close()
    return {
        "sources": len(files),
        "cold_s": cold_s,
        "cold_answers": cold_answers,
        "warm_s": warm_s,
        "warm_due": warm.due,
        "warm_answers": dict(answers),
        "warm_statuses": dict(Counter(o.status for o in warm.outcomes)),
        "warm_rendered": warm.rendered,
        "outputs_rewritten": rewritten,
    }


def offline_round(workdir: Path) -> float:
    shutil.copytree(ROOT / "config", workdir / "config")
    shutil.copytree(ROOT / "seeds", workdir / "seeds")
    config = load_config(workdir / "config" / "aggregator.toml")
    store = open_store(config.storage.url)
    sched = build_scheduler(config, store, offline=True)
    sched.start()
    t0 = time.perf_counter()
    sched.tick()
    elapsed = time.perf_counter() - t0
    sched.close()
    store.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results, offline = [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(http_round(Path(tmp)))
        with tempfile.TemporaryDirectory() as tmp:
            offline.append(offline_round(Path(tmp)))
    last = results[-1]
    print(f"sources over HTTP: {last['sources']} (the default config's single-file fixtures)")
    for key in ("cold_s", "warm_s"):
        values = [float(r[key]) for r in results]  # type: ignore[arg-type]
        print(f"{key}: min {min(values):.3f} median {statistics.median(values):.3f}")
    print(f"cold answers: {last['cold_answers']}")
    print(f"warm tick: due {last['warm_due']}, answers {last['warm_answers']}, "
          f"outcomes {last['warm_statuses']}, rendered {last['warm_rendered']}, "
          f"outputs rewritten {last['outputs_rewritten']}")  # fmt: skip
    print(f"offline first tick (default config, 16 sources): min {min(offline):.3f} s, "
          f"median {statistics.median(offline):.3f} s")  # fmt: skip


if __name__ == "__main__":
    main()
