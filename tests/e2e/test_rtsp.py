"""RTSP: camrouter between a real camera (GStreamer's RTSP server) and real
players (ffprobe/ffmpeg)."""

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

from camera import camera_factory, send_backchannel  # noqa: F401
from conftest import children_of, free_port, wait_until


def probe(url, transport="tcp", timeout=30):
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", transport, "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=timeout,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["streams"]


def reader(url, frames=50):
    """An ffmpeg player that decodes `frames` video frames and prints one
    line per frame (framemd5)."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
         "-map", "0:v", "-frames:v", str(frames), "-f", "framemd5", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def frame_lines(out):
    return [l for l in out.splitlines() if l and not l.startswith("#")]


def test_restream_camera_with_digest_auth_to_five_readers(server_factory, camera_factory):
    cam = camera_factory(user="admin", password="s3cret", auth="digest", audio="aac")
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    url = f"{s.rtsp_url}/cam"
    streams = probe(url)
    kinds = {st["codec_type"]: st for st in streams}
    assert kinds["video"]["codec_name"] == "h264"
    assert (kinds["video"]["width"], kinds["video"]["height"]) == (640, 360)
    assert kinds["audio"]["codec_name"] == "aac"

    # The probe's upstream session may still linger (producers stop 2 s
    # after their last consumer) and be reused, or be gone: at most one
    # new session may open for the five readers.
    before = cam.sessions()
    readers = [reader(url, frames=150) for _ in range(5)]
    # Each reader is its own consumer (go2rtc's listing; viewers are counted
    # from it), though all five share one feed and one upstream session.
    seen = []

    def five_listed():
        seen[:] = s.get_json("/api/streams")["cam"]["consumers"]
        return len(seen) == 5 and all(c.get("bytes_send", 0) > 0 for c in seen)
    assert wait_until(five_listed, timeout=20), seen
    consumers = list(seen)
    assert len({c["remote_addr"] for c in consumers}) == 5
    assert len({c["id"] for c in consumers}) == 5
    for c in consumers:
        assert c["format_name"] == "rtsp" and c["protocol"] == "rtsp+tcp"
        assert c["remote_addr"].startswith("127.0.0.1:")
        assert c["user_agent"].startswith("Lavf"), c
        assert [m.split(",")[0] for m in c["medias"]] == ["video", "audio"], c
        assert c["packets"] > 0
    listed = s.get_json("/api/streams")["cam"]
    assert len(listed["producers"]) == 1
    assert listed["producers"][0]["url"] == cam.url.replace("s3cret", "***")
    most_active = 0
    while any(r.poll() is None for r in readers):
        most_active = max(most_active, cam.active_sessions())
        time.sleep(0.05)
    for r in readers:
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        assert len(frame_lines(out)) == 150
    assert most_active == 1, cam.output()
    assert cam.sessions() - before <= 1, cam.output()
    # Leaving removes them.
    assert wait_until(lambda: s.get_json("/api/streams")["cam"]["consumers"] == [], timeout=10), \
        s.get_json("/api/streams")["cam"]["consumers"]


def test_udp_and_filters(server_factory, camera_factory):
    cam = camera_factory(audio="pcma")
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    udp = probe(f"{s.rtsp_url}/cam", transport="udp")
    assert sorted(st["codec_name"] for st in udp) == ["h264", "pcm_alaw"]
    only_video = probe(f"{s.rtsp_url}/cam?video")
    assert [st["codec_type"] for st in only_video] == ["video"]
    both = probe(f"{s.rtsp_url}/cam?video&audio")
    assert sorted(st["codec_type"] for st in both) == ["audio", "video"]


def test_ingest_from_ffmpeg_publisher(server_factory, tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=480x270:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=300:sample_rate=48000", "-t", "20", "-c:v", "libx264", "-g", "25",
         "-c:a", "aac", str(clip)],
        check=True, timeout=120,
    )
    s = server_factory("streams:\n  pushed:\napi:\n  listen: 127.0.0.1:{port}\n").start()
    pub = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "rtsp",
         "-rtsp_transport", "tcp", f"{s.rtsp_url}/pushed"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: s.get_json("/api/streams")["pushed"]["producers"], timeout=15)
        streams = probe(f"{s.rtsp_url}/pushed")
        kinds = {st["codec_type"]: st for st in streams}
        assert kinds["video"]["codec_name"] == "h264" and kinds["video"]["width"] == 480
        assert kinds["audio"]["codec_name"] == "aac"
        r = reader(f"{s.rtsp_url}/pushed", frames=25)
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        assert len(frame_lines(out)) == 25
        prod = s.get_json("/api/streams")["pushed"]["producers"][0]
        assert prod["format_name"] == "rtsp" and prod["remote_addr"].startswith("127.0.0.1:")
    finally:
        pub.kill()
        pub.wait()
    # The publisher left: its producer goes away.
    assert wait_until(lambda: s.get_json("/api/streams")["pushed"]["producers"] == [], timeout=10)


def test_ffmpeg_source_transcodes_from_a_stream(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac")
    clip = tmp_path / "file.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi",
         "-i", "sine=sample_rate=44100", "-t", "30", "-c:v", "libx264", "-c:a", "aac", str(clip)],
        check=True, timeout=120,
    )
    s = server_factory(
        f"streams:\n  cam: {cam.url}\n  cam_mjpeg: ffmpeg:cam#video=mjpeg\n"
        f"  file: ffmpeg:{clip}#video=copy#audio=opus\napi:\n  listen: 127.0.0.1:{{port}}\n"
    ).start()
    mj = probe(f"{s.rtsp_url}/cam_mjpeg", timeout=60)
    assert [st["codec_name"] for st in mj] == ["mjpeg"]
    assert (mj[0]["width"], mj[0]["height"]) == (640, 360)
    f = probe(f"{s.rtsp_url}/file", timeout=60)
    assert sorted(st["codec_name"] for st in f) == ["h264", "opus"]


def test_reader_survives_camera_restart(server_factory, camera_factory):
    cam = camera_factory(audio="none", fps=25)
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    # 40 s of video at 25 fps: it can only finish if frames keep coming after the restart.
    r = reader(f"{s.rtsp_url}/cam", frames=400)
    time.sleep(0)  # let it connect; progress is checked below
    assert wait_until(lambda: cam.plays() >= 1, timeout=20)
    cam.restart()
    out, err = r.communicate(timeout=90)
    assert r.returncode == 0, err
    assert len(frame_lines(out)) == 400
    assert cam.sessions(all_runs=True) >= 2, "camrouter reconnected to the camera"


def test_two_way_audio_to_onvif_camera(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="pcmu", backchannel=True)
    tone = tmp_path / "tone.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
         "-t", "10", "-c:a", "pcm_s16le", str(tone)],
        check=True, timeout=60,
    )
    # Local files through the API only from a directory the config allows.
    s = server_factory(
        f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n"
        f"ffmpeg:\n  allow_dirs: [{tmp_path}]\n"
    ).start()
    info = s.get_json("/api/streams?src=cam&video=all&audio=all&microphone")
    assert "audio, sendonly, PCMU/8000" in info["producers"][0]["medias"]
    status, body, _ = s.request("POST", f"/api/streams?dst=cam&src=ffmpeg:{tone}%23audio=pcmu")
    assert status == 200, body
    out = cam.backchannel_file
    assert wait_until(lambda: out.exists() and out.stat().st_size > 8000, timeout=30), s.output()[-3000:]
    status, _, _ = s.request("POST", "/api/streams?dst=cam&src=")
    assert status == 200
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=15)


def test_server_auth_and_local_exemption(server_factory):
    src = "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=25 -c:v libx264 -f h264 -"
    s = server_factory(
        f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n"
        "rtsp:\n  listen: 127.0.0.1:{rtsp}\n  username: user\n  password: pass\n"
    ).start()
    # Loopback clients are exempt by default, as in go2rtc.
    assert probe(f"{s.rtsp_url}/cam")[0]["codec_name"] == "h264"

    s2 = server_factory(
        f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n"
        "rtsp:\n  listen: 127.0.0.1:{rtsp}\n  username: user\n  password: pass\n  local_auth: true\n"
    ).start()
    r = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s2.rtsp_url}/cam"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "401" in r.stderr
    # ffmpeg answers the Digest challenge.
    url = s2.rtsp_url.replace("rtsp://", "rtsp://user:pass@") + "/cam"
    assert probe(url)[0]["codec_name"] == "h264"


def test_malformed_requests_get_errors_not_crashes(server_factory):
    import socket

    s = server_factory("streams:\n  cam: exec:true\napi:\n  listen: 127.0.0.1:{port}\n").start()
    junk = [
        b"\x00\xff garbage \r\n\r\n",
        b"DESCRIBE rtsp://x/cam RTSP/1.0\r\n\r\n",  # no CSeq
        b"SETUP rtsp://x/cam/trackID=0 RTSP/1.0\r\nCSeq: 2\r\n\r\n",  # no Transport, no DESCRIBE
        b"PLAY rtsp://x/nope RTSP/1.0\r\nCSeq: 3\r\nSession: zzz\r\n\r\n",
        b"ANNOUNCE rtsp://x/cam RTSP/1.0\r\nCSeq: 4\r\nContent-Length: 5\r\n\r\nv=0\r\n",
        b"$\x00\xff\xff" + b"\x80" * 10,
        b"OPTIONS * RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 99999999999\r\n\r\n",
    ]
    statuses = []
    for j in junk:
        with socket.create_connection(("127.0.0.1", s.rtsp_port), timeout=5) as c:
            c.sendall(j)
            c.shutdown(socket.SHUT_WR)
            data = b""
            try:
                while chunk := c.recv(4096):
                    data += chunk
            except OSError:
                pass
            statuses += [l.split()[1] for l in data.decode("latin1").splitlines() if l.startswith("RTSP/1.0 ")]
    assert "400" in statuses or "454" in statuses or "455" in statuses, statuses
    assert s.proc.poll() is None
    # Still serving.
    r = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/missing"],
                       capture_output=True, text=True, timeout=30)
    assert "404" in r.stderr


def test_camera_over_udp(server_factory, camera_factory):
    cam = camera_factory(audio="pcmu")
    s = server_factory(
        f"streams:\n  cam: {cam.url}#transport=udp\napi:\n  listen: 127.0.0.1:{{port}}\n"
    ).start()
    r = reader(f"{s.rtsp_url}/cam", frames=50)
    assert wait_until(lambda: s.get_json("/api/streams")["cam"]["producers"][0].get("protocol") == "rtsp+udp", timeout=15)
    out, err = r.communicate(timeout=60)
    assert r.returncode == 0, err
    assert len(frame_lines(out)) == 50


def test_rtsp_client_talks_to_the_camera_through_camrouter(server_factory, camera_factory):
    """A client of our RTSP server sends audio on the `sendonly` media that
    `?microphone` adds; camrouter routes it to the camera's ONVIF backchannel."""
    cam = camera_factory(audio="pcmu", backchannel=True)
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    result = send_backchannel(f"{s.rtsp_url}/cam?video&microphone", packets=100, interval=0.02)
    assert "a=sendonly" in result["sdp"] and "PCMU/8000" in result["sdp"]
    out = cam.backchannel_file
    assert wait_until(lambda: out.exists() and out.stat().st_size >= 8000, timeout=20), (
        out.exists() and out.stat().st_size)


