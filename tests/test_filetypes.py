"""Bodies that are clearly not the file type the server named."""

from __future__ import annotations

import pytest

from comfyui_batch.filetypes import describe, mismatch


@pytest.mark.parametrize(
    ("extension", "head"),
    [
        ("png", b"\x89PNG\r\n\x1a\n...."),
        ("JPG", b"\xff\xd8\xff\xe0"),
        ("webp", b"RIFF\x00\x00\x00\x00WEBPVP8 "),
        ("gif", b"GIF89a"),
        ("mp4", b"\x00\x00\x00\x18ftypmp42"),
        ("mov", b"\x00\x00\x00\x08wide"),
        ("webm", b"\x1a\x45\xdf\xa3"),
        ("wav", b"RIFF\x00\x00\x00\x00WAVEfmt "),
        ("flac", b"fLaC"),
        ("mp3", b"ID3\x04"),
        ("opus", b"OggS"),
        ("txt", b"anything at all"),  # no signature known: never doubted
        ("safetensors", b"\x00\x01"),
    ],
)
def test_real_files_pass(extension: str, head: bytes) -> None:
    assert mismatch(extension, head) is None


@pytest.mark.parametrize(
    ("extension", "head", "looks_like"),
    [
        ("mp4", b"<!DOCTYPE html><html><body>502 Bad Gateway", "an HTML page"),
        ("png", b'{"error": "not found"}', "JSON text"),
        ("png", b"\xff\xd8\xff\xe0JFIF", "a JPEG image"),
        ("wav", b"", "an empty file"),
        ("webm", b"Internal Server Error", "plain text"),
        ("gif", b"\x00\x01\x02\x03", "data of an unknown kind"),
    ],
)
def test_a_body_of_another_kind_is_named(extension: str, head: bytes, looks_like: str) -> None:
    assert mismatch(extension, head) == looks_like


def test_describe_names_known_formats() -> None:
    assert describe(b"fLaC\x00") == "a FLAC sound"
