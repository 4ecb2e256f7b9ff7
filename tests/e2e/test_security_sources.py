"""Issue #13 §2, §5, §6: what API clients may make the server run or read,
credentials in errors and logs, and RTSP Digest bound to its URI. Each test
performs the attack and fails if it works."""

import base64
import hashlib
import json
import re
import socket
import subprocess
import urllib.parse

import pytest

from conftest import FFMPEG_H264, free_port

API = "api:\n  listen: 127.0.0.1:{port}\n"


def q(s):
    return urllib.parse.quote(s, safe="")


def put_stream(s, name, src, method="PUT"):
    return s.request(method, f"/api/streams?name={q(name)}&src={q(src)}")


def probe_api(s, name, media="video=all"):
    """Starts the stream's sources through the API (Frigate's probe)."""
    return s.request("GET", f"/api/streams?src={q(name)}&{media}")


# §2 ---------------------------------------------------------------------


def test_ffmpeg_raw_arguments_from_the_api_write_no_file(server_factory, tmp_path):
    """`#raw=` values become arguments: `-t 1 <file>` adds an output file.
    Today's code wrote it (through PUT, then a probe starting the stream)."""
    target = tmp_path / "pwned.mkv"
    s = server_factory(API).start()
    src = f"ffmpeg:virtual?video&size=160x120#video=h264#raw=-t#raw=1#raw={target}"
    status, body, _ = put_stream(s, "pwn", src)
    probe_api(s, "pwn")
    assert not target.exists()
    assert status == 400, (status, body)
    assert b"#raw" in body and b"refused" in body, body
    assert "pwn" not in s.get_json("/api/streams")
    assert "pwn" not in s.config_path.read_text()


def test_ffmpeg_filter_that_writes_a_file_is_refused(server_factory, tmp_path):
    """A `virtual` option value that closes the filter and adds `metadata`,
    which writes its `file=` (and any option naming a file, the same way)."""
    target = tmp_path / "pwned.txt"
    s = server_factory(API).start()
    src = (
        "ffmpeg:virtual?video&size=160x120"
        f"&format=yuv420p,metadata=mode=print:file={target}#video=h264"
    )
    status, body, _ = put_stream(s, "pwn", src)
    probe_api(s, "pwn")
    assert not target.exists()
    assert status == 400, (status, body)
    assert b"metadata" in body, body


@pytest.mark.parametrize(
    "kind",
    ["label", "two_drawtexts"],
)
def test_ffmpeg_filter_hidden_by_quotes_writes_no_file(server_factory, tmp_path, kind):
    """ffmpeg honours quotes inside `[labels]`, and the builder joins several
    `#drawtext` values with `,`: a quote that a check of each value alone
    takes as text ends in ffmpeg before `metadata=…:file=`, which writes its
    file. Both wrote the file before the check parsed labels as ffmpeg does
    and refused graphs ending inside a quote."""
    target = tmp_path / "pwned.txt"
    s = server_factory(
        "streams:\n  cam: ffmpeg:virtual?video&size=160x120#video=h264\n" + API
    ).start()
    meta = f"metadata=mode=print:file={target}"
    src = {
        "label": f"ffmpeg:cam#video=h264#drawtext=text=hi[x'],null=a'],{meta}",
        "two_drawtexts": f"ffmpeg:cam#video=h264#drawtext=text='a#drawtext=text=b'x,{meta}",
    }[kind]
    status, body, _ = put_stream(s, "pwn", src)
    probe_api(s, "pwn")
    assert not target.exists()
    assert status == 400, (status, body)
    assert b"refused" in body, body