@contextlib.contextmanager
def ws_bridge(tmp_path, camera_port, *args):
    """ws_bridge.py in front of the camera; yields its port and log file."""
    port = free_port()
    log_path = tmp_path / f"bridge-{port}.log"
    log = open(log_path, "w+")
    bridge = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("ws_bridge.py")), str(port), str(camera_port), *args],
        stdout=log, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert wait_until(lambda: "READY" in log_path.read_text(), timeout=15), log_path.read_text()
        yield port, log_path
    finally:
        bridge.kill()
        bridge.wait()
        log.close()


def self_signed_cert(tmp_path):
    cert, key = tmp_path / "ws-cert.pem", tmp_path / "ws-key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return str(cert), str(key)


def assert_camera_video(streams):
    video = [st for st in streams if st["codec_type"] == "video"]
    assert len(video) == 1, streams
    assert video[0]["codec_name"] == "h264"
    assert (video[0]["width"], video[0]["height"]) == (640, 360)


def test_camera_over_websocket(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="none")
    with ws_bridge(tmp_path, cam.port, "wsuser:wspass") as (port, log):
        src = f"{cam.url}#transport=ws://wsuser:wspass@127.0.0.1:{port}/rtsp-over-websocket"
        s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
        r = reader(f"{s.rtsp_url}/cam", frames=30)
        assert wait_until(lambda: s.get_json("/api/streams")["cam"]["producers"][0].get("protocol") == "rtsp+ws", timeout=15)
        out, err = r.communicate(timeout=60)
        assert r.returncode == 0, err
        assert len(frame_lines(out)) == 30
        assert "WS CONNECT" in log.read_text()


