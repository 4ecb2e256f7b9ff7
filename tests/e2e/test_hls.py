"""MPEG-TS, ADTS and HLS outputs (`plugins/hls`): `/api/stream.ts`,
`/api/stream.aac`, `/api/stream.m3u8` (TS and `?mp4`) and go2rtc's
`/api/hls/*` session files, read by ffprobe/ffmpeg from the GStreamer camera."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from camera import camera_factory  # noqa: F401
from conftest import ROOT, read_stream, wait_until


def start(server_factory, cam):
    return server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()


def probe(path_or_url, *extra):
    """ffprobe -count_frames: {codec_type: stream}."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", *extra, "-count_frames", "-show_entries",
         "stream=codec_type,codec_name,width,height,nb_read_frames,sample_rate",
         "-of", "json", str(path_or_url)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return {st["codec_type"]: st for st in json.loads(out.stdout)["streams"]}


def consumers(s):
    return s.get_json("/api/streams")["cam"]["consumers"]


def test_stream_ts_from_camera(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac")
    s = start(server_factory, cam)
    headers, data = read_stream(f"{s.url}/api/stream.ts?src=cam", 5)
    assert headers["content-type"] == "video/mp2t"
    assert len(data) % 188 == 0 and data[0] == 0x47
    path = tmp_path / "stream.ts"
    path.write_bytes(data)
    streams = probe(path)
    v, a = streams["video"], streams["audio"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 640, 360)
    assert (a["codec_name"], a["sample_rate"]) == ("aac", "16000")
    # 25 fps for about 5 s; the camera's start may take a second or two.
    assert int(v["nb_read_frames"]) >= 50, v
    assert int(a["nb_read_frames"]) >= 30, a
    # ffmpeg decodes all of it without errors.
    dec = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    assert dec.returncode == 0 and "error" not in dec.stderr.lower(), dec.stderr
    # The client left with its connection.
    assert wait_until(lambda: consumers(s) == [], timeout=10), consumers(s)


def test_stream_ts_h265(server_factory, camera_factory, tmp_path):
    cam = camera_factory(video="h265", audio="none")
    s = start(server_factory, cam)
    _, data = read_stream(f"{s.url}/api/stream.ts?src=cam", 4)
    path = tmp_path / "h265.ts"
    path.write_bytes(data)
    v = probe(path)["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("hevc", 640, 360)
    assert int(v["nb_read_frames"]) >= 40, v


def test_stream_aac_decodes(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac")
    s = start(server_factory, cam)
    headers, data = read_stream(f"{s.url}/api/stream.aac?src=cam", 4)
    assert headers["content-type"] == "audio/aac"
    assert data[:2] in (b"\xff\xf1", b"\xff\xf9"), data[:4]
    path = tmp_path / "stream.aac"
    path.write_bytes(data)
    a = probe(path)["audio"]
    assert (a["codec_name"], a["sample_rate"]) == ("aac", "16000")
    assert int(a["nb_read_frames"]) >= 20, a
    dec = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    assert dec.returncode == 0 and dec.stderr.strip() == "", dec.stderr


def test_stream_aac_without_aac_is_an_error(server_factory, camera_factory):
    cam = camera_factory(audio="pcmu")
    s = start(server_factory, cam)
    status, body, _ = s.request("GET", "/api/stream.aac?src=cam")
    assert status >= 400, body
    status, body, _ = s.request("GET", "/api/stream.ts?src=nope")
    assert status == 404 and b"stream not found" in body


def master(s, query):
    status, body, headers = s.request("GET", f"/api/stream.m3u8?{query}")
    assert status == 200, body
    assert headers["content-type"] == "application/vnd.apple.mpegurl"
    text = body.decode()
    m = re.search(r"^hls/playlist\.m3u8\?id=(\w+)$", text, re.M)
    assert text.startswith("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH="), text
    assert m, text
    return text, m.group(1)


def test_hls_ts_session(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac")
    s = start(server_factory, cam)
    text, sid = master(s, "src=cam")
    assert 'CODECS="avc1.' in text and "mp4a.40.2" in text, text
    # One session = one client of the stream.
    cons = consumers(s)
    assert len(cons) == 1 and cons[0]["format_name"] == "hls/mpegts", cons
    status, body, _ = s.request("GET", f"/api/hls/playlist.m3u8?id={sid}")
    assert status == 200, body
    pl = body.decode()
    assert "#EXT-X-TARGETDURATION:" in pl and "#EXT-X-MEDIA-SEQUENCE:" in pl, pl
    segs = re.findall(r"^segment\.ts\?id=\w+&n=(\d+)$", pl, re.M)
    assert segs, pl
    status, seg, headers = s.request("GET", f"/api/hls/segment.ts?id={sid}&n={segs[0]}")
    assert status == 200 and headers["content-type"] == "video/mp2t"
    path = tmp_path / "seg.ts"
    path.write_bytes(seg)
    st = probe(path)
    v = st["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 640, 360)
    # The camera's GOP is 2 s at 25 fps; a segment holds at least one.
    assert int(v["nb_read_frames"]) >= 25, v
    assert st["audio"]["codec_name"] == "aac"
    # Bad requests get clear answers.
    assert s.request("GET", "/api/hls/segment.ts?id=nope&n=0")[0] == 404
    assert s.request("GET", f"/api/hls/segment.ts?id={sid}&n=99999999999")[0] == 404
    assert s.request("GET", f"/api/hls/segment.ts?id={sid}&n=abc")[0] == 400
    assert s.request("GET", f"/api/hls/init.mp4?id={sid}")[0] == 404
    assert s.request("GET", "/api/stream.m3u8?src=nope")[0] == 404
    # Nobody reads: the session expires and leaves the stream (10 s + the
    # 1 s sweep; the bound is 30 s).
    t0 = time.time()
    assert wait_until(lambda: consumers(s) == [], timeout=30, step=0.5), consumers(s)
    assert time.time() - t0 <= 30
    assert s.request("GET", f"/api/hls/playlist.m3u8?id={sid}")[0] == 404


def ffmpeg_copy(url, out, seconds):
    r = subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", url, "-t", str(seconds),
                        "-c", "copy", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return probe(out)


def test_hls_read_by_ffmpeg(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac")
    s = start(server_factory, cam)
    st = ffmpeg_copy(f"{s.url}/api/stream.m3u8?src=cam", tmp_path / "hls.mkv", 4)
    v = st["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 640, 360)
    assert int(v["nb_read_frames"]) >= 75, v
    assert st["audio"]["codec_name"] == "aac"


def test_hls_fmp4_read_by_ffmpeg(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac")
    s = start(server_factory, cam)
    text, sid = master(s, "src=cam&mp4")
    assert 'CODECS="avc1.' in text, text
    status, body, _ = s.request("GET", f"/api/hls/playlist.m3u8?id={sid}")
    pl = body.decode()
    assert status == 200 and f'#EXT-X-MAP:URI="init.mp4?id={sid}"' in pl, pl
    assert "#EXT-X-VERSION:6" in pl
    n = re.findall(r"^segment\.m4s\?id=\w+&n=(\d+)$", pl, re.M)[0]
    status, init, headers = s.request("GET", f"/api/hls/init.mp4?id={sid}")
    assert status == 200 and headers["content-type"] == "video/mp4"
    status, seg, headers = s.request("GET", f"/api/hls/segment.m4s?id={sid}&n={n}")
    assert status == 200 and headers["content-type"] == "video/iso.segment"
    assert s.request("GET", f"/api/hls/segment.ts?id={sid}&n={n}")[0] == 404
    path = tmp_path / "seg.mp4"
    path.write_bytes(init + seg)
    v = probe(path)["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 640, 360)
    assert int(v["nb_read_frames"]) >= 25, v
    st = ffmpeg_copy(f"{s.url}/api/stream.m3u8?src=cam&mp4", tmp_path / "hls.mkv", 4)
    assert (st["video"]["codec_name"], st["video"]["width"]) == ("h264", 640)
    assert int(st["video"]["nb_read_frames"]) >= 75, st["video"]


@pytest.mark.parametrize("query", ["src=cam", "src=cam&mp4"])
def test_chromium_plays_hls_with_hlsjs(server_factory, camera_factory, tmp_path, query):
    """Headless Chromium plays the camera through hls.js (www/vendor) over
    MSE, TS segments and `?mp4` fMP4 ones, from a page served by camrouter."""
    cam = camera_factory(audio="aac")
    www = tmp_path / "www"
    (www / "vendor").mkdir(parents=True)
    shutil.copy(ROOT / "tests/browser/hls.html", www / "hls.html")
    shutil.copy(ROOT / "www/vendor/hls.min.js", www / "vendor/hls.min.js")
    s = server_factory(
        f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n  static_dir: {www}\n"
    ).start()
    r = subprocess.run(
        ["node", str(ROOT / "tests/browser/visit.mjs"), f"{s.url}/hls.html?{query}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "VISIT_TIMEOUT_MS": "60000"},
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    print("\nchromium:", seen)
    assert seen["supported"] and seen["errors"] == [], seen
    assert seen["codecs"][0].startswith("avc1."), seen
    assert (seen["width"], seen["height"]) == (640, 360), seen
    assert seen["currentTime"] > seen["firstTime"] + 1.5, seen
    assert seen["fragments"] >= 1 and seen["decoded"] > 10, seen


def test_slow_stream_ts_reader_drops_and_memory_stays_bounded(server_factory, camera_factory, tmp_path):
    """A stream.ts client that does not read loses frames up to the next
    keyframe (counted as dropped) instead of growing the server's memory,
    and another client of the stream is not held up by it."""
    cam = camera_factory(audio="none", size="1280x720")
    s = start(server_factory, cam)
    # The stream runs (and the server's buffers are warm) before measuring.
    read_stream(f"{s.url}/api/stream.ts?src=cam", 2)

    def rss_kb():
        for line in open(f"/proc/{s.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    before = rss_kb()
    with socket.socket() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", s.port))
        c.sendall(f"GET /api/stream.ts?src=cam HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nUser-Agent: sleepy\r\n\r\n".encode())

        def dropped():
            cons = consumers(s)
            return sum(x.get("dropped", 0) for x in cons if x.get("user_agent") == "sleepy")
        assert wait_until(lambda: dropped() > 25, timeout=60, step=0.5), consumers(s)
        grown_mb = (rss_kb() - before) / 1024
        print(f"\nslow TS reader: {dropped()} frames dropped, server RSS grew {grown_mb:.1f} MiB")
        # The host's queue (64 frames of a 1 Mb/s camera) plus socket buffers.
        assert grown_mb < 40
        _, data = read_stream(f"{s.url}/api/stream.ts?src=cam", 3)
        path = tmp_path / "other.ts"
        path.write_bytes(data)
        assert int(probe(path)["video"]["nb_read_frames"]) >= 40


def test_hls_audio_only_source(server_factory, tmp_path):
    """A stream with AAC and no video: HLS cuts a segment every second, each
    starting with PAT/PMT, and stream.aac passes the frames on."""
    src = ("exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i sine=frequency=440:sample_rate=48000 "
           "-c:a aac -f adts -")
    s = server_factory(f"streams:\n  radio: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    status, body, _ = s.request("GET", "/api/stream.m3u8?src=radio")
    assert status == 200, body
    assert 'CODECS="mp4a.40.2"' in body.decode(), body
    sid = re.search(r"id=(\w+)", body.decode()).group(1)
    # Two segments listed: the first one is done and a second is running.
    def listed():
        st, b, _ = s.request("GET", f"/api/hls/playlist.m3u8?id={sid}")
        return st == 200 and len(re.findall(r"^segment\.ts", b.decode(), re.M)) >= 2 and b.decode()
    pl = wait_until(listed, timeout=20) and listed()
    assert pl, pl
    durations = [float(d) for d in re.findall(r"#EXTINF:([\d.]+),", pl)]
    assert all(0.9 <= d <= 1.2 for d in durations), pl
    n = re.findall(r"&n=(\d+)$", pl, re.M)[-1]
    status, seg, _ = s.request("GET", f"/api/hls/segment.ts?id={sid}&n={n}")
    assert status == 200
    # PAT first, then the PMT: the segment reads on its own.
    assert seg[0] == 0x47 and (seg[1] & 0x1F, seg[2]) == (0, 0), seg[:4]
    path = tmp_path / "audio.ts"
    path.write_bytes(seg)
    a = probe(path)["audio"]
    assert (a["codec_name"], a["sample_rate"]) == ("aac", "48000")
    # About a second of 1024-sample frames at 48 kHz.
    assert 40 <= int(a["nb_read_frames"]) <= 60, a
    _, data = read_stream(f"{s.url}/api/stream.aac?src=radio", 3)
    path = tmp_path / "radio.aac"
    path.write_bytes(data)
    assert int(probe(path)["audio"]["nb_read_frames"]) >= 50


def test_hls_over_websocket_and_flac(server_factory, camera_factory, tmp_path):
    """go2rtc's `{"type":"hls"}` on /api/ws (its player without MSE) gets an
    fMP4 session for the codecs it lists; `?mp4=flac` carries a G.711
    camera's audio as FLAC (named AAC in the playlist, as go2rtc, for Safari)."""
    from websockets.sync.client import connect
    cam = camera_factory(audio="pcma")
    s = start(server_factory, cam)
    with connect(f"ws://127.0.0.1:{s.port}/api/ws?src=cam", legacy=True) as ws:
        ws.send(json.dumps({"type": "hls", "value": "avc1.640029,flac"}))
        m = json.loads(ws.recv(timeout=20))
    assert m["type"] == "hls", m
    assert m["value"].startswith("#EXTM3U\n#EXT-X-STREAM-INF:") and 'CODECS="avc1.' in m["value"], m
    sid = re.search(r"hls/playlist\.m3u8\?id=(\w+)", m["value"]).group(1)
    cons = consumers(s)
    assert any(c.get("format_name") == "hls/fmp4" and c.get("protocol") == "ws" for c in cons), cons
    status, body, _ = s.request("GET", f"/api/hls/playlist.m3u8?id={sid}")
    assert status == 200 and "#EXT-X-MAP:" in body.decode(), body
    n = re.findall(r"&n=(\d+)$", body.decode(), re.M)[0]
    init = s.request("GET", f"/api/hls/init.mp4?id={sid}")[1]
    seg = s.request("GET", f"/api/hls/segment.m4s?id={sid}&n={n}")[1]
    path = tmp_path / "ws.mp4"
    path.write_bytes(init + seg)
    st = probe(path)
    assert (st["video"]["codec_name"], st["video"]["width"]) == ("h264", 640)
    assert st["audio"]["codec_name"] == "flac"

    text, sid = master(s, "src=cam&mp4=flac")
    assert "mp4a.40.2" in text and "flac" not in text, text
    status, body, _ = s.request("GET", f"/api/hls/playlist.m3u8?id={sid}")
    n = re.findall(r"&n=(\d+)$", body.decode(), re.M)[0]
    init = s.request("GET", f"/api/hls/init.mp4?id={sid}")[1]
    seg = s.request("GET", f"/api/hls/segment.m4s?id={sid}&n={n}")[1]
    path.write_bytes(init + seg)
    assert probe(path)["audio"]["codec_name"] == "flac"
    # Bad requests on the socket get an error message, not a session.
    with connect(f"ws://127.0.0.1:{s.port}/api/ws?src=nope", legacy=True) as ws:
        ws.send(json.dumps({"type": "hls", "value": "avc1.640029"}))
        m = json.loads(ws.recv(timeout=20))
        assert m == {"type": "error", "value": "stream not found"}, m
