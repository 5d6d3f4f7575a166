"""The embedded store: one SQLite file in the data dir, driven from a single worker thread.

One connection used by one dedicated thread keeps SQLite's locking simple and every
call off the reactor thread. WAL mode with ``synchronous=NORMAL`` survives a process
crash or ``kill -9`` without losing a committed transaction (only a power loss may
drop the last few). The schema is versioned by ``PRAGMA user_version``; each entry of
``MIGRATIONS`` moves it one step forward inside a transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from owncast.interfaces import IStore

MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tokens (
        token TEXT PRIMARY KEY, name TEXT NOT NULL, scopes TEXT NOT NULL,
        timestamp REAL NOT NULL, last_used REAL);
    CREATE TABLE webhooks (
        id INTEGER PRIMARY KEY AUTOINCREMENT, url TEXT NOT NULL, events TEXT NOT NULL,
        timestamp REAL NOT NULL, last_used REAL);
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, type TEXT NOT NULL,
        author TEXT, body TEXT NOT NULL, visible INTEGER NOT NULL, timestamp REAL NOT NULL,
        extra TEXT);
    CREATE INDEX messages_time ON messages (timestamp);
    CREATE TABLE samples (kind TEXT NOT NULL, time REAL NOT NULL, value REAL NOT NULL);
    CREATE INDEX samples_kind_time ON samples (kind, time);
    """,
]


def _message(row: sqlite3.Row) -> dict:
    record = json.loads(row["extra"]) if row["extra"] else {}
    record.update(
        id=row["id"],
        type=row["type"],
        author=row["author"],
        body=row["body"],
        visible=bool(row["visible"]),
        timestamp=row["timestamp"],
    )
    return record


def _token(row: sqlite3.Row) -> dict:
    return {
        "token": row["token"],
        "name": row["name"],
        "scopes": json.loads(row["scopes"]),
        "timestamp": row["timestamp"],
        "lastUsed": row["last_used"],
    }


def _webhook(row: sqlite3.Row) -> dict:
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "events": json.loads(row["events"]),
        "timestamp": row["timestamp"],
        "lastUsed": row["last_used"],
    }


_MESSAGE_FIELDS = {"id", "type", "author", "body", "visible", "timestamp"}


