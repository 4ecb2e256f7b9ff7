"""AV1 over Enhanced RTMP (E-RTMP `av01`) with a real E-RTMP server,
node-media-server 4 (tests/nms, installed by tests/run.sh): ffmpeg 5.1 has
no E-RTMP, so it only makes the AV1 (libsvtav1, as fragmented MP4 on stdout)
and decodes what comes back (libdav1d).

    ffmpeg → camrouter `a` ─publish:→ node-media-server /live/a
    node-media-server /live/a ─rtmp:// source→ camrouter `b` → stream.mp4 → ffmpeg
    node-media-server /live/a ─its push relay→ camrouter's RTMP server `d`
    camrouter's RTMP server `a` → node-media-server's RTMP client (play)
    camrouter `a` → MSE over /api/ws → headless Chromium
"""

import json
import shutil
import subprocess
import urllib.request

import pytest

from conftest import ROOT, free_port, terminate, wait_until

NMS = ROOT / "tests/nms"
# Low-delay prediction (no hidden frames held back), a keyframe a second.
# 25 fps: the fMP4 writer's first frame lasts 40 ms until the second tells
# the real rate, and at another rate Chromium's MSE stops at that gap.
AV1 = ("exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=25 "
       "-c:v libsvtav1 -preset 12 -g 25 -svtav1-params pred-struct=1 "
       "-f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -")


def node_media_server(tmp_path, *tasks):
    """node-media-server on a free 127.0.0.1 port: (process, port). `tasks`:
    `pull URL /live/x` or `push URL /live/x` triples (tests/nms/nms.js)."""
    if not (NMS / "node_modules/node-media-server").is_dir():
        pytest.skip("node-media-server is not installed (tests/run.sh runs npm ci in tests/nms)")
    port = free_port()
    log = tmp_path / "nms.log"
    proc = subprocess.Popen(
        ["node", str(NMS / "nms.js"), str(port), str(tmp_path / "nms-data"), *tasks],
        stdin=subprocess.DEVNULL, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    if not wait_until(lambda: "nms ready" in log.read_text() or proc.poll() is not None, timeout=20) \
            or proc.poll() is not None:
        terminate(proc)
        raise AssertionError(f"node-media-server did not start: {log.read_text()}")
    return proc, port


def decode_av1(url, frames):
    """ffprobe's view of `url` (codec, size), and how many frames libdav1d
    decoded out of the first `frames` (ffmpeg -f framecrc: one line a frame)."""
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
         "-of", "json", url], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    stream = json.loads(probe.stdout)["streams"][0]
    dec = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-c:v", "libdav1d", "-i", url,
         "-frames:v", str(frames), "-f", "framecrc", "-"],
        capture_output=True, text=True, timeout=60)
    assert dec.returncode == 0, dec.stderr
    decoded = [l for l in dec.stdout.splitlines() if l and not l.startswith("#")]
    return stream, len(decoded)


def test_av1_through_node_media_server_both_ways(server_factory, tmp_path):
    # The server object first: node-media-server's push relay needs our RTMP port.
    s = server_factory(
        "streams:\n"
        f"  a: {AV1}\n"
        "  b: rtmp://127.0.0.1:NMS_PORT/live/a\n"
        "  d:\n"
        "publish:\n"
        "  a: rtmp://127.0.0.1:NMS_PORT/live/a\n"
        "api:\n  listen: 127.0.0.1:{port}\n")
    nms, port = node_media_server(tmp_path, "push", f"{s.rtmp_url}/live/d", "/live/a")
    try:
        s.config_path.write_text(s.config_path.read_text().replace("NMS_PORT", str(port)))
        s.start()
        # Our publisher into node-media-server, read back by our rtmp:// source.
        stream, decoded = decode_av1(f"{s.url}/api/stream.mp4?src=b", 20)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("av1", 320, 240), \
            (stream, s.output()[-3000:])
        assert decoded == 20, s.output()[-3000:]
        b = s.get_json("/api/streams?src=b")["producers"][0]
        assert b["protocol"] == "rtmp" and "AV1" in b["medias"][0], b
        # node-media-server published it into our RTMP server.
        stream, decoded = decode_av1(f"{s.url}/api/stream.mp4?src=d", 20)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("av1", 320, 240), stream
        assert decoded == 20
        d = s.get_json("/api/streams?src=d")["producers"]
        assert d and d[0]["protocol"] == "rtmp", d
    finally:
        terminate(nms)


