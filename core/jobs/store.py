"""The persistent job queue: one SQLite file (WAL mode) at paths.db_path().

Jobs go queued → running → succeeded | failed | cancelled. Workers take jobs with an atomic claim
(one UPDATE … RETURNING inside BEGIN IMMEDIATE), so two workers never run the same job. What jobs
produce is found on disk (core.runs.list_runs, core.results.collect): the store keeps no run index
(schema 1 had one, written but never read; migration 2 drops it). The schema is versioned with PRAGMA user_version and grows only by
appending to MIGRATIONS, so a database from an older TaxoLens is upgraded in place on open.

Every SQLite failure (unwritable folder, full disk, locked database) surfaces as JobStoreError with
the database path and SQLite's reason.

A damaged store is refused when it opens, with one line saying how to recover, rather than read as
fewer jobs or replaced: an empty (0-byte) file, a write-ahead log whose header is not SQLite's (which
SQLite would silently ignore, dropping what it held), and anything PRAGMA integrity_check reports
(quick_check misses an index that lost rows, which is how `jobs list --status running` came to say
"no jobs"; the full check costs ~80 ms on a 50 MB store of 2000 jobs). A new store is built under a
temporary name and linked into place, so no process ever sees a half-made one.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from core import paths

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")

# Append only: entry i brings the schema from version i to i + 1.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            spec TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            progress REAL NOT NULL DEFAULT 0,
            message TEXT NOT NULL DEFAULT '',
            created REAL NOT NULL,
            started REAL,
            finished REAL,
            worker_pid INTEGER,
            worker_host TEXT,
            heartbeat REAL,
            log_path TEXT,
            run_dir TEXT,
            result TEXT,
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            parent_id INTEGER REFERENCES jobs(id),
            backend TEXT NOT NULL DEFAULT 'local',
            external_id TEXT
        )""",
        "CREATE INDEX jobs_by_status ON jobs(status, backend, id)",
        "CREATE INDEX jobs_by_parent ON jobs(parent_id)",
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            run_dir TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('train', 'eval', 'baseline', 'coherence')),
            config TEXT NOT NULL,
            metrics TEXT,
            job_id INTEGER,
            created REAL NOT NULL
        )""",
        "CREATE INDEX runs_by_kind ON runs(kind, created)",
        """CREATE TABLE workers (
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started REAL NOT NULL,
            heartbeat REAL NOT NULL,
            concurrency INTEGER NOT NULL,
            PRIMARY KEY (host, pid)
        )""",
    ],
    # 1 -> 2: the run registry is gone; run folders on disk (core.runs.list_runs) are the one index.
    ["DROP INDEX IF EXISTS runs_by_kind", "DROP TABLE IF EXISTS runs"],
]
SCHEMA_VERSION = len(MIGRATIONS)

# A running job whose heartbeat is older than this is presumed orphaned (its worker died).
STALE_AFTER_S = 60.0
# A job orphaned this many times (its worker keeps dying, e.g. killed for memory) is failed, not
# requeued again.
MAX_ATTEMPTS = 5


class JobStoreError(RuntimeError):
    """The job store cannot be opened or written; the message names the database and the reason."""


def _damaged(path: Path, problem: str, culprit: Path | None = None) -> JobStoreError:
    """The one-line refusal for a damaged store: what is wrong and how to get going again."""
    culprit = culprit or path
    lost = ("the transactions in it are lost" if culprit != path else
            "its job history is lost; run folders under runs/ are kept")
    return JobStoreError(f"job store {path} is damaged ({problem}); stop the app and any worker, then "
                         f"move it aside (mv '{culprit}' '{culprit}.damaged') and TaxoLens starts "
                         f"{'without it' if culprit != path else 'a new, empty store'} ({lost})")


WAL_MAGIC = (0x377F0682, 0x377F0683)      # little- / big-endian checksums (sqlite.org/fileformat2)


def wal_header_ok(header: bytes) -> bool:
    """True when 32 bytes are a valid SQLite WAL header: magic, format version, and the checksum
    of the first 24 bytes."""
    if len(header) < 32:
        return False
    magic, version = struct.unpack(">II", header[:8])
    if magic not in WAL_MAGIC or version != 3007000:
        return False
    words = struct.unpack((">" if magic & 1 else "<") + "6I", header[:24])
    s0 = s1 = 0
    for i in range(0, 6, 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return (s0, s1) == struct.unpack(">II", header[24:32])


# How the runner records a failed job's error: its message, this mark, the traceback's last 4000
# characters (error_parts splits them again for the app).
TRACEBACK_MARK = "\n\n--- traceback ---\n"


def error_parts(error: str) -> tuple[str, str]:
    """A failed job's error as (its message, its traceback or ""). Errors recorded before
    TRACEBACK_MARK read "Type: message\n\n<traceback tail>", the tail perhaps cut inside a chained
    traceback: the message then ends where the earliest traceback line begins; a bare traceback's
    message is its last line."""
    text = error.strip()
    if TRACEBACK_MARK.strip() in text:
        message, _, trace = text.partition(TRACEBACK_MARK.strip())
        return message.strip(), trace.strip("\n")
    marks = [i for i in (text.find("Traceback (most recent call last):"), text.find('  File "')) if i >= 0]
    if not marks:
        return text, ""
    start = min(marks)
    if text.startswith('  File "', start):               # a cut tail: it starts after the gap before it
        start = text.rfind("\n\n", 0, start) + 2 if "\n\n" in text[:start] else 0
    message, trace = text[:start].strip(), text[start:]
    if not message:
        lines = [line for line in trace.splitlines() if line.strip()]
        message = lines[-1].strip() if lines else trace
    return message, trace


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    spec: dict
    status: str
    progress: float
    message: str
    created: float
    started: float | None
    finished: float | None
    worker_pid: int | None
    worker_host: str | None
    heartbeat: float | None
    log_path: str | None
    run_dir: str | None
    result: dict | None
    error: str | None
    attempts: int
    cancel_requested: bool
    parent_id: int | None
    backend: str
    external_id: str | None

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Job":
        d = dict(row)
        d["spec"] = json.loads(d["spec"])
        d["result"] = json.loads(d["result"]) if d["result"] else None
        d["cancel_requested"] = bool(d["cancel_requested"])
        return cls(**d)


def _apply_migrations(conn: sqlite3.Connection, version: int) -> None:
    """Bring the schema from `version` to SCHEMA_VERSION (inside the caller's transaction, if any)."""
    for target in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[target]:
            conn.execute(statement)
    if version != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def pid_alive(pid: int | None) -> bool:
    """True if a process with this pid exists on this host and is not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a killed child not yet reaped by its parent still answers kill(0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


HOST = socket.gethostname()


def worker_gone(job: Job, stale_after_s: float = STALE_AFTER_S) -> bool:
    """A running local job whose worker died: its pid is gone (same host) or its heartbeat is stale.
    It stays "running" in the store until a worker starts and requeues it, so listings say so."""
    if job.status != "running" or job.backend != "local":
        return False
    if job.worker_host == HOST and not pid_alive(job.worker_pid):
        return True
    return job.heartbeat is None or time.time() - job.heartbeat > stale_after_s


def ensure_dir(path: Path) -> Path:
    """Create a directory and prove it writable (paths.ensure_writable), as a JobStoreError."""
    try:
        return paths.ensure_writable(path)
    except PermissionError as exc:
        raise JobStoreError(str(exc)) from exc


class JobStore:
    """Thread-safe handle on the database; cheap to create, one per process (do not share across fork)."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path is not None else paths.db_path()
        self._lock = threading.RLock()
        ensure_dir(self.path.parent)
        self._check_files()                 # before SQLite opens them: it would "recover" silently
        if not self.path.exists():
            self._create()
        with self._errors():
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                         check_same_thread=False)
        try:
            with self._errors():
                self._conn.row_factory = sqlite3.Row
                self._conn.execute("PRAGMA busy_timeout = 30000")
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise sqlite3.OperationalError(f"could not switch to WAL journal mode (got {mode})")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._check_integrity()
                self._migrate()
        except BaseException:
            self._conn.close()
            raise

    # -- plumbing -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc) or "not a database" in str(exc):
                raise _damaged(self.path, str(exc)) from exc
            raise JobStoreError(f"job store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise JobStoreError(f"job store {self.path}: {exc}") from exc

    def _check_files(self) -> None:
        """Refuse an existing store SQLite would read as empty or as having lost its log."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = None
        except OSError as exc:
            raise JobStoreError(f"job store {self.path}: {exc.strerror or exc}") from exc
        if size == 0:
            raise _damaged(self.path, "the file is empty (0 bytes): truncated, or not a TaxoLens store")
        wal = self.path.with_name(self.path.name + "-wal")
        for _ in range(3):
            try:
                with open(wal, "rb") as f:
                    header = f.read(32)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise JobStoreError(f"job store {self.path}: cannot read {wal} "
                                    f"({exc.strerror or exc})") from exc
            if not header:                  # an empty log is normal after a checkpoint
                return
            if size is None:                # a log without its database would be replayed into a new one
                raise _damaged(self.path, f"{wal.name} exists without the database", culprit=wal)
            if wal_header_ok(header):
                return
            time.sleep(0.05)                # a writer may be rewriting the header right now: look again
        raise _damaged(self.path, f"{wal.name} is not an SQLite write-ahead log", culprit=wal)

    def _check_integrity(self) -> None:
        rows = self._conn.execute("PRAGMA integrity_check(20)").fetchall()
        problems = [str(r[0]) for r in rows]
        if problems != ["ok"]:
            detail = "; ".join(" ".join(p.split()) for p in problems)
            raise _damaged(self.path, f"integrity check: {detail[:300]}")

    def _create(self) -> None:
        """A new store, built under a temporary name and linked into place: other processes see no
        store or a complete one, never a 0-byte file (which is refused as damaged)."""
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".new")
        os.close(fd)
        try:
            with self._errors():
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute("BEGIN IMMEDIATE")
                    _apply_migrations(conn, 0)
                    conn.execute("COMMIT")
                finally:
                    conn.close()            # checkpoints and removes tmp's own -wal
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                pass                        # another process created it first: use that one
            except OSError:                 # no hard links here: let SQLite create it in place
                pass
        finally:
            for leftover in (tmp, tmp + "-wal", tmp + "-shm"):
                Path(leftover).unlink(missing_ok=True)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock up front (no upgrade deadlocks)."""
        with self._lock, self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock, self._errors():
            return self._conn.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._write() as c:
            version = c.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JobStoreError(f"job store {self.path}: schema version {version} is newer than "
                                    f"this TaxoLens understands ({SCHEMA_VERSION}); upgrade TaxoLens")
            _apply_migrations(c, version)

    def schema_version(self) -> int:
        return self._query("PRAGMA user_version")[0][0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- jobs -----------------------------------------------------------------------------------

    def submit(self, kind: str, spec: dict, parent_id: int | None = None, backend: str = "local",
               external_id: str | None = None, status: str = "queued") -> int:
        """Insert a job as given (no validation: core.jobs.submit validates first). Returns its id."""
        if status not in ("queued", "running"):
            raise ValueError(f"a new job starts queued or running, not {status!r}")
        body = json.dumps(spec, sort_keys=True, allow_nan=False)   # NaN is not JSON: never stored
        now = time.time()
        with self._write() as c:
            row = c.execute(
                "INSERT INTO jobs (kind, spec, status, created, started, parent_id, backend, external_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (kind, body, status, now, now if status == "running" else None, parent_id, backend,
                 external_id)).fetchone()
        return int(row[0])

    def submit_many(self, items: list[tuple[str, dict]], parent_id: int) -> list[int]:
        """Insert a sweep's children in one transaction; if the parent already has children (a
        retried expansion), returns those instead of adding duplicates; if its cancel was asked
        (core.jobs.cancel_sweep cancels the sweep job before its children), adds none."""
        now = time.time()
        with self._write() as c:
            existing = [r[0] for r in c.execute("SELECT id FROM jobs WHERE parent_id = ? ORDER BY id",
                                                (parent_id,))]
            if existing:
                return existing
            parent = c.execute("SELECT cancel_requested, status FROM jobs WHERE id = ?", (parent_id,)).fetchone()
            if parent is not None and (parent[0] or parent[1] == "cancelled"):
                return []
            return [int(c.execute("INSERT INTO jobs (kind, spec, created, parent_id) VALUES (?, ?, ?, ?)"
                                  " RETURNING id", (kind, json.dumps(spec, sort_keys=True, allow_nan=False),
                                                    now, parent_id)).fetchone()[0]) for kind, spec in items]

    def get(self, job_id: int) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise KeyError(f"no job with id {job_id}")
        return Job.from_row(rows[0])

    def list(self, status: str | None = None, kind: str | None = None, parent_id: int | None = None,
             backend: str | None = None, limit: int | None = None) -> list[Job]:
        """Newest first, optionally filtered."""
        where, args = [], []
        for column, value in (("status", status), ("kind", kind), ("parent_id", parent_id),
                              ("backend", backend)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Job.from_row(r) for r in self._query(sql, tuple(args))]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        out.update({r[0]: r[1] for r in self._query("SELECT status, COUNT(*) FROM jobs GROUP BY status")})
        return out

    def claim(self, worker_pid: int, log_dir: Path | None = None) -> Job | None:
        """Atomically take the oldest queued local job, or None. Sets its log path on first claim."""
        now = time.time()
        with self._write() as c:
            row = c.execute(
                "UPDATE jobs SET status = 'running', started = COALESCE(started, ?), heartbeat = ?,"
                " worker_pid = ?, worker_host = ?, attempts = attempts + 1, progress = 0, message = 'starting'"
                " WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND backend = 'local'"
                "             ORDER BY id LIMIT 1)"
                " RETURNING *", (now, now, worker_pid, HOST)).fetchone()
            if row is None:
                return None
            job = Job.from_row(row)
            if job.log_path is None and log_dir is not None:
                log_path = str(Path(log_dir) / f"job-{job.id}.log")
                c.execute("UPDATE jobs SET log_path = ? WHERE id = ?", (log_path, job.id))
                job = Job.from_row(c.execute("SELECT * FROM jobs WHERE id = ?", (job.id,)).fetchone())
        return job

    def set_progress(self, job_id: int, fraction: float, message: str = "") -> None:
        fraction = min(1.0, max(0.0, float(fraction)))
        with self._write() as c:
            c.execute("UPDATE jobs SET progress = ?, message = ? WHERE id = ? AND status = 'running'",
                      (fraction, str(message)[:500], job_id))

    def set_run_dir(self, job_id: int, run_dir: Path | str) -> str:
        """Fix the job's run directory the first time; later calls return the one already fixed."""
        with self._write() as c:
            c.execute("UPDATE jobs SET run_dir = ? WHERE id = ? AND run_dir IS NULL", (str(run_dir), job_id))
            return c.execute("SELECT run_dir FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]

    def move_run_dir(self, job_id: int, run_dir: Path | str) -> str:
        """Fix the job's run directory anew (its old one is not in this data folder: runner)."""
        with self._write() as c:
            c.execute("UPDATE jobs SET run_dir = ? WHERE id = ?", (str(run_dir), job_id))
        return str(run_dir)

    def set_external_id(self, job_id: int, external_id: str) -> None:
        with self._write() as c:
            c.execute("UPDATE jobs SET external_id = ? WHERE id = ?", (external_id, job_id))

    def heartbeat(self, job_ids: list[int], worker_pid: int) -> None:
        if not job_ids:
            return
        marks = ",".join("?" * len(job_ids))
        with self._write() as c:
            c.execute(f"UPDATE jobs SET heartbeat = ? WHERE status = 'running' AND worker_pid = ?"
                      f" AND id IN ({marks})", (time.time(), worker_pid, *job_ids))

    def finish(self, job_id: int, status: str, result: dict | None = None, error: str | None = None,
               attempt: int | None = None) -> bool:
        """Record the outcome of a running job. With `attempt`, only that attempt may finish it (an
        orphan of a dead worker cannot overwrite the retry). Returns whether the row changed."""
        if status not in FINISHED:
            raise ValueError(f"finish() takes one of {FINISHED}, not {status!r}")
        sql = ("UPDATE jobs SET status = ?, finished = ?, result = COALESCE(?, result), error = ?,"
               " progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END,"
               " message = CASE WHEN ? = 'succeeded' THEN 'done' ELSE ? END"
               " WHERE id = ? AND status IN ('queued', 'running')")
        args: list[Any] = [status, time.time(), json.dumps(result) if result is not None else None, error,
                           status, status, status, job_id]
        if attempt is not None:
            sql += " AND attempts = ?"
            args.append(attempt)
        with self._write() as c:
            return c.execute(sql, tuple(args)).rowcount > 0

    def request_cancel(self, job_id: int) -> str:
        """Cancel a queued job at once, or ask a running one to stop. Returns the resulting status."""
        with self._write() as c:
            row = c.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(f"no job with id {job_id}")
            if row[0] == "queued":
                c.execute("UPDATE jobs SET status = 'cancelled', finished = ?, message = 'cancelled'"
                          " WHERE id = ?", (time.time(), job_id))
                return "cancelled"
            if row[0] == "running":
                c.execute("UPDATE jobs SET cancel_requested = 1, message = 'cancelling' WHERE id = ?",
                          (job_id,))
            return row[0]

    def cancel_requested(self, job_id: int) -> bool:
        rows = self._query("SELECT cancel_requested, status FROM jobs WHERE id = ?", (job_id,))
        return bool(rows) and (bool(rows[0][0]) or rows[0][1] == "cancelled")

    def requeue(self, job_id: int, reason: str) -> bool:
        """Put an interrupted running job back in the queue (run_dir and log are kept, so it resumes)."""
        with self._write() as c:
            return c.execute(
                "UPDATE jobs SET status = 'queued', worker_pid = NULL, worker_host = NULL, heartbeat = NULL,"
                " message = ? WHERE id = ? AND status = 'running' AND backend = 'local'",
                (reason, job_id)).rowcount > 0

    def requeue_orphans(self, stale_after_s: float = STALE_AFTER_S) -> list[int]:
        """Requeue running local jobs whose worker is gone (pid dead on this host, or heartbeat stale).
        A job whose cancel was requested is marked cancelled instead."""
        orphans = []
        for job in self.list(status="running", backend="local"):
            if not worker_gone(job, stale_after_s):
                continue
            if job.cancel_requested:
                self.finish(job.id, "cancelled", error="cancelled (its worker had died)")
            elif job.attempts >= MAX_ATTEMPTS:
                self.finish(job.id, "failed", error=f"gave up after {job.attempts} attempts: its worker "
                                                    f"died each time (last: pid {job.worker_pid} on "
                                                    f"{job.worker_host}); see the log {job.log_path}")
            elif self.requeue(job.id, f"requeued: worker {job.worker_pid} on {job.worker_host} died"):
                orphans.append(job.id)
        return orphans

    # -- workers --------------------------------------------------------------------------------

    def worker_beat(self, pid: int, concurrency: int) -> None:
        now = time.time()
        with self._write() as c:
            c.execute("INSERT INTO workers (host, pid, started, heartbeat, concurrency) VALUES (?, ?, ?, ?, ?)"
                      " ON CONFLICT (host, pid) DO UPDATE SET heartbeat = excluded.heartbeat",
                      (HOST, pid, now, now, concurrency))

    def worker_gone(self, pid: int) -> None:
        with self._write() as c:
            c.execute("DELETE FROM workers WHERE host = ? AND pid = ?", (HOST, pid))

    def live_workers(self, stale_after_s: float = STALE_AFTER_S) -> list[dict]:
        """Workers on this host whose process exists and whose heartbeat is fresh."""
        now = time.time()
        rows = self._query("SELECT * FROM workers WHERE host = ?", (HOST,))
        return [dict(r) for r in rows if pid_alive(r["pid"]) and now - r["heartbeat"] <= stale_after_s]


def read_log_tail(path: Path | str | None, lines: int = 40, max_bytes: int = 65536) -> str:
    """The last `lines` lines of a job log ('' if it does not exist yet); tqdm's carriage-return
    redraws are collapsed to their latest state."""
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    out = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    if out and out[-1] == "":
        out.pop()
    return "\n".join(out[-lines:])