@implementer(IStore)
class SqliteStore:
    """``IStore`` on a SQLite file (or ``:memory:``).

    ``runner`` runs a blocking callable and returns a Deferred of its result; by default
    a one-thread pool started with the reactor. Tests pass an inline runner.
    """

    def __init__(self, path: str, reactor: Any = None, runner: Callable | None = None):
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._pool: ThreadPool | None = None
        if runner is None:
            pool = self._pool = ThreadPool(minthreads=1, maxthreads=1, name="owncast-sqlite")

            def runner(fn: Callable, *args: Any) -> Deferred:
                return deferToThreadPool(reactor, pool, fn, *args)

        self._run = runner

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> Deferred:
        if self._pool is not None:
            self._pool.start()
        return self._run(self._open)

    def stop(self) -> Deferred:
        d = self._run(self._close) if self._conn is not None else succeed(None)
        if self._pool is not None:
            pool = self._pool

            def stopped(result: Any) -> Any:
                pool.stop()
                return result

            d.addBoth(stopped)
        return d

    def _open(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={int(number)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn = conn

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _tx(self, fn: Callable[[sqlite3.Connection], Any]) -> Deferred:
        """Run ``fn(conn)`` in one transaction on the worker thread."""

        def work():
            conn = self._conn
            if conn is None:
                raise RuntimeError("store is not open")
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return self._run(work)

    def _query(self, sql: str, params: tuple, convert: Callable) -> Deferred:
        return self._tx(lambda c: [convert(r) for r in c.execute(sql, params).fetchall()])

    # -- settings ----------------------------------------------------------------------
    def get_settings(self) -> Deferred:
        return self._query(
            "SELECT key, value FROM settings", (), lambda r: (r["key"], json.loads(r["value"]))
        ).addCallback(dict)

    def set_settings(self, values: dict) -> Deferred:
        rows = [(key, json.dumps(value)) for key, value in values.items()]
        return self._tx(
            lambda c: (
                c.executemany(
                    "INSERT INTO settings (key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    rows,
                )
                and None
            )
        )

    # -- access tokens -----------------------------------------------------------------
    def add_token(self, record: dict) -> Deferred:
        params = (
            record["token"],
            record["name"],
            json.dumps(record["scopes"]),
            record["timestamp"],
            record.get("lastUsed"),
        )
        return self._tx(
            lambda c: (
                c.execute(
                    "INSERT INTO tokens (token, name, scopes, timestamp, last_used) "
                    "VALUES (?, ?, ?, ?, ?)",
                    params,
                )
                and None
            )
        )

    def delete_token(self, token: str) -> Deferred:
        return self._tx(
            lambda c: c.execute("DELETE FROM tokens WHERE token = ?", (token,)).rowcount > 0
        )

    def list_tokens(self) -> Deferred:
        return self._query("SELECT * FROM tokens ORDER BY timestamp, rowid", (), _token)

    def touch_token(self, token: str, when: float) -> Deferred:
        return self._tx(
            lambda c: (
                c.execute("UPDATE tokens SET last_used = ? WHERE token = ?", (when, token)) and None
            )
        )

    # -- webhooks ----------------------------------------------------------------------
    def add_webhook(self, url: str, events: list, timestamp: float) -> Deferred:
        def insert(c):
            cursor = c.execute(
                "INSERT INTO webhooks (url, events, timestamp) VALUES (?, ?, ?)",
                (url, json.dumps(events), timestamp),
            )
            row = c.execute("SELECT * FROM webhooks WHERE id = ?", (cursor.lastrowid,))
            return _webhook(row.fetchone())

        return self._tx(insert)

    def delete_webhook(self, webhook_id: str) -> Deferred:
        return self._tx(
            lambda c: c.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,)).rowcount > 0
        )

    def list_webhooks(self) -> Deferred:
        return self._query("SELECT * FROM webhooks ORDER BY id", (), _webhook)

    def touch_webhook(self, webhook_id: str, when: float) -> Deferred:
        return self._tx(
            lambda c: (
                c.execute("UPDATE webhooks SET last_used = ? WHERE id = ?", (when, webhook_id))
                and None
            )
        )

    # -- chat messages -----------------------------------------------------------------
    def add_message(self, record: dict) -> Deferred:
        extra = {k: v for k, v in record.items() if k not in _MESSAGE_FIELDS}
        params = (
            record["id"],
            record["type"],
            record.get("author"),
            record["body"],
            int(bool(record.get("visible", True))),
            record["timestamp"],
            json.dumps(extra) if extra else None,
        )
        return self._tx(
            lambda c: (
                c.execute(
                    "INSERT INTO messages (id, type, author, body, visible, timestamp, extra) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    params,
                )
                and None
            )
        )

    def list_messages(
        self, since: float | None = None, visible_only: bool = False, limit: int | None = None
    ) -> Deferred:
        where, params = [], []
        if since is not None:
            where.append("timestamp > ?")
            params.append(since)
        if visible_only:
            where.append("visible = 1")
        sql = "SELECT * FROM messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._query(sql, tuple(params), _message).addCallback(lambda rows: rows[::-1])

    def set_visibility(self, ids: list, visible: bool) -> Deferred:
        def update(c):
            changed = []
            for message_id in dict.fromkeys(ids):
                c.execute(
                    "UPDATE messages SET visible = ? WHERE id = ?", (int(visible), message_id)
                )
                row = c.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
                if row is not None:
                    changed.append(_message(row))
            return changed

        return self._tx(update)

    # -- stats samples -----------------------------------------------------------------
    def add_sample(self, kind: str, when: float, value: float) -> Deferred:
        return self._tx(
            lambda c: (
                c.execute(
                    "INSERT INTO samples (kind, time, value) VALUES (?, ?, ?)", (kind, when, value)
                )
                and None
            )
        )

    def list_samples(self, kind: str, since: float) -> Deferred:
        return self._query(
            "SELECT time, value FROM samples WHERE kind = ? AND time > ? ORDER BY time",
            (kind, since),
            lambda r: (r["time"], r["value"]),
        )

    def prune_samples(self, before: float) -> Deferred:
        return self._tx(
            lambda c: c.execute("DELETE FROM samples WHERE time < ?", (before,)) and None
        )
