"""Servers as people deploy them: behind a reverse proxy under a path prefix, with a token,
a `?token=` or basic auth, gzip, TLS with a self-signed certificate. A real ComfyUI behind the
proxy in tests/reverse_proxy.py; the whole CLI in front. Secrets never show: not in messages,
the manifest, the report or --help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batchkit import Run, run_cli, write_batch
from comfy_server import ComfyServer
from reverse_proxy import ReverseProxy, self_signed_certificate

from comfyui_batch.cli import build_parser
from comfyui_batch.comfy.address import ServerAddress

TOKEN = "s3cret-T0ken/with$chars"
PASSWORD = "pa55-w0rd"


def run_batch_through(proxy: ReverseProxy, tmp_path: Path, server: str, *options: str) -> Run:
    batch = write_batch(tmp_path, [{"color": 0x123456}, {"color": 0x654321}])
    return run_cli(str(batch), "--server", server, "--report", str(tmp_path / "report.json"), *options)


def assert_nothing_shows(run: Run, tmp_path: Path, *secrets: str) -> None:
    written = [run.out, run.err] + [p.read_text() for p in tmp_path.rglob("*") if p.suffix in (".json", ".jsonl")]
    for secret in secrets:
        for form in (secret, json.dumps(secret)[1:-1]):
            assert not any(form in text for text in written), f"{secret!r} was printed or recorded"


def assert_saved_as_on_server(run: Run, server: ComfyServer) -> None:
    assert run.code == 0, run.err
    assert len(run.saved) == 2
    on_server = {p.read_bytes() for p in server.output_dir.rglob("*.png")}
    assert all(p.read_bytes() in on_server for p in run.saved)
    assert "no WebSocket" not in run.err  # the events came through the proxy too


def test_a_batch_runs_behind_a_prefix_with_a_bearer_token_from_the_environment_and_gzip(
    comfy_server: ComfyServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMFYUI_TOKEN", TOKEN)
    with ReverseProxy(comfy_server.port, prefix="/comfy/ui", token=TOKEN, compress=True) as proxy:
        run = run_batch_through(proxy, tmp_path, proxy.url)
    assert_saved_as_on_server(run, comfy_server)
    assert proxy.websockets >= 1 and proxy.refused == 0
    assert "GET /view" in proxy.requests
    assert_nothing_shows(run, tmp_path, TOKEN)
    report = json.loads((tmp_path / "report.json").read_text())
    assert proxy.url in json.dumps(report)


def test_the_token_can_travel_as_a_query_parameter_as_comfyui_login_takes_it(
    comfy_server: ComfyServer, tmp_path: Path
) -> None:
    with ReverseProxy(comfy_server.port, token=TOKEN, token_in_query=True) as proxy:
        run = run_batch_through(proxy, tmp_path, proxy.url, "--token", TOKEN, "--token-in", "query")
    assert_saved_as_on_server(run, comfy_server)
    assert proxy.websockets >= 1 and proxy.refused == 0
    assert_nothing_shows(run, tmp_path, TOKEN)


def test_basic_auth_written_in_the_url_is_used_and_never_shown(comfy_server: ComfyServer, tmp_path: Path) -> None:
    with ReverseProxy(comfy_server.port, prefix="/gpu", basic=("ana", PASSWORD)) as proxy:
        server = proxy.url.replace("http://", f"http://ana:{PASSWORD}@")
        run = run_batch_through(proxy, tmp_path, server)
    assert_saved_as_on_server(run, comfy_server)
    assert_nothing_shows(run, tmp_path, PASSWORD)
    (manifest,) = (tmp_path / "out").glob("*.manifest.jsonl")
    assert json.loads(manifest.read_text().splitlines()[0])["servers"] == [proxy.url]


def test_a_wrong_token_is_refused_with_a_way_out_and_not_printed(comfy_server: ComfyServer, tmp_path: Path) -> None:
    wrong = "not-the-token-123"
    with ReverseProxy(comfy_server.port, token=TOKEN, token_in_query=True) as proxy:
        run = run_batch_through(proxy, tmp_path, f"{proxy.url}?token={wrong}")
    assert run.code == 3
    assert f"error: {proxy.url} refused our credentials (HTTP 401" in run.err
    assert_nothing_shows(run, tmp_path, wrong)


def test_tls_with_a_self_signed_certificate_works_once_trusted(comfy_server: ComfyServer, tmp_path: Path) -> None:
    certificate, key = self_signed_certificate(tmp_path)
    with ReverseProxy(comfy_server.port, prefix="/comfy", token=TOKEN, tls=(certificate, key)) as proxy:
        assert proxy.url.startswith("https://")
        refused = run_batch_through(proxy, tmp_path / "untrusted", proxy.url, "--token", TOKEN)
        run = run_batch_through(proxy, tmp_path / "trusted", proxy.url, "--token", TOKEN, "--ca-cert", str(certificate))
    assert refused.code == 3
    assert "its TLS certificate is not trusted" in refused.err and "--ca-cert" in refused.err
    assert_saved_as_on_server(run, comfy_server)
    assert proxy.websockets >= 1  # wss, prefix kept
    assert_nothing_shows(run, tmp_path, TOKEN)


def test_help_never_shows_the_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMFYUI_TOKEN", TOKEN)
    text = build_parser().format_help()
    assert "$COMFYUI_TOKEN" in text and TOKEN not in text


@pytest.mark.parametrize(
    ("given", "url", "ws"),
    [
        ("127.0.0.1:8188", "http://127.0.0.1:8188", "ws://127.0.0.1:8188/ws?clientId=c"),
        ("https://example.org/comfy/", "https://example.org/comfy", "wss://example.org/comfy/ws?clientId=c"),
        (f"https://ana:{PASSWORD}@example.org/x", "https://example.org/x", "wss://example.org/x/ws?clientId=c"),
        ("http://h:1/p?token=a%24b", "http://h:1/p", "ws://h:1/p/ws?clientId=c&token=a%24b"),
    ],
)
def test_an_address_prints_without_its_secrets_and_keeps_its_prefix_for_the_websocket(
    given: str, url: str, ws: str
) -> None:
    address = ServerAddress.parse(given)
    assert str(address) == url
    assert PASSWORD not in repr(address) and "a$b" not in repr(address)
    assert address.websocket_url("c") == ws


def test_an_address_error_never_quotes_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        ServerAddress.parse(f"ftp://ana:{PASSWORD}@example.org")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        ServerAddress.parse(f"http://ana:{PASSWORD}@example.org", token=TOKEN)
    assert "--token-in query" in str(caught.value) and TOKEN not in str(caught.value)


def test_redaction_covers_the_forms_a_secret_is_echoed_in() -> None:
    address = ServerAddress.parse("http://h:1", token=TOKEN, token_in_query=True)
    echoed = f"bad request /ws?token={TOKEN.replace('/', '%2F').replace('$', '%24')} and {TOKEN}"
    assert TOKEN not in address.redact(echoed) and "s3cret" not in address.redact(echoed)
