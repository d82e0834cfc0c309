"""A reverse proxy as people put in front of ComfyUI (stdlib, threads): it serves the server
under a path prefix, can demand a bearer token, a `?token=` or basic auth, gzips what it
sends back when the client accepts it, speaks TLS with a certificate of its own, and passes
WebSocket upgrades through (prefix and credentials checked like any request).

It keeps `requests` ("GET /api/jobs/…", prefix removed), the same with their query strings in
`queries`, and counts `websockets` opened.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import ipaddress
import select
import socket
import ssl
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "content-length", "content-encoding"}


class ReverseProxy:
    def __init__(
        self,
        upstream_port: int,
        prefix: str = "",
        token: str | None = None,
        token_in_query: bool = False,
        basic: tuple[str, str] | None = None,
        compress: bool = False,
        tls: tuple[Path, Path] | None = None,  # certificate and key files
    ) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.prefix = prefix
        self.requests: list[str] = []
        self.queries: list[str] = []
        self.websockets = 0
        self.refused = 0
        proxy = self

        class Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = -1  # headers and body leave in one packet: no delayed-ACK stall per request

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

        self._expected = self._credentials(token, token_in_query, basic)
        self._token_in_query = token_in_query
        self._compress = compress
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        scheme = "http"
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}{prefix}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def _credentials(token: str | None, in_query: bool, basic: tuple[str, str] | None) -> str | None:
        if basic:
            return "Basic " + base64.b64encode(f"{basic[0]}:{basic[1]}".encode()).decode()
        if token and not in_query:
            return f"Bearer {token}"
        return token

    def __enter__(self) -> ReverseProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(request.path)
        body = request.rfile.read(int(request.headers.get("Content-Length", 0) or 0))
        if not (url.path == self.prefix or url.path.startswith(self.prefix + "/")):
            page = b"<!DOCTYPE html><html><body><h1>404 Not Found</h1><hr>proxy</body></html>"
            return _send(request, 404, {"Content-Type": "text/html"}, page)
        query = parse_qsl(url.query, keep_blank_values=True)
        if not self._authorized(request, query):
            self.refused += 1
            # Echoes what it got, as some error pages do: a client must not print this.
            page = f"<html><body>401: not authorized for {request.path}</body></html>".encode()
            return _send(request, 401, {"Content-Type": "text/html", "WWW-Authenticate": "Bearer"}, page)
        if self._token_in_query:
            query = [(k, v) for k, v in query if k != "token"]
        path = url.path[len(self.prefix) :] or "/"
        target = path + ("?" + urlencode(query) if query else "")
        self.requests.append(f"{method} {path}")
        self.queries.append(f"{method} {target}")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            self.websockets += 1
            return self._tunnel(request, method, target)
        self._forward(request, method, target, body)

    def _authorized(self, request: BaseHTTPRequestHandler, query: list[tuple[str, str]]) -> bool:
        if self._expected is None:
            return True
        if self._token_in_query:
            return dict(query).get("token") == self._expected
        return request.headers.get("Authorization") == self._expected

    def _forward(self, request: BaseHTTPRequestHandler, method: str, target: str, body: bytes) -> None:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "accept-encoding")}
        upstream.request(method, target, body=body or None, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        sent = {k: v for k, v in answer.getheaders() if k.lower() not in HOP_BY_HOP}
        if self._compress and "gzip" in request.headers.get("Accept-Encoding", ""):
            data = gzip.compress(data)
            sent["Content-Encoding"] = "gzip"
        _send(request, answer.status, sent, data)

    def _tunnel(self, request: BaseHTTPRequestHandler, method: str, target: str) -> None:
        """Replays the upgrade request upstream, then copies bytes both ways until one side
        closes. One thread, with select: an SSL socket must not be read and written at once."""
        upstream = socket.create_connection(self.upstream)
        head = [f"{method} {target} HTTP/1.1"]
        head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "authorization"]
        upstream.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        client = request.connection
        try:
            while True:
                pending = isinstance(client, ssl.SSLSocket) and client.pending()
                readable = [client] if pending else select.select([client, upstream], [], [], 1.0)[0]
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (upstream if source is client else client).sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                upstream.close()
            request.close_connection = True


def _send(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name, value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, signed by its own key, as `openssl req -x509`
    makes one. Returns the certificate and key files (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "comfyui-batch test server")])
    now = datetime.now(timezone.utc)
    subject_key = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(subject_key, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(subject_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file
