"""The `control` data channel: message parsing and reference-image checks.

Client -> server (JSON objects, one per message):

    {"type": "character", "name": "robot"}          built-in gallery character, shot
    {"type": "character", "name": "robot",           full-body, or in "upper" (head to
     "framing": "upper"}                              hips) or "face" framing
    {"type": "reference", "image": "<base64>"}       upload a reference image; split
    {"type": "reference", "image": "<base64 part>",  big ones into parts (data channel
     "part": i, "parts": n}                           messages are capped at 64 KiB)
    {"type": "fps", "value": 24}                     output (and demo) frame rate
    {"type": "steps", "value": 2}                    denoising steps
    {"type": "filter", "value": 1.0}                 motion smoothing strength
    {"type": "reset_calibration"}
    {"type": "demo", "on": true}                     drive the character with the
                                                     built-in demo performer
    {"type": "ping", "t": 123.4}                     -> pong with the server clock

Server -> client:

    {"type": "hello", "session", "fps", "resolution", "characters",
     "steps", "chunk"}                                the model's denoising steps now
                                                     (null: no model) and frames per
                                                     chunk (1: each frame answered alone)
    {"type": "ack", "for": <type>, ...}               the change took effect; for a
                                                     reference: "size" [w, h] and
                                                     "figure" (its figure was found, so
                                                     the stream is drawn where it stands;
                                                     false: a standing adult, full-body)
                                                     and "hands" (a face was found: the
                                                     performer's hands are drawn in its
                                                     skin, realtime/model/hand_paste.py)
    {"type": "error", "for": <type>, "message"}       it did not; nothing changed
    {"type": "pong", "t": <echo>, "server_time": <time.monotonic()>}
    {"type": "closed", "reason"}                      the session ended (pipeline error)
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.avatars.cli import FRAMINGS

MAX_REFERENCE_BYTES = 8 * 1024 * 1024      # encoded file size
MAX_REFERENCE_PIXELS = 4096 * 4096          # decoded size: decompression bombs stop here
MAX_REFERENCE_PARTS = 256
REFERENCE_MODES = ("RGB", "RGBA", "L", "LA", "P")
REFERENCE_FORMATS = ("PNG", "JPEG", "WEBP")
MESSAGE_TYPES = ("character", "reference", "fps", "steps", "filter", "reset_calibration",
                 "demo", "ping")


class ControlError(ValueError):
    """A control message the server refuses; the message says why."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ControlMessage:
    type: str
    body: dict[str, Any]


def parse(text: str | bytes) -> ControlMessage:
    """Parse and validate one control message. ControlError if it is malformed."""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ControlError("invalid", f"control message is not JSON: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise ControlError("invalid", "control message must be a JSON object with a 'type'")
    kind = body["type"]
    if kind not in MESSAGE_TYPES:
        raise ControlError(kind, f"unknown control message type {kind!r}; "
                                 f"expected one of {', '.join(MESSAGE_TYPES)}")
    if kind == "character" and not isinstance(body.get("name"), str):
        raise ControlError(kind, "'character' needs a string 'name'")
    if kind == "character" and body.get("framing", "full") not in FRAMINGS:
        raise ControlError(kind, f"'character' framing must be one of {', '.join(FRAMINGS)}")
    if kind == "reference":
        if not isinstance(body.get("image"), str):
            raise ControlError(kind, "'reference' needs a base64 string 'image'")
        parts = body.get("parts", 1)
        part = body.get("part", 0)
        if not (isinstance(parts, int) and isinstance(part, int)
                and 1 <= parts <= MAX_REFERENCE_PARTS and 0 <= part < parts):
            raise ControlError(kind, f"'reference' parts must satisfy 0 <= part < parts <= "
                                     f"{MAX_REFERENCE_PARTS}")
    if kind in ("fps", "steps", "filter"):
        value = body.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ControlError(kind, f"'{kind}' needs a numeric 'value'")
        lo, hi = {"fps": (1, 60), "steps": (1, 8), "filter": (0, 10)}[kind]
        if not lo <= value <= hi or (kind == "steps" and int(value) != value):
            raise ControlError(kind, f"'{kind}' must be in [{lo}, {hi}]"
                                     + (" and whole" if kind == "steps" else ""))
    if kind == "demo" and not isinstance(body.get("on"), bool):
        raise ControlError(kind, "'demo' needs a boolean 'on'")
    return ControlMessage(kind, body)


class ReferenceAssembler:
    """Collects the base64 parts of one reference upload, enforcing the byte cap
    before anything is decoded."""

    def __init__(self, max_bytes: int = MAX_REFERENCE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._parts: list[str] = []
        self._expected = 0
        self._size = 0

    def add(self, body: dict[str, Any]) -> bytes | None:
        """Add one part; the whole decoded file once the last part is in."""
        part, parts = int(body.get("part", 0)), int(body.get("parts", 1))
        if part == 0:
            self._parts, self._expected, self._size = [], parts, 0
        elif parts != self._expected or part != len(self._parts):
            self._parts, self._expected, self._size = [], 0, 0
            raise ControlError("reference", "reference parts arrived out of order; resend")
        chunk: str = body["image"]
        if chunk.startswith("data:"):
            chunk = chunk.partition(",")[2]
        self._size += len(chunk) * 3 // 4
        if self._size > self.max_bytes:
            self._parts, self._expected, self._size = [], 0, 0
            raise ControlError("reference", f"reference image larger than "
                                            f"{self.max_bytes // (1024 * 1024)} MiB")
        self._parts.append(chunk)
        if len(self._parts) < self._expected:
            return None
        joined, self._parts, self._expected, self._size = "".join(self._parts), [], 0, 0
        try:
            data = base64.b64decode(joined, validate=True)
        except (binascii.Error, ValueError):
            raise ControlError("reference", "reference image is not valid base64") from None
        if len(data) > self.max_bytes:
            raise ControlError("reference", "reference image too large")
        return data


def decode_reference(
    data: bytes, max_pixels: int = MAX_REFERENCE_PIXELS
) -> np.ndarray:
    """An uploaded image file as (H, W, 3) uint8 RGB. ControlError when it is not
    an image, is too large in pixels, or has an unsupported format or mode. The
    pixel count is checked from the header, before anything is decompressed."""
    from PIL import Image, UnidentifiedImageError

    image: Image.Image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in REFERENCE_FORMATS:
                raise ControlError("reference", f"unsupported image format {image.format}; "
                                                f"use {', '.join(REFERENCE_FORMATS)}")
            width, height = image.size
            if width * height > max_pixels:
                raise ControlError("reference", f"reference image is {width}x{height}: more "
                                                f"than {max_pixels} pixels")
            if image.mode not in REFERENCE_MODES:
                raise ControlError("reference", f"unsupported image mode {image.mode}; "
                                                f"use {', '.join(REFERENCE_MODES)}")
            image.load()
    except UnidentifiedImageError:
        raise ControlError("reference", "the uploaded file is not an image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ControlError("reference", "reference image has too many pixels") from None
    except (OSError, SyntaxError) as exc:        # truncated or corrupt image data
        raise ControlError("reference", f"cannot decode the reference image: {exc}") from None
    if image.mode in ("RGBA", "LA", "P"):
        # composite transparency onto white: characters are drawn on light backgrounds
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)
