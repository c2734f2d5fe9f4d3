"""A block barcode carrying a frame index in the pixels, robust to VP8/H264.

Clients draw it into each frame they send (the Python client into every frame,
the web page into every canvas frame); the server reads it back to tell which
input frame a generated frame came from, so the latency harness can match
output to input without trusting any clock but time.monotonic() on one machine.

Layout, in the top-left corner (works at 320x240 and up; scales with width):

    block size b = width / 32 pixels
    2 rows x 17 blocks:  [W][K][d23 ... d9]
                         [d8 ... d0][c7 ... c0]
    W = white reference, K = black reference, d = 24-bit index (MSB first),
    c = CRC-8 (poly 0x07) of the index's 3 big-endian bytes.

Reading samples the inner half of each block (codec ringing lives at the edges),
thresholds at the midpoint of the two references and checks the CRC, so a frame
without a barcode decodes to None rather than to a wrong index.
clients/web/barcode.js is the same code in JavaScript.
"""

from __future__ import annotations

import numpy as np

DATA_BITS = 24
CRC_BITS = 8
COLUMNS = 17
ROWS = 2
BLOCKS_PER_WIDTH = 32
MIN_CONTRAST = 64          # white reference minus black reference, in 8-bit luma
MAX_INDEX = (1 << DATA_BITS) - 1


def crc8(data: bytes) -> int:
    """CRC-8, polynomial x^8 + x^2 + x + 1 (0x07), init 0."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _bits(index: int) -> list[int]:
    check = crc8(index.to_bytes(3, "big"))
    word = (index << CRC_BITS) | check
    n = DATA_BITS + CRC_BITS
    return [(word >> (n - 1 - i)) & 1 for i in range(n)]


def _block_rect(i: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of block i, in pixels."""
    b = width / BLOCKS_PER_WIDTH
    col, row = i % COLUMNS, i // COLUMNS
    return round(col * b), round(row * b), round((col + 1) * b), round((row + 1) * b)


def encode(image: np.ndarray, index: int) -> np.ndarray:
    """Draw `index` (0 .. 2^24-1, taken modulo 2^24) into `image` in place and return it.

    image: (H, W, 3) or (H, W) uint8, W >= 160.
    """
    height, width = image.shape[:2]
    if width < 160 or height < 2 * width / BLOCKS_PER_WIDTH:
        raise ValueError(f"image {width}x{height} too small for a barcode")
    values = [255, 0, *(255 if bit else 0 for bit in _bits(index & MAX_INDEX))]
    for i, value in enumerate(values):
        x0, y0, x1, y1 = _block_rect(i, width)
        image[y0:y1, x0:x1] = value
    return image


def decode(image: np.ndarray) -> int | None:
    """The index drawn by `encode`, or None when there is no (readable) barcode.

    image: (H, W, 3) RGB or (H, W) luma, uint8.
    """
    height, width = image.shape[:2]
    if width < 160 or height < 2 * width / BLOCKS_PER_WIDTH:
        return None
    n = 2 + DATA_BITS + CRC_BITS
    means = np.empty(n, np.float32)
    for i in range(n):
        x0, y0, x1, y1 = _block_rect(i, width)
        qx, qy = (x1 - x0) // 4, (y1 - y0) // 4
        means[i] = image[y0 + qy : y1 - qy, x0 + qx : x1 - qx].mean()
    white, black = float(means[0]), float(means[1])
    if white - black < MIN_CONTRAST:
        return None
    bits = (means[2:] > (white + black) / 2).astype(np.int64)
    word = 0
    for bit in bits:
        word = (word << 1) | int(bit)
    index, check = word >> CRC_BITS, word & 0xFF
    return index if crc8(index.to_bytes(3, "big")) == check else None