def test_camera_over_websocket_with_digest_auth(server_factory, camera_factory, tmp_path):
    """A Digest-only WebSocket: Basic goes first, the 401's Digest challenge
    is answered on a second upgrade."""
    cam = camera_factory(audio="none")
    with ws_bridge(tmp_path, cam.port, "wsuser:wspass", "--auth", "digest") as (port, log):
        src = f"{cam.url}#transport=ws://wsuser:wspass@127.0.0.1:{port}/rtsp-over-websocket?channel=1"
        s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
        assert_camera_video(probe(f"{s.rtsp_url}/cam"))
        auth = [l for l in log.read_text().splitlines() if l.startswith("AUTH")]
        assert auth[:2] == ["AUTH Basic refused", "AUTH Digest ok"], auth
        assert "WS CONNECT" in log.read_text()


def test_camera_over_websocket_tls(server_factory, camera_factory, tmp_path):
    """wss:// verifies the certificate against the public roots, which a
    self-signed test certificate can't pass; wsx:// (go2rtc's no-verify
    convention) plays through it, here with Digest on the upgrade too."""
    cam = camera_factory(audio="none")
    cert, key = self_signed_cert(tmp_path)
    with ws_bridge(tmp_path, cam.port, "wsuser:wspass", "--auth", "digest", "--tls", cert, key) as (port, log):
        target = f"wsuser:wspass@127.0.0.1:{port}/rtsp-over-websocket"
        s = server_factory(
            f"streams:\n  cam: {cam.url}#transport=wsx://{target}\n"
            f"  strict: {cam.url}#transport=wss://{target}\n"
            "api:\n  listen: 127.0.0.1:{port}\n"
        ).start()
        assert_camera_video(probe(f"{s.rtsp_url}/cam"))
        assert s.get_json("/api/streams")["cam"]["producers"][0].get("protocol") == "rtsp+wss"
        assert "AUTH Digest ok" in log.read_text()

        started = time.time()
        r = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/strict"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert time.time() - started < 15
        assert wait_until(lambda: "invalid peer certificate" in s.output(), timeout=10), s.output()
        assert "wspass" not in s.output()


