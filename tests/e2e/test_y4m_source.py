"""Y4M (YUV4MPEG2 raw video) sources: http://, a plain file over HTTP and
exec: stdout. camrouter encodes the pictures to H.264 once per source
(openh264, a keyframe every 2 s), so every output plays them: RTSP,
stream.mp4, HLS, WebRTC, frame.jpeg, stream.mjpeg and stream.y4m (decoded
back). What it cannot read (4:4:4, 10-bit, interlaced) is refused with
what to convert to."""

import asyncio
import functools
import http.server
import json
import subprocess
import threading

import aiohttp
import pytest

from conftest import free_port, read_stream, terminate, wait_until
from test_http_source import config, ffmpeg_server, probe
from test_webrtc import Viewer

LAVFI = "-f lavfi -i testsrc2=size=320x240:rate=15"


def probe_file(path):
    """ffprobe's first stream of a file, every frame counted, with the
    first and last frame times."""
    p = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames:frame=pts_time", "-of", "json",
         str(path)],
        capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    times = [float(f["pts_time"]) for f in out.get("frames", []) if f.get("pts_time")]
    return out["streams"][0], times


def check_h264_320x240(s, name):
    """RTSP and stream.mp4 of `name` carry H.264 320x240 that decodes."""
    v = probe(s, name)["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240), v
    assert int(v["nb_read_frames"]) >= 20, v


def test_live_y4m_over_http_plays_in_every_output(server_factory, tmp_path):
    port = free_port()
    ff = ffmpeg_server(
        f"ffmpeg -hide_banner -loglevel error -re {LAVFI} -f yuv4mpegpipe -listen 1 "
        f"http://127.0.0.1:{port}/x.y4m", port)
    hold = None
    try:
        s = server_factory(config({"cam": f"http://127.0.0.1:{port}/x.y4m"})).start()
        # ffmpeg's -listen 1 serves one client: an RTSP reader keeps the
        # source running while each output is checked.
        hold = subprocess.Popen(
            ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/cam",
             "-c", "copy", "-f", "null", "-"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        check_h264_320x240(s, "cam")
        prod = s.get_json("/api/streams")["cam"]["producers"][0]
        assert prod.get("format_name") == "yuv4mpegpipe", prod

        _, mp4 = read_stream(f"{s.url}/api/stream.mp4?src=cam", 3)
        (tmp_path / "cam.mp4").write_bytes(mp4)
        st, _ = probe_file(tmp_path / "cam.mp4")
        assert (st["codec_name"], st["width"], st["height"]) == ("h264", 320, 240), st
        assert int(st["nb_read_frames"]) >= 20, st

        status, jpeg, headers = s.request("GET", "/api/frame.jpeg?src=cam")
        assert status == 200 and jpeg.startswith(b"\xff\xd8"), (status, jpeg[:20])
        (tmp_path / "cam.jpg").write_bytes(jpeg)
        st, _ = probe_file(tmp_path / "cam.jpg")
        assert (st["codec_name"], st["width"], st["height"]) == ("mjpeg", 320, 240), st

        headers, mjpeg = read_stream(f"{s.url}/api/stream.mjpeg?src=cam", 2)
        assert headers["content-type"].startswith("multipart/"), headers
        assert mjpeg.count(b"Content-Type: image/jpeg") >= 5, len(mjpeg)

        _, y4m = read_stream(f"{s.url}/api/stream.y4m?src=cam", 2)
        assert y4m.startswith(b"YUV4MPEG2 W320 H240 "), y4m[:60]
        assert y4m.count(b"FRAME\n") >= 5

        status, body, _ = s.request("GET", "/api/stream.m3u8?src=cam")
        assert status == 200, body
        hls = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-read_intervals", "%+2",
             "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json",
             f"{s.url}/api/stream.m3u8?src=cam"],
            capture_output=True, text=True, timeout=60)
        assert hls.returncode == 0, hls.stderr
        st = json.loads(hls.stdout)["streams"][0]
        assert (st["codec_name"], st["width"], st["height"]) == ("h264", 320, 240), st

        async def webrtc():
            async with aiohttp.ClientSession() as session:
                v = Viewer()
                await v.connect(s, "json", session)
                ok = await v.wait(video=10, audio=0)
                await v.close()
                assert ok, (v.video, s.output()[-2000:])
                assert v.size == (320, 240)
        # (test_webrtc's viewer asks for the stream `cam`.)
        asyncio.run(webrtc())

        # One source, one encoder, however many outputs.
        assert len(s.get_json("/api/streams")["cam"]["producers"]) == 1
    finally:
        terminate(hold)
        terminate(ff)


