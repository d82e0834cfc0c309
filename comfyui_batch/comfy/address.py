"""Where a server is and how to prove we may use it: its URL and its credentials.

A `ServerAddress` prints as its public URL only (scheme, host, port, path prefix): it is what
messages, the manifest and the report show. The credentials ride beside it, for the HTTP
client and the WebSocket alike, and never turn into text: not in `str()`, not in `repr()`,
and `redact()` takes them out of any text that might echo them (an error page, an exception).

Three ways to authenticate, as deployments do it:
- a bearer token (`Authorization: Bearer …`), what most reverse proxies and ComfyUI-Login take;
- the same token as a `?token=` query parameter (ComfyUI-Login's other form, and the only one a
  proxy that cannot read headers on WebSocket upgrades accepts);
- basic auth, written in the URL as `https://user:password@host/prefix`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import ssl

DEFAULT_SERVER = "http://127.0.0.1:8188"
TOKEN_QUERY_PARAMETER = "token"
REDACTED = "***"


@dataclass(frozen=True)
class Credentials:
    """What we send to be let in. Holds secrets: it never prints them."""

    token: str | None = None
    token_in_query: bool = False  # `?token=` instead of an Authorization header
    user: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if self.token and not self.token_in_query and self.user is not None:
            raise ValueError(
                "basic auth in the URL and a bearer token both need the Authorization header; "
                "send the token as a query parameter (--token-in query) or drop one of them"
            )

    def headers(self) -> dict[str, str]:
        if self.user is not None:
            pair = f"{self.user}:{self.password or ''}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        if self.token and not self.token_in_query:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def query(self) -> dict[str, str]:
        return {TOKEN_QUERY_PARAMETER: self.token} if self.token and self.token_in_query else {}

    def redact(self, text: str) -> str:
        """`text` with every secret, as written or as a URL or header would carry it, replaced."""
        for secret in self._secrets():
            text = text.replace(secret, REDACTED)
        return text

    def _secrets(self) -> list[str]:
        raw = [s for s in (self.token, self.password) if s]
        forms = {form for s in raw for form in (s, quote(s, safe=""), urlencode({"t": s})[2:])}
        forms.update(self.headers().values())
        # Longest first, so a secret inside another (a header holding the token) goes whole.
        return sorted(forms, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.token) or self.user is not None

    def __repr__(self) -> str:
        return f"Credentials({REDACTED})" if self else "Credentials()"


NO_CREDENTIALS = Credentials()


@dataclass(frozen=True)
class ServerAddress:
    """A server's base URL, normalised: scheme, host, port and any path prefix (reverse
    proxies), without credentials. Those are in `credentials`, which no text ever shows."""

    url: str
    credentials: Credentials = field(default=NO_CREDENTIALS, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, token: str | None = None, token_in_query: bool = False) -> ServerAddress:
        """Accepts `http://host:port`, `https://host/prefix`, a bare `host:port`, with
        `user:password@` before the host and `?token=…` after the path if the server wants them.
        `token` applies when the URL carries none. Errors never quote the password or token."""
        text = text.strip()
        if "://" not in text:
            text = "http://" + text
        parts = urlsplit(text)
        public = cls._public(parts)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a server address: {public!r} (expected http://host:port or host:port)")
        if not text.isprintable():
            raise ValueError(f"not a server address: {public!r} holds a control character")
        try:
            parts.hostname.encode("idna")
        except UnicodeError:
            raise ValueError(
                f"not a host name: {public!r} (each part between dots is 1 to 63 letters, digits or hyphens)"
            ) from None
        try:
            _ = parts.port  # urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError(f"not a valid port in {public!r}") from None
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        url_token = query.pop(TOKEN_QUERY_PARAMETER, None)
        if query or parts.fragment:
            raise ValueError(f"a server address takes no query or fragment other than ?token=…: {public!r}")
        credentials = Credentials(
            token=url_token or token or None,
            token_in_query=bool(url_token) or token_in_query,
            user=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )
        return cls(public, credentials)

    @staticmethod
    def _public(parts: SplitResult) -> str:
        """The URL without user, password, query or fragment: what may be shown."""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))

    @property
    def is_tls(self) -> bool:
        return self.url.startswith("https:")

    def websocket_url(self, client_id: str) -> str:
        """The `/ws` URL, prefix kept, `wss` for `https`. It carries a query token when there is
        one: connect with it, never print it."""
        scheme = "wss" if self.is_tls else "ws"
        query = urlencode({"clientId": client_id, **self.credentials.query()})
        return f"{scheme}{self.url[self.url.index(':') :]}/ws?{query}"

    def redact(self, text: str) -> str:
        return self.credentials.redact(text)

    def __str__(self) -> str:
        return self.url


def tls_context(ca_cert: Path | None = None) -> ssl.SSLContext:
    """The certificates we trust for https and wss: the usual ones ($SSL_CERT_FILE or
    $SSL_CERT_DIR if set, else certifi's), plus `ca_cert` (a self-signed server's certificate,
    or a private CA's). One context serves the HTTP client and the WebSocket."""
    import httpx  # here, not at the top: loading CA bundles is only worth it for https

    context = httpx.create_ssl_context()
    if ca_cert is not None:
        context.load_verify_locations(cafile=str(ca_cert))
    return context