def test_websocket_wrong_password_is_a_clear_error(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="none")
    with ws_bridge(tmp_path, cam.port, "wsuser:wspass", "--auth", "digest") as (port, log):
        src = f"{cam.url}#transport=ws://wsuser:nope@127.0.0.1:{port}/rtsp-over-websocket"
        s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
        started = time.time()
        r = subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/cam"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert time.time() - started < 15, "failed fast, not after a timeout"
        assert wait_until(lambda: "wrong user or password" in s.output(), timeout=10), s.output()
        producer = s.get_json("/api/streams")["cam"]["producers"][0]
        assert "401 Unauthorized: wrong user or password" in producer["error"], producer
        assert "nope" not in s.output() and "nope" not in json.dumps(producer)
        # One Basic and one Digest attempt, no loop.
        auth = [l for l in log.read_text().splitlines() if l.startswith("AUTH")]
        assert auth[:2] == ["AUTH Basic refused", "AUTH Digest refused"], auth
        assert "WS CONNECT" not in log.read_text()


def test_two_publishers_into_one_stream(server_factory):
    s = server_factory("streams:\n  multi:\napi:\n  listen: 127.0.0.1:{port}\n").start()
    url = f"{s.rtsp_url}/multi"
    video = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
         "-c:v", "libx264", "-g", "25", "-f", "rtsp", "-rtsp_transport", "tcp", url],
        stderr=subprocess.PIPE, text=True,
    )
    audio = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-re", "-f", "lavfi", "-i", "sine=sample_rate=8000",
         "-c:a", "pcm_alaw", "-f", "rtsp", "-rtsp_transport", "tcp", url],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: len(s.get_json("/api/streams")["multi"]["producers"]) == 2, timeout=20)
        streams = probe(f"{url}?video&audio")
        assert sorted(st["codec_name"] for st in streams) == ["h264", "pcm_alaw"]
    finally:
        for p in (video, audio):
            p.kill()
            p.wait()


def test_deleting_a_stream_disconnects_its_rtsp_readers(server_factory):
    """A stream removed through the API ends its RTSP sessions, so players
    reconnect (or report the end) instead of waiting on a silent socket."""
    from conftest import FFMPEG_H264

    s = server_factory(f"streams:\n  cam: {FFMPEG_H264}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    r = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/cam",
         "-map", "0:v", "-f", "framemd5", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # Playing: the feed is a consumer of the stream and frames flow.
        assert wait_until(lambda: len(s.get_json("/api/streams").get("cam", {}).get("consumers") or []) == 1,
                          timeout=20), s.output()
        first = r.stdout.readline()
        assert first, r.stderr.read() if r.poll() is not None else "no output"
        status, _, _ = s.request("DELETE", "/api/streams?src=cam")
        assert status == 200
        out, err = r.communicate(timeout=15)
    finally:
        if r.poll() is None:
            r.kill()
            r.wait()
    frames = frame_lines(first + out)
    assert len(frames) >= 1, err
    assert "cam" not in s.get_json("/api/streams")