@pytest.mark.parametrize(
    "src",
    [
        "ffmpeg:virtual?video#video=h264#raw=-y",
        "ffmpeg:virtual?video#video=-f",
        "ffmpeg:virtual?video#audio=-c:a",
        "ffmpeg:rtsp://127.0.0.1:1/x#input=-re",
        "ffmpeg:rtsp://127.0.0.1:1/x#input={input}",
        "ffmpeg:virtual?video#video=h264#bitrate=-f",
        "ffmpeg:virtual?video#video=h264#drawtext=textfile=/etc/passwd",
        "ffmpeg:virtual?video#video=h264#drawtext=/etc/passwd",
        "ffmpeg:virtual?video#video=h264#drawtext=text=a,movie=/etc/hostname",
        "ffmpeg:virtual?video=movie=/etc/hostname#video=h264",
        "ffmpeg:virtual?video=testsrc,subtitles=/etc/hostname#video=h264",
        "ffmpeg:virtual?video&rate=25,sendcmd=f=/etc/hostname#video=h264",
        "ffmpeg:virtual?video=testsrc,frei0r=filter_name=/tmp/x.so#video=h264",
        "ffmpeg:virtual?audio=amovie=/etc/hostname#audio=opus",
        "ffmpeg:virtual?audio=flite=textfile=/etc/passwd#audio=opus",
        "ffmpeg:/etc/hostname",
        "ffmpeg:file:/etc/hostname#video=h264",
        "ffmpeg:file:///etc/hostname",
        "ffmpeg:concat:/etc/hostname|/etc/hostname",
        "ffmpeg:device?video=/etc/hostname",
        "ffmpeg:device?audio=file:/tmp/x",
    ],
)
def test_ffmpeg_injections_are_refused_on_every_api_path(server_factory, src):
    s = server_factory(
        "streams:\n  cam: ffmpeg:virtual?video&size=160x120#video=h264\n" + API
    ).start()
    for method in ("PUT", "PATCH"):
        status, body, _ = put_stream(s, "pwn", src, method)
        assert status == 400, (method, src, status, body)
        assert body.startswith(b"streams: ffmpeg: "), body
    # go2rtc's "play to camera" opens a URL `src` too.
    status, body, _ = s.request("POST", f"/api/streams?dst=cam&src={q(src)}")
    assert status == 400, (src, status, body)
    assert "pwn" not in s.get_json("/api/streams")
    assert src not in json.dumps(s.get_json("/api/streams"))


def test_config_file_and_legitimate_api_sources_still_work(server_factory, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    clip = media / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10",
         "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip)],
        check=True, timeout=60,
    )
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(clip.read_bytes())
    (media / "link.mp4").symlink_to(outside)
    # The config file may use #raw (as in go2rtc); API sources may not.
    s = server_factory(
        "streams:\n  cfg: ffmpeg:virtual?video&size=160x120#video=h264#raw=-bf#raw=0\n"
        + API
        + f"ffmpeg:\n  allow_dirs: [{media}]\n"
    ).start()
    status, body, _ = probe_api(s, "cfg")
    assert status == 200, body
    ok = {
        "gen": "ffmpeg:virtual?video&size=160x120#video=h264#width=-2#height=96",
        "text": "ffmpeg:virtual?video&size=160x120#video=h264#drawtext=fontsize=20:text='a,b'",
        "file": f"ffmpeg:{clip}#video=h264",
        # Quotes, colons and commas are spoken words, escaped for lavfi.
        "tts": "ffmpeg:tts?text=it's%205:30,ok&voice=slt#audio=pcmu",
    }
    for name, src in ok.items():
        status, body, _ = put_stream(s, name, src)
        assert status == 200, (src, body)
        status, body, _ = probe_api(s, name, "audio=all" if name == "tts" else "video=all")
        assert status == 200, (src, body)
        assert json.loads(body)["producers"][0]["medias"], body
    for path in (outside, media / ".." / "outside.mp4", media / "link.mp4"):
        status, body, _ = put_stream(s, "bad", f"ffmpeg:{path}")
        assert status == 400 and b"allow_dirs" in body, (path, body)


# §5 ---------------------------------------------------------------------


def test_credentials_stay_out_of_errors_and_logs(server_factory):
    """Sources with a camera's password that fail: ffmpeg prints the URL on
    stderr, exec logs the command and stderr (trace), echo logs what it
    resolved (debug); the API error and both logs must not carry it."""
    closed = free_port()
    cam = f"rtsp://admin:S3cretFF@127.0.0.1:{closed}/cam"
    s = server_factory(
        "streams:\n"
        f"  ff: ffmpeg:{cam}#video=h264\n"
        f"  ex: exec:ffmpeg -hide_banner -i rtsp://admin:S3cretEX@127.0.0.1:{closed}/cam -c copy -f rtsp {{output}}\n"
        f"  ec: echo:echo rtsp://admin:S3cretEC@127.0.0.1:{closed}/cam\n"
        f"  qs: ffmpeg:http://127.0.0.1:{closed}/snap.jpg?user=admin&password=S3cretQS#video=h264\n"
        f"  na: rtsp://admin:S3cretNA@127.0.0.1:{closed}/cam\n"
        + API
        + "log:\n  level: trace\n  exec: trace\n  ffmpeg: trace\n  echo: trace\n"
    ).start()
    for name in ("ff", "ex", "ec", "qs", "na"):
        status, body, _ = probe_api(s, name)
        assert status >= 400, (name, status, body)
        assert b"S3cret" not in body, (name, body)
        assert b"***" in body, (name, body)  # the URL is in the error, masked
    log = s.request("GET", "/api/log")[1].decode()
    out = s.output()
    streams = json.dumps(s.get_json("/api/streams"))
    # The lines that used to leak were emitted, masked.
    for line in ("ffmpeg: command", "exec: started", "stderr:", "echo: resolved"):
        assert line in log and line in out, line
    assert "admin:***@127.0.0.1" in log and "password=***" in log
    for where, text in (("/api/log", log), ("stdout", out), ("/api/streams", streams)):
        assert "S3cret" not in text, (where, re.findall(r".{80}S3cret.{20}", text)[:3])


