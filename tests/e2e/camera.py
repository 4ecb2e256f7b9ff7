"""Real RTSP "cameras" for end-to-end tests: GStreamer's RTSP server
(gst_camera.py, run by the system Python that has python3-gi) on 127.0.0.1,
plus a tiny socket-only RTSP client for what ffmpeg cannot do (ONVIF
backchannel: DESCRIBE with Require, SETUP the sendonly track, push RTP).

    from camera import camera_factory  # noqa: F401  (pytest fixture)

    def test_x(camera_factory):
        cam = camera_factory(user="u", password="p", audio="pcmu")
        cam.url          # rtsp://u:p@127.0.0.1:PORT/cam
        cam.sessions()   # client connections the camera has accepted so far
        cam.restart()    # same port, fresh process
"""

import base64
import hashlib
import math
import os
import re
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import free_port, terminate

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "gst_camera.py"
# The camera needs python3-gi, which lives in the system Python, not the venv.
PYTHON = os.environ.get("GST_CAMERA_PYTHON", "/usr/bin/python3")
BACKCHANNEL_REQUIRE = "www.onvif.org/ver20/backchannel"


class Camera:
    """One gst_camera.py process. Options mirror the script's flags;
    `backchannel=True` puts the ONVIF backchannel's output file in workdir
    (see `.backchannel_file`), or pass a path."""

    def __init__(self, workdir, *, user=None, password=None, auth=None,
                 video="h264", audio="aac", size="640x360", fps=25,
                 backchannel=None, path="/cam", port=None, config_interval=1):
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.user, self.password = user, password
        self.path = path if path.startswith("/") else "/" + path
        self.backchannel_file = None
        if backchannel:
            self.backchannel_file = (
                self.workdir / f"backchannel-{self.port}.raw"
                if backchannel is True else Path(backchannel))
        self.args = [
            "--port", str(self.port), "--video", video, "--audio", audio,
            "--size", size, "--fps", str(fps), "--path", self.path,
            "--config-interval", str(config_interval),
        ]
        if user is not None:
            self.args += ["--user", user, "--password", password or ""]
            if auth:
                self.args += ["--auth", auth]
        if self.backchannel_file:
            self.args += ["--onvif-backchannel", str(self.backchannel_file)]
        self.proc = None
        self.runs = 0
        self.log_path = None

    @property
    def plain_url(self):
        """The URL without credentials."""
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def url(self):
        if self.user is None:
            return self.plain_url
        cred = urllib.parse.quote(self.user, safe="") + ":" + urllib.parse.quote(
            self.password or "", safe="")
        return f"rtsp://{cred}@127.0.0.1:{self.port}{self.path}"

    def start(self, timeout=20):
        self.runs += 1
        self.log_path = self.workdir / f"camera-{self.port}-{self.runs}.log"
        env = {k: v for k, v in os.environ.items()
               if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-u", str(SCRIPT), *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.workdir, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if "READY rtsp://" in self.output():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"camera exited ({self.proc.returncode}): {self.output()}")
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"camera did not come up: {self.output()}")

    def output(self, all_runs=False):
        """The camera's stdout+stderr (this run only unless all_runs)."""
        runs = range(1, self.runs + 1) if all_runs else [self.runs]
        text = ""
        for r in runs:
            p = self.workdir / f"camera-{self.port}-{r}.log"
            if p.exists():
                text += p.read_text(errors="replace")
        return text

    def _numbers(self, word, all_runs=False):
        return [int(m) for m in re.findall(rf"^{word} (\d+)$", self.output(all_runs), re.M)]

    def sessions(self, all_runs=False):
        """Client connections accepted (SESSION lines) since the last start,
        or over every run with all_runs=True."""
        return len(self._numbers("SESSION", all_runs))

    def active_sessions(self):
        """Connections of this run that are still open."""
        return len(set(self._numbers("SESSION")) - set(self._numbers("CLOSED")))

    def plays(self, all_runs=False):
        """PLAY requests the camera accepted."""
        return len(self._numbers("PLAY", all_runs))

    def stop(self):
        terminate(self.proc)

    def kill(self):
        """SIGKILL: a power cut as the network sees it (no TEARDOWN, no RTCP
        BYE; the kernel resets the connections)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout=20):
        """Stop, then start again on the same port (clients see the
        connection drop and a fresh camera behind the same URL)."""
        self.stop()
        return self.start(timeout)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def camera_factory(tmp_path):
    """camera_factory(**Camera options) -> a started Camera; all are
    stopped at teardown."""
    cams = []

    def make(**kw):
        cam = Camera(tmp_path, **kw)
        cams.append(cam)
        return cam.start()

    yield make
    for cam in cams:
        cam.stop()


# --- a minimal RTSP client (sockets only) -------------------------------------


class RtspError(Exception):
    def __init__(self, status, reason, headers):
        super().__init__(f"RTSP {status} {reason}")
        self.status, self.reason, self.headers = status, reason, headers


class RtspClient:
    """One RTSP/1.0 connection over TCP. Handles Basic and Digest auth
    (credentials from the URL), CSeq and Session; skips interleaved
    `$` frames that arrive between responses (they are counted in
    `self.frames` per channel)."""

    def __init__(self, url, timeout=10):
        u = urllib.parse.urlsplit(url)
        self.user = urllib.parse.unquote(u.username) if u.username else None
        self.password = urllib.parse.unquote(u.password or "")
        self.host, self.port = u.hostname, u.port or 554
        netloc = f"{self.host}:{self.port}" if u.port else self.host
        self.url = urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, ""))
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.buf = b""
        self.cseq = 0
        self.session = None
        self.auth = None  # (scheme, params) from the last 401
        self.frames = {}
        # Called with (channel, payload) for each interleaved frame.
        self.on_frame = None
        self.lock = threading.Lock()

    def _authorization(self, method, uri):
        if not self.auth or self.user is None:
            return None
        scheme, p = self.auth
        if scheme == "basic":
            tok = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            return f"Basic {tok}"
        md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{self.user}:{p['realm']}:{self.password}")
        ha2 = md5(f"{method}:{uri}")
        fields = {"username": self.user, "realm": p["realm"], "nonce": p["nonce"], "uri": uri}
        if "auth" in [q.strip() for q in p.get("qop", "").split(",")]:
            cnonce = os.urandom(8).hex()
            fields.update(qop="auth", nc="00000001", cnonce=cnonce)
            fields["response"] = md5(f"{ha1}:{p['nonce']}:00000001:{cnonce}:auth:{ha2}")
        else:
            fields["response"] = md5(f"{ha1}:{p['nonce']}:{ha2}")
        if "opaque" in p:
            fields["opaque"] = p["opaque"]
        return "Digest " + ", ".join(
            f"{k}={v}" if k in ("qop", "nc") else f'{k}="{v}"' for k, v in fields.items())

    @staticmethod
    def _parse_challenges(values):
        """Pick Digest over Basic from WWW-Authenticate header values."""
        found = {}
        for v in values:
            scheme, _, rest = v.strip().partition(" ")
            params = dict(
                (k.lower(), a if a else b)
                for k, a, b in re.findall(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))', rest))
            found[scheme.lower()] = params
        for scheme in ("digest", "basic"):
            if scheme in found:
                return scheme, found[scheme]
        return None

    def _recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("RTSP connection closed by peer")
        self.buf += data

    def _strip_frames(self):
        """Drop complete interleaved frames ($ channel len16 payload) from
        the head of the buffer; False if one is incomplete."""
        while self.buf[:1] == b"$":
            if len(self.buf) < 4:
                return False
            ch, n = self.buf[1], struct.unpack(">H", self.buf[2:4])[0]
            if len(self.buf) < 4 + n:
                return False
            self.frames[ch] = self.frames.get(ch, 0) + 1
            if self.on_frame:
                self.on_frame(ch, self.buf[4:4 + n])
            self.buf = self.buf[4 + n:]
        return True

    def skip_frames(self):
        """Read once from the socket and drop the interleaved frames."""
        self._recv()
        self._strip_frames()

    def read_response(self):
        while True:
            while not self._strip_frames():
                self._recv()
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0 and not self.buf.startswith(b"$"):
                break
            self._recv()
        head = self.buf[:end].decode("utf-8", "replace").split("\r\n")
        self.buf = self.buf[end + 4:]
        _, status, reason = (head[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k.strip().lower(), []).append(v.strip())
        n = int(headers.get("content-length", ["0"])[0])
        while len(self.buf) < n:
            self._recv()
        body, self.buf = self.buf[:n], self.buf[n:]
        return int(status), reason, headers, body

    def request(self, method, uri=None, headers=None, check=True):
        """Send one request; retry once with credentials on 401. Returns
        (status, reason, headers{lower: [values]}, body)."""
        uri = uri or self.url
        for attempt in range(2):
            self.cseq += 1
            h = {"CSeq": str(self.cseq), "User-Agent": "camrouter-tests"}
            if self.session:
                h["Session"] = self.session
            auth = self._authorization(method, uri)
            if auth:
                h["Authorization"] = auth
            h.update(headers or {})
            msg = f"{method} {uri} RTSP/1.0\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
            with self.lock:
                self.sock.sendall(msg.encode())
            status, reason, rh, body = self.read_response()
            if status == 401 and attempt == 0 and self.user is not None:
                self.auth = self._parse_challenges(rh.get("www-authenticate", []))
                if self.auth:
                    continue
            break
        if "session" in rh:
            self.session = rh["session"][0].split(";")[0].strip()
        if check and status != 200:
            raise RtspError(status, reason, rh)
        return status, reason, rh, body

    def send_interleaved(self, channel, payload):
        with self.lock:
            self.sock.sendall(b"$" + bytes([channel]) + struct.pack(">H", len(payload)) + payload)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def describe(url, require_backchannel=False):
    """DESCRIBE url -> (status, headers, sdp text). Raises nothing for
    non-200 answers (status tells)."""
    c = RtspClient(url)
    try:
        h = {"Accept": "application/sdp"}
        if require_backchannel:
            h["Require"] = BACKCHANNEL_REQUIRE
        status, _, rh, body = c.request("DESCRIBE", headers=h, check=False)
        return status, rh, body.decode("utf-8", "replace")
    finally:
        c.close()


def sdp_medias(sdp):
    """Split an SDP into its m= sections: [{'m': 'audio 0 RTP/AVP 0',
    'attrs': ['control:stream=2', 'sendonly', ...]}]."""
    medias = []
    for line in sdp.splitlines():
        line = line.strip()
        if line.startswith("m="):
            medias.append({"m": line[2:], "attrs": []})
        elif line.startswith("a=") and medias:
            medias[-1]["attrs"].append(line[2:])
    return medias


def backchannel_medias(sdp):
    """The audio m= sections marked a=sendonly (what a client may send)."""
    return [m for m in sdp_medias(sdp)
            if m["m"].startswith("audio ") and "sendonly" in m["attrs"]]


def _mulaw(sample):
    """16-bit linear PCM -> G.711 mu-law byte."""
    sign = 0x80 if sample < 0 else 0
    sample = min(abs(sample), 32635) + 0x84
    exp = 7
    while exp > 0 and not sample & (0x4000 >> (7 - exp)):
        exp -= 1
    mant = (sample >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def tone_packets(count, freq=440, samples=160, rate=8000):
    """`count` mu-law payloads of a sine tone (20 ms each at 8 kHz)."""
    out = []
    for p in range(count):
        out.append(bytes(
            _mulaw(int(12000 * math.sin(2 * math.pi * freq * (p * samples + i) / rate)))
            for i in range(samples)))
    return out


def send_backchannel(url, packets=50, interval=0.02, linger=1.0, payload_type=0):
    """Act like an ONVIF client talking to the camera:

    DESCRIBE (Require: www.onvif.org/ver20/backchannel) -> find the
    a=sendonly audio media -> SETUP it with RTP/AVP/TCP interleaved -> PLAY
    -> send `packets` RTP packets (an int: that many 160-byte mu-law tone
    payloads; or a list of payloads) on its RTP channel, one per
    `interval` s -> wait `linger` s -> TEARDOWN.

    Returns a dict: sdp, media (the backchannel m= section), control
    (SETUP URL), transport (server's Transport reply), channel (RTP
    channel used), sent (packet count), frames (interleaved frames
    received per channel)."""
    payloads = tone_packets(packets) if isinstance(packets, int) else list(packets)
    c = RtspClient(url)
    req = {"Require": BACKCHANNEL_REQUIRE}
    try:
        _, _, rh, body = c.request(
            "DESCRIBE", headers={**req, "Accept": "application/sdp"})
        sdp = body.decode()
        medias = backchannel_medias(sdp)
        assert medias, f"no a=sendonly audio media in SDP:\n{sdp}"
        media = medias[0]
        control = next(a[len("control:"):] for a in media["attrs"] if a.startswith("control:"))
        base = rh.get("content-base", [c.url])[0]
        if not base.endswith("/"):
            base += "/"
        if not re.match(r"^\w+://", control):
            control = urllib.parse.urljoin(base, control)
        _, _, rh, _ = c.request("SETUP", control, headers={
            **req, "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        transport = rh["transport"][0]
        m = re.search(r"interleaved=(\d+)", transport)
        channel = int(m.group(1)) if m else 0
        c.request("PLAY", c.url, headers={**req, "Range": "npt=0.000-"})

        # Drain whatever the server sends (RTCP) while we talk.
        stop = threading.Event()

        def drain():
            c.sock.settimeout(0.2)
            while not stop.is_set():
                try:
                    c.skip_frames()
                except socket.timeout:
                    continue
                except OSError:
                    return

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        ssrc = int.from_bytes(os.urandom(4), "big")
        seq0 = int.from_bytes(os.urandom(2), "big")
        ts0 = int.from_bytes(os.urandom(4), "big")
        ts = 0
        for i, payload in enumerate(payloads):
            header = struct.pack(
                ">BBHII", 0x80, (0x80 if i == 0 else 0) | payload_type,
                (seq0 + i) & 0xFFFF, (ts0 + ts) & 0xFFFFFFFF, ssrc)
            c.send_interleaved(channel, header + payload)
            ts += len(payload)
            time.sleep(interval)
        time.sleep(linger)
        stop.set()
        t.join()
        c.sock.settimeout(5)
        try:
            c.request("TEARDOWN", c.url, check=False)
        except (OSError, ConnectionError):
            pass
        return {"sdp": sdp, "media": media, "control": control, "transport": transport,
                "channel": channel, "sent": len(payloads), "frames": c.frames}
    finally:
        c.close()
