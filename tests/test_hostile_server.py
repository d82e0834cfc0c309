"""Faults a real ComfyUI cannot produce on demand, from the fake: bodies that trickle, never
end or are too large, gzip from a proxy, malformed replies, something that is not ComfyUI.
Every one ends with a message and an exit code, within its bound, never a traceback.
(The fake has no /object_info unless a test gives it one, hence --no-validate.)"""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from batchkit import run_cli, wait_for, write_batch
from fake_server import (
    FakeComfy,
    endless,
    reply_json,
    reply_raw,
    send_bytes,
    send_gzipped,
    send_json,
    trickle,
)
from PIL import Image
from reverse_proxy import ReverseProxy, self_signed_certificate

from comfyui_batch.comfy.client import ClientOptions, ComfyClient, FileRef, Limits, ServerAddress
from comfyui_batch.errors import BatchError, Cancelled, ServerUnreachable

OUTPUTS = [{"filename": "ok.png", "subfolder": "", "type": "output"}]
REF = FileRef("9", "images", "ok.png", "", "output")


def png(size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), "blue").save(buffer, "PNG")
    return buffer.getvalue()


def run_against(fake: FakeComfy, tmp_path: Path, *options: str) -> Any:
    return run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url, "--no-validate", *options)


def saved_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "out").iterdir() if p.name not in ("batch.manifest.jsonl", "batch.html"))


def test_an_output_a_proxy_gzipped_is_saved_as_the_server_has_it(tmp_path: Path) -> None:
    data = png()
    with FakeComfy(OUTPUTS, send_gzipped(data)) as fake:
        run = run_against(fake, tmp_path)
    assert run.code == 0, run.err
    assert [p.read_bytes() for p in run.saved] == [data]


def test_a_trickling_download_ends_with_a_clear_error_at_its_bound(tmp_path: Path) -> None:
    with FakeComfy(OUTPUTS) as fake:
        fake.view = trickle(fake, claimed_length=10_000, every=20)
        run = run_against(fake, tmp_path, "--download-timeout", "1")
    assert run.code == 1
    assert "output/ok.png: not complete after 1 s (--download-timeout)" in run.err
    assert saved_files(tmp_path) == []


def test_an_output_larger_than_the_limit_is_refused_before_it_is_downloaded(tmp_path: Path) -> None:
    with FakeComfy(OUTPUTS, send_bytes(b"\0" * (2 * 1024 * 1024))) as fake:
        run = run_against(fake, tmp_path, "--max-download-mb", "1")
    assert run.code == 1
    assert "output/ok.png: 2 MB, more than the 1 MB allowed" in run.err
    assert saved_files(tmp_path) == []


def test_a_body_without_length_that_never_ends_is_stopped_at_the_limit(tmp_path: Path) -> None:
    with FakeComfy(OUTPUTS) as fake:
        fake.view = endless(fake)
        run = run_against(fake, tmp_path, "--max-download-mb", "1")
    assert run.code == 1
    assert "output/ok.png: larger than 1 MB; stopped" in run.err
    assert saved_files(tmp_path) == []


def history_with(outputs: Any = None, status: Any = None) -> Any:
    def handler(request: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        prompt_id = request.path.rsplit("/", 1)[1]
        entry = {"outputs": outputs, "status": status or {"status_str": "success", "messages": []}}
        send_json(request, {prompt_id: entry})

    return handler


@pytest.mark.parametrize(
    ("route", "reply", "codes", "said"),
    [
        ("POST /prompt", reply_json({"prompt_id": 5}), {1}, "POST /prompt: prompt_id is the number 5, expected a text"),
        ("POST /prompt", reply_json(["queued"]), {1}, "POST /prompt is a list"),
        ("POST /prompt", reply_json({"error": 3, "node_errors": {"3": "bad"}}, 400), {1}, "node 3: the text 'bad'"),
        (
            "POST /prompt",
            reply_json({"node_errors": {"3": {"class_type": 7, "errors": [{"message": None}, "oops"]}}}, 400),
            {1},
            "node 3 (7): error",
        ),
        ("GET /queue", reply_json({"queue_running": "x", "queue_pending": []}), {3}, "queue_running is the text 'x'"),
        ("GET /history/*", history_with(outputs=[]), {1, 3}, "outputs is a list"),
        ("GET /history/*", history_with(status="ok"), {1, 3}, "status is the text 'ok'"),
        (
            "GET /history/*",
            history_with(outputs={"9": {"images": [{"filename": 42, "type": "output"}]}}),
            {1},
            "node 9 images[0]: the file name is the number 42, not a name",
        ),
        ("GET /system_stats", reply_json([1, 2]), {3}, "GET /system_stats is a list"),
        ("GET /system_stats", reply_raw(b"1e400 garbage", "text/plain"), {3}, "not JSON"),
    ],
)
def test_a_malformed_reply_fails_the_job_or_the_run_with_what_was_wrong(
    tmp_path: Path, route: str, reply: Any, codes: set[int], said: str
) -> None:
    with FakeComfy(OUTPUTS, send_bytes(png()), routes={route: reply}) as fake:
        run = run_against(fake, tmp_path, "--retry-for", "1")
    assert run.code in codes, run.err
    assert said in run.err


def test_an_object_info_that_is_a_list_stops_the_run_before_anything_is_queued(tmp_path: Path) -> None:
    with FakeComfy(OUTPUTS, routes={"GET /object_info/*": reply_json([["KSampler"]])}) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url)
    assert run.code == 3
    assert "is a list" in run.err and "expected an object" in run.err
    assert fake.prompts == []