@pytest.fixture
def y4m_file(tmp_path):
    """Ten seconds of 320x240 at 15 fps (150 pictures, 17 MB)."""
    path = tmp_path / "clip.y4m"
    subprocess.run(
        f"ffmpeg -hide_banner -loglevel error {LAVFI} -t 10 -f yuv4mpegpipe {path}".split(),
        check=True, timeout=60)
    return path


@pytest.fixture
def file_server(tmp_path):
    """A plain HTTP server for tmp_path: the file is sent as fast as the
    connection goes, as any web server would."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("how", ["http-file", "exec"])
def test_a_y4m_file_plays_at_its_frame_rate(server_factory, tmp_path, y4m_file, file_server, how):
    """A file arrives faster than real time; camrouter paces it to its
    frame rate, so a viewer gets a live-like stream instead of the whole
    clip at once (and the encoder is never overrun)."""
    src = {
        "http-file": f"{file_server}/clip.y4m",
        "exec": f"exec:ffmpeg -hide_banner -loglevel error -i {y4m_file} -f yuv4mpegpipe -",
    }[how]
    s = server_factory(config({"clip": src})).start()
    check_h264_320x240(s, "clip")
    # Three seconds of stream.mp4: its frames span about three seconds (plus
    # the replayed GOP, at most 2 s, and the 0.5 s the reader may run ahead),
    # not the clip's ten, which is what an unpaced burst would give.
    _, mp4 = read_stream(f"{s.url}/api/stream.mp4?src=clip", 3)
    (tmp_path / "clip.mp4").write_bytes(mp4)
    st, times = probe_file(tmp_path / "clip.mp4")
    assert (st["codec_name"], st["width"], st["height"]) == ("h264", 320, 240), st
    assert len(times) >= 20, st
    assert times[-1] - times[0] < 7, (times[0], times[-1], len(times))
    prod = s.get_json("/api/streams")["clip"]["producers"][0]
    assert prod.get("format_name") == "yuv4mpegpipe", prod
    assert "dropping" not in s.output()


REFUSED = [
    # (ffmpeg args before -f, words the error must hold)
    ("-pix_fmt yuv444p", ["C444", "4:2:0", "-pix_fmt yuv420p"]),
    ("-pix_fmt yuv420p10le -strict -1", ["C420p10", "8-bit"]),
    ("-vf setfield=tff", ["interlaced", "yadif"]),
]


@pytest.mark.parametrize("args,words", REFUSED, ids=["444", "10-bit", "interlaced"])
def test_y4m_it_cannot_read_is_a_clear_error(server_factory, args, words):
    port = free_port()
    ff = ffmpeg_server(
        f"ffmpeg -hide_banner -loglevel error -re {LAVFI} {args} -f yuv4mpegpipe -listen 1 "
        f"http://127.0.0.1:{port}/", port)
    try:
        s = server_factory(config({"raw": f"http://127.0.0.1:{port}/"})).start()
        status, _, _ = s.request("GET", "/api/frame.jpeg?src=raw")
        assert status >= 400

        def error():
            return s.get_json("/api/streams")["raw"]["producers"][0].get("error", "")

        assert wait_until(lambda: "unsupported Y4M" in error(), timeout=10), s.get_json("/api/streams")
        for w in words:
            assert w in error(), error()
        assert s.proc.poll() is None
    finally:
        terminate(ff)
