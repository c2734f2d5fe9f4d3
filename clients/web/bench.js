// Latency measurement page (bench.html). Every time below is the page's clock,
// performance.now() in ms since performance.timeOrigin; bench/latency_browser.py
// maps it to the server's time.monotonic() once (bench/README.md says how).
//
//   captures  {k, t}            camera frame with barcode k was captured at t
//                               (requestVideoFrameCallback metadata.captureTime on the
//                               local preview; the callback time where it is missing)
//   displays  {k, rtp, t, rx}   a generated frame was shown at t (expectedDisplayTime):
//                               its barcode k if it has one (echo engine), its RTP
//                               timestamp, and when its last packet arrived (rx)
//   telemetry                   the server's per-frame records, as sent
"use strict";

const bench = (() => {
  const COLUMNS = 17, BLOCKS_PER_WIDTH = 32, N_BLOCKS = 2 + 24 + 8, MIN_CONTRAST = 64;
  const events = { captures: [], displays: [], telemetry: [], control: [] };
  const info = { tConnectStart: null, codec: null, error: null, captureTimeSeen: false };
  let pc = null;
  let running = false;
  const scratch = document.createElement("canvas");
  const sctx = scratch.getContext("2d", { willReadFrequently: true });

  function setState(s) { document.getElementById("state").textContent = s; }

  // streaming/barcode.py's decode: mean of each block's inner half, threshold at the
  // midpoint of the white and black references, CRC-8 check; null when unreadable.
  function readBarcode(video) {
    const w = video.videoWidth, h = video.videoHeight;
    if (w < 160) return null;
    const b = w / BLOCKS_PER_WIDTH;
    const rw = Math.ceil(COLUMNS * b), rh = Math.ceil(2 * b);
    if (h < rh) return null;
    scratch.width = rw; scratch.height = rh;
    sctx.drawImage(video, 0, 0, rw, rh, 0, 0, rw, rh);
    const px = sctx.getImageData(0, 0, rw, rh).data;
    const means = [];
    for (let i = 0; i < N_BLOCKS; i++) {
      const col = i % COLUMNS, row = Math.floor(i / COLUMNS);
      const x0 = Math.round(col * b), y0 = Math.round(row * b);
      const x1 = Math.round((col + 1) * b), y1 = Math.round((row + 1) * b);
      const qx = Math.floor((x1 - x0) / 4), qy = Math.floor((y1 - y0) / 4);
      let sum = 0, n = 0;
      for (let y = y0 + qy; y < y1 - qy; y++) {
        for (let x = x0 + qx; x < x1 - qx; x++) {
          const o = (y * rw + x) * 4;
          sum += (px[o] + px[o + 1] + px[o + 2]) / 3; n++;
        }
      }
      means.push(n ? sum / n : 0);
    }
    const white = means[0], black = means[1];
    if (white - black < MIN_CONTRAST) return null;
    const mid = (white + black) / 2;
    let index = 0, check = 0;
    for (let i = 0; i < 24; i++) index = index * 2 + (means[2 + i] > mid ? 1 : 0);
    for (let i = 0; i < 8; i++) check = check * 2 + (means[26 + i] > mid ? 1 : 0);
    const crc = BARCODE.crc8([(index >> 16) & 0xff, (index >> 8) & 0xff, index & 0xff]);
    return crc === check ? index : null;
  }

  function watchLocal(video) {
    const onFrame = (now, meta) => {
      if (!running) return;
      if (meta.captureTime !== undefined) info.captureTimeSeen = true;
      const k = readBarcode(video);
      if (k !== null) events.captures.push({ k, t: meta.captureTime ?? now });
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  function watchRemote(video) {
    const onFrame = (now, meta) => {
      if (!running) return;
      events.displays.push({ k: readBarcode(video), rtp: meta.rtpTimestamp ?? null,
                             t: meta.expectedDisplayTime ?? now, rx: meta.receiveTime ?? null });
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  function iceGatheringDone(conn) {
    if (conn.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      conn.addEventListener("icegatheringstatechange", () => {
        if (conn.iceGatheringState === "complete") resolve();
      });
    });
  }

  // Connect and stream until stop(). Resolves when the first generated frame plays.
  async function start({ width = 640, height = 480, fps = 30, token = null } = {}) {
    running = true;
    setState("opening camera");
    const stream = await navigator.mediaDevices.getUserMedia(
      { video: { width, height, frameRate: fps }, audio: false });
    const local = document.getElementById("local");
    local.srcObject = stream;
    watchLocal(local);

    info.tConnectStart = performance.now();
    pc = new RTCPeerConnection();
    const [track] = stream.getVideoTracks();
    const transceiver = pc.addTransceiver(track, { direction: "sendrecv" });
    const params = transceiver.sender.getParameters();
    params.degradationPreference = "maintain-resolution";  // no quiet downscaling
    await transceiver.sender.setParameters(params).catch(() => {});
    const control = pc.createDataChannel("control");
    const telemetry = pc.createDataChannel("telemetry");
    telemetry.onmessage = (e) => {
      const r = JSON.parse(e.data);
      if (r.type === "frame") events.telemetry.push(r);
    };
    control.onmessage = (e) => events.control.push(JSON.parse(e.data));

    const remote = document.getElementById("remote");
    const firstFrame = new Promise((resolve) => {
      pc.ontrack = (e) => {
        if (e.track.kind !== "video") return;
        e.receiver.jitterBufferTarget = 0;                  // no extra receive buffering
        remote.srcObject = new MediaStream([e.track]);
        remote.requestVideoFrameCallback(() => resolve());
        watchRemote(remote);
      };
    });

    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);                              // aiortc takes no trickle ICE
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    setState("connecting");
    const resp = await fetch("/offer", { method: "POST", headers,
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }) });
    if (!resp.ok) throw new Error(`offer refused: ${resp.status} ${await resp.text()}`);
    await pc.setRemoteDescription(await resp.json());
    const m = /a=rtpmap:\d+ (\w+)\/90000/.exec(
      pc.remoteDescription.sdp.split("m=video")[1] || "");
    info.codec = m ? m[1] : null;
    await firstFrame;
    setState("streaming");
  }

  // Hand over (and forget) what was recorded since the last call.
  function drain() {
    const out = { captures: events.captures.splice(0), displays: events.displays.splice(0),
                  telemetry: events.telemetry.splice(0), control: events.control.splice(0) };
    return out;
  }

  async function stop() {
    running = false;
    if (pc) await pc.close();
    setState("stopped");
  }

  return { start, drain, stop, info, readBarcode, now: () => performance.now() };
})();

window.bench = bench;
