"""Overlapped, hedged S3 reads (runtime.readahead), patience with 503 storms,
and counted S3 requests checked against what S3 was asked.

The read-ahead's own tests feed it a slow ``read`` function (the component
under test is real, only the network is played); the others run against a
moto server behind tests/s3_proxy.py, which forwards every request and
records it, and answers 503 Slow Down or holds a request when told to.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from runtime import readahead

# --------------------------------------------------------------------------- read-ahead


def _data(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


class SlowReads:
    """``read(uri, start, end, etag)`` over in-memory objects, each call after a
    random short delay; records how many run at once and which ranges."""

    def __init__(self, objects: dict[str, bytes], delay: float = 0.01, seed: int = 3) -> None:
        self.objects = objects
        self.delay = delay
        self.rnd = random.Random(seed)
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.calls: list[tuple[str, int, int]] = []
        self.fail_at: tuple[str, int] | None = None
        self.hang: dict[tuple[str, int], threading.Event] = {}   # first call of a piece waits

    def __call__(self, uri: str, start: int, end: int, etag) -> bytes:
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            first = (uri, start) not in {(u, s) for u, s, _ in self.calls}
            self.calls.append((uri, start, end))
            pause = self.rnd.random() * self.delay
        try:
            gate = self.hang.get((uri, start))
            if gate is not None and first:
                gate.wait(30)
            time.sleep(pause)
            if self.fail_at == (uri, start):
                raise FileNotFoundError(f"no such S3 object: {uri}")
            return self.objects[uri][start:end]
        finally:
            with self.lock:
                self.running -= 1


def test_pieces_come_back_in_order_whatever_finishes_first():
    objects = {f"s3://b/o{i}": _data(1000 + 97 * i, seed=i) for i in range(6)}
    reads = SlowReads(objects, delay=0.02)
    ranges = [(u, 10, len(d) - 5, None) for u, d in objects.items()]
    got: dict[int, bytes] = {}
    order = []
    for i, data in readahead.fetch(readahead.pieces_of(ranges, 128), reads, depth=8):
        order.append(i)
        got[i] = got.get(i, b"") + data
    assert order == sorted(order)
    assert [got[i] for i in range(6)] == [d[10:-5] for d in objects.values()]
    assert reads.max_running > 1          # really concurrent


def test_memory_stays_bounded_by_depth_and_bytes():
    objects = {"s3://b/big": _data(64 * 100)}
    reads = SlowReads(objects, delay=0.005)
    pieces = readahead.pieces_of([("s3://b/big", 0, 6400, None)], 64)
    consumed = 0
    ahead = []
    for _, data in readahead.fetch(pieces, reads, depth=4, max_bytes=1 << 20):
        consumed += 1
        time.sleep(0.002)   # a consumer slower than the reads
        ahead.append(len(reads.calls) - consumed)
    assert consumed == 100
    assert reads.max_running <= 4 and max(ahead) <= 4
    # a byte budget smaller than depth pieces: one piece in flight at a time
    reads2 = SlowReads(objects)
    list(readahead.fetch(pieces, reads2, depth=8, max_bytes=64))
    assert reads2.max_running == 1


def test_an_error_is_raised_where_its_piece_is():
    objects = {"s3://b/a": _data(500), "s3://b/b": _data(500, 2)}
    reads = SlowReads(objects)
    reads.fail_at = ("s3://b/b", 100)
    got = []
    with pytest.raises(FileNotFoundError, match="s3://b/b"):
        for i, data in readahead.fetch(readahead.pieces_of(
                [(u, 0, 500, None) for u in objects], 100), reads, depth=6):
            got.append((i, len(data)))
    # everything before the failed piece arrived, in order, and nothing after it
    assert got == [(0, 100)] * 5 + [(1, 100)]


def test_a_short_piece_ends_its_range():
    objects = {"s3://b/short": _data(250)}      # planned 400 bytes, the object has 250
    got = b"".join(d for _, d in readahead.fetch(readahead.pieces_of(
        [("s3://b/short", 0, 400, None)], 100), SlowReads(objects)))
    assert got == objects["s3://b/short"]


def test_a_hanging_read_is_hedged_and_the_first_answer_wins(monkeypatch):
    monkeypatch.setattr(readahead, "HEDGE_MIN_S", 0.2)
    objects = {"s3://b/h": _data(4000)}
    reads = SlowReads(objects, delay=0.0)
    gate = threading.Event()
    reads.hang[("s3://b/h", 2000)] = gate            # the third piece's first GET hangs
    before = readahead.hedges_sent
    try:
        got = b"".join(d for _, d in readahead.fetch(readahead.pieces_of(
            [("s3://b/h", 0, 4000, None)], 1000), reads, depth=2, hedge=4.0))
    finally:
        gate.set()
    assert got == objects["s3://b/h"]
    assert readahead.hedges_sent == before + 1
    assert [c for c in reads.calls if c[1] == 2000] == [("s3://b/h", 2000, 3000)] * 2


def test_a_read_in_retry_backoff_is_not_hedged(monkeypatch):
    """A piece slow because S3 throttles it waits: a copy would add load."""
    monkeypatch.setattr(readahead, "HEDGE_MIN_S", 0.05)
    objects = {"s3://b/t": _data(300)}
    reads = SlowReads(objects, delay=0.0)
    gate = threading.Event()
    reads.hang[("s3://b/t", 100)] = gate
    real = reads.__call__

    def throttled(uri, start, end, etag):
        if start == 100:
            readahead.note_retry()      # what runtime.s3.Retrying does before its sleep
        return real(uri, start, end, etag)

    threading.Timer(0.5, gate.set).start()
    before = readahead.hedges_sent
    got = b"".join(d for _, d in readahead.fetch(readahead.pieces_of(
        [("s3://b/t", 0, 300, None)], 100), throttled, hedge=2.0))
    assert got == objects["s3://b/t"] and len(reads.calls) == 3
    assert readahead.hedges_sent == before


def test_no_hedge_when_turned_off(monkeypatch):
    monkeypatch.setattr(readahead, "HEDGE_MIN_S", 0.05)
    objects = {"s3://b/h": _data(300)}
    reads = SlowReads(objects, delay=0.0)
    gate = threading.Event()
    reads.hang[("s3://b/h", 100)] = gate
    threading.Timer(0.5, gate.set).start()
    got = b"".join(d for _, d in readahead.fetch(readahead.pieces_of(
        [("s3://b/h", 0, 300, None)], 100), reads, hedge=False))
    assert got == objects["s3://b/h"] and len(reads.calls) == 3


def _wait_for(condition, limit: float = 30.0) -> None:
    """Wait until the pool's threads have done what was asked of them."""
    deadline = time.monotonic() + limit
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_run_streams_open_ahead_in_a_window_and_keep_one_piece_in_flight():
    """Sorted runs read as streams (a merge takes each run's first batch in
    turn): opening run i also requests the first pieces of the next runs, up
    to the window; each stream has at most its next piece in flight."""
    objects = {f"s3://b/r{i}": _data(300, seed=i) for i in range(10)}
    reads = SlowReads(objects, delay=0.005)
    spans = [(u, 0, 300) for u in objects]
    streams = readahead.Streams(spans, reads, chunk=100, window=3)
    its = [streams.stream(i) for i in range(10)]
    assert reads.calls == []                     # nothing until a stream is read
    heads = [next(its[0])]
    _wait_for(lambda: len(reads.calls) >= 5)
    # run 0's first two pieces, and the first of the next three runs
    assert sorted(reads.calls) == sorted([("s3://b/r0", 100, 200)] + [
        (f"s3://b/r{i}", 0, 100) for i in range(4)])
    heads += [next(it) for it in its[1:]]
    assert heads == [d[:100] for d in objects.values()]
    _wait_for(lambda: len(reads.calls) >= 20)
    # every run: its first piece and the one after it, nothing more yet
    assert sorted(reads.calls) == sorted([(u, s, s + 100) for u in objects for s in (0, 100)])
    rest = [b"".join(it) for it in its]
    assert [h + r for h, r in zip(heads, rest)] == list(objects.values())


