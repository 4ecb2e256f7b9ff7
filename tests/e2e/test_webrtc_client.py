"""`webrtc:` client sources: camrouter pulls from a WebRTC sender (aiortc
behind fake signaling servers, tests/e2e/webrtc_peer.py, and camrouter's
own WHEP) and ffprobe/ffmpeg read the result over RTSP."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from camera import camera_factory  # noqa: F401
from conftest import terminate, wait_until
from test_webrtc_ice import coturn  # noqa: F401

HERE = Path(__file__).parent


@pytest.fixture
def sender(tmp_path):
    """The aiortc sender: a 320x240 test pattern with a tone, on a loop."""
    media = tmp_path / "src.mp4"
    subprocess.run([
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
        "-i", "testsrc=size=320x240:rate=15", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=48000", "-t", "4",
        "-c:v", "libx264", "-g", "15", "-pix_fmt", "yuv420p", "-c:a", "aac",
        str(media)], check=True, timeout=60)
    log = open(tmp_path / "sender.log", "w+")
    proc = subprocess.Popen([sys.executable, str(HERE / "webrtc_peer.py"), str(media)],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline()
    m = re.match(r"PORT (\d+)", line)
    assert m, (line, (tmp_path / "sender.log").read_text())

    class Sender:
        url = f"http://127.0.0.1:{m.group(1)}"
        ws = f"ws://127.0.0.1:{m.group(1)}"

        def stats(self):
            import urllib.request
            with urllib.request.urlopen(self.url + "/stats", timeout=10) as r:
                return json.loads(r.read())
    yield Sender()
    terminate(proc)
    log.close()


def probe(s, stream="cam"):
    """Codec and size of each track, over RTSP."""
    r = subprocess.run([
        "ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_entries",
        "stream=codec_type,codec_name,width,height", "-of", "json",
        f"{s.rtsp_url}/{stream}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr + s.output()[-3000:]
    return json.loads(r.stdout)["streams"]


def decode_frames(s, n, stream="cam"):
    """ffmpeg decodes `n` video frames over RTSP."""
    r = subprocess.run([
        "ffmpeg", "-hide_banner", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/{stream}",
        "-map", "0:v", "-frames:v", str(n), "-f", "null", "-"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    frames = [int(x) for x in re.findall(r"frame=\s*(\d+)", r.stderr)]
    assert frames and frames[-1] >= n, r.stderr[-2000:]


SOURCES = {
    "whep": "webrtc:{http}/whep",
    "json": "webrtc:{http}/json",
    "ws": "webrtc:{ws}/api/ws?src=cam",
    "kinesis": "webrtc:{ws}/kinesis#format=kinesis#client_id=viewer-7",
    "wyze": "webrtc:{http}/wyze/front?kvs#format=wyze",
    "openipc": "webrtc:{ws}/openipc#format=openipc",
    "switchbot": "webrtc:{ws}/switchbot#format=switchbot#client_id=sb-1#resolution=sd#play_type=1",
    "creality": "webrtc:{http}/creality#format=creality",
    "milestone": "webrtc:{http}/ms#format=milestone#username=User#password=Test Pass"
                 "#cameraId=cam-1#streamId=st-2",
}
VIDEO_ONLY = ("switchbot", "creality")


@pytest.mark.parametrize("how", list(SOURCES))
def test_webrtc_source_is_read_over_rtsp(server_factory, sender, how):
    """camrouter pulls the aiortc sender through each signaling: RTSP
    carries H.264 at the sender's size and its audio, and 30 frames decode."""
    src = SOURCES[how].format(http=sender.url, ws=sender.ws)
    s = server_factory(
        f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    streams = probe(s)
    video = [x for x in streams if x["codec_type"] == "video"]
    audio = [x for x in streams if x["codec_type"] == "audio"]
    assert [(v["codec_name"], v["width"], v["height"]) for v in video] == [("h264", 320, 240)], streams
    if how in VIDEO_ONLY:
        assert audio == [], streams
    else:
        assert [a["codec_name"] for a in audio] in (["opus"], ["pcm_mulaw"], ["pcm_alaw"]), streams
    decode_frames(s, 30)
    st = sender.stats()
    assert st["connected"] >= 1, st
    producers = s.get_json("/api/streams")["cam"].get("producers") or []
    assert producers and producers[0].get("bytes_recv", 0) > 0, producers
    if how == "whep":
        assert st["whep_posts"] >= 1, st
        # Nobody reads any more: the source stops and ends its WHEP session.
        assert wait_until(lambda: sender.stats()["whep_deletes"] >= 1, 30), sender.stats()
    if how == "json":
        assert st["json_refused_sdp"] >= 1 and st["json_posts"] >= 1, st
    if how == "ws":
        assert st["ws_offers"] >= 1, st
    if how in ("kinesis", "wyze", "switchbot"):
        assert st["kinesis_offers"] >= 1, st
        want = {"kinesis": "viewer-7", "wyze": "wyze-viewer-1", "switchbot": "sb-1"}[how]
        assert st["kinesis_client_ids"][0] == want, st
    if how == "wyze":
        assert st["wyze_gets"] >= 1, st
    if how == "openipc":
        assert st["openipc_answers"] >= 1, st
    if how == "kinesis":
        assert st["kinesis_extra"][0] == {} and st["kinesis_offer_audio"][0], st
    if how == "switchbot":
        assert st["kinesis_extra"][0] == {"resolution": 1, "play_type": 1}, st
        assert st["kinesis_offer_audio"][0] is False, st
    if how == "creality":
        assert st["creality_posts"] >= 1, st
    if how == "milestone":
        assert st["milestone_tokens"] >= 1 and st["milestone_answers"] >= 1, st
        assert st["milestone_sessions"][0]["cameraId"] == "cam-1", st
        assert st["milestone_sessions"][0]["streamId"] == "st-2", st


def test_webrtc_source_from_camrouters_own_whep(server_factory, camera_factory):
    """One camrouter pulls the GStreamer camera from another over WHEP
    (pion-free: both ends are webrtc-rs) and serves it over RTSP."""
    cam = camera_factory(audio="pcma", size="640x360")
    upstream = server_factory(
        f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    s = server_factory(
        f"streams:\n  cam: webrtc:{upstream.url}/api/webrtc?src=cam\n"
        "api:\n  listen: 127.0.0.1:{port}\n").start()
    streams = probe(s)
    got = sorted((x["codec_name"], x.get("width"), x.get("height")) for x in streams)
    assert got == [("h264", 640, 360), ("pcm_alaw", None, None)], streams
    decode_frames(s, 30)


def test_webrtc_source_failures_are_reported(server_factory, sender):
    """A 404 from the signaling server is a lasting failure the stream
    reports; an unknown #format is refused."""
    s = server_factory(
        f"streams:\n  cam: webrtc:{sender.url}/nope\n"
        f"  odd: webrtc:{sender.ws}/x#format=bogus\n"
        "api:\n  listen: 127.0.0.1:{port}\n").start()
    r = subprocess.run([
        "ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/cam"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert wait_until(lambda: "answered 404" in s.output(), 20), s.output()[-3000:]
    r = subprocess.run([
        "ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/odd"],
        capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert wait_until(lambda: "#format=bogus" in s.output(), 20), s.output()[-3000:]


def test_viewer_keyframe_request_reaches_the_webrtc_source(server_factory, sender):
    """A WebRTC viewer's PLI on a stream whose source is `webrtc:` goes
    upstream: the aiortc sender is asked for a keyframe."""
    import asyncio

    from test_webrtc import Viewer

    s = server_factory(
        f"streams:\n  cam: webrtc:{sender.url}/whep\n"
        "api:\n  listen: 127.0.0.1:{port}\nlog:\n  level: debug\n").start()

    async def go():
        import aiohttp
        v = Viewer()
        async with aiohttp.ClientSession() as session:
            await v.connect(s, "whep", session)
            assert await v.wait(video=10, audio=0), (v.video, s.output()[-3000:])
            receiver = next(r for r in v.pc.getReceivers() if r.track.kind == "video")
            ssrc = receiver.getSynchronizationSources()[0].source
            before = sender.stats()["keyframe_requests"]
            for _ in range(20):
                await receiver._send_rtcp_pli(ssrc)
                await asyncio.sleep(0.5)
                if sender.stats()["keyframe_requests"] > before:
                    break
            after = sender.stats()["keyframe_requests"]
        await v.close()
        return before, after

    before, after = asyncio.run(go())
    assert after > before, (before, after, s.output()[-4000:])


@pytest.mark.parametrize("how", ["whep", "openipc", "whep-stun"])
def test_ice_servers_param_carries_a_source_through_coturn(server_factory, sender, coturn, how):
    """`#ice_servers=` (go2rtc's JSON list) names coturn, and camrouter
    advertises no host candidate (`filters: candidates: []`). With its TURN
    url, camrouter's only candidate in its offer (WHEP) or answer (OpenIPC,
    the camera offers) is the relay it allocated there, the source plays
    through it and the allocation goes when the source stops. With its
    `stun:` url only, the only candidate is our address as coturn saw the
    shared socket (server-reflexive), and the source plays over it."""
    from test_webrtc_ice import TURN_PASS, TURN_USER
    if how == "whep-stun":
        servers = [{"urls": f"stun:127.0.0.1:{coturn.port}"}]
    else:
        servers = [{"urls": [f"turn:127.0.0.1:{coturn.port}?transport=udp"],
                    "username": TURN_USER, "credential": TURN_PASS}]
    ice = json.dumps(servers, separators=(",", ":"))
    src = SOURCES[how.split("-")[0]].format(http=sender.url, ws=sender.ws) + "#ice_servers=" + ice
    s = server_factory(
        f"streams:\n  cam: '{src}'\napi:\n  listen: 127.0.0.1:{{port}}\n"
        "log:\n  level: debug\nwebrtc:\n  listen: 127.0.0.1:{webrtc}\n"
        "  filters:\n    candidates: []\n    networks: [udp4]\n").start()
    decode_frames(s, 30)
    assert sender.stats()["connected"] >= 1
    out = s.output()
    if how == "whep-stun":
        answered = [ln for ln in out.splitlines() if "STUN answered for a source's peer" in ln]
        assert answered and f"mapped=127.0.0.1:{s.webrtc_port}" in answered[0], out[-3000:]
        assert "TURN" not in out
        return
    relayed = re.search(r"TURN relay allocated relayed=127\.0\.0\.1:(\d+)", out)
    assert relayed and int(relayed.group(1)) != s.webrtc_port, out[-3000:]
    # The credential in the source URL is masked in the log and the API.
    assert "#ice_servers=" in out and TURN_PASS not in out
    assert TURN_PASS not in json.dumps(s.get_json("/api/streams"))
    # Nobody reads any more: the source stops, its peer ends, and the
    # allocation is released (coturn confirms).
    assert wait_until(lambda: "TURN allocation released" in s.output(), 40), s.output()[-3000:]
    assert "did not confirm the release" not in s.output()


TONE_OPUS = (
    "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi "
    "-i sine=frequency=440:sample_rate=48000 -c:a libopus -f rtsp {output}"
)


def test_talk_back_reaches_a_webrtc_camera(server_factory, sender):
    """A `webrtc:` camera that answers our audio `sendrecv` takes talk-back:
    the source lists it as a backchannel (`audio, sendonly`) and audio
    played into the stream (go2rtc's `POST /api/streams?dst=&src=`) reaches
    aiortc on the camera's side, decoded, as a tone rather than silence;
    stopping it stops the audio."""
    s = server_factory(
        f"streams:\n  cam: webrtc:{sender.url}/whep\n  tone: {TONE_OPUS}\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    probe = s.get_json("/api/streams?src=cam&video&audio&microphone")
    medias = probe["producers"][0]["medias"]
    assert any(m.startswith("audio, sendonly, OPUS/48000") for m in medias), medias
    assert any(m.startswith("video, recvonly, H264") for m in medias), medias

    status, body, _ = s.request("POST", "/api/streams?dst=cam&src=tone")
    assert status == 200, body
    # 50 Opus frames a second.
    assert wait_until(lambda: sender.stats()["talk_frames"] > 100, timeout=20), (
        sender.stats(), s.output()[-3000:])
    assert sender.stats()["talk_peak"] > 3000, sender.stats()

    status, _, _ = s.request("POST", "/api/streams?dst=cam&src=")
    assert status == 200
    time.sleep(1)
    before = sender.stats()["talk_frames"]
    time.sleep(1)
    assert sender.stats()["talk_frames"] == before, "talk-back goes on after stop"
