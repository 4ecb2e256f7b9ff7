"""Attacks on the HTTP API and the listeners, each performed for real: the test
fails if the attack works (issue 13: CSRF and DNS rebinding, config loss,
unbounded connections)."""

import asyncio
import base64
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import urllib.request

import aiohttp
import pytest
import websockets

from camera import camera_factory  # noqa: F401  (fixture)
from conftest import BIN, ROOT, free_port, wait_until

YAML = {"Content-Type": "application/yaml"}


def raw_request(port, data, timeout=10, half_close=False):
    """Sends raw bytes to 127.0.0.1:port (from a thread, so a server that
    answers before reading everything is heard), returns what came back
    ("" when the server reset the connection). With `half_close` the client
    shuts its sending side after the data (a request cut off)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:

        def send():
            try:
                c.sendall(data)
                if half_close:
                    c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=send)
        t.start()
        out = b""
        try:
            while chunk := c.recv(65536):
                out += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        t.join()
        return out


def status_of(answer):
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def vm_hwm_kb(pid):
    """Peak resident memory of a process, from /proc."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def alias_bomb():
    """About 20 KB of YAML whose aliases expand to 16 million nodes."""
    lines = ["# an ordinary looking config with a few aliases", "streams:"]
    lines += [f"  cam{i}: rtsp://10.0.0.{i % 250}:554/stream{i}" for i in range(400)]
    lines.append("a0: &a0 [" + ", ".join(["lol"] * 250) + "]")
    lines.append("a1: &a1 [" + ", ".join(["*a0"] * 250) + "]")
    lines.append("a2: &a2 [" + ", ".join(["*a1"] * 256) + "]")
    return ("\n".join(lines) + "\n").encode()


def browse(url):
    """Opens `url` in headless Chromium; returns the page's window.result."""
    r = subprocess.run(
        ["node", str(ROOT / "tests/browser/visit.mjs"), url], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class Site:
    """A web site on another origin (its own port on 127.0.0.1)."""

    def __init__(self, root):
        handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **kw)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://localhost:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# An exec: stream whose command leaves a mark, written as a text/plain form
# posts it: "name=value", the "=" hidden in a YAML comment.
def pwn_yaml(mark):
    return f"api:\n  listen: 127.0.0.1:{{port}}\nstreams:\n  pwn: exec:touch {mark}\npreload:\n  pwn: video\n#"


EVIL_PAGE = """<!doctype html><title>cats</title>
<iframe name="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink" action="{api}/api/config">
<input type="hidden" id="n" name="" value="">
</form>
<script>
window.result = {{}};
document.getElementById('n').name = {yaml};
document.getElementById('f').submit();
setTimeout(async () => {{
  // The same with fetch (no preflight for a no-cors POST), then a restart.
  await fetch('{api}/api/config', {{method: 'POST', mode: 'no-cors', body: {yaml}}}).catch(() => {{}});
  await fetch('{api}/api/restart', {{method: 'POST', mode: 'no-cors'}}).catch(() => {{}});
  // Reading the config: not readable cross-origin.
  try {{ window.result.config = await (await fetch('{api}/api/config')).text(); }}
  catch (e) {{ window.result.config = 'error'; }}
  const ws = new WebSocket('{ws}/api/ws?src=cam');
  window.result.ws = await new Promise((ok) => {{
    ws.onopen = () => ok('open');
    ws.onerror = () => ok('error');
  }});
  document.title = 'done';
}}, 1500);
</script>
"""


# --- 1. A web page must not drive the API -----------------------------------


