// The frame-index barcode of streaming/barcode.py, in JavaScript (same layout:
// 2 rows x 17 blocks of width/32 px in the top-left corner: white and black
// references, 24-bit index, CRC-8 poly 0x07). The server reads it back to tell
// which input frame each generated frame came from.
"use strict";

const BARCODE = (() => {
  const DATA_BITS = 24, CRC_BITS = 8, COLUMNS = 17, BLOCKS_PER_WIDTH = 32;

  function crc8(bytes) {
    let crc = 0;
    for (const byte of bytes) {
      crc ^= byte;
      for (let i = 0; i < 8; i++) {
        crc = crc & 0x80 ? ((crc << 1) ^ 0x07) & 0xff : (crc << 1) & 0xff;
      }
    }
    return crc;
  }

  function bits(index) {
    index &= 0xffffff;
    const check = crc8([(index >> 16) & 0xff, (index >> 8) & 0xff, index & 0xff]);
    const out = [];
    for (let i = DATA_BITS - 1; i >= 0; i--) out.push((index >> i) & 1);
    for (let i = CRC_BITS - 1; i >= 0; i--) out.push((check >> i) & 1);
    return out;
  }

  // Draw `index` on a 2D canvas context whose canvas is `width` px wide.
  function draw(ctx, width, index) {
    const b = width / BLOCKS_PER_WIDTH;
    const values = [1, 0, ...bits(index)];
    values.forEach((v, i) => {
      const col = i % COLUMNS, row = Math.floor(i / COLUMNS);
      const x0 = Math.round(col * b), y0 = Math.round(row * b);
      const x1 = Math.round((col + 1) * b), y1 = Math.round((row + 1) * b);
      ctx.fillStyle = v ? "#fff" : "#000";
      ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
    });
  }

  return { draw, crc8 };
})();
