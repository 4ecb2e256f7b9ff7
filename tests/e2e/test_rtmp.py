"""RTMP server (plugins/rtmp) with real peers: ffmpeg publishes into a
stream and plays from it, ffprobe reads what came in over RTSP; garbage and
slow handshakes are dropped without harm."""

import json
import socket
import subprocess
import time

from conftest import terminate, wait_until

LAVFI = ("-f lavfi -i testsrc2=size=320x240:rate=15 "
         "-f lavfi -i sine=frequency=440:sample_rate=44100")
CAM = (f"exec:ffmpeg -hide_banner -loglevel error -re {LAVFI} "
       "-c:v libx264 -g 15 -c:a aac -f mpegts -")


def config(streams, extra=""):
    lines = ["streams:"] + [f"  {k}: {v}" if v else f"  {k}:" for k, v in streams.items()]
    return "\n".join(lines) + "\napi:\n  listen: 127.0.0.1:{port}\n" + extra


def ffprobe(url, seconds, rtsp=False):
    """{codec_type: stream} of what ffprobe reads from `url` in `seconds`."""
    args = ["ffprobe", "-v", "error"]
    if rtsp:
        args += ["-rtsp_transport", "tcp"]
    args += ["-count_frames", "-read_intervals", f"%+{seconds}", "-show_entries",
             "stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json", url]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return {st["codec_type"]: st for st in json.loads(out.stdout)["streams"]}


def publisher(url, seconds=30):
    return subprocess.Popen(
        f"ffmpeg -hide_banner -loglevel error -re {LAVFI} -t {seconds} "
        f"-c:v libx264 -g 15 -c:a aac -f flv {url}".split(),
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def producers(s, name):
    return s.get_json("/api/streams")[name]["producers"]


def test_ffmpeg_publishes_and_rtsp_reads_it_back(server_factory):
    s = server_factory(config({"x": ""})).start()
    pub = publisher(f"{s.rtmp_url}/live/x")
    try:
        assert wait_until(lambda: any(p.get("medias") for p in producers(s, "x")), timeout=20), \
            (s.get_json("/api/streams"), s.output()[-2000:])
        prod = producers(s, "x")[0]
        assert prod["protocol"] == "rtmp" and prod["remote_addr"].startswith("127.0.0.1:"), prod
        got = ffprobe(f"{s.rtsp_url}/x", 3, rtsp=True)
        v, a = got["video"], got["audio"]
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240), v
        assert a["codec_name"] == "aac", a
        assert int(v["nb_read_frames"]) >= 20, v
        assert int(a["nb_read_frames"]) >= 20, a
    finally:
        terminate(pub)
    # The publisher left: so did its producer.
    assert wait_until(lambda: producers(s, "x") == [], timeout=15), s.get_json("/api/streams")


def test_publish_to_an_unknown_stream_is_refused(server_factory):
    s = server_factory(config({"x": ""})).start()
    pub = publisher(f"{s.rtmp_url}/live/nope", seconds=5)
    try:
        pub.wait(timeout=30)
    finally:
        terminate(pub)
    assert pub.returncode != 0
    assert "nope" not in s.get_json("/api/streams")
    assert "publish nope: stream not found" in s.output()


def test_publish_needs_the_configured_credentials(server_factory):
    s = server_factory(config({"x": ""}, "rtmp:\n  listen: 127.0.0.1:{rtmp}\n  username: u\n  password: p\n")).start()
    bad = publisher(f"{s.rtmp_url}/live/x?user=u&pass=wrong", seconds=5)
    try:
        bad.wait(timeout=30)
    finally:
        terminate(bad)
    assert bad.returncode != 0
    assert "publish x: not authorized" in s.output()
    assert producers(s, "x") == []
    good = publisher(f"{s.rtmp_url}/live/x?user=u&pass=p")
    try:
        assert wait_until(lambda: any(p.get("medias") for p in producers(s, "x")), timeout=20), \
            s.output()[-2000:]
    finally:
        terminate(good)