# --------------------------------------------------------------------------- against moto

boto3 = pytest.importorskip("boto3")
pytest.importorskip("moto")

from aws_fixtures import aws_reset, moto_server, run_lambda_locally, s3_bucket  # noqa: E402,F401
from s3_proxy import S3Proxy  # noqa: E402
from runtime import s3, s3stats, storage  # noqa: E402
from sqlmr.aws import deploy  # noqa: E402
from sqlmr.config import Settings  # noqa: E402
from sqlmr.render import summary_lines  # noqa: E402
from sqlmr.session import Session  # noqa: E402
from test_lambda_backend import ddl, local_rows, upload_tables  # noqa: E402
from difftest import assert_same  # noqa: E402


@pytest.fixture
def proxy(moto_server, monkeypatch):
    """S3 (only S3: Lambda and IAM stay on moto directly) behind a recording proxy."""
    with S3Proxy(moto_server) as p:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", p.url)
        s3.reset_client()
        yield p
    s3.reset_client()


def test_retries_last_as_long_as_the_patience_and_the_task_deadline_allow(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(s3, "_sleep", sleeps.append)
    monkeypatch.setattr(s3, "_random", lambda: 1.0)     # the longest full-jitter delays
    monkeypatch.setattr(s3, "MAX_ATTEMPTS", None)
    monkeypatch.setattr(s3, "RETRY_PATIENCE_S", 3.0)
    budget = s3.Retrying()
    while budget.wait():
        pass
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])   # 1.6 more would pass 3 s
    assert "after 5 attempts" in str(budget.gave_up("s3://b/k", RuntimeError("503")))
    # a task that must end soon stops retrying DEADLINE_MARGIN_S before its end
    sleeps.clear()
    monkeypatch.setattr(s3, "RETRY_PATIENCE_S", 300.0)
    s3.set_deadline(s3.DEADLINE_MARGIN_S + 0.35)
    try:
        budget = s3.Retrying()
        while budget.wait():
            pass
    finally:
        s3.set_deadline(None)
    assert sleeps == pytest.approx([0.1, 0.2])


