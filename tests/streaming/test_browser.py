"""A real browser against the server: Debian's Chromium, headless, with a fake
camera fed from a .y4m file, driven by Playwright (never a downloaded browser).

The page (clients/web) must get the generated track, decode frames (getStats
framesDecoded rises) and show telemetry in its overlay. With ../shared present,
a real face clip is the camera and MediaPipe must find the face in what the
server received: motion detected end to end.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from realtime.frames import EchoPipeline, GeneratedFrame
from streaming import barcode
from tests.streaming.conftest import start_server

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu",
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run",
]


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """RGB (H, W, 3) frames -> a 4:2:0 .y4m that Chromium's fake camera plays in a loop."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for image in frames:
            yuv = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            f.write(b"FRAME\n")
            for plane, (w, h) in zip(yuv.planes, ((width, height), (width // 2, height // 2)) +
                                     ((width // 2, height // 2),), strict=True):
                rows = np.frombuffer(memoryview(plane), np.uint8).reshape(h, plane.line_size)[:, :w]
                f.write(rows.tobytes())
    return path


def generated_clip(path: Path, n: int = 45) -> Path:
    frames = []
    yy, xx = np.mgrid[0:480, 0:640]
    for i in range(n):
        image = np.zeros((480, 640, 3), np.uint8)
        image[..., 0] = (xx * 255 // 640).astype(np.uint8)
        cx = 320 + int(200 * np.sin(i / n * 2 * np.pi))
        image[(xx - cx) ** 2 + (yy - 260) ** 2 < 60**2] = (250, 230, 40)
        frames.append(barcode.encode(image, i))
    return write_y4m(path, frames)


def face_clip(source: Path, path: Path, seconds: float = 3.0) -> Path:
    frames = []
    with av.open(str(source)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(width=640, height=480, format="rgb24"))
            if len(frames) >= seconds * 30:
                break
    return write_y4m(path, frames)


async def open_page(url: str, camera: Path, tmp_path: Path) -> AsyncIterator[object]:
    from playwright.async_api import async_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make browser-deps`")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=[*FLAGS, f"--use-file-for-fake-video-capture={camera}"])
        try:
            context = await browser.new_context()
            page = await context.new_page()
            page.on("console", lambda m: print("page:", m.text))
            await page.goto(f"{url}/?autostart=1")
            yield page
        finally:
            await browser.close()


async def wait_for(page: object, expression: str, timeout_s: float = 25) -> object:
    handle = await page.wait_for_function(expression, timeout=timeout_s * 1000)  # type: ignore[attr-defined]
    return await handle.json_value()


async def test_page_receives_generated_video_and_shows_telemetry(tmp_path: Path) -> None:
    camera = generated_clip(tmp_path / "camera.y4m")
    running, runner = await start_server()
    try:
        async for page in open_page(running.url, camera, tmp_path):
            first = await wait_for(page, "(window.marionette.framesDecoded || 0) > 10 && "
                                         "window.marionette.framesDecoded")
            await asyncio.sleep(1.5)
            later = await page.evaluate("window.marionette.framesDecoded")  # type: ignore[attr-defined]
            assert later > first                                       # still decoding
            shown = await wait_for(page, "Number(document.getElementById('telemetry-count')"
                                         ".textContent) > 10 && document.getElementById("
                                         "'telemetry-count').textContent")
            assert int(str(shown)) > 10
            # the server read the page's barcodes: records trace back to drawn frames
            traced = await page.evaluate(  # type: ignore[attr-defined]
                "window.marionette.lastRecord && window.marionette.lastRecord.input_id")
            assert isinstance(traced, int)
            latency = await wait_for(page, "window.marionette.latencies.length > 5 && "
                                           "document.getElementById('latency').textContent")
            assert float(str(latency)) > 0                             # overlay shows a number
            # the uplink keeps its resolution, the downlink plays out without buffering
            prefs = await page.evaluate(  # type: ignore[attr-defined]
                "[window.marionette.pc.getSenders()[0].getParameters().degradationPreference,"
                " window.marionette.pc.getReceivers()[0].jitterBufferTarget]")
            assert prefs == ["maintain-resolution", 0]
            # a reference upload bigger than one data-channel message goes in parts
            noisy = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
            upload = tmp_path / "reference.png"
            Image.fromarray(noisy).save(upload)
            assert upload.stat().st_size > 3 * 48 * 1024
            await page.set_input_files("#upload", str(upload))  # type: ignore[attr-defined]
            # (noise: no figure in it, and the page says so)
            await wait_for(page, "document.getElementById('log').textContent"
                                 ".includes('\u2713 reference: no figure found')", 15)
            # choosing a shot re-sends the character in it, and the server takes it
            await wait_for(page, "window.marionette.characters.length > 0")
            await page.select_option("#framing", "upper")  # type: ignore[attr-defined]
            await wait_for(page, "document.getElementById('log').textContent"
                                 ".includes('\u2713 character')", 15)
            # a second viewer (an OBS browser source, another page) watches over WHEP
            viewer = await page.context.new_page()  # type: ignore[attr-defined]
            await viewer.goto(f"{running.url}/watch.html")
            await wait_for(viewer, "window.marionetteViewer.framesDecoded > 10")
    finally:
        await runner.cleanup()


class FaceCountingPipeline(EchoPipeline):
    """Echo that runs MediaPipe on every frame it gets and counts faces found."""

    def __init__(self) -> None:
        super().__init__()
        from realtime.motion.extractor import MotionExtractor

        self.extractor = MotionExtractor()
        self.frames = 0
        self.faces = 0
        self.lock = threading.Lock()

    def prepare(self, image: np.ndarray, frame_id: int, t_capture: float) -> GeneratedFrame:
        motion = self.extractor.process(image, frame_id, t_capture)
        with self.lock:
            self.frames += 1
            self.faces += motion.face is not None
        return super().prepare(image, frame_id, t_capture)

    def close(self) -> None:
        self.extractor.close()


async def test_real_face_through_the_browser_is_detected_by_the_server(
    tmp_path: Path, shared_media: Path
) -> None:
    camera = face_clip(shared_media / "driving" / "LivePortrait__d0.mp4", tmp_path / "face.y4m")
    made: list[FaceCountingPipeline] = []

    def factory() -> FaceCountingPipeline:
        made.append(FaceCountingPipeline())
        return made[-1]

    running, runner = await start_server(factory)
    try:
        async for page in open_page(running.url, camera, tmp_path):
            await wait_for(page, "(window.marionette.framesDecoded || 0) > 10", 40)
            for _ in range(100):
                if made and made[0].frames >= 15:
                    break
                await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()
    assert made and made[0].frames >= 15
    assert made[0].faces >= 0.8 * made[0].frames, (made[0].faces, made[0].frames)
