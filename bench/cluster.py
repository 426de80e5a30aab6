"""BENCH TOOL: several ``aggregator run`` nodes on one PostgreSQL against bench/feedserver.py
(one server process per host), measured in the steady state (issue #17, docs/scaling.md).

    AGGREGATOR_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
    python -m bench.cluster --nodes 3 --hosts 4 --feeds-per-host 250 --interval 2 --seconds 30

After the first round (every source stored once), for ``--seconds``: requests the servers
answered per source per interval, polls/s and CPU seconds per poll of each node (from its tick
lines and /proc), PostgreSQL's CPU per poll (every ``postgres`` process on this machine) and its
commits and row writes per poll; then the database's size per source and per polls row. A
fresh database is created and dropped. Not a test: it sleeps for its measuring window.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import httpx
from sqlalchemy import create_engine, text

from tests.clusterkit import Node, kill_all, start_nodes, wait_for
from tests.pgdb import fresh_database

_TICK = re.compile(rb"tick due=\d+ ok=(\d+) not_modified=\d+ failed=(\d+)")
_HZ = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _HZ  # utime + stime


def postgres_cpu_s() -> float:
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text_ = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text_:
            fields = text_.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _HZ
    return total


def polls_in(log: bytes) -> int:
    return sum(int(ok) + int(failed) for ok, failed in _TICK.findall(log))


def start_hosts(count: int, feeds: int) -> tuple[list[subprocess.Popen[bytes]], list[int]]:
    procs, ports = [], []
    for seed in range(count):
        proc = subprocess.Popen(
            [sys.executable, "bench/feedserver.py", "--port", "0", "--feeds", str(feeds),
             "--entries", "20", "--seed", str(seed + 1), "--max-seconds", "900"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        ports.append(int(proc.stdout.readline()))
        procs.append(proc)
    return procs, ports


def config(db_url: str, ports: list[int], feeds: int, args: argparse.Namespace) -> str:
    sources = "".join(
        f'[[sources]]\nid = "h{h}-{i}"\nurl = "http://127.0.0.1:{port}/feed/{i}"\n'
        for h, port in enumerate(ports)
        for i in range(feeds)
    )
    return (
        f'[storage]\nurl = "{db_url}"\n[output]\ndir = "public"\n'
        'base_url = "http://aggregator.example/"\n[server]\nlisten = "127.0.0.1:0"\n'
        f'[poll]\ninterval = "{args.interval}s"\nmin_interval = "1s"\njitter = 0\n'
        f'tick = "{args.tick}s"\ntimeout = "5s"\nmax_concurrency = 32\nper_host = 8\n'
        f'parse_workers = 1\n[cluster]\nenabled = true\nlease = "{args.lease}s"\n'
        f"batch = {args.batch}\n\n{sources}"
    )


def snapshot(nodes: list[Node], engine: object, ports: list[int], reset: bool) -> dict[str, object]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        row = conn.execute(text(
            "select xact_commit, tup_inserted, tup_updated, tup_deleted from pg_stat_database "
            "where datname = current_database()"
        )).one()  # fmt: skip
        recorded = int(conn.execute(text("select count(*) from polls")).scalar() or 0)
    with httpx.Client() as http:
        requests = sum(
            http.get(f"http://127.0.0.1:{p}/_stats" + ("?reset=1" if reset else "")).json()[
                "requests"
            ]["total"]
            for p in ports
        )
    return {
        "at": time.monotonic(),
        "cpu": {n.name: cpu_s(n.proc.pid) for n in nodes},
        "polls": {n.name: polls_in((n.dir / "log").read_bytes()) for n in nodes},
        "pg_cpu": postgres_cpu_s(),
        "pg": list(row),
        "requests": requests,
        "recorded": recorded,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--hosts", type=int, default=4)
    p.add_argument("--feeds-per-host", type=int, default=250)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--tick", type=float, default=1.0)
    p.add_argument("--lease", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--churn", type=float, default=0.0, help="fraction changed per interval")
    args = p.parse_args()
    pg = os.environ["AGGREGATOR_TEST_PG_URL"]
    hosts, ports = start_hosts(args.hosts, args.feeds_per_host)
    sources = args.hosts * args.feeds_per_host
    with TemporaryDirectory() as tmp, fresh_database(pg) as db_url:
        engine = create_engine(db_url)
        names = [f"n{i + 1}" for i in range(args.nodes)]
        nodes = start_nodes(Path(tmp), names, config(db_url, ports, args.feeds_per_host, args))
        try:
            for node in nodes:
                node.wait_serving()
            stored = "select count(*) from sources where last_poll_at is not null"
            wait_for(lambda: _scalar(engine, stored) == sources, "the first round", 600)
            before = snapshot(nodes, engine, ports, reset=True)
            _measure(args, ports)
            after = snapshot(nodes, engine, ports, reset=False)
            sizes = _sizes(engine)
        finally:
            for node in nodes:
                node.stop()
            kill_all(nodes)
            engine.dispose()
            for proc in hosts:
                proc.kill()
    print(json.dumps(_report(args, sources, before, after, sizes), indent=2))


def _measure(args: argparse.Namespace, ports: list[int]) -> None:
    """The measuring window; with ``--churn``, that fraction of each host's feeds gains two
    entries every interval."""
    end = time.monotonic() + args.seconds
    round_ = 0
    with httpx.Client() as http:
        while time.monotonic() < end:
            if args.churn:
                round_ += 1
                for port in ports:
                    http.post(
                        f"http://127.0.0.1:{port}/_churn?fraction={args.churn}&round={round_}"
                    )
            time.sleep(min(args.interval, max(0.0, end - time.monotonic())))  # a benchmark


def _scalar(engine: object, sql: str) -> object:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return conn.execute(text(sql)).scalar()


def _sizes(engine: object) -> dict[str, int]:
    sql = (
        "select relname, pg_total_relation_size(oid) from pg_class where relkind = 'r' "
        "and relnamespace = 'public'::regnamespace"
    )
    with engine.connect() as conn:  # type: ignore[attr-defined]
        out = {name: int(size) for name, size in conn.execute(text(sql))}
        out["polls_rows"] = int(conn.execute(text("select count(*) from polls")).scalar() or 0)
        out["entries_rows"] = int(conn.execute(text("select count(*) from entries")).scalar() or 0)
    return out


def _report(args: argparse.Namespace, sources: int, before: dict, after: dict,
            sizes: dict[str, int]) -> dict[str, object]:  # fmt: skip
    seconds = after["at"] - before["at"]
    polls = {n: after["polls"][n] - before["polls"][n] for n in after["polls"]}
    cpu = {n: after["cpu"][n] - before["cpu"][n] for n in after["cpu"]}
    total = sum(polls.values())
    pg = [a - b for a, b in zip(after["pg"], before["pg"], strict=True)]
    return {
        "args": vars(args),
        "sources": sources,
        "window_s": round(seconds, 2),
        "requests": after["requests"],
        "recorded_polls": after["recorded"] - before["recorded"],
        "requests_per_source_per_interval": round(
            after["requests"] / (sources * seconds / args.interval), 3
        ),
        "requests_per_recorded_poll": round(
            after["requests"] / max(after["recorded"] - before["recorded"], 1), 3
        ),
        "polls": total,
        "polls_per_s": {n: round(v / seconds, 1) for n, v in polls.items()},
        "cpu_ms_per_poll": {n: round(1000 * cpu[n] / max(polls[n], 1), 3) for n in polls},
        "node_cpu_share": {n: round(cpu[n] / seconds, 3) for n in cpu},
        "postgres_cpu_ms_per_poll": round(1000 * (after["pg_cpu"] - before["pg_cpu"]) / total, 3),
        "commits_per_poll": round(pg[0] / total, 3),
        "rows_written_per_poll": round((pg[1] + pg[2] + pg[3]) / total, 3),
        "sizes_bytes": sizes,
    }


if __name__ == "__main__":
    main()
