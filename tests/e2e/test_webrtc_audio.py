"""Audio WebRTC cannot carry, transcoded in-process: the GStreamer camera's
AAC (a 440 Hz sine) reaches aiortc as Opus, its L16 PCM as 8 kHz PCMA; one
transcoder per stream, shared by its viewers, gone with the last."""

import array
import asyncio

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

from camera import camera_factory  # noqa: F401
from conftest import wait_until
from test_webrtc import run, signal, start


class Listener:
    """An aiortc receiver that keeps the decoded audio (left channel) and
    the codec it arrived in."""

    def __init__(self):
        self.pc = RTCPeerConnection()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        self.samples = array.array("h")
        self.rate = None
        self.video = 0
        self.tasks = []
        self.location = None
        self.answer = None
        self.pc.on("track", self.on_track)

    def on_track(self, track):
        async def pump():
            while True:
                try:
                    f = await track.recv()
                except Exception:
                    return
                if track.kind == "video":
                    self.video += 1
                    continue
                # aiortc decodes to packed s16; keep channel 0.
                ch = len(f.layout.channels)
                a = array.array("h", bytes(f.planes[0])[:f.samples * ch * 2])
                self.samples.extend(a[::ch])
                self.rate = f.sample_rate
        self.tasks.append(asyncio.ensure_future(pump()))

    async def connect(self, s, session):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.answer, self.location = await signal(s, "whep", self.pc.localDescription.sdp, session)
        await self.pc.setRemoteDescription(RTCSessionDescription(self.answer, "answer"))

    def audio_codecs(self):
        """Encoding names of the answer's audio formats."""
        sdp = self.answer.replace("\r\n", "\n")
        audio = sdp.split("m=audio", 1)[1].split("\nm=", 1)[0]
        return [line.split(" ", 1)[1].split("/")[0].upper()
                for line in audio.splitlines() if line.startswith("a=rtpmap:")]

    async def wait_seconds(self, seconds, timeout=30):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.rate and len(self.samples) >= seconds * self.rate:
                return True
            await asyncio.sleep(0.05)
        return False

    async def close(self, s, session):
        async with session.delete(f"{s.url}/api/{self.location}") as r:
            assert r.status == 200
        await self.pc.close()
        for t in self.tasks:
            t.cancel()


def tone(samples, rate):
    """(frequency from zero crossings, RMS) of the last second."""
    x = samples[-rate:]
    rms = (sum(v * v for v in x) / len(x)) ** 0.5
    # Hysteresis so that coding noise near zero is not counted.
    th = rms / 4
    crossings, state = 0, 0
    for v in x:
        if v > th and state <= 0:
            if state < 0:
                crossings += 1
            state = 1
        elif v < -th and state >= 0:
            if state > 0:
                crossings += 1
            state = -1
    return crossings / 2, rms


def transcoders(s):
    cons = s.get_json("/api/streams").get("cam", {}).get("consumers") or []
    return [c for c in cons if c.get("format_name") == "webrtc/transcode"]


def test_aac_camera_is_heard_as_opus_through_one_shared_transcoder(server_factory, camera_factory):
    cam = camera_factory(audio="aac", size="320x240")
    s = start(server_factory, cam)

    async def go():
        async with aiohttp.ClientSession() as session:
            a, b = Listener(), Listener()
            await a.connect(s, session)
            await b.connect(s, session)
            assert a.audio_codecs()[0] == "OPUS", a.answer
            for v in (a, b):
                assert await v.wait_seconds(2), (v.rate, len(v.samples), s.output()[-3000:])
                freq, rms = tone(v.samples, v.rate)
                assert v.rate == 48000
                assert rms > 1000, rms  # volume=0.3 of full scale: ~7000
                assert abs(freq - 440) <= 10, freq
            assert a.video > 0
            # Both viewers share the stream's one transcoder.
            assert len(transcoders(s)) == 1, s.get_json("/api/streams")
            await a.close(s, session)
            assert len(transcoders(s)) == 1
            await b.close(s, session)
            # Gone with the last viewer (its feed, then its transcoder).
            assert wait_until(lambda: transcoders(s) == [], timeout=10), s.get_json("/api/streams")

    run(go())


def test_pcm_camera_is_heard_as_8khz_pcma(server_factory, camera_factory):
    cam = camera_factory(audio="l16", size="320x240")
    s = start(server_factory, cam)

    async def go():
        async with aiohttp.ClientSession() as session:
            v = Listener()
            await v.connect(s, session)
            assert v.audio_codecs()[0] == "PCMA", v.answer
            assert await v.wait_seconds(2), (v.rate, len(v.samples), s.output()[-3000:])
            freq, rms = tone(v.samples, v.rate)
            assert v.rate == 8000
            assert rms > 1000, rms
            assert abs(freq - 440) <= 10, freq
            assert len(transcoders(s)) == 1
            await v.close(s, session)
            assert wait_until(lambda: transcoders(s) == [], timeout=10)

    run(go())


def test_opus_camera_needs_no_transcoder(server_factory, camera_factory):
    cam = camera_factory(audio="opus", size="320x240")
    s = start(server_factory, cam)

    async def go():
        async with aiohttp.ClientSession() as session:
            v = Listener()
            await v.connect(s, session)
            assert await v.wait_seconds(1), (v.rate, len(v.samples))
            assert transcoders(s) == []
            await v.close(s, session)

    run(go())
