// Marionette web client: a camera (or a video file, or the server's demo
// performer) in, the animated character out, with a live latency overlay.
//
// Every frame sent goes through a canvas that stamps its index as a barcode
// (barcode.js) and remembers when it was drawn; the server's telemetry record
// for each generated frame names that index and the RTP timestamp of the output
// frame that carried it, so glass-to-glass latency = when that output frame is
// displayed - when its input was drawn, both on this page's clock.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token");
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const withToken = (url) => (token ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : url);
const CHUNK = 48 * 1024;   // data channel messages are capped at 64 KiB

const state = {
  pc: null, control: null, running: false, index: 0,
  drawn: new Map(),          // input index -> performance.now() when drawn
  records: new Map(),        // out_pts -> telemetry record
  offsetVotes: new Map(), rtpOffset: null,
  latencies: [], shown: [], telemetryCount: 0, lastRecord: null,
  sourceStream: null, fileUrl: null, demo: false,
  character: null, characters: [],
};
window.marionette = state;   // for tests and curious users

function log(msg) {
  const el = $("log");
  el.textContent = `${new Date().toLocaleTimeString()} ${msg}\n` + el.textContent.slice(0, 4000);
}
function setStatus(text) { $("status").textContent = text; }

// --- sources -------------------------------------------------------------------------

async function listSources() {
  const select = $("source");
  select.innerHTML = "";
  let cameras = [];
  try {
    cameras = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "videoinput");
  } catch (e) { /* no media devices API: file or demo only */ }
  cameras.forEach((cam, i) => select.add(new Option(cam.label || `camera ${i + 1}`, `camera:${cam.deviceId}`)));
  select.add(new Option("a video file…", "file"));
  select.add(new Option("built-in demo motion", "demo"));
  if (!cameras.length) log("no camera found: pick a video file or the demo motion");
  const wanted = params.get("source");
  if (wanted === "demo" || wanted === "file") select.value = wanted;
}

async function openSource(choice) {
  const camera = $("camera");
  state.demo = false;
  if (choice.startsWith("camera:")) {
    const deviceId = choice.slice(7);
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { deviceId: deviceId ? { exact: deviceId } : undefined, width: 640, height: 480, frameRate: 30 },
    });
    state.sourceStream = stream;
    camera.srcObject = stream;
  } else if (choice === "file") {
    const file = await pickFile();
    if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
    state.fileUrl = URL.createObjectURL(file);
    camera.srcObject = null;
    camera.src = state.fileUrl;
    camera.loop = true;
  } else {
    state.demo = true;          // the server drives the character; we send a blank stamped canvas
    camera.srcObject = null;
    camera.removeAttribute("src");
  }
  if (!state.demo) await camera.play();
}

function pickFile() {
  return new Promise((resolve, reject) => {
    const input = $("file");
    input.onchange = () => (input.files[0] ? resolve(input.files[0]) : reject(new Error("no file")));
    input.click();
  });
}

// Draw the source into the canvas with the barcode, once per source frame (or
// at 30 fps for the demo), and remember when each index was drawn.
function startDrawing() {
  const canvas = $("input"), ctx = canvas.getContext("2d", { alpha: false });
  const camera = $("camera");
  let generation = 0, lastDraw = performance.now();
  const draw = (gen) => {
    if (!state.running || gen !== generation) return;   // a superseded chain ends here
    lastDraw = performance.now();
    if (!state.demo && camera.videoWidth) {
      ctx.drawImage(camera, 0, 0, canvas.width, canvas.height);
    } else {
      ctx.fillStyle = "#303540";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }
    const index = state.index++;
    BARCODE.draw(ctx, canvas.width, index);
    state.drawn.set(index, lastDraw);
    if (state.drawn.size > 600) state.drawn.delete(index - 600);
    schedule(gen);
  };
  const schedule = (gen) => {
    if (!state.demo && !document.hidden && camera.requestVideoFrameCallback &&
        (camera.srcObject || camera.src)) {
      camera.requestVideoFrameCallback(() => draw(gen));
    } else {
      setTimeout(() => draw(gen), 1000 / 30);
    }
  };
  // requestVideoFrameCallback stops in a hidden tab and a pending one may never fire;
  // timers still run (throttled), so restart the chain on a timer when it stalls and
  // the server keeps getting frames instead of taking the session for dead
  const watchdog = setInterval(() => {
    if (!state.running) return clearInterval(watchdog);
    if (performance.now() - lastDraw > 500) draw(++generation);
  }, 500);
  schedule(generation);
  return canvas.captureStream();
}

// --- connection ----------------------------------------------------------------------