def test_csrf_from_a_foreign_page_in_a_browser(server_factory, tmp_path):
    """A page on another origin posts a text/plain form (and fetches) to
    /api/config, restarts the server and opens /api/ws: nothing works, with
    auth configured and the loopback exemption on."""
    mark = tmp_path / "PWNED"
    s = server_factory(
        "# keep me\napi:\n  listen: 127.0.0.1:{port}\n  username: admin\n  password: secret\n"
        "streams:\n  cam: exec:true\n"
    ).start()
    before = s.config_path.read_bytes()
    site_dir = tmp_path / "evil"
    site_dir.mkdir()
    yaml = pwn_yaml(mark).replace("{port}", str(s.port))
    (site_dir / "index.html").write_text(
        EVIL_PAGE.format(api=s.url, ws=s.url.replace("http", "ws"), yaml=json.dumps(yaml))
    )
    site = Site(site_dir)
    try:
        result = browse(site.url + "/index.html")
    finally:
        site.close()
    assert s.config_path.read_bytes() == before, "the page rewrote the config"
    assert result["ws"] == "error", result
    assert result["config"] == "error", result
    # The page went on for a while after asking for the restart (100 ms delay).
    assert "restart requested" not in s.output()
    assert not mark.exists()
    out = s.output()
    assert "refused a cross-origin POST /api/config from http://localhost:" in out
    assert out.count("refused a cross-origin POST /api/config") == 1, "logged once"


RTSP_PAGE = """<!doctype html><title>cats</title>
<script>
window.result = {{}};
(async () => {{
  const body = Uint8Array.from(atob('{body}'), (c) => c.charCodeAt(0));
  // An HTTP POST to the RTSP port: its body is RTSP requests and frames.
  await fetch('{url}', {{method: 'POST', mode: 'no-cors', body}}).catch(() => {{}});
  document.title = 'done';
}})();
</script>
"""


def rtsp_publish_bytes(url):
    """ANNOUNCE, SETUP and RECORD of one H.264 track (no Session header: a
    page cannot read the replies) and a few interleaved RTP packets."""
    sdp = (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n"
        "a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0IAHpWoKA9k,aM48gA==\r\n"
        "a=control:trackID=0\r\n"
    )
    msgs = (
        f"ANNOUNCE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}"
        f"SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\r\n"
        f"RECORD {url} RTSP/1.0\r\nCSeq: 3\r\n\r\n"
    ).encode()
    rtp = b""
    for i in range(5):
        pkt = bytes([0x80, 96]) + i.to_bytes(2, "big") + (i * 3000).to_bytes(4, "big") + (1234).to_bytes(4, "big")
        pkt += b"\x65" + b"\x88" * 100
        rtp += b"$\x00" + len(pkt).to_bytes(2, "big") + pkt
    return msgs + rtp


def test_page_cannot_publish_through_the_rtsp_port(server_factory, tmp_path):
    """A browser sends an HTTP POST wherever a page asks (8554 is no blocked
    port). The RTSP server skipped its HTTP head as garbage and acted on the
    body: a page on any site published video into a camera's stream through
    the loopback exemption, with rtsp.username set. A connection that starts
    with something other than an RTSP message is now closed."""
    s = server_factory(
        "api:\n  listen: 127.0.0.1:{port}\nrtsp:\n  listen: 127.0.0.1:{rtsp}\n  username: admin\n  password: secret\n"
        "streams:\n  cam: exec:true\nlog:\n  rtsp: debug\n"
    ).start()
    rtsp = f"http://127.0.0.1:{s.rtsp_port}/"
    body = rtsp_publish_bytes(f"rtsp://127.0.0.1:{s.rtsp_port}/cam")
    site_dir = tmp_path / "evil"
    site_dir.mkdir()
    (site_dir / "index.html").write_text(RTSP_PAGE.format(url=rtsp, body=base64.b64encode(body).decode()))
    site = Site(site_dir)
    try:
        browse(site.url + "/index.html")
    finally:
        site.close()
    assert "publisher announced" not in s.output(), s.output()[-2000:]
    # The same bytes straight from a socket: no RTSP answer, the connection closed.
    head = f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{s.rtsp_port}\r\nContent-Length: {len(body)}\r\n\r\n"
    answer = raw_request(s.rtsp_port, head.encode() + body)
    assert b"RTSP/1.0 200" not in answer, answer
    producers = s.get_json("/api/streams")["cam"]["producers"]
    assert [p.get("format_name") for p in producers] == [None], producers


