"""The /ws reader: no frame stops it, odd frames cost nothing, and drops do not become a
reconnect storm. Odd frames come from the fake (a real server cannot send them on demand)."""

from __future__ import annotations

import queue
from typing import Any

from batchkit import wait_for
from fake_server import BINARY, TEXT, FakeComfy, ws_frame, ws_message
from hypothesis import given, settings
from hypothesis import strategies as st
from websocket import ABNF

from comfyui_batch.comfy.address import ServerAddress
from comfyui_batch.comfy.events import (
    Event,
    EventStream,
    Progress,
    PromptDone,
    PromptStarted,
    StreamLost,
    next_attempt,
    parse_frame,
    parse_message,
    reconnect_delay,
)


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
    kind=st.sampled_from(["executing", "execution_start", "progress", "progress_state", "status", "x"]),
    data=st.fixed_dictionaries(
        {}, optional={"prompt_id": json_values, "node": json_values, "value": json_values, "max": json_values}
    )
    | json_values,
)
def test_no_message_of_any_shape_raises(kind: str, data: Any) -> None:
    import json

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
    assert [e for e in seen if not isinstance(e, StreamLost)] == [Progress("p", "3", 5, 10), seen[-1]]
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