def test_node_media_server_client_plays_av1_from_our_server(server_factory):
    """node-media-server's RTMP client (its E-RTMP parser) plays `a` from our
    RTMP server: onMetaData, the av01 SequenceStart, then a keyframe and
    inter frames. (Its relay would drop what arrives with the play status,
    so its own client is driven here.)"""
    if not (NMS / "node_modules/node-media-server").is_dir():
        pytest.skip("node-media-server is not installed (tests/run.sh runs npm ci in tests/nms)")
    s = server_factory(f"streams:\n  a: {AV1}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    r = subprocess.run(["node", str(NMS / "play.js"), f"{s.rtmp_url}/live/a", "25"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (r.stderr, s.output()[-2000:])
    msgs = [json.loads(l) for l in r.stdout.splitlines()]
    video = [m for m in msgs if m["type"] == 9]
    assert msgs[0]["flags"] == 5, msgs[:3]
    assert all(m["codec"] == "av01" for m in video), video[:3]
    assert video[0]["flags"] == 2, "the sequence start first"
    assert video[1]["flags"] == 3, "then a keyframe"
    assert [m["flags"] for m in video[2:]].count(4) >= 10, video
    assert not [m for m in msgs if m["type"] == 8], "no audio announced or sent"


def test_stream_flv_and_hls_mp4_carry_av1(server_factory, tmp_path):
    """stream.flv of an AV1 stream is E-RTMP `av01`; an http source reads it
    back (FLV detected from the body) into stream.mp4 that libdav1d decodes;
    HLS `?mp4` plays it too."""
    s = server_factory(
        f"streams:\n  a: {AV1}\n  f: http://127.0.0.1:{{port}}/api/stream.flv?src=a\n"
        "api:\n  listen: 127.0.0.1:{port}\n").start()
    body = bytearray()
    # Read until the first keyframe's tag has come (an endless body).
    with urllib.request.urlopen(f"{s.url}/api/stream.flv?src=a", timeout=30) as r:
        while b"\x91av01" not in body and len(body) < (8 << 20):
            chunk = r.read1(1 << 16)
            if not chunk:
                break
            body += chunk
    assert body.startswith(b"FLV\x01\x01"), body[:16]
    assert b"\x90av01\x81" in body, "SequenceStart with the av1C record"
    assert b"\x91av01" in body, "a keyframe's CodedFrames"
    stream, decoded = decode_av1(f"{s.url}/api/stream.mp4?src=f", 15)
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("av1", 320, 240), stream
    assert decoded == 15
    # HLS with fMP4 segments too.
    status, body, _ = s.request("GET", "/api/stream.m3u8?src=a&mp4")
    assert status == 200 and b'CODECS="av01.0.00M.08"' in body, body
    stream, decoded = decode_av1(f"{s.url}/api/stream.m3u8?src=a&mp4", 15)
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("av1", 320, 240), stream
    assert decoded == 15


def test_chromium_plays_av1_with_mse(server_factory, tmp_path):
    """Headless Chromium offers av01 to /api/ws and plays the stream: the
    answer names `av01.0.00M.08` (Main, level 2.0, 8 bits, from the
    sequence header) and frames decode."""
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(ROOT / "tests/browser/mse.html", www / "mse.html")
    s = server_factory(
        f"streams:\n  a: {AV1}\napi:\n  listen: 127.0.0.1:{{port}}\n  static_dir: {www}\n").start()
    r = subprocess.run(
        ["node", str(ROOT / "tests/browser/visit.mjs"), f"{s.url}/mse.html?src=a"],
        capture_output=True, text=True, timeout=90,
    )
    assert r.returncode == 0, r.stderr
    seen = json.loads(r.stdout)
    print("\nchromium:", seen)
    assert "av01" in seen["offered"], seen
    assert seen["errors"] == [], seen
    assert seen["type"] == 'video/mp4; codecs="av01.0.00M.08"', seen
    assert (seen["width"], seen["height"]) == (320, 240), seen
    assert seen["currentTime"] > 1.0 and seen["decoded"] > 5, seen


def test_chromium_plays_av1_over_webrtc(server_factory, tmp_path):
    """Headless Chromium offers AV1 among its codecs; the stream has only AV1
    video, so the picture at 320x240 is our AV1 RTP packetization decoded."""
    www = tmp_path / "www"
    www.mkdir()
    shutil.copy(ROOT / "tests/browser/webrtc.html", www / "webrtc.html")
    s = server_factory(
        f"streams:\n  a: {AV1}\napi:\n  listen: 127.0.0.1:{{port}}\n  static_dir: {www}\n").start()
    r = subprocess.run(
        ["node", str(ROOT / "tests/browser/visit.mjs"), f"{s.url}/webrtc.html?src=a"],
        capture_output=True, text=True, timeout=90,
    )
    assert r.returncode == 0, r.stderr + s.output()[-3000:]
    seen = json.loads(r.stdout)
    print("\nchromium:", seen)
    assert seen["errors"] == [], seen
    assert (seen["width"], seen["height"]) == (320, 240), seen
    assert seen["currentTime"] > 1.0, seen


def test_libaom_fragmented_mp4_with_an_empty_av1c(server_factory):
    """ffmpeg 5.1 with libaom writes an empty `av1C` under `empty_moov`: the
    track is described by its first keyframe, so RTMP and FLV (which need the
    record up front) carry it and libdav1d decodes it back."""
    aom = ("exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=160x120:rate=25 "
           "-c:v libaom-av1 -cpu-used 8 -usage realtime -g 25 "
           "-f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -")
    s = server_factory(
        f"streams:\n  a: {aom}\n  f: http://127.0.0.1:{{port}}/api/stream.flv?src=a\n"
        "api:\n  listen: 127.0.0.1:{port}\n").start()
    stream, decoded = decode_av1(f"{s.url}/api/stream.mp4?src=f", 10)
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("av1", 160, 120), \
        (stream, s.output()[-2000:])
    assert decoded == 10
    codec = s.get_json("/api/streams?src=a")["producers"][0]["receivers"][0]["codec"]
    assert (codec["codec_name"], codec["width"], codec["height"]) == ("av1", 160, 120), codec