def test_publish_needs_the_api_credentials_when_api_auth_is_on(server_factory):
    s = server_factory(config({"x": ""}, "").replace(
        "api:\n", "api:\n  username: admin\n  password: secret\n")).start()
    for query in ("", "?user=admin&pass=wrong", "?user=nobody&pass=secret"):
        bad = publisher(f"{s.rtmp_url}/live/x{query}", seconds=5)
        try:
            bad.wait(timeout=30)
        finally:
            terminate(bad)
        assert bad.returncode != 0, query
    assert s.output().count("publish x: not authorized") == 3, s.output()[-2000:]
    good = publisher(f"{s.rtmp_url}/live/x?user=admin&pass=secret")
    try:
        assert wait_until(lambda: any(p.get("medias") for p in producers(s, "x")), timeout=20), \
            s.output()[-2000:]
    finally:
        terminate(good)


def test_rtmp_credentials_override_the_api_ones(server_factory):
    s = server_factory(config({"x": ""}, "rtmp:\n  listen: 127.0.0.1:{rtmp}\n  username: u\n  password: p\n")
                       .replace("api:\n", "api:\n  username: admin\n  password: secret\n")).start()
    bad = publisher(f"{s.rtmp_url}/live/x?user=admin&pass=secret", seconds=5)
    try:
        bad.wait(timeout=30)
    finally:
        terminate(bad)
    assert bad.returncode != 0
    good = publisher(f"{s.rtmp_url}/live/x?user=u&pass=p")
    try:
        assert wait_until(lambda: any(p.get("medias") for p in producers(s, "x")), timeout=20), \
            s.output()[-2000:]
    finally:
        terminate(good)


