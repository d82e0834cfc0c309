"""Telling a file's type from its first bytes, to catch a body that is clearly not what the
server named: an HTML error page sent as `.mp4`, a "PNG" that is not one.

Only well-known signatures of common image, video and audio formats; an extension without
one here is never doubted. Pure: callers pass the first `HEAD_BYTES` of the file.
"""

from __future__ import annotations

from collections.abc import Callable

HEAD_BYTES = 64


def _starts(*prefixes: bytes) -> Callable[[bytes], bool]:
    return lambda head: head.startswith(prefixes)


def _riff(kind: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[:4] == b"RIFF" and head[8:12] == kind


# ISO base media files (MP4, MOV, M4A, 3GP, AVIF, HEIC) open with a box; QuickTime files may
# open with one of its older boxes rather than `ftyp`.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")


def _iso_media(head: bytes) -> bool:
    return head[4:8] in _ISO_BOXES


def _mpeg_audio(head: bytes) -> bool:
    return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def _adts(head: bytes) -> bool:
    return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0)


_KINDS: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "png": ("a PNG image", _starts(b"\x89PNG\r\n\x1a\n")),
    "jpg": ("a JPEG image", _starts(b"\xff\xd8\xff")),
    "gif": ("a GIF image", _starts(b"GIF87a", b"GIF89a")),
    "webp": ("a WebP image", _riff(b"WEBP")),
    "bmp": ("a BMP image", _starts(b"BM")),
    "tiff": ("a TIFF image", _starts(b"II*\x00", b"MM\x00*")),
    "mp4": ("an MP4/QuickTime file", _iso_media),
    "webm": ("a WebM/Matroska file", _starts(b"\x1a\x45\xdf\xa3")),
    "avi": ("an AVI video", _riff(b"AVI ")),
    "wav": ("a WAV sound", _riff(b"WAVE")),
    "flac": ("a FLAC sound", _starts(b"fLaC")),
    "ogg": ("an Ogg file", _starts(b"OggS")),
    "mp3": ("an MP3 sound", _mpeg_audio),
    "aac": ("an AAC sound", _adts),
    "glb": ("a glTF binary model", _starts(b"glTF")),
}
_ALIASES = {
    "jpeg": "jpg",
    "jpe": "jpg",
    "jfif": "jpg",
    "tif": "tiff",
    "mov": "mp4",
    "m4v": "mp4",
    "m4a": "mp4",
    "3gp": "mp4",
    "avif": "mp4",
    "heic": "mp4",
    "heif": "mp4",
    "mkv": "webm",
    "oga": "ogg",
    "ogv": "ogg",
    "opus": "ogg",
}


def mismatch(extension: str, head: bytes) -> str | None:
    """None when `head` can start a `.extension` file (or the extension is not one we know);
    otherwise what the bytes look like instead, e.g. "an HTML page"."""
    kind = _KINDS.get(_ALIASES.get(extension.lower(), extension.lower()))
    if kind is None or kind[1](head):
        return None
    return describe(head)


def describe(head: bytes) -> str:
    """What a file starting with `head` looks like, for messages."""
    if not head:
        return "an empty file"
    for name, matches in _KINDS.values():
        if matches(head):
            return name
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if text.startswith((b"{", b"[")):
        return "JSON text"
    if text.startswith(b"<"):
        return "XML or HTML text"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "plain text"
    return "data of an unknown kind"