async function start() {
  $("start").disabled = true;
  try {
    await openSource($("source").value);
    state.running = true;
    const stream = startDrawing();
    const pc = new RTCPeerConnection();
    state.pc = pc;
    const transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: "sendrecv", streams: [stream] });
    state.control = pc.createDataChannel("control");
    const telemetry = pc.createDataChannel("telemetry");
    state.control.onmessage = (e) => onControl(JSON.parse(e.data));
    state.control.onopen = () => {
      if (state.demo) sendControl({ type: "demo", on: true });
      sendControl({ type: "fps", value: Number($("fps-in").value) });
    };
    telemetry.onmessage = (e) => onTelemetry(JSON.parse(e.data));
    pc.ontrack = (e) => onTrack(e);
    pc.onconnectionstatechange = () => {
      setStatus(pc.connectionState);
      if (pc.connectionState === "failed") stop();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await iceGatheringDone(pc);
    // the browser keeps the resolution and drops frame rate when squeezed:
    // the model needs a sharp face more than every frame (WEBRTC-NOTES)
    const sendParams = transceiver.sender.getParameters();
    sendParams.degradationPreference = "maintain-resolution";
    await transceiver.sender.setParameters(sendParams).catch((e) => log(`setParameters: ${e}`));
    const resp = await fetch("/offer", {
      method: "POST", headers: { "Content-Type": "application/json", ...authHeaders },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    if (!resp.ok) throw new Error(`server refused: ${resp.status} ${await resp.text()}`);
    await pc.setRemoteDescription(await resp.json());
    $("stop").disabled = false;
    setStatus("connecting…");
    pollStats();
  } catch (e) {
    log(`${e}`);
    setStatus("error");
    stop();
  }
}

function iceGatheringDone(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === "complete") resolve(); };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);       // enough candidates by then
  });
}

function onTrack(event) {
  const video = $("output");
  // play out as soon as a frame is decoded (the default target adds ~10 ms)
  if ("jitterBufferTarget" in event.receiver) event.receiver.jitterBufferTarget = 0;
  else if ("playoutDelayHint" in event.receiver) event.receiver.playoutDelayHint = 0;
  video.srcObject = event.streams[0] || new MediaStream([event.track]);
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onDisplayed);
}

function stop() {
  state.running = false;
  if (state.pc) state.pc.close();
  state.pc = null;
  if (state.sourceStream) state.sourceStream.getTracks().forEach((t) => t.stop());
  state.sourceStream = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  setStatus("stopped");
}

function sendControl(message) {
  if (state.control && state.control.readyState === "open") state.control.send(JSON.stringify(message));
}

function onControl(msg) {
  if (msg.type === "hello") {
    log(`session ${msg.session}, output ${msg.resolution.join("x")} at ${msg.fps} fps`);
    if (msg.steps) $("steps").value = msg.steps;        // the model's own default
    setStatus(`live (${msg.session})`);
  } else if (msg.type === "error") {
    log(`⚠ ${msg.for}: ${msg.message}`);
  } else if (msg.type === "ack" && msg.for === "reference") {
    // figure: the picture's figure was found and the stream is drawn where it stands;
    // hands: a face was found, and the performer's hands are drawn in its skin
    log((msg.figure ? "✓ reference: figure found, drawn where it stands"
                    : "✓ reference: no figure found, drawn as a standing adult")
        + (msg.hands ? "; hands drawn in its skin" : ""));
  } else if (msg.type === "ack") {
    log(`✓ ${msg.for}`);
  } else if (msg.type === "closed") {
    log(`session closed: ${msg.reason}`);
    setStatus(`closed: ${msg.reason}`);
  }
}

// --- telemetry and the overlay -----------------------------------------------------------

function onTelemetry(record) {
  if (record.type !== "frame") return;
  state.telemetryCount++;
  state.lastRecord = record;
  state.records.set(record.out_pts, record);
  if (state.records.size > 300) state.records.delete(state.records.keys().next().value);
}

// The browser reports the raw RTP timestamp of each displayed frame; the server's
// out_pts starts at 0. Their difference is one constant: learn it by vote.
function outPtsOf(rtpTimestamp) {
  if (state.rtpOffset === null) {
    for (const pts of state.records.keys()) {
      const cand = (rtpTimestamp - pts) >>> 0;
      const votes = (state.offsetVotes.get(cand) || 0) + 1;
      state.offsetVotes.set(cand, votes);
      if (votes >= 5) { state.rtpOffset = cand; state.offsetVotes.clear(); break; }
    }
    if (state.offsetVotes.size > 20000) state.offsetVotes.clear();
    return null;
  }
  return (rtpTimestamp - state.rtpOffset) >>> 0;
}

