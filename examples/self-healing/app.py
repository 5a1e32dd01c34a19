#!/usr/bin/env python3
"""The demo's small web service in front of PostgreSQL: every request to /write inserts a row
through the database's client endpoint (HAProxy) and answers 200 once it is committed, or 503 with
the error. One connection, reopened after any error. /health answers 200 without the database.

    python3 app.py PORT DSN        e.g. python3 app.py 8082 "host=127.0.0.1 port=5000 user=postgres dbname=postgres"
"""
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

PORT, DSN = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
state = {"conn": None, "n": 0}


def write():
    with lock:
        if state["conn"] is None or state["conn"].closed:
            state["conn"] = psycopg2.connect(DSN, connect_timeout=1)
            state["conn"].autocommit = True
            with state["conn"].cursor() as c:
                c.execute("SET statement_timeout = 2000")
                c.execute("CREATE TABLE IF NOT EXISTS demo_writes (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())")
        try:
            with state["conn"].cursor() as c:
                c.execute("INSERT INTO demo_writes DEFAULT VALUES RETURNING id")
                return c.fetchone()[0]
        except Exception:
            try:
                state["conn"].close()
            except Exception:
                pass
            state["conn"] = None
            raise


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/health"):
            return self.answer(200, b"ok\n")
        if not self.path.startswith("/write"):
            return self.answer(404, b"not found\n")
        try:
            row = write()
            self.answer(200, f"row {row}\n".encode())
        except Exception as e:  # the database is not there: the client sees it
            self.answer(503, f"{e}\n".encode())

    do_POST = do_GET

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