def test_go2rtc_editor_and_ws_from_our_own_page(server_factory, tmp_path):
    """go2rtc's config editor posts text/plain from the server's own origin:
    that keeps working, as does /api/ws from our own page."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "editor.html").write_text("""<!doctype html><title>editor</title><script>
window.result = {};
(async () => {
  const text = await (await fetch('api/config', {cache: 'no-cache'})).text();
  const r = await fetch('api/config', {method: 'POST', body: text + '# edited\\n'});
  window.result.post = r.status;
  const ws = new WebSocket(location.href.replace('http', 'ws').replace('editor.html', 'api/ws?src=cam'));
  window.result.ws = await new Promise((ok) => { ws.onopen = () => ok('open'); ws.onerror = () => ok('error'); });
  document.title = 'done';
})();
</script>""")
    s = server_factory(
        f"api:\n  listen: 127.0.0.1:{{port}}\n  static_dir: {www}\nstreams:\n  cam: exec:true\n"
    ).start()
    result = browse(s.url + "/editor.html")
    assert result == {"post": 200, "ws": "open"}, result
    assert s.config_path.read_text().endswith("# edited\n")


def test_foreign_origin_refused_on_writes_and_ws_whatever_the_auth(server_factory):
    s = server_factory(
        "api:\n  listen: 127.0.0.1:{port}\n  username: admin\n  password: secret\nstreams:\n  cam: exec:true\n"
    ).start()
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
    evil = {"Origin": "http://evil.example"}
    for headers in (evil, {**evil, **auth}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"}):
        status, body, _ = s.request("PUT", "/api/streams?src=rtsp://10.0.0.1/x&name=added", headers=headers)
        assert status == 403, (headers, status, body)
        status, _, _ = s.request("DELETE", "/api/streams?src=cam", headers=headers)
        assert status == 403
    assert set(s.get_json("/api/streams")) == {"cam"}
    # The same from the server's own origin, and from a client that is no browser.
    own = {"Origin": s.url}
    assert s.request("PUT", "/api/streams?src=rtsp://10.0.0.1/x&name=added", headers=own)[0] == 200
    assert s.request("PUT", "/api/streams?src=rtsp://10.0.0.1/y&name=other")[0] == 200
    assert set(s.get_json("/api/streams")) == {"cam", "added", "other"}

    async def ws(origin, headers=None):
        try:
            async with websockets.connect(
                s.url.replace("http", "ws") + "/api/ws?src=cam", origin=origin, additional_headers=headers
            ):
                return 101
        except websockets.exceptions.InvalidStatus as e:
            return e.response.status_code

    assert asyncio.run(ws("http://evil.example")) == 403
    assert asyncio.run(ws("http://evil.example", auth)) == 403
    assert asyncio.run(ws(s.url)) == 101
    assert asyncio.run(ws(None)) == 101


def test_config_writes_need_a_type_no_form_can_send(server_factory):
    s = server_factory("# keep me\napi:\n  listen: 127.0.0.1:{port}\n").start()
    before = s.config_path.read_bytes()
    new = f"api:\n  listen: 127.0.0.1:{s.port}\nstreams:\n  x: exec:true\n".encode()
    # What forms send, and no type at all; no Origin (a browser that sends none).
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": ctype} if ctype else {}
        req = f"POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(new)}\r\n"
        req += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "Connection: close\r\n\r\n"
        answer = raw_request(s.port, req.encode() + new)
        assert status_of(answer) == 415, (ctype, answer)
        assert b"Content-Type: application/yaml" in answer
    assert s.config_path.read_bytes() == before
    for ctype in ("application/yaml", "application/json; charset=utf-8", "text/yaml"):
        body = new if "json" not in ctype else json.dumps({"streams": {"y": "exec:true"}}).encode()
        status, resp, _ = s.request("POST", "/api/config", body=body, headers={"Content-Type": ctype})
        assert status == 200, (ctype, resp)
    # go2rtc's editor: text/plain, from our own origin.
    status, _, _ = s.request(
        "POST", "/api/config", body=new, headers={"Content-Type": "text/plain;charset=UTF-8", "Origin": s.url}
    )
    assert status == 200


def test_dns_rebinding_host_is_refused(server_factory, tmp_path):
    sock = tmp_path / "api.sock"
    s = server_factory(
        f"api:\n  listen: 127.0.0.1:{{port}}\n  unix_listen: {sock}\n  allowed_hosts: [cams.example.com]\n"
        "streams:\n  cam: rtsp://admin:secret@10.0.0.1/x\n"
    ).start()

    def get(path, host):
        answer = raw_request(s.port, f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return status_of(answer), answer

    # A page on rebind.evil.example whose name now resolves to 127.0.0.1.
    for path in ("/api/config", "/api/streams", "/api", "/"):
        status, answer = get(path, f"rebind.evil.example:{s.port}")
        assert status == 403, (path, answer)
        assert b"secret" not in answer
    assert get("/api/config", "nvr.lan")[0] == 403
    # Names public DNS never answers (what Frigate's proxy or Home Assistant's
    # ingress pass on) need no listing.
    local_names = ("frigate:5000", "ccab4aaf-frigate", "nvr.local", "cam.home.arpa")
    for host in (f"127.0.0.1:{s.port}", f"localhost:{s.port}", f"[::1]:{s.port}", "cams.example.com", socket.gethostname(), *local_names):
        assert get("/api", host)[0] == 200, host
    # One line per refused name, however often it comes.
    assert s.output().count("refused requests for host") == 2

    async def over_unix():
        conn = aiohttp.UnixConnector(path=str(sock))
        async with aiohttp.ClientSession(connector=conn) as session:
            async with session.get("http://anything.example/api/streams") as r:
                return r.status

    # No browser reaches a unix socket: any Host name is fine there.
    assert asyncio.run(over_unix()) == 200


def test_any_origin_keeps_config_unreadable_and_admin_paths_closed(server_factory):
    s = server_factory('api:\n  listen: 127.0.0.1:{port}\n  origin: "*"\nstreams:\n  cam: exec:true\n').start()
    evil = {"Origin": "http://evil.example"}
    status, _, headers = s.request("GET", "/api/config", headers=evil)
    assert "access-control-allow-origin" not in headers
    status, _, headers = s.request("GET", "/api/streams", headers=evil)
    assert status == 200 and headers["access-control-allow-origin"] == "*"
    # go2rtc's meaning of "*": other sites may use the media API...
    assert s.request("PUT", "/api/streams?src=rtsp://10.0.0.1/x&name=added", headers=evil)[0] == 200
    # ... but never rewrite the config or restart the server.
    status, _, _ = s.request(
        "POST", "/api/config", body=b"streams: {}\n", headers={**evil, "Content-Type": "application/yaml"}
    )
    assert status == 403
    assert s.request("POST", "/api/restart", headers=evil)[0] == 403
    assert s.request("OPTIONS", "/api/streams", headers=evil)[2]["access-control-allow-origin"] == "*"


def curl_headers(url, origin, seconds=4):
    """The answer's status and headers as curl gets them with `Origin` set
    (a page on another site embedding the URL); streaming answers are cut
    after `seconds`."""
    p = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-D", "-", "--max-time", str(seconds), "-H", f"Origin: {origin}", url],
        capture_output=True, text=True, timeout=seconds + 20)
    lines = p.stdout.replace("\r", "").split("\n")
    assert lines and lines[0].startswith("HTTP/"), (p.returncode, p.stdout, p.stderr)
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


MEDIA_PATHS = [
    "/api/stream.mp4?src=cam",
    "/api/frame.mp4?src=cam",
    "/api/stream.m3u8?src=cam",
    "/api/frame.jpeg?src=cam",
    "/api/stream.mjpeg?src=cam",
    "/api/stream.ts?src=cam",
]


def test_any_origin_lets_other_sites_read_the_media_paths(server_factory, camera_factory):
    # go2rtc's `origin: "*"`: a page on another origin may fetch the media
    # (MSE over fetch, hls.js, <img> drawn to a canvas) and read it.
    cam = camera_factory(audio="none")
    cfg = f'api:\n  listen: 127.0.0.1:{{port}}\n  origin: "*"\nstreams:\n  cam: {cam.url}\n'
    s = server_factory(cfg).start()
    evil = "http://nvr-dashboard.example"
    for path in MEDIA_PATHS:
        status, headers = curl_headers(s.url + path, evil)
        assert status == 200, (path, status, headers)
        assert headers.get("access-control-allow-origin") == "*", (path, headers)
    # hls.js fetches the playlist's segments cross-origin too.
    from urllib.parse import urljoin
    url = s.url + "/api/stream.m3u8?src=cam"
    while True:
        with urllib.request.urlopen(url, timeout=30) as r:
            lines = [l for l in r.read().decode().splitlines() if l and not l.startswith("#")]
        assert lines, url
        url = urljoin(url, lines[0])
        if ".m3u8" not in url:
            break
    status, headers = curl_headers(url, evil)
    assert status == 200 and headers.get("access-control-allow-origin") == "*", (url, headers)
    # The admin paths stay closed to that page.
    status, headers = curl_headers(s.url + "/api/config", evil)
    assert "access-control-allow-origin" not in headers, headers
    assert s.request("POST", "/api/exit", headers={"Origin": evil})[0] == 403
    assert s.proc.poll() is None


def test_without_origin_config_other_sites_cannot_read_media(server_factory, camera_factory):
    cam = camera_factory(audio="none")
    s = server_factory(f"api:\n  listen: 127.0.0.1:{{port}}\nstreams:\n  cam: {cam.url}\n").start()
    for path in ("/api/frame.jpeg?src=cam", "/api/stream.mp4?src=cam"):
        status, headers = curl_headers(s.url + path, "http://evil.example")
        assert status == 200, (path, status)
        assert "access-control-allow-origin" not in headers, (path, headers)
    # A listed origin gets its own name back, with credentials.
    s2 = server_factory(
        f'api:\n  listen: 127.0.0.1:{{port}}\n  origin: ["https://ha.example.com"]\nstreams:\n  cam: {cam.url}\n'
    ).start()
    status, headers = curl_headers(s2.url + "/api/stream.mp4?src=cam", "https://ha.example.com")
    assert status == 200
    assert headers.get("access-control-allow-origin") == "https://ha.example.com", headers


def test_listed_origin_is_trusted(server_factory):
    s = server_factory('api:\n  listen: 127.0.0.1:{port}\n  origin: ["https://ha.example.com"]\n').start()
    ha = {"Origin": "https://ha.example.com", "Content-Type": "application/yaml"}
    body = f"api:\n  listen: 127.0.0.1:{s.port}\n  origin: [https://ha.example.com]\n".encode()
    status, _, headers = s.request("POST", "/api/config", body=body, headers=ha)
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://ha.example.com"
    assert headers["access-control-allow-credentials"] == "true"
    status, _, headers = s.request("GET", "/api/streams", headers={"Origin": "https://other.example.com"})
    assert "access-control-allow-origin" not in headers


# --- 3. Config writes never lose the config ---------------------------------


def test_oversized_config_post_is_413_and_file_unchanged(server_factory):
    s = server_factory("# keep me\napi:\n  listen: 127.0.0.1:{port}\n").start()
    before = s.config_path.read_bytes()
    big = b"streams:\n" + b"".join(b"  s%d: rtsp://h/%d\n" % (i, i) for i in range(200_000))
    assert len(big) > 2 << 20
    head = (
        b"POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
        b"Content-Length: %d\r\n\r\n" % len(big)
    )
    # Refused on the announced length, before the body is read.
    answer = raw_request(s.port, head)
    assert status_of(answer) == 413, answer[:200]
    answer = raw_request(s.port, head + big)
    assert status_of(answer) in (413, None), answer[:200]
    # Chunked, with no length announced: the limit holds while reading.
    head = (
        b"POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(big[i : i + 65536]), big[i : i + 65536]) for i in range(0, len(big), 65536))
    answer = raw_request(s.port, head + chunks + b"0\r\n\r\n")
    assert status_of(answer) in (413, None), answer[:200]
    assert s.config_path.read_bytes() == before
    assert s.request("GET", "/api/streams")[0] == 200


def test_cut_off_or_empty_config_body_is_400_and_file_unchanged(server_factory):
    s = server_factory("# keep me\napi:\n  listen: 127.0.0.1:{port}\nstreams:\n  cam: rtsp://h/1\n").start()
    before = s.config_path.read_bytes()
    new = b"streams:\n  other: rtsp://h/2\n" * 20
    # The client announces 600 bytes, sends 100 and goes away.
    head = (
        b"POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
        b"Content-Length: 600\r\n\r\n"
    )
    answer = raw_request(s.port, head + new[:100], half_close=True)
    # The server may also just close: what matters is the file.
    assert status_of(answer) in (400, None), answer[:200]
    # A chunked body that stops mid-chunk.
    head = (
        b"POST /api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    answer = raw_request(s.port, head + b"258\r\n" + new[:100], half_close=True)
    assert status_of(answer) in (400, None), answer[:200]
    for empty in (b"", b"\n\n", b"# only a comment\n"):
        status, body, _ = s.request("POST", "/api/config", body=empty, headers=YAML)
        assert status == 400 and b"empty document" in body, (empty, status, body)
        status, body, _ = s.request("PATCH", "/api/config", body=empty, headers=YAML)
        assert status == 400, (empty, status, body)
    assert s.config_path.read_bytes() == before
    assert not (s.config_path.parent / "camrouter.yaml.bak").exists()


def test_config_writes_keep_generations_of_backups(server_factory):
    s = server_factory("# v0\napi:\n  listen: 127.0.0.1:{port}\n").start()
    versions = [s.config_path.read_text()]
    for i in range(1, 5):
        text = f"# v{i}\napi:\n  listen: 127.0.0.1:{s.port}\n"
        status, body, _ = s.request("POST", "/api/config", body=text.encode(), headers=YAML)
        assert status == 200, body
        versions.append(text)
    d = s.config_path.parent
    assert s.config_path.read_text() == versions[4]
    assert (d / "camrouter.yaml.bak").read_text() == versions[3]
    assert (d / "camrouter.yaml.bak.1").read_text() == versions[2]
    assert (d / "camrouter.yaml.bak.2").read_text() == versions[1]


def test_alias_bomb_is_refused_quickly_with_bounded_memory(server_factory):
    s = server_factory("# keep me\napi:\n  listen: 127.0.0.1:{port}\n").start()
    before = s.config_path.read_bytes()
    bomb = alias_bomb()
    assert 15_000 < len(bomb) < 25_000
    hwm_before = vm_hwm_kb(s.proc.pid)
    t0 = time.monotonic()
    for method in ("POST", "PATCH"):
        status, body, _ = s.request(method, "/api/config", body=bomb, headers=YAML)
        assert status == 400 and b"excessive aliasing" in body, (method, status, body[:300])
    elapsed = time.monotonic() - t0
    grown_mb = (vm_hwm_kb(s.proc.pid) - hwm_before) / 1024
    # Expanded, the document is 16 million nodes (over 1.5 GB); refused, it
    # costs a few MB.
    assert grown_mb < 100, f"server peak memory grew by {grown_mb:.0f} MB"
    assert elapsed < 20, elapsed
    assert s.config_path.read_bytes() == before


def test_alias_bomb_in_config_file_stops_the_start(tmp_path):
    (tmp_path / "camrouter.yaml").write_bytes(alias_bomb())
    r = subprocess.run(
        ["prlimit", "--as=2000000000", str(BIN)], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "camrouter.yaml" in r.stderr and "excessive aliasing" in r.stderr, r.stderr


# --- 4. Connections are bounded ----------------------------------------------


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_idle(port, n, sources=50):
    """`n` TCP connections that never send a byte, from `sources` loopback
    addresses (127.0.0.2, ...), so that the global cap is reached before the
    per-address one (those the server closes early just count as opened)."""
    socks = []
    for i in range(n):
        try:
            socks.append(
                socket.create_connection(("127.0.0.1", port), timeout=2, source_address=(f"127.0.0.{2 + i % sources}", 0))
            )
        except TimeoutError:
            break  # the server stopped accepting (its backlog is full)
        except OSError:
            pass
    return socks


def rtsp_options(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(f"OPTIONS rtsp://127.0.0.1:{port}/ RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
        return c.recv(4096)


@pytest.mark.parametrize("nofile", [1024, 64])
def test_idle_connections_cannot_stop_the_api_or_rtsp(server_factory, nofile):
    """1100 idle connections to the API and 1100 to RTSP, the server under
    `prlimit --nofile=1024`: both still answer at once, the log is not
    flooded, and the idle connections are closed after the header timeout.
    With 64 descriptors the caps do not fit: accept fails with EMFILE, backs
    off, closes idle connections, and logs that once."""
    # Only the modules the test needs: each plugin's runtime holds a few
    # descriptors, and 64 leaves little room beside them.
    s = server_factory(
        "app:\n  modules: [rtsp, exec]\napi:\n  listen: 127.0.0.1:{port}\nstreams:\n  cam: exec:true\n"
    )
    s.args = [f"--nofile={nofile}", str(s.binary), *s.args]
    s.binary = "prlimit"
    s.start()
    assert s.get_json("/api/streams")
    base_fds = fd_count(s.proc.pid)
    socks = open_idle(s.port, 1100) + open_idle(s.rtsp_port, 1100)
    try:
        t0 = time.monotonic()
        status, body, _ = s.request("GET", "/api/streams")
        assert status == 200 and "cam" in json.loads(body)
        assert rtsp_options(s.rtsp_port).startswith(b"RTSP/1.0 200 OK")
        assert time.monotonic() - t0 < 5
        # Nobody sent a request: after the 5 s header timeout they are closed.
        assert wait_until(lambda: fd_count(s.proc.pid) < base_fds + 20, timeout=20), fd_count(s.proc.pid)
        assert s.get_json("/api/streams")
    finally:
        for c in socks:
            c.close()
    out = s.output()
    # At most one line per listener for the episode (and one when it ends).
    assert out.count("Too many open files") <= 2, out[-3000:]
    assert len(out.splitlines()) < 20, out[-3000:]


def test_rtsp_requests_without_credentials_stay_capped(server_factory):
    """OPTIONS needs no credentials and a DESCRIBE without them gets 401, yet
    either used to take a connection out of the caps on idle ones (it had
    "sent a request") for 60 s, renewed by the next one: 1100 of them held
    every descriptor under `--nofile=1024` and neither the API nor RTSP
    answered. Until a request passes auth the connection stays capped."""
    s = server_factory(
        "api:\n  listen: 127.0.0.1:{port}\nrtsp:\n  listen: 127.0.0.1:{rtsp}\n"
        # local_auth: loopback stands for a remote client here.
        "  username: admin\n  password: secret\n  local_auth: true\nstreams:\n  cam: exec:true\n"
    )
    s.args = ["--nofile=1024", str(s.binary), *s.args]
    s.binary = "prlimit"
    s.start()
    base_fds = fd_count(s.proc.pid)
    socks = []
    for i in range(1100):
        try:
            c = socket.create_connection(
                ("127.0.0.1", s.rtsp_port), timeout=2, source_address=(f"127.0.0.{2 + i % 50}", 0)
            )
            method = "OPTIONS" if i % 2 else "DESCRIBE"
            c.sendall(f"{method} rtsp://127.0.0.1:{s.rtsp_port}/cam RTSP/1.0\r\nCSeq: 1\r\n\r\n".encode())
            socks.append(c)
            c.recv(4096)  # answered: the server has taken the request
        except OSError:
            pass
    try:

        def both_answer():
            try:
                api = raw_request(s.port, b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", timeout=3)
                return status_of(api) == 200 and rtsp_options(s.rtsp_port).startswith(b"RTSP/1.0 200 OK")
            except OSError:
                return False

        # Capped like idle ones (256 under this limit), well within the 60 s
        # the unproven connections were kept.
        assert wait_until(lambda: fd_count(s.proc.pid) < base_fds + 300, timeout=20), fd_count(s.proc.pid)
        assert wait_until(both_answer, timeout=20), "the API or RTSP stopped answering"
    finally:
        for c in socks:
            c.close()


def test_api_requests_without_credentials_stay_capped(server_factory):
    """A request answered 401 used to take its connection out of the caps on
    idle ones (64 per address), and one more within each 5 s keep-alive kept
    it for ever: with auth configured an unauthenticated client held as many
    descriptors as it liked. Until a request passes auth the connection
    stays capped: once the burst is older than the cap's grace (1 s, which
    lets an NVR open many connections at once), the next connection from the
    address closes the oldest at once."""
    s = server_factory(
        # local_auth: loopback stands for a remote client here.
        "api:\n  listen: 127.0.0.1:{port}\n  username: admin\n  password: secret\n  local_auth: true\n"
    ).start()
    socks = []
    try:
        for _ in range(100):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            socks.append(c)
            c.sendall(b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 401")
        time.sleep(1.2)  # past the grace; not an assertion
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        socks.append(c)
        # Closed by the cap, not by the 5 s keep-alive timeout (which the
        # old code waited for).
        socks[0].settimeout(2)
        assert socks[0].recv(4096) == b""
        auth = "Basic " + base64.b64encode(b"admin:secret").decode()
        assert s.request("GET", "/api/streams", headers={"Authorization": auth})[0] == 200
    finally:
        for c in socks:
            c.close()


def test_slow_request_headers_are_cut_off(server_factory):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n").start()
    for port, start in ((s.port, b"GET /api HTTP/1.1\r\nHost: 127.0.0.1\r\n"), (s.rtsp_port, b"OPTIONS rtsp://x/ RTSP/1.0\r\n")):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
            c.sendall(start)  # ... and never the blank line that ends the headers
            t0 = time.monotonic()
            try:
                while c.recv(4096):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
            # Closed by the server (go2rtc's 5 s), not by our 30 s timeout.
            assert time.monotonic() - t0 < 20, port


def test_requests_that_never_send_their_body_cannot_stop_the_api(server_factory):
    """Headers that promise a body, then nothing: the header timeout is over
    and the connection no longer counts as idle, so before bodies had a
    timeout 1100 of them held every descriptor under `--nofile=1024` and the
    API never answered again. Now each gets 408 and is closed."""
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n")
    s.args = ["--nofile=1024", str(s.binary), *s.args]
    s.binary = "prlimit"
    s.start()
    head = b"PUT /api/streams?src=x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
    socks = []
    for _ in range(1100):
        try:
            c = socket.create_connection(("127.0.0.1", s.port), timeout=2)
            c.sendall(head)
            socks.append(c)
        except OSError:
            break
    try:

        def api_answers():
            try:
                return s.request("GET", "/api/streams")[0] == 200
            except OSError:
                return False

        assert wait_until(api_answers, timeout=60), "the API stopped answering"
        socks[0].settimeout(30)
        assert status_of(socks[0].recv(4096)) == 408
    finally:
        for c in socks:
            c.close()


def test_idle_websocket_costs_a_few_kb(server_factory):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\nstreams:\n  cam: exec:true\n").start()

    def rss_kb():
        for line in open(f"/proc/{s.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

    async def flow():
        url = s.url.replace("http", "ws") + "/api/ws?src=cam"
        warm = [await websockets.connect(url) for _ in range(20)]
        before = rss_kb()
        conns = [await websockets.connect(url) for _ in range(300)]
        # Each answers: they are live connections, not queued ones.
        await asyncio.gather(*(c.ping() for c in conns))
        after = rss_kb()
        for c in conns + warm:
            await c.close()
        return (after - before) / 300

    per_conn = asyncio.run(flow())
    # It was 136 KB (the WebSocket library's default 128 KiB read buffer).
    assert per_conn < 16, f"{per_conn:.1f} KB per idle /api/ws connection"
