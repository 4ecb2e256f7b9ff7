"""http:// and tcp:// sources (plugins/http) against real servers: ffmpeg
with `-listen 1` for each stream format, and a small Python server for JPEG
snapshots, Digest auth, #header, redirects and broken bodies."""

import hashlib
import http.server
import json
import os
import re
import subprocess
import threading

import pytest

from conftest import free_port, terminate, wait_until

LAVFI_V = "-f lavfi -i testsrc2=size=320x240:rate=15"
LAVFI_A = "-f lavfi -i sine=frequency=440:sample_rate=16000"


def probe(s, name, seconds=3):
    """ffprobes `name` over camrouter's RTSP for `seconds`: {codec_type: stream}."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-count_frames",
         "-read_intervals", f"%+{seconds}", "-show_entries",
         "stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json",
         f"{s.rtsp_url}/{name}"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, (out.stderr, s.output()[-2000:])
    return {st["codec_type"]: st for st in json.loads(out.stdout)["streams"]}


def listening(port):
    """Whether something listens on 127.0.0.1:port, without connecting
    (ffmpeg's `-listen 1` serves its first client only)."""
    hexport = f":{port:04X} "
    with open("/proc/net/tcp") as f:
        return any(hexport in line and line.split()[3] == "0A" for line in f)


def ffmpeg_server(cmd, port):
    p = subprocess.Popen(cmd.split(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    assert wait_until(lambda: listening(port), timeout=20), "ffmpeg did not listen"
    return p


def config(streams, port_key="{port}"):
    lines = "".join(f"  {k}: {v}\n" for k, v in streams.items())
    return f"streams:\n{lines}api:\n  listen: 127.0.0.1:{port_key}\n"


FFMPEG_CASES = [
    # (name, ffmpeg args, -f, expected {codec_type: (codec_name, width)})
    ("mpjpeg", f"{LAVFI_V} -c:v mjpeg -q:v 5", "mpjpeg", {"video": ("mjpeg", 320)}),
    ("mpegts", f"{LAVFI_V} {LAVFI_A} -c:v libx264 -g 15 -c:a aac", "mpegts",
     {"video": ("h264", 320), "audio": ("aac", None)}),
    ("h264", f"{LAVFI_V} -c:v libx264 -g 15", "h264", {"video": ("h264", 320)}),
    ("hevc", f"{LAVFI_V} -c:v libx265 -x265-params log-level=error -g 15", "hevc", {"video": ("hevc", 320)}),
    ("adts", f"{LAVFI_A} -c:a aac", "adts", {"audio": ("aac", None)}),
    ("wav", f"{LAVFI_A} -ar 8000 -c:a pcm_alaw", "wav", {"audio": ("pcm_alaw", None)}),
    ("flv", f"{LAVFI_V} {LAVFI_A} -c:v libx264 -g 15 -c:a aac", "flv",
     {"video": ("h264", 320), "audio": ("aac", None)}),
    ("fmp4", f"{LAVFI_V} {LAVFI_A} -c:v libx264 -g 15 -c:a aac -movflags frag_keyframe+empty_moov+default_base_moof",
     "mp4", {"video": ("h264", 320), "audio": ("aac", None)}),
]


@pytest.mark.parametrize("name,args,fmt,want", FFMPEG_CASES, ids=[c[0] for c in FFMPEG_CASES])
def test_ffmpeg_http_server_formats(server_factory, tmp_path, name, args, fmt, want):
    port = free_port()
    ff = ffmpeg_server(f"ffmpeg -hide_banner -loglevel error -re {args} -f {fmt} -listen 1 http://127.0.0.1:{port}/", port)
    try:
        s = server_factory(config({name: f"http://127.0.0.1:{port}/"})).start()
        streams = probe(s, name)
        assert set(streams) == set(want), streams
        for kind, (codec, width) in want.items():
            st = streams[kind]
            assert st["codec_name"] == codec, st
            if width:
                assert (st["width"], st["height"]) == (width, 240), st
            # 3 s of 15 fps video / 16 kHz AAC (64 ms a frame); the first
            # second may go to ffmpeg starting.
            assert int(st["nb_read_frames"]) >= 20, st
        prod = s.get_json("/api/streams")[name]["producers"][0]
        assert prod.get("remote_addr", "").startswith("127.0.0.1:"), prod
    finally:
        terminate(ff)


def test_tcp_source_mpegts(server_factory, tmp_path):
    port = free_port()
    ff = ffmpeg_server(f"ffmpeg -hide_banner -loglevel error -re {LAVFI_V} -c:v libx264 -g 15 -f mpegts tcp://127.0.0.1:{port}?listen=1", port)
    try:
        s = server_factory(config({"raw": f"tcp://127.0.0.1:{port}"})).start()
        v = probe(s, "raw")["video"]
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240)
        assert int(v["nb_read_frames"]) >= 20, v
    finally:
        terminate(ff)


class Camera(http.server.ThreadingHTTPServer):
    """A snapshot camera: one JPEG per request, Digest auth, header checks,
    redirects and broken answers; every request is logged in `requests`."""

    daemon_threads = True

    def __init__(self, jpeg, ts):
        super().__init__(("127.0.0.1", 0), Handler)
        self.jpeg, self.ts = jpeg, ts
        self.requests = []
        self.nonce = os.urandom(8).hex()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, ctype, body, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def digest_ok(self):
        h = self.headers.get("Authorization", "")
        if not h.startswith("Digest "):
            return False
        p = dict(re.findall(r'(\w+)="?([^",]*)"?', h[7:]))
        ha1 = hashlib.md5(b"admin:cam:s3cret pass").hexdigest()
        ha2 = hashlib.md5(f"GET:{p.get('uri')}".encode()).hexdigest()
        want = hashlib.md5(
            f"{ha1}:{p.get('nonce')}:{p.get('nc')}:{p.get('cnonce')}:auth:{ha2}".encode()
        ).hexdigest()
        return p.get("username") == "admin" and p.get("nonce") == self.server.nonce and p.get("response") == want

    def do_GET(self):
        cam = self.server
        cam.requests.append((self.path, self.headers.get("Authorization"), self.headers.get("X-Token")))
        if self.path == "/snap.jpg":
            self.send(200, "image/jpeg", cam.jpeg)
        elif self.path == "/digest.jpg":
            if self.digest_ok():
                self.send(200, "image/jpeg", cam.jpeg)
            else:
                self.send(401, "text/plain", b"no", [(
                    "WWW-Authenticate", f'Digest realm="cam", nonce="{cam.nonce}", qop="auth"')])
        elif self.path == "/token.jpg":
            if self.headers.get("X-Token") == "abc def":
                self.send(200, "image/jpeg", cam.jpeg)
            else:
                self.send(403, "text/plain", b"no token")
        elif self.path == "/old":
            self.send(302, "text/plain", b"", [("Location", "/snap.jpg")])
        elif self.path == "/loop":
            self.send(302, "text/plain", b"", [("Location", "/loop")])
        elif self.path == "/garbage":
            self.send(200, "application/octet-stream", os.urandom(200_000))
        elif self.path == "/truncated.ts":
            self.send(200, "video/mp2t", cam.ts[:188 * 7 + 100])
        elif self.path == "/notjpeg.jpg":
            self.send(200, "image/jpeg", b"<html>camera busy</html>")
        else:
            self.send(404, "text/plain", b"not found")


@pytest.fixture
def camera(tmp_path):
    jpeg_path, ts_path = tmp_path / "snap.jpg", tmp_path / "a.ts"
    subprocess.run(f"ffmpeg -v error -y -f lavfi -i testsrc2=size=352x288 -frames:v 1 {jpeg_path}".split(), check=True)
    subprocess.run(f"ffmpeg -v error -y {LAVFI_V} -t 1 -c:v libx264 -f mpegts {ts_path}".split(), check=True)
    cam = Camera(jpeg_path.read_bytes(), ts_path.read_bytes())
    t = threading.Thread(target=cam.serve_forever, daemon=True)
    t.start()
    yield cam
    cam.shutdown()
    cam.server_close()


def test_jpeg_snapshot_url_becomes_a_stream(server_factory, tmp_path, camera):
    s = server_factory(config({"snap": f"{camera.url}/snap.jpg"})).start()
    v = probe(s, "snap", seconds=2)["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("mjpeg", 352, 288)
    # Polled into a stream, at most 10 a second.
    assert int(v["nb_read_frames"]) >= 5, v
    snaps = [r for r in camera.requests if r[0] == "/snap.jpg"]
    assert len(snaps) <= 10 * 6, len(snaps)


def test_digest_credentials_and_masking(server_factory, tmp_path, camera):
    url = camera.url.replace("http://", "http://admin:s3cret%20pass@") + "/digest.jpg"
    s = server_factory(config({"cam": url})).start()
    v = probe(s, "cam", seconds=1)["video"]
    assert (v["codec_name"], v["width"]) == ("mjpeg", 352)
    auths = [r[1] for r in camera.requests if r[0] == "/digest.jpg"]
    assert auths[0] is None and auths[1].startswith("Digest "), auths[:2]
    # Later polls answer with the same challenge, without a 401 each time.
    assert all(a and a.startswith("Digest ") for a in auths[1:]), auths
    assert "s3cret" not in s.output()
    assert "s3cret" not in json.dumps(s.get_json("/api/streams"))


def test_wrong_password_is_a_clear_lasting_error(server_factory, camera):
    url = camera.url.replace("http://", "http://admin:nope@") + "/digest.jpg"
    s = server_factory(config({"cam": url})).start()
    status, _, _ = s.request("GET", "/api/frame.mp4?src=cam")
    assert status >= 400
    prod = s.get_json("/api/streams")["cam"]["producers"][0]
    assert "401 Unauthorized" in prod.get("error", ""), prod
    assert "nope" not in s.output() and "nope" not in json.dumps(prod)


def test_header_param_and_redirect(server_factory, tmp_path, camera):
    s = server_factory(config({
        "tok": f"'{camera.url}/token.jpg#header=X-Token: abc def'",
        "moved": f"{camera.url}/old",
    })).start()
    assert probe(s, "tok", seconds=1)["video"]["width"] == 352
    assert probe(s, "moved", seconds=1)["video"]["width"] == 352
    assert ("/token.jpg", None, "abc def") in camera.requests


@pytest.mark.parametrize("path,error", [
    ("/loop", "too many redirects"),
    ("/garbage", "unsupported format"),
    ("/truncated.ts", "EOF"),
    ("/notjpeg.jpg", "no complete JPEG"),
    ("/missing", "404 Not Found"),
], ids=["redirect-loop", "garbage", "truncated", "not-a-jpeg", "404"])
def test_bad_input_gives_a_clear_error(server_factory, camera, path, error):
    s = server_factory(config({"bad": f"{camera.url}{path}#timeout=3"})).start()
    status, _, _ = s.request("GET", "/api/frame.mp4?src=bad")
    assert status >= 400
    assert wait_until(lambda: error in s.get_json("/api/streams")["bad"]["producers"][0].get("error", ""),
                      timeout=10), s.get_json("/api/streams")
    assert s.proc.poll() is None
    # The server still serves a good source afterwards.
    s2 = s.get_json("/api/streams")
    assert "bad" in s2


# Ingest by POST (go2rtc's shapes): the publisher is a producer while its body lasts.

INGEST_CASES = [
    # (path, ffmpeg output args, expected video codec)
    ("stream.ts", "-c:v libx264 -g 15 -f mpegts", "h264"),
    ("stream.mjpeg", "-c:v mjpeg -q:v 5 -f mpjpeg", "mjpeg"),
    ("stream", "-c:v libx264 -g 15 -f h264", "h264"),
    ("stream.flv", "-c:v libx264 -g 15 -f flv", "h264"),
    # Raw pictures, detected, encoded to H.264 by camrouter (test_y4m_source.py).
    ("stream", "-f yuv4mpegpipe", "h264"),
]


@pytest.mark.parametrize("path,args,codec", INGEST_CASES,
                         ids=[c[0] + ("-y4m" if "yuv4mpeg" in c[1] else "") for c in INGEST_CASES])
def test_ffmpeg_posts_a_stream(server_factory, path, args, codec):
    # An empty stream that only a publisher feeds.
    s = server_factory("streams:\n  x:\napi:\n  listen: 127.0.0.1:{port}\n").start()
    pub = subprocess.Popen(
        f"ffmpeg -hide_banner -loglevel error -re {LAVFI_V} -t 30 {args} -method POST "
        f"{s.url}/api/{path}?dst=x".split(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        assert wait_until(lambda: any(p.get("medias") for p in s.get_json("/api/streams")["x"]["producers"]),
                          timeout=20), s.get_json("/api/streams")
        prod = s.get_json("/api/streams")["x"]["producers"][0]
        assert prod["protocol"] == "http" and prod["remote_addr"].startswith("127.0.0.1:"), prod
        v = probe(s, "x", seconds=2)["video"]
        assert (v["codec_name"], v["width"], v["height"]) == (codec, 320, 240), v
        assert int(v["nb_read_frames"]) >= 10, v
    finally:
        terminate(pub)
    # The publisher left: so did its producer.
    assert wait_until(lambda: s.get_json("/api/streams")["x"]["producers"] == [], timeout=15), \
        s.get_json("/api/streams")


def test_post_to_unknown_stream_is_404(server_factory):
    s = server_factory("streams:\n  x:\napi:\n  listen: 127.0.0.1:{port}\n").start()
    status, body, _ = s.request("POST", "/api/stream.ts?dst=nope", body=b"\x47" * 188)
    assert (status, body.strip()) == (404, b"stream not found")
    status, _, _ = s.request("POST", "/api/stream?dst=", body=b"x")
    assert status == 404
    assert "nope" not in s.get_json("/api/streams")


def test_garbage_post_is_refused_and_leaves_no_producer(server_factory):
    s = server_factory("streams:\n  x:\napi:\n  listen: 127.0.0.1:{port}\n").start()
    status, body, _ = s.request("POST", "/api/stream?dst=x", body=os.urandom(100_000))
    assert status == 400 and b"unsupported format" in body, (status, body[:200])
    assert s.get_json("/api/streams")["x"]["producers"] == []
    assert "unsupported format" in s.output()
    # FLV has no sync marker: broken framing ends the publisher with the reason.
    status, body, _ = s.request("POST", "/api/stream.flv?dst=x", body=b"FLV\x01\x05\0\0\0\x09\0\0\0\0" + b"\x55" * 5000)
    assert status == 400 and b"flv: invalid FLV tag" in body, (status, body[:200])
    assert s.get_json("/api/streams")["x"]["producers"] == []
    assert s.proc.poll() is None


def test_ingest_needs_the_api_credentials(server_factory):
    import base64
    s = server_factory("streams:\n  x:\napi:\n  listen: 127.0.0.1:{port}\n"
                       "  username: admin\n  password: secret\n  local_auth: true\n").start()
    ts = b"\x47\x1f\xff\x10" + b"\xff" * 184
    status, _, _ = s.request("POST", "/api/stream.ts?dst=x", body=ts * 10)
    assert status == 401, status
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
    status, body, _ = s.request("GET", "/api/streams", headers=auth)
    assert json.loads(body)["x"]["producers"] == []
    # With them the body is taken (null packets only: it ends without media).
    status, _, _ = s.request("POST", "/api/stream.ts?dst=x", body=ts * 10, headers=auth)
    assert status == 200, status
    assert "EOF before any media" in s.output()


def test_cross_site_post_cannot_publish(server_factory):
    s = server_factory("streams:\n  x:\napi:\n  listen: 127.0.0.1:{port}\n").start()
    status, _, _ = s.request("POST", "/api/stream.ts?dst=x", body=b"\x47" * 1880,
                             headers={"Origin": "http://evil.example"})
    assert status == 403, status
    assert s.get_json("/api/streams")["x"]["producers"] == []


# GET /api/stream.flv (plugins/flv)

def read_for(url, seconds):
    """The first `seconds` of a streaming answer."""
    import time
    import urllib.request
    out = b""
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.headers["Content-Type"] == "video/x-flv"
        deadline = time.time() + seconds
        while time.time() < deadline:
            chunk = r.read1(65536)
            if not chunk:
                break
            out += chunk
    return out


def probe_file(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
         "stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return {st["codec_type"]: st for st in json.loads(out.stdout)["streams"]}


def test_stream_flv_reads_back_in_ffprobe(server_factory, tmp_path):
    src = (f"exec:ffmpeg -hide_banner -loglevel error -re {LAVFI_V} {LAVFI_A} "
           "-c:v libx264 -g 15 -c:a aac -f mpegts -")
    s = server_factory(config({"cam": src})).start()
    path = tmp_path / "cam.flv"
    path.write_bytes(read_for(f"{s.url}/api/stream.flv?src=cam", 4))
    streams = probe_file(path)
    v, a = streams["video"], streams["audio"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240), v
    assert a["codec_name"] == "aac", a
    assert int(v["nb_read_frames"]) >= 25, v
    assert int(a["nb_read_frames"]) >= 20, a
    # The client left: its consumer is gone.
    assert wait_until(lambda: s.get_json("/api/streams")["cam"]["consumers"] == [], timeout=15)
    status, body, _ = s.request("GET", "/api/stream.flv?src=nope")
    assert (status, body.strip()) == (404, b"stream not found")


def test_hevc_flv_from_one_camrouter_feeds_another(server_factory):
    # ffmpeg 5.1 has no enhanced FLV: camrouter's own H.265 FLV (hvc1) read
    # by camrouter's http source is the round trip that checks it.
    src = (f"exec:ffmpeg -hide_banner -loglevel error -re {LAVFI_V} "
           "-c:v libx265 -x265-params log-level=error -g 15 -f hevc -")
    a = server_factory(config({"cam": src})).start()
    b = server_factory(config({"relay": f"{a.url}/api/stream.flv?src=cam"})).start()
    v = probe(b, "relay", seconds=2)["video"]
    assert (v["codec_name"], v["width"], v["height"]) == ("hevc", 320, 240), v
    assert int(v["nb_read_frames"]) >= 10, v
    assert b.get_json("/api/streams")["relay"]["producers"][0]["format_name"] == "flv"


def test_reader_stays_across_publisher_reconnect(server_factory):
    # A publisher that comes back is a new producer; the reader that was
    # routed to the first one moves over (the graph's orphan adoption).
    s = server_factory("streams:\n  x:\napi:\n  listen: 127.0.0.1:{port}\n").start()

    def publish(seconds):
        return subprocess.Popen(
            f"ffmpeg -hide_banner -loglevel error -re {LAVFI_V} -t {seconds} -c:v libx264 -g 15 "
            f"-f mpegts -method POST {s.url}/api/stream.ts?dst=x".split(),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    first = publish(4)
    second = None
    try:
        assert wait_until(lambda: any(p.get("medias") for p in s.get_json("/api/streams")["x"]["producers"]),
                          timeout=20)
        reader = subprocess.Popen(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-count_frames", "-read_intervals", "%+9",
             "-show_entries", "stream=nb_read_frames", "-of", "json", f"{s.rtsp_url}/x"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        first.wait(timeout=30)
        second = publish(12)
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
        frames = int(json.loads(out)["streams"][0]["nb_read_frames"])
        # The first publisher alone gives at most 4 s of 15 fps.
        assert frames > 4 * 15, frames
        restarts = s.request("GET", "/api/metrics")[1].decode()
        assert 'camrouter_stream_producer_restarts_total{stream="x"} 1' in restarts, restarts
    finally:
        terminate(first)
        terminate(second)


HLS_CASES = [
    # (id, ffmpeg codec args, segment args, expected video codec, audio)
    ("ts", f"{LAVFI_A} -c:v libx264 -g 15 -c:a aac", "", "h264", True),
    ("fmp4", f"{LAVFI_A} -c:v libx264 -g 15 -c:a aac", "-hls_segment_type fmp4", "h264", True),
    ("fmp4-hevc", "-c:v libx265 -x265-params log-level=error -g 15 -tag:v hvc1",
     "-hls_segment_type fmp4", "hevc", False),
]


@pytest.mark.parametrize("name,codecs,segments,vcodec,audio", HLS_CASES, ids=[c[0] for c in HLS_CASES])
def test_hls_playlist_source(server_factory, tmp_path, name, codecs, segments, vcodec, audio):
    # ffmpeg writes a live HLS playlist (TS segments, or fMP4: an
    # #EXT-X-MAP init segment and .m4s); a plain Python file server serves
    # it (a multivariant playlist points at it).
    hls_dir = tmp_path / "hls"
    (hls_dir / "v").mkdir(parents=True)
    (hls_dir / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=500000\nv/index.m3u8\n")
    ff = subprocess.Popen(
        f"ffmpeg -hide_banner -loglevel error -re {LAVFI_V} {codecs} "
        f"-f hls -hls_time 1 -hls_list_size 4 -hls_flags delete_segments {segments} "
        f"{hls_dir}/v/index.m3u8".split(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd=hls_dir / "v",
    )

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(hls_dir), **kw)

        def log_message(self, *a):
            pass

    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        assert wait_until(lambda: (hls_dir / "v" / "index.m3u8").exists(), timeout=20)
        if segments:
            assert "#EXT-X-MAP" in (hls_dir / "v" / "index.m3u8").read_text()
        url = f"http://127.0.0.1:{files.server_address[1]}/master.m3u8"
        s = server_factory(config({"hls": url})).start()
        streams = probe(s, "hls", seconds=4)
        v = streams["video"]
        assert (v["codec_name"], v["width"], v["height"]) == (vcodec, 320, 240), v
        if audio:
            assert streams["audio"]["codec_name"] == "aac", streams
        else:
            assert "audio" not in streams, streams
        # Segments after the first keep coming: more than one segment's worth.
        assert int(v["nb_read_frames"]) >= 30, v
        prod = s.get_json("/api/streams")["hls"]["producers"][0]
        assert prod.get("format_name") == ("mp4" if segments else "mpegts"), prod
    finally:
        terminate(ff)
        files.shutdown()
        files.server_close()