def test_credentials_stay_out_of_websocket_errors(server_factory):
    """/api/ws errors quote what the client sent; they pass the same mask."""
    from websockets.sync.client import connect

    s = server_factory(API).start()
    with connect(f"ws://127.0.0.1:{s.port}/api/ws?src=x") as ws:
        ws.send(json.dumps({"type": "rtsp://admin:S3cretWS@cam/s?token=S3cretTK"}))
        msg = json.loads(ws.recv(timeout=10))
    assert msg["type"] == "error", msg
    assert "S3cret" not in msg["value"] and "admin:***@cam" in msg["value"], msg


# §6 ---------------------------------------------------------------------


def rtsp_request(sock, method, url, cseq, headers=()):
    msg = f"{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\n"
    for h in headers:
        msg += h + "\r\n"
    sock.sendall((msg + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs.setdefault(k.strip().lower(), []).append(v.strip())
    length = int(hdrs.get("content-length", ["0"])[0])
    while len(rest) < length:
        rest += sock.recv(4096)
    return int(lines[0].split()[1]), hdrs


def digest(user, password, realm, nonce, method, uri):
    h = lambda s: hashlib.md5(s.encode()).hexdigest()
    resp = h(f"{h(f'{user}:{realm}:{password}')}:{nonce}:{h(f'{method}:{uri}')}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", '
            f'uri="{uri}", response="{resp}"')


def test_rtsp_digest_answer_for_one_path_does_not_open_another(server_factory):
    # A pipe source: with local_auth, an `{output}` publisher would need credentials.
    src = FFMPEG_H264
    s = server_factory(
        f"streams:\n  a: {src}\n  b: {src}\n" + API
        + "rtsp:\n  listen: 127.0.0.1:{rtsp}\n  username: admin\n  password: secret\n  local_auth: true\n"
    ).start()
    url_a, url_b = f"{s.rtsp_url}/a", f"{s.rtsp_url}/b"
    with socket.create_connection(("127.0.0.1", s.rtsp_port), timeout=30) as sock:
        status, hdrs = rtsp_request(sock, "DESCRIBE", url_a, 1)
        assert status == 401
        challenge = next(v for v in hdrs["www-authenticate"] if v.startswith("Digest"))
        realm = re.search(r'realm="([^"]*)"', challenge).group(1)
        nonce = re.search(r'nonce="([^"]*)"', challenge).group(1)
        auth = "Authorization: " + digest("admin", "secret", realm, nonce, "DESCRIBE", url_a)
        status, _ = rtsp_request(sock, "DESCRIBE", url_a, 2, [auth])
        assert status == 200
        # The attack: the same answer, for another path, on the same connection.
        status, _ = rtsp_request(sock, "DESCRIBE", url_b, 3, [auth])
        assert status == 401
        status, _ = rtsp_request(sock, "DESCRIBE", url_a + "/", 4, [auth])
        assert status == 200, "a trailing slash is the same resource"
    # Clients that answer Digest for what they request still play.
    cred_url = s.rtsp_url.replace("rtsp://", "rtsp://admin:secret@") + "/b"
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json", cred_url],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["streams"][0]["codec_name"] == "h264"
    # GStreamer's rtspsrc answers Digest for each request URI, SETUP's control URL too.
    for user_pw, expect in (("secret", 0), ("wrong", 1)):
        r = subprocess.run(
            ["/usr/bin/python3", "-c", GST_PLAY, f"{s.rtsp_url}/b?video", "admin", user_pw],
            capture_output=True, text=True, timeout=60,
        )
        assert r.returncode == expect, (user_pw, r.stdout, r.stderr)


# Plays 20 H.264 frames with rtspsrc (system Python: GStreamer's bindings).
GST_PLAY = """
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst
Gst.init(None)
p = Gst.parse_launch(
    f"rtspsrc location={sys.argv[1]} user-id={sys.argv[2]} user-pw={sys.argv[3]} protocols=tcp"
    " ! rtph264depay ! h264parse ! fakesink num-buffers=20")
p.set_state(Gst.State.PLAYING)
m = p.get_bus().timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
p.set_state(Gst.State.NULL)
ok = m is not None and m.type == Gst.MessageType.EOS
print("EOS" if ok else (m.parse_error() if m else "timeout"))
sys.exit(0 if ok else 1)
"""
