"""Control messages and reference uploads: every bad input gets a clear reason."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from streaming import control


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("text, reason", [
    ("not json", "not JSON"),
    ("[1, 2]", "JSON object"),
    ('{"type": "teleport"}', "unknown control message"),
    ('{"type": "character"}', "'name'"),
    ('{"type": "character", "name": "robot", "framing": "knees"}', "full, upper, face"),
    ('{"type": "fps", "value": 500}', "[1, 60]"),
    ('{"type": "steps", "value": 1.5}', "whole"),
    ('{"type": "filter", "value": "high"}', "numeric"),
    ('{"type": "demo", "on": "yes"}', "boolean"),
    ('{"type": "reference", "image": "AAAA", "part": 3, "parts": 2}', "parts"),
])
def test_malformed_messages_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(control.ControlError, match=None) as info:
        control.parse(text)
    assert reason in str(info.value)


def test_valid_messages_parse() -> None:
    assert control.parse('{"type": "steps", "value": 2}').body["value"] == 2
    assert control.parse(json.dumps({"type": "character", "name": "robot"})).type == "character"
    upper = control.parse(json.dumps({"type": "character", "name": "robot", "framing": "upper"}))
    assert upper.body["framing"] == "upper"


def test_rgba_png_decodes_to_rgb_on_white() -> None:
    image = Image.new("RGBA", (64, 48), (255, 0, 0, 0))          # fully transparent red
    rgb = control.decode_reference(png_bytes(image))
    assert rgb.shape == (48, 64, 3) and rgb.dtype == np.uint8
    assert (rgb == 255).all()


def test_not_an_image() -> None:
    with pytest.raises(control.ControlError, match="not an image"):
        control.decode_reference(b"%PDF-1.4 definitely not a picture")


def test_decompression_bomb_is_refused_from_the_header() -> None:
    bomb = png_bytes(Image.new("L", (5000, 5000)))              # 25 Mpx, a few KiB on disk
    assert len(bomb) < 100_000
    with pytest.raises(control.ControlError, match="pixels"):
        control.decode_reference(bomb)


def test_unsupported_mode_and_format() -> None:
    cmyk = png_bytes(Image.new("CMYK", (32, 32)), fmt="JPEG")
    with pytest.raises(control.ControlError, match="mode CMYK"):
        control.decode_reference(cmyk)
    with pytest.raises(control.ControlError, match="format GIF"):
        control.decode_reference(png_bytes(Image.new("P", (32, 32)), fmt="GIF"))


def test_truncated_image() -> None:
    data = png_bytes(Image.new("RGB", (256, 256), (10, 200, 30)), fmt="JPEG")
    with pytest.raises(control.ControlError):
        control.decode_reference(data[: len(data) // 2])


def test_assembler_joins_parts_and_enforces_the_byte_cap() -> None:
    data = png_bytes(Image.new("RGB", (80, 60), (1, 2, 3)))
    text = base64.b64encode(data).decode()
    parts = [text[i : i + 50] for i in range(0, len(text), 50)]
    assembler = control.ReferenceAssembler()
    results = [assembler.add({"image": p, "part": i, "parts": len(parts)})
               for i, p in enumerate(parts)]
    assert results[:-1] == [None] * (len(parts) - 1) and results[-1] == data

    small = control.ReferenceAssembler(max_bytes=1000)
    with pytest.raises(control.ControlError, match="larger than"):
        small.add({"image": base64.b64encode(b"x" * 2000).decode()})
    with pytest.raises(control.ControlError, match="base64"):
        control.ReferenceAssembler().add({"image": "not base64 at all!"})