function onDisplayed(now, meta) {
  const video = $("output");
  state.shown.push(now);
  while (state.shown.length && state.shown[0] < now - 1000) state.shown.shift();
  if (meta.rtpTimestamp !== undefined) {
    const pts = outPtsOf(meta.rtpTimestamp);
    const record = pts === null ? null : state.records.get(pts);
    if (record && record.input_id !== null && state.drawn.has(record.input_id)) {
      const shownAt = meta.expectedDisplayTime || now;
      state.latencies.push(shownAt - state.drawn.get(record.input_id));
      if (state.latencies.length > 60) state.latencies.shift();
    }
  }
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(onDisplayed);
}

function median(values) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function renderOverlay() {
  const p50 = median(state.latencies);
  $("latency").textContent = p50 === null ? "–" : p50.toFixed(0);
  $("fps").textContent = String(state.shown.length);
  $("telemetry-count").textContent = String(state.telemetryCount);
  const r = state.lastRecord;
  if (r) {
    $("server-ms").textContent = ((r.t_sent - r.t_capture) * 1000).toFixed(0);
    $("drops").textContent = String(Object.values(r.drops).reduce((a, b) => a + b, 0));
  }
}
setInterval(renderOverlay, 250);

async function pollStats() {
  let last = null;
  while (state.pc) {
    const stats = await state.pc.getStats();
    stats.forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        // the uplink the model sees: bitrate, resolution, and why it is limited
        const kbps = last ? (8 * (s.bytesSent - last.bytesSent)) / (s.timestamp - last.timestamp) : 0;
        last = s;
        state.uplink = { kbps, width: s.frameWidth, height: s.frameHeight, fps: s.framesPerSecond,
                         limitation: s.qualityLimitationReason };
        $("uplink").textContent = `${kbps.toFixed(0)} kbps ${s.frameWidth || "?"}x${s.frameHeight || "?"}`;
      }
      if (s.type === "inbound-rtp" && s.kind === "video") {
        state.framesDecoded = s.framesDecoded;
        const codec = s.codecId && stats.get(s.codecId);
        if (codec) $("codec").textContent = codec.mimeType + " ·";
      }
    });
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// --- characters --------------------------------------------------------------------------

async function loadCharacters() {
  const box = $("characters");
  try {
    const resp = await fetch("/avatars", { headers: authHeaders });
    const { characters } = await resp.json();
    box.innerHTML = characters.length ? "" : "<small>no built-in characters on this server</small>";
    for (const name of characters) {
      const img = new Image();
      img.src = withToken(`/avatars/${encodeURIComponent(name)}.png`);
      img.alt = img.title = name;
      img.onclick = () => {
        state.character = name;
        sendCharacter();
        box.querySelectorAll("img").forEach((i) => i.classList.toggle("chosen", i === img));
      };
      box.appendChild(img);
    }
    state.characters = characters;
  } catch (e) {
    box.innerHTML = "<small>character list unavailable</small>";
  }
}

// The built-in character in the chosen shot (full body, upper body, face): the
// server re-renders its reference through that camera and retargets into it.
// Before any pick, the shot applies to the character sessions start with (the
// gallery's first).
function sendCharacter() {
  const name = state.character || (state.characters || [])[0];
  if (name) sendControl({ type: "character", name, framing: $("framing").value });
}

async function uploadReference(file) {
  const data = await new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",")[1]);
    reader.onerror = reject;
    reader.readAsDataURL(file);
  });
  const parts = Math.ceil(data.length / CHUNK) || 1;
  for (let part = 0; part < parts; part++) {
    sendControl({ type: "reference", image: data.slice(part * CHUNK, (part + 1) * CHUNK), part, parts });
  }
  log(`uploading ${file.name} (${parts} part${parts > 1 ? "s" : ""})`);
}

// --- wiring --------------------------------------------------------------------------------

$("start").onclick = start;
$("stop").onclick = stop;
$("upload").onchange = (e) => e.target.files[0] && uploadReference(e.target.files[0]);
$("framing").onchange = () => sendCharacter();
$("fps-in").onchange = (e) => sendControl({ type: "fps", value: Number(e.target.value) });
$("steps").onchange = (e) => sendControl({ type: "steps", value: Number(e.target.value) });
$("filter").onchange = (e) => sendControl({ type: "filter", value: Number(e.target.value) });
$("calibrate").onclick = () => sendControl({ type: "reset_calibration" });

(async () => {
  await listSources();
  loadCharacters();
  if (params.get("autostart")) start();
})();
