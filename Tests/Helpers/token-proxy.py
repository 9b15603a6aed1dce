#!/usr/bin/env python3
"""A Bearer-token front for a registry, for berth's registry tests.

Requests without "Authorization: Bearer <token>" get a 401 challenge naming
/token on this server; /token hands out the token for basic credentials
berth:s3cret and records the scope it was asked for; everything else is
forwarded to the registry behind (bodies streamed both ways).
With a third argument N, the first N blob downloads answer 503 (a flaky
registry, for the client's retries), and no token is needed.
Usage: token-proxy.py LISTEN_PORT BACKEND_PORT [FAIL_FIRST_BLOB_GETS]
"""
import base64, http.client, http.server, json, sys

LISTEN, BACKEND = int(sys.argv[1]), int(sys.argv[2])
FLAKY = int(sys.argv[3]) if len(sys.argv) > 3 else None
FAILED = [0]
TOKEN = "berth-test-token"
SCOPES = []

class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def token(self):
        auth = self.headers.get("Authorization", "")
        good = "Basic " + base64.b64encode(b"berth:s3cret").decode()
        if auth != good:
            return self.reply(401, b'{"details":"bad credentials"}')
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        SCOPES.append(query)
        self.reply(200, json.dumps({"token": TOKEN, "expires_in": 300}).encode(), [("Content-Type", "application/json")])

    def handle_any(self):
        if self.path.startswith("/token"):
            return self.token()
        if self.path == "/scopes":
            return self.reply(200, json.dumps(SCOPES).encode())
        if self.path == "/failed":
            return self.reply(200, str(FAILED[0]).encode())
        if FLAKY is not None and self.command == "GET" and "/blobs/" in self.path and FAILED[0] < FLAKY:
            FAILED[0] += 1
            return self.reply(503, b'{"errors":[{"code":"UNAVAILABLE"}]}')
        if FLAKY is None and self.headers.get("Authorization", "") != "Bearer " + TOKEN:
            realm = "http://127.0.0.1:%d/token" % LISTEN
            challenge = 'Bearer realm="%s",service="berth-test",scope="repository:*:pull"' % realm
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', [("WWW-Authenticate", challenge)])
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else None
        if self.headers.get("Transfer-Encoding", "") == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        conn = http.client.HTTPConnection("127.0.0.1", BACKEND)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host", "transfer-encoding")}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                if k.lower() == "location":
                    v = v.replace("127.0.0.1:%d" % BACKEND, "127.0.0.1:%d" % LISTEN)
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