def test_a_straggling_get_is_hedged_over_the_wire(s3_bucket, proxy, monkeypatch):
    monkeypatch.setattr(readahead, "HEDGE_MIN_S", 0.3)
    monkeypatch.setattr(readahead, "CHUNK", 1 << 16)
    monkeypatch.setattr(readahead, "FIRST", 1 << 16)
    data = _data(5 << 16)
    uri = f"s3://{s3_bucket}/h/obj"
    storage.write_bytes(uri, data)
    gate = threading.Event()
    held = []

    def hold_third_get(kind, n, path):
        if kind == "GET" and n == 2:      # the first request for one piece straggles
            held.append(path)
            return gate
        return None

    proxy.faults = hold_third_get
    before = readahead.hedges_sent
    try:
        got = b"".join(storage.iter_range_ahead(uri, 0, len(data), 1 << 16))
    finally:
        gate.set()
    assert got == data and held
    assert readahead.hedges_sent == before + 1
    assert proxy.counts()["GET"] == 6        # five pieces, one of them asked twice


def test_counted_requests_are_the_requests_s3_saw(aws_reset, s3_bucket, proxy, monkeypatch):
    """A query on the Lambda backend (the real package in subprocesses): the
    S3 requests the tasks and the driver counted equal, kind by kind, the
    requests the proxy in front of moto saw."""
    upload_tables(s3_bucket)
    run_lambda_locally(monkeypatch, s3_bucket)
    monkeypatch.setenv("SQLMR_LAMBDA_SPECULATION", "off")   # no attempt left running
    sql = "SELECT sourceIP, SUM(adRevenue) FROM uv GROUP BY sourceIP"
    settings = Settings(backend="lambda", split_mb=0.04, reducers=3)
    session = Session(settings)
    try:
        list(session.execute(ddl(s3_bucket)))
        for r in session.execute("SELECT COUNT(*) FROM rk"):   # deploys, checks the bucket
            list(r.rows)
            r.close()
        proxy.log.clear()
        res = list(session.execute(sql))[-1]
        rows = list(res.rows)
        cost = [ln for ln in summary_lines(res, settings) if ln.startswith("Cost:")][0]
        res.close()
        saw = proxy.counts()
        counted = res.stats.counted_s3()
    finally:
        session.close()
        deploy.forget_deployments()
    assert len(rows) > 100
    want = {"GET": counted.get("get", 0), "HEAD": counted.get("head", 0),
            "PUT": counted.get("put", 0), "LIST": counted.get("list", 0),
            "DELETE": counted.get("delete", 0)}
    assert {k: saw.get(k, 0) for k in want} == want, proxy.log
    assert sum(saw.values()) == sum(want.values())
    assert want["GET"] > res.stats.map_tasks and want["PUT"] >= res.stats.map_tasks
    # the cost line (before the scratch cleanup, which only lists and deletes)
    assert "S3 PUT counted)" in cost and "(estimate:" in cost
    assert f"{want['GET'] + want['HEAD']:,} S3 GET" in cost


