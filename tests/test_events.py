"""The /ws reader: no frame stops it, odd frames cost nothing, and drops do not become a
reconnect storm. Odd frames come from the fake (a real server cannot send them on demand)."""

from __future__ import annotations

import json
import queue
from typing import Any

from batchkit import wait_for
from fake_server import BINARY, TEXT, FakeComfy, ws_frame, ws_message
from hypothesis import given, settings
from hypothesis import strategies as st
from websocket import ABNF

from comfyui_batch.comfy.address import ServerAddress
from comfyui_batch.comfy.client import FileRef
from comfyui_batch.comfy.events import (
    Event,
    ImageStreamed,
    OutputsListed,
    Progress,
    PromptDone,
    PromptStarted,
    StreamLost,
    parse_frame,
    parse_message,
)
from comfyui_batch.comfy.stream import EventStream, next_attempt, reconnect_delay


@settings(max_examples=300, deadline=None)
@given(opcode=st.sampled_from([ABNF.OPCODE_TEXT, ABNF.OPCODE_BINARY]), payload=st.binary(max_size=64))
def test_no_frame_of_any_bytes_raises(opcode: int, payload: bytes) -> None:
    parse_frame(opcode, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from(["executing", "execution_start", "progress", "executed", "progress_state", "status", "x"]),
    data=st.fixed_dictionaries(
        {},
        optional={
            "prompt_id": json_values,
            "node": json_values,
            "value": json_values,
            "max": json_values,
            "output": json_values,
        },
    )
    | json_values,
)
def test_no_message_of_any_shape_raises(kind: str, data: Any) -> None:
    parse_message(json.dumps({"type": kind, "data": data}))


def test_the_messages_a_batch_acts_on_become_events() -> None:
    assert isinstance(parse_message('{"type":"executing","data":{"node":null,"prompt_id":"p"}}'), PromptDone)
    assert isinstance(parse_message('{"type":"execution_start","data":{"prompt_id":"p"}}'), PromptStarted)
    progress = parse_message('{"type":"progress","data":{"value":3.0,"max":10,"node":"2","prompt_id":"p"}}')
    assert progress == Progress("p", "2", 3, 10)


def test_a_progress_of_1e400_or_nan_is_ignored_not_fatal() -> None:
    for value in ("1e400", "-1e400", "NaN", "true", '"3"'):
        assert parse_message(f'{{"type":"progress","data":{{"value":{value},"max":10,"prompt_id":"p"}}}}') is None


def test_newer_servers_message_types_are_ignored() -> None:
    for kind in ("progress_state", "execution_cached", "execution_success", "feature_flags", "assets.seed.started"):
        assert parse_message(f'{{"type":"{kind}","data":{{"prompt_id":"p","nodes":{{}}}}}}') is None


def collect_events(stream_events: queue.Queue[Event]) -> list[Event]:
    found = []
    while not stream_events.empty():
        found.append(stream_events.get())
    return found


def test_odd_frames_neither_stop_the_reader_nor_make_it_reconnect() -> None:
    frames = [
        ws_frame(b"", TEXT),  # an empty text frame
        ws_frame(b"", BINARY),  # an empty binary frame: once taken for a close, a reconnect storm
        ws_frame('{"type":"progress","data":{"value":1e400,"max":10,"prompt_id":"p","node":"3"}}'),
        ws_frame(b"\xff\xfe not utf-8", TEXT),
        ws_frame("[" * 50_000, TEXT),  # nesting deep enough to overflow a recursive parser
        ws_frame("{not json", TEXT),
        ws_frame(b"\x00\x00\x00\x01\x00\x00\x00\x01jpegbytes", BINARY),  # a preview
        ws_message("progress", value=5, max=10, prompt_id="p", node="3"),
        ws_message("executing", node=None, prompt_id="p"),
    ]
    events: queue.Queue[Event] = queue.Queue()
    with FakeComfy(ws_frames=frames) as fake:
        stream = EventStream(ServerAddress.parse(fake.url), "c", events.put)
        stream.start()
        try:
            wait_for(lambda: any(isinstance(e, PromptDone) for e in list(events.queue)), timeout=30)
        finally:
            stream.stop()
    seen = collect_events(events)
    preview = ImageStreamed(None, None, "jpg", b"jpegbytes")  # the scheduler keeps only its prompts' outputs
    assert [e for e in seen if not isinstance(e, StreamLost)] == [preview, Progress("p", "3", 5, 10), seen[-1]]
    assert not [e for e in seen if isinstance(e, StreamLost)]
    assert fake.ws_connections == 1


def test_connections_dropped_at_once_are_retried_ever_more_slowly_and_a_real_one_resets_that() -> None:
    attempt, delays = 0, []
    for _ in range(5):
        attempt = next_attempt(attempt, lived_seconds=0.01)
        delays.append(reconnect_delay(attempt))
    assert delays == [0.5, 1.0, 2.0, 5.0, 5.0]
    assert reconnect_delay(next_attempt(attempt, lived_seconds=60)) == 0.2


def test_a_server_that_drops_every_connection_is_tried_again_and_the_loss_reported() -> None:
    events: queue.Queue[Event] = queue.Queue()
    with FakeComfy(ws_frames=[], ws_close=True) as fake:
        stream = EventStream(ServerAddress.parse(fake.url), "c", events.put)
        stream.start()
        try:
            wait_for(lambda: fake.ws_connections >= 3, timeout=30)
        finally:
            stream.stop()
    assert any(isinstance(e, StreamLost) for e in collect_events(events))


def image_frame(metadata: dict[str, Any], image: bytes) -> bytes:
    text = json.dumps(metadata).encode()
    return (4).to_bytes(4, "big") + len(text).to_bytes(4, "big") + text + image


def test_an_output_nodes_files_are_known_as_soon_as_it_has_run() -> None:
    output = {"images": [{"filename": "x_00001_.png", "subfolder": "", "type": "output"}], "animated": [False]}
    event = parse_message(json.dumps({"type": "executed", "data": {"node": "9", "output": output, "prompt_id": "p"}}))
    assert event == OutputsListed("p", (FileRef("9", "images", "x_00001_.png", "", "output"),))
    no_ui = parse_message('{"type":"executed","data":{"node":"9","output":null,"prompt_id":"p"}}')
    assert no_ui is None


def test_an_image_sent_over_the_socket_names_its_prompt_and_node_or_leaves_them_to_its_progress() -> None:
    meta = {"node_id": "7", "display_node_id": "7", "prompt_id": "p", "image_type": "image/png"}
    assert parse_frame(ABNF.OPCODE_BINARY, image_frame(meta, b"PNG")) == ImageStreamed("p", "7", "png", b"PNG")
    old_style = (1).to_bytes(4, "big") + (2).to_bytes(4, "big") + b"PNG"
    assert parse_frame(ABNF.OPCODE_BINARY, old_style) == ImageStreamed(None, None, "png", b"PNG")
    text = (3).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"7hello"
    for odd in (text, image_frame({**meta, "image_type": "image/tiff"}, b"x"), image_frame({"prompt_id": 1}, b"x")):
        assert parse_frame(ABNF.OPCODE_BINARY, odd) is None
    assert parse_frame(ABNF.OPCODE_BINARY, (4).to_bytes(4, "big") + (99).to_bytes(4, "big") + b"{}") is None