def test_players_share_one_feed_and_read_h264_aac(server_factory):
    s = server_factory(config({"cam": CAM})).start()
    players = [
        subprocess.Popen(
            ["ffprobe", "-v", "error", "-count_frames", "-read_intervals", "%+4", "-show_entries",
             "stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json",
             f"{s.rtmp_url}/cam"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(3)
    ]
    try:
        def listed():
            c = s.get_json("/api/streams")["cam"]["consumers"]
            return len(c) == 3 and all(x.get("protocol") == "rtmp" for x in c)
        # Each player is its own client of the one feed.
        assert wait_until(listed, timeout=20), s.get_json("/api/streams")["cam"]["consumers"]
        ids = {c["id"] for c in s.get_json("/api/streams")["cam"]["consumers"]}
        assert len(ids) == 3
        for p in players:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            got = {st["codec_type"]: st for st in json.loads(out)["streams"]}
            v, a = got["video"], got["audio"]
            assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240), v
            assert a["codec_name"] == "aac", a
            # 4 s of 15 fps, from a keyframe.
            assert int(v["nb_read_frames"]) >= 30, v
            assert int(a["nb_read_frames"]) >= 30, a
    finally:
        for p in players:
            terminate(p)
    assert wait_until(lambda: s.get_json("/api/streams")["cam"]["consumers"] == [], timeout=15)
    out = subprocess.run(["ffprobe", "-v", "error", f"{s.rtmp_url}/nope"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0


def test_publish_then_play_over_rtmp(server_factory):
    s = server_factory(config({"x": ""})).start()
    pub = publisher(f"{s.rtmp_url}/live/x")
    try:
        assert wait_until(lambda: any(p.get("medias") for p in producers(s, "x")), timeout=20)
        got = ffprobe(f"{s.rtmp_url}/x", 3)
        assert (got["video"]["codec_name"], got["video"]["width"]) == ("h264", 320), got
        assert int(got["video"]["nb_read_frames"]) >= 20, got
    finally:
        terminate(pub)


def test_garbage_and_slow_handshakes_are_dropped(server_factory):
    s = server_factory(config({"cam": CAM})).start()
    # Garbage: a bad version byte and noise.
    with socket.create_connection(("127.0.0.1", s.rtmp_port), timeout=10) as c:
        c.sendall(b"\x06" + b"\x55" * 3000)
        assert c.recv(100) == b""
    # A valid handshake, then chunks announcing an oversized message.
    with socket.create_connection(("127.0.0.1", s.rtmp_port), timeout=10) as c:
        c.sendall(b"\x03" + bytes(1536))
        got = b""
        while len(got) < 1 + 2 * 1536:
            got += c.recv(65536)
        c.sendall(bytes(1536) + b"\x03\x00\x00\x00\xff\xff\xff\x09\x00\x00\x00\x00")
        assert c.recv(100) == b""
    # Bogus AMF in a command.
    with socket.create_connection(("127.0.0.1", s.rtmp_port), timeout=10) as c:
        c.sendall(b"\x03" + bytes(1536))
        got = b""
        while len(got) < 1 + 2 * 1536:
            got += c.recv(65536)
        c.sendall(bytes(1536) + b"\x03\x00\x00\x00\x00\x00\x03\x14\x00\x00\x00\x00\x03\x00\x01")
        assert c.recv(100) == b""
    # Slowloris: half a handshake, then nothing; the server hangs up.
    slow = socket.create_connection(("127.0.0.1", s.rtmp_port), timeout=30)
    slow.sendall(b"\x03" + bytes(100))
    start = time.time()
    assert slow.recv(100) == b""
    assert time.time() - start < 25
    slow.close()
    # Each is dropped with a log line (written just after the close).
    for line in ("handshake: version is not 3", "message larger than the limit", "AMF0: truncated",
                 "no publish or play within 10 s"):
        assert wait_until(lambda: line in s.output(), timeout=10), (line, s.output()[-2000:])
    # Still serving.
    got = ffprobe(f"{s.rtmp_url}/cam", 2)
    assert got["video"]["codec_name"] == "h264"


# rtmp:// as a source, from a real RTMP server: nginx with libnginx-mod-rtmp.

NGINX_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"


NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"


def nginx_rtmp(tmp_path, port=None, tls_port=None):
    """nginx serving RTMP on a free 127.0.0.1 port (or `port`), in the foreground;
    with `tls_port`, its stream module terminates TLS there (a self-signed
    certificate for 127.0.0.1) in front of the RTMP port."""
    import os
    import pytest
    from conftest import free_port
    if not os.path.exists(NGINX_MODULE):
        pytest.skip("libnginx-mod-rtmp is not installed (tests/run.sh installs it)")
    port = port or free_port()
    d = tmp_path / "nginx"
    d.mkdir(exist_ok=True)
    conf = (
        f"load_module {NGINX_MODULE};\n"
        f"daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n"
        "events {}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n"
        "  application live { live on; record off; } } }\n"
    )
    if tls_port:
        if not os.path.exists(NGINX_STREAM_MODULE):
            pytest.skip("libnginx-mod-stream is not installed (tests/run.sh installs it)")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
            check=True, capture_output=True)
        conf = f"load_module {NGINX_STREAM_MODULE};\n" + conf + (
            f"stream {{ server {{ listen 127.0.0.1:{tls_port} ssl;\n"
            f"  ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;\n"
            f"  proxy_pass 127.0.0.1:{port}; }} }}\n")
    (d / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(["nginx", "-p", str(d), "-c", str(d / "nginx.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    from test_http_source import listening
    assert wait_until(lambda: listening(port), timeout=10), proc.stderr.read() if proc.poll() else ""
    return proc, port


def test_rtmp_source_from_nginx(server_factory, tmp_path):
    nginx, port = nginx_rtmp(tmp_path)
    pub = publisher(f"rtmp://127.0.0.1:{port}/live/cam", seconds=60)
    try:
        s = server_factory(config({"relay": f"rtmp://127.0.0.1:{port}/live/cam"})).start()
        got = ffprobe(f"{s.rtsp_url}/relay", 3, rtsp=True)
        v, a = got["video"], got["audio"]
        assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240), v
        assert a["codec_name"] == "aac", a
        assert int(v["nb_read_frames"]) >= 20, v
        assert int(a["nb_read_frames"]) >= 20, a
        prod = s.get_json("/api/streams")["relay"]["producers"][0]
        assert prod["format_name"] == "rtmp", prod
    finally:
        terminate(pub)
        terminate(nginx)


# Publishing to other servers: POST /api/streams?src=&dst=rtmp://… and publish:.

# An OBS-like stream key (Twitch's shape) in the path.
KEY = "live_8231_Xy7qZ0aB1cD2eF3g"


def publishers(s, name):
    return [c for c in s.get_json("/api/streams")[name]["consumers"]
            if c.get("format_name") == "rtmp"]


def assert_h264_aac(got, frames=20):
    v, a = got["video"], got["audio"]
    assert (v["codec_name"], v["width"], v["height"]) == ("h264", 320, 240), v
    assert a["codec_name"] == "aac", a
    assert int(v["nb_read_frames"]) >= frames, v
    assert int(a["nb_read_frames"]) >= frames, a


def test_api_publishes_to_nginx_and_nginx_plays_it(server_factory, tmp_path):
    nginx, port = nginx_rtmp(tmp_path)
    try:
        s = server_factory(config({"cam": CAM})).start()
        target = f"rtmp://127.0.0.1:{port}/live/{KEY}"
        status, body, _ = s.request("POST", f"/api/streams?src=cam&dst={target}")
        assert status == 200, (status, body)
        assert wait_until(lambda: publishers(s, "cam"), timeout=20), \
            (s.get_json("/api/streams"), s.output()[-2000:])
        c = publishers(s, "cam")[0]
        assert c["protocol"] == "rtmp" and c["remote_addr"] == f"127.0.0.1:{port}", c
        # What nginx relays to its own players is what we pushed.
        assert_h264_aac(ffprobe(target, 3))
        # Stopped through the API: the consumer leaves, nginx has nothing.
        status, _, _ = s.request("DELETE", f"/api/streams?src=cam&dst={target}")
        assert status == 200
        assert wait_until(lambda: not publishers(s, "cam"), timeout=15), s.get_json("/api/streams")
        assert "cam" in s.get_json("/api/streams")
        status, _, _ = s.request("DELETE", f"/api/streams?src=cam&dst={target}")
        assert status == 404
    finally:
        terminate(nginx)


def test_api_publish_errors(server_factory):
    s = server_factory(config({"cam": CAM})).start()
    status, _, _ = s.request("POST", "/api/streams?src=nope&dst=rtmp://127.0.0.1:1/live/x")
    assert status == 404
    # A dst without a scheme names a stream (play into its backchannel): not found.
    status, _, _ = s.request("POST", "/api/streams?src=cam&dst=nope")
    assert status == 404
    status, body, _ = s.request("POST", "/api/streams?src=cam&dst=foo://127.0.0.1/x")
    assert status == 500 and b"unsupported" in body, body
    status, body, _ = s.request("POST", "/api/streams?src=cam&dst=rtmp://")
    assert status == 500 and b"no host" in body, body
    # A target that refuses the connection: the API publisher ends and is forgotten.
    from conftest import free_port
    dead = f"rtmp://127.0.0.1:{free_port()}/live/x"
    status, _, _ = s.request("POST", f"/api/streams?src=cam&dst={dead}")
    assert status == 200
    assert wait_until(lambda: "publish: rtmp: dial" in s.output(), timeout=15), s.output()[-2000:]
    status, _, _ = s.request("DELETE", f"/api/streams?src=cam&dst={dead}")
    assert status == 404


def test_config_publish_to_ffmpeg_listening(server_factory, tmp_path):
    from conftest import free_port
    port = free_port()
    out = tmp_path / "got.flv"
    # ffmpeg as an RTMP server: takes one publisher, writes 3 s of it.
    listener = subprocess.Popen(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-listen", "1",
         "-i", f"rtmp://127.0.0.1:{port}/app/key", "-t", "3", "-c", "copy", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # Started before ffmpeg listens maybe: the publisher retries until it does.
        s = server_factory(config({"cam": CAM},
                                  f"publish:\n  cam: rtmp://127.0.0.1:{port}/app/key\n")).start()
        listener.wait(timeout=60)
        assert listener.returncode == 0, (listener.stderr.read(), s.output()[-2000:])
    finally:
        terminate(listener)
    assert_h264_aac(ffprobe(str(out), 10), frames=30)


def test_config_publish_comes_back_after_the_target_restarts(server_factory, tmp_path):
    nginx, port = nginx_rtmp(tmp_path)
    target = f"rtmp://127.0.0.1:{port}/live/{KEY}"
    try:
        s = server_factory(config({"cam": CAM},
                                  f"publish:\n  cam:\n    - {target}\n")).start()
        assert_h264_aac(ffprobe(target, 2), frames=10)
        terminate(nginx)
        assert wait_until(lambda: "publish: rtmp:" in s.output(), timeout=20), s.output()[-2000:]
        nginx, _ = nginx_rtmp(tmp_path, port)
        # Republished: nginx has the stream again.
        assert_h264_aac(ffprobe(target, 2), frames=10)
        assert len(publishers(s, "cam")) == 1, s.get_json("/api/streams")
        # The failure was logged without the stream key.
        assert f"127.0.0.1:{port}/live/…" in s.output() and KEY not in s.output(), s.output()[-2000:]
    finally:
        terminate(nginx)


def test_publish_leaves_g711_audio_out_with_a_log_line(server_factory, tmp_path):
    nginx, port = nginx_rtmp(tmp_path)
    video = ("exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=15 "
             "-c:v libx264 -g 15 -f mpegts -")
    pcma = ("exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i sine=sample_rate=8000 "
            "-c:a pcm_alaw -ar 8000 -ac 1 -f wav -")
    try:
        s = server_factory("streams:\n  cam:\n    - " + video + "\n    - " + pcma +
                           "\napi:\n  listen: 127.0.0.1:{port}\n").start()
        target = f"rtmp://127.0.0.1:{port}/live/{KEY}"
        status, body, _ = s.request("POST", f"/api/streams?src=cam&dst={target}")
        assert status == 200, (status, body)
        got = ffprobe(target, 3)
        v = got["video"]
        assert (v["codec_name"], v["width"]) == ("h264", 320) and int(v["nb_read_frames"]) >= 20, v
        assert "audio" not in got, got
        assert "publish: without audio: the stream has no AAC audio" in s.output()
    finally:
        terminate(nginx)


def test_rtmps_through_tls_in_front_of_nginx(server_factory, tmp_path):
    """nginx's stream module terminates TLS (self-signed) in front of nginx-rtmp:
    rtmpx:// pulls and publishes through it; rtmps:// checks the certificate
    and refuses it with a hint."""
    from conftest import free_port
    tls_port = free_port()
    nginx, port = nginx_rtmp(tmp_path, tls_port=tls_port)
    pub = publisher(f"rtmp://127.0.0.1:{port}/live/cam", seconds=60)
    try:
        s = server_factory(config({
            "relay": f"rtmpx://127.0.0.1:{tls_port}/live/cam",
            "checked": f"rtmps://127.0.0.1:{tls_port}/live/cam",
        })).start()
        assert_h264_aac(ffprobe(f"{s.rtsp_url}/relay", 3, rtsp=True))
        # Our relay published back through TLS, read from nginx's plain port.
        target = f"rtmpx://127.0.0.1:{tls_port}/live/{KEY}"
        status, body, _ = s.request("POST", f"/api/streams?src=relay&dst={target}")
        assert status == 200, (status, body)
        assert_h264_aac(ffprobe(f"rtmp://127.0.0.1:{port}/live/{KEY}", 3))
        # The self-signed certificate is not trusted by rtmps://.
        status, body, _ = s.request("GET", "/api/streams?src=checked&video")
        assert status == 500, (status, body)
        assert b"certificate" in body and b"rtmpx://" in body, body
    finally:
        terminate(pub)
        terminate(nginx)