def test_a_query_survives_a_storm_of_503s(aws_reset, s3_bucket, proxy, monkeypatch):
    """Every S3 request is answered 503 Slow Down nine times before S3 takes
    it (more than the eight attempts sqlmr used to make): the query waits and
    gives the right answer, on the Lambda backend with the real package."""
    upload_tables(s3_bucket)
    sql = "SELECT SUBSTR(sourceIP, 1, 5), SUM(adRevenue) FROM uv GROUP BY SUBSTR(sourceIP, 1, 5)"
    want = local_rows(s3_bucket, sql)
    run_lambda_locally(monkeypatch, s3_bucket)
    monkeypatch.setenv("SQLMR_S3_BACKOFF_CAP_S", "0.2")   # the tasks' (subprocesses)
    monkeypatch.setattr(s3, "BACKOFF_CAP", 0.2)           # the driver's
    monkeypatch.setenv("SQLMR_LAMBDA_SPECULATION", "off")
    session = Session(Settings(backend="lambda", split_mb=0.1, reducers=2))
    sent: dict[str, int] = {}

    def storm(kind, n, path):
        sent[path] = sent.get(path, 0) + 1
        return "503" if sent[path] <= 9 else None

    try:
        list(session.execute(ddl(s3_bucket)))
        for r in session.execute("SELECT COUNT(*) FROM rk"):   # deploys before the storm
            list(r.rows)
            r.close()
        proxy.faults = storm
        res = list(session.execute(sql))[-1]
        got = [list(r) for r in res.rows]
        retries = res.stats.counted_s3().get("retries", 0)
        res.close()
    finally:
        proxy.faults = lambda k, n, p: None
        session.close()
        deploy.forget_deployments()
    assert_same(got, want, ordered=False)
    assert proxy.answered_503 >= 9 * res.stats.map_tasks
    assert retries >= 9 * res.stats.map_tasks     # the tasks counted theirs


def test_stats_file_of_a_script_on_lambda_counts_what_s3_saw(aws_reset, s3_bucket, proxy,
                                                            monkeypatch, tmp_path):
    """``sqlmr --backend lambda --stats FILE -f script``: the file's counted S3
    requests are the requests S3 saw during the run (deploy and bucket checks
    included), its invocations every task run, its GB-s an estimate."""
    from sqlmr import cli
    upload_tables(s3_bucket)
    run_lambda_locally(monkeypatch, s3_bucket)
    monkeypatch.setenv("SQLMR_LAMBDA_SPECULATION", "off")
    script = tmp_path / "q.sql"
    script.write_text(ddl(s3_bucket) + "SELECT COUNT(*) FROM rk;\n"
                      "SELECT sourceIP, SUM(adRevenue) FROM uv GROUP BY sourceIP;\n")
    stats_path = tmp_path / "stats.json"
    proxy.log.clear()   # the tables' upload
    try:
        code = cli.main(["--backend", "lambda", "--split-mb", "0.04", "--reducers", "2",
                         "--format", "csv", "--stats", str(stats_path), "-f", str(script)])
        saw = proxy.counts()
    finally:
        deploy.forget_deployments()
    assert code == 0
    import json
    rec = json.loads(stats_path.read_text())
    assert [s["statement"].split()[0] for s in rec["statements"]] == ["CREATE", "CREATE",
                                                                     "SELECT", "SELECT"]
    agg = rec["statements"][3]
    assert [(s["stage"], s["kind"]) for s in agg["stages"]] == [(1, "map"), (1, "reduce")]
    assert agg["stages"][1]["tasks"] == 2 and agg["stages"][0]["tasks"] >= 3
    assert agg["invocations"] == sum(s["tasks"] for s in agg["stages"])
    assert "estimated_gb_s" in agg and "billed_gb_s" not in rec and agg["cost_usd"] > 0
    assert agg["cost_s3_requests"] == "counted"
    # the shuffle: the reducers read what the maps wrote, less its headers and indexes
    assert 0.9 * agg["stages"][0]["bytes_out"] < agg["stages"][1]["bytes_in"] \
        < agg["stages"][0]["bytes_out"]
    want = {"GET": rec["s3_get"], "HEAD": rec["s3_head"], "PUT": rec["s3_put"],
            "LIST": rec["s3_list"], "DELETE": rec["s3_delete"]}
    assert {k: saw.get(k, 0) for k in want} == want, proxy.log
    assert rec["wall_s"] >= sum(s["wall_s"] for s in rec["statements"])