HTML_404 = b"<!DOCTYPE html><html><body><h1>Not Found</h1><p>nginx</p></body></html>"


@pytest.mark.parametrize(
    ("reply", "said"),
    [
        (reply_raw(HTML_404, "text/html", 404), "answered HTTP 404 with an HTML page — check the address and port"),
        (reply_raw(b"<html>Sign in</html>", "text/html"), "answered an HTML page, not JSON — check the address"),
        (reply_raw(b'{"detail":"Not Found"}', "application/json", 404), "does not look like ComfyUI"),
    ],
)
def test_something_that_is_not_comfyui_is_named_as_such_not_quoted(tmp_path: Path, reply: Any, said: str) -> None:
    routes = {f"GET {path}": reply for path in ("/system_stats", "/object_info", "/object_info/*")}
    with FakeComfy(routes=routes) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url)
    assert run.code == 3
    assert f"error: {fake.url} does not look like ComfyUI" in run.err
    assert said in run.err
    assert "nginx" not in run.err


def test_a_server_that_wants_credentials_says_how_to_give_them(tmp_path: Path) -> None:
    routes = {"GET /object_info/*": reply_raw(b"401 Unauthorized", "text/plain", 401)}
    with FakeComfy(routes=routes) as fake:
        run = run_cli(str(write_batch(tmp_path, [{"color": 1}])), "--server", fake.url)
    assert run.code == 3
    assert f"error: {fake.url} wants credentials (HTTP 401" in run.err
    assert "--token" in run.err


def in_background(call: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, errors


def stall(fake: FakeComfy) -> Any:
    """Accepts the request and never answers it."""

    def handler(request: BaseHTTPRequestHandler, params: dict[str, str]) -> None:
        fake.stopping.wait()

    return handler


@pytest.mark.parametrize("phase", ["waiting for the answer", "in the middle of the body"])
def test_a_download_ends_promptly_when_cancelled(phase: str) -> None:
    sink = io.BytesIO()
    cancel = threading.Event()
    with FakeComfy(OUTPUTS) as fake:
        fake.view = stall(fake) if phase == "waiting for the answer" else trickle(fake, 10_000, every=60)
        with ComfyClient(ServerAddress.parse(fake.url)) as client:  # default bounds: a minute of silence
            thread, errors = in_background(lambda: client.download(REF, sink, cancel))
            wait_for(lambda: "GET /view" in fake.requests and (phase != "in the middle of the body" or sink.tell()))
            cancel.set()
            thread.join(timeout=5)
            assert not thread.is_alive(), "the download went on after it was cancelled"
    assert [type(e) for e in errors] == [Cancelled]
    assert str(errors[0]) == "output/ok.png: download cancelled"


def test_an_api_call_that_trickles_ends_at_its_bound() -> None:
    with FakeComfy() as fake:
        fake.routes["GET /queue"] = trickle(fake, 10_000, every=0.5)
        client = ComfyClient(ServerAddress.parse(fake.url), ClientOptions(Limits(request_seconds=1)))
        thread, errors = in_background(client.queue)
        thread.join(timeout=30)
        client.close()
    assert [type(e) for e in errors] == [ServerUnreachable]
    assert "no complete answer within 1 s to GET /queue" in str(errors[0])


def test_every_error_from_the_fake_is_one_of_ours() -> None:
    # A reply that answers every route with garbage: each public call raises a BatchError.
    routes = {
        f"{method} {path}": reply_raw(b"\x00\xff", "application/octet-stream")
        for method, path in [
            ("GET", "/queue"),
            ("GET", "/history/*"),
            ("GET", "/system_stats"),
            ("GET", "/object_info"),
            ("POST", "/prompt"),
            ("POST", "/upload/image"),
            ("GET", "/api/jobs/*"),
        ]
    }
    with FakeComfy(routes=routes) as fake, ComfyClient(ServerAddress.parse(fake.url)) as client:
        calls = [
            client.queue,
            lambda: client.history("p"),
            client.system_stats,
            client.object_info,
            lambda: client.queue_prompt({}, "c", "p"),
            lambda: client.upload_image(b"x", "a.png"),
            lambda: client.job("p"),
        ]
        for call in calls:
            with pytest.raises(BatchError):
                call()


def test_a_proxy_answering_unknown_routes_with_json_is_not_taken_for_the_jobs_api() -> None:
    routes = {"GET /api/jobs/*": reply_json({"message": "Not Found"}, 404)}
    with FakeComfy(routes=routes) as fake, ComfyClient(ServerAddress.parse(fake.url)) as client:
        assert client.job("p").status.value == "unknown"
        assert client.cancel("p") is False
    assert fake.requests == ["GET /api/jobs/p", "GET /queue", "GET /history/p", "GET /queue"]


def test_an_answer_that_comes_slowly_over_tls_arrives_whole(tmp_path: Path) -> None:
    # Reads wait in short slices (to notice a cancel); over TLS a slice that ends with no
    # data must leave the connection intact.
    certificate, key = self_signed_certificate(tmp_path)
    with FakeComfy() as fake:
        fake.view = trickle(fake, claimed_length=4, every=0.3)
        port = int(fake.url.rsplit(":", 1)[1])
        with (
            ReverseProxy(port, tls=(certificate, key)) as proxy,
            ComfyClient(ServerAddress.parse(proxy.url), ClientOptions(ca_cert=certificate)) as client,
        ):
            sink = io.BytesIO()
            assert client.download(REF, sink) == 4
    assert sink.getvalue() == b"xxxx"
