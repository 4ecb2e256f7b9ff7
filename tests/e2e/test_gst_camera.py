"""The GStreamer test camera itself, checked with real clients (ffprobe and
the socket-level RTSP client in camera.py); no camrouter involved."""

import json
import subprocess

import pytest

from camera import (
    backchannel_medias,
    camera_factory,  # noqa: F401  (fixture)
    describe,
    sdp_medias,
    send_backchannel,
    tone_packets,
)
from conftest import wait_until

AUDIO_CODEC = {"aac": "aac", "pcmu": "pcm_mulaw", "pcma": "pcm_alaw", "opus": "opus"}


def ffprobe(url, timeout=20):
    """-> (returncode, streams, stderr)"""
    p = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=timeout)
    streams = json.loads(p.stdout)["streams"] if p.returncode == 0 else []
    return p.returncode, streams, p.stderr


def codecs(streams):
    return [(s["codec_type"], s["codec_name"]) for s in streams]


def assert_video(streams, codec, width=640, height=360):
    video = [s for s in streams if s["codec_type"] == "video"]
    assert len(video) == 1, streams
    assert (video[0]["codec_name"], video[0]["width"], video[0]["height"]) == (codec, width, height)


@pytest.mark.parametrize("audio", ["aac", "pcmu", "pcma", "opus", "none"])
def test_h264_with_audio(camera_factory, audio):
    cam = camera_factory(audio=audio)
    assert cam.url.startswith("rtsp://127.0.0.1:") and cam.url.endswith("/cam")
    rc, streams, err = ffprobe(cam.url)
    assert rc == 0, err
    assert_video(streams, "h264")
    audio_streams = [s["codec_name"] for s in streams if s["codec_type"] == "audio"]
    assert audio_streams == ([] if audio == "none" else [AUDIO_CODEC[audio]])
    assert cam.sessions() == 1 and cam.plays() == 1


@pytest.mark.parametrize("auth", ["digest", "basic"])
def test_auth(camera_factory, auth):
    cam = camera_factory(user="admin", password="s3cret pass", auth=auth, audio="pcmu")
    assert cam.url == f"rtsp://admin:s3cret%20pass@127.0.0.1:{cam.port}/cam"
    rc, streams, err = ffprobe(cam.url)
    assert rc == 0, err
    assert codecs(streams) == [("video", "h264"), ("audio", "pcm_mulaw")]

    rc, _, err = ffprobe(cam.plain_url)
    assert rc != 0 and "401" in err, err
    rc, _, err = ffprobe(cam.url.replace("s3cret%20pass", "wrong"))
    assert rc != 0 and "401" in err, err

    status, headers, _ = describe(cam.plain_url)
    assert status == 401
    challenge = headers["www-authenticate"]
    assert [c.split(" ")[0] for c in challenge] == [auth.capitalize()], challenge
    # The raw client answers either challenge.
    status, _, sdp = describe(cam.url)
    assert status == 200 and "m=video" in sdp


def test_h265(camera_factory):
    cam = camera_factory(video="h265", audio="aac")
    rc, streams, err = ffprobe(cam.url)
    assert rc == 0, err
    assert_video(streams, "hevc")
    assert codecs(streams)[1:] == [("audio", "aac")]


def test_mjpeg(camera_factory):
    cam = camera_factory(video="mjpeg", audio="none")
    rc, streams, err = ffprobe(cam.url)
    assert rc == 0, err
    assert_video(streams, "mjpeg")
    assert len(streams) == 1


def test_size_and_path(camera_factory):
    cam = camera_factory(size="320x240", fps=10, path="/live/main", audio="none")
    assert cam.url.endswith("/live/main")
    rc, streams, err = ffprobe(cam.url)
    assert rc == 0, err
    assert_video(streams, "h264", 320, 240)
    assert streams[0]["r_frame_rate"] == "10/1"


def test_restart_same_url(camera_factory):
    cam = camera_factory(audio="none")
    url, pid = cam.url, cam.proc.pid
    assert ffprobe(url)[0] == 0
    assert cam.sessions() == 1
    cam.restart()
    assert cam.url == url and cam.proc.pid != pid
    assert cam.sessions() == 0, "counts restart with the new process"
    rc, streams, err = ffprobe(url)
    assert rc == 0, err
    assert_video(streams, "h264")
    assert cam.sessions() == 1 and cam.sessions(all_runs=True) == 2


def test_session_counting(camera_factory):
    cam = camera_factory(audio="none")
    assert cam.sessions() == 0
    # A player that stays connected...
    player = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", cam.url, "-f", "null", "-"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: cam.plays() == 1, timeout=10), cam.output()
        # ...and a probe that comes and goes.
        assert ffprobe(cam.url)[0] == 0
        assert cam.sessions() == 2
        assert wait_until(lambda: cam.active_sessions() == 1, timeout=5), cam.output()
    finally:
        player.terminate()
        player.wait(5)
    assert wait_until(lambda: cam.active_sessions() == 0, timeout=5), cam.output()


def test_stop_is_clean(camera_factory):
    cam = camera_factory(audio="none")
    cam.stop()
    assert cam.proc.returncode == 0, cam.output()
    assert "STOPPING" in cam.output()


def test_onvif_backchannel_sdp(camera_factory):
    cam = camera_factory(backchannel=True, audio="pcmu", user="u", password="p")
    status, _, sdp = describe(cam.url, require_backchannel=True)
    assert status == 200, sdp
    back = backchannel_medias(sdp)
    assert len(back) == 1, sdp
    assert back[0]["m"] == "audio 0 RTP/AVP 0"
    assert "rtpmap:0 PCMU/8000" in back[0]["attrs"]
    assert sdp.count("a=sendonly") == 1 and sdp.count("a=recvonly") == 2

    status, _, sdp = describe(cam.url)
    assert status == 200
    assert "a=sendonly" not in sdp and backchannel_medias(sdp) == []
    assert len(sdp_medias(sdp)) == 2

    # Plain players are unaffected by the ONVIF server.
    rc, streams, err = ffprobe(cam.url)
    assert rc == 0, err
    assert codecs(streams) == [("video", "h264"), ("audio", "pcm_mulaw")]


def test_onvif_backchannel_audio_reaches_file(camera_factory):
    cam = camera_factory(backchannel=True, audio="none", user="u", password="p")
    out = cam.backchannel_file
    # 3 s of tone: the camera's backchannel pipeline starts with the PLAY
    # and, on a loaded machine, may miss the first packets (once in a full
    # CI run it missed a whole second of them).
    packets = tone_packets(150)
    info = send_backchannel(cam.url, packets)
    assert info["sent"] == 150
    assert info["channel"] == 0 and "interleaved=0-1" in info["transport"]
    assert info["control"] == cam.plain_url + "/stream=1"
    assert wait_until(lambda: out.exists() and out.stat().st_size >= 4000, timeout=5), (
        out.exists() and out.stat().st_size, cam.output())
    # rtppcmudepay ! filesink: the RTP payloads, byte for byte and in order,
    # from wherever the pipeline started to the last one sent.
    data = out.read_bytes()
    got = len(data) // 160
    assert len(data) % 160 == 0 and got >= 25, len(data)
    assert data == b"".join(packets[-got:]), got
    assert cam.plays() == 1
