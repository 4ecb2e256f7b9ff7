"""Fixtures for end-to-end tests: a real camrouter process on 127.0.0.1."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
BIN = TARGET / "camrouter"
FFMPEG_H264 = (
    "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi "
    "-i testsrc2=size=640x360:rate=25 -c:v libx264 -g 50 -f h264 -"
)


def terminate(proc, grace=5):
    """SIGTERM a process we started, SIGKILL it after `grace` seconds."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# Ports handed out in this test process. The kernel may give the same
# ephemeral port to two binds in a row once the first socket is closed, so a
# server asking for its API and RTMP ports back to back could get one port
# twice (seen in CI: "api: listen ... Address already in use").
_handed_out: set[int] = set()


# Under pytest-xdist each worker takes only its share of the port space, so
# two workers never hand out the same port. The kernel gives bind(0) mostly
# even ports, hence the share is decided on port // 2.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _fresh_port(kind) -> int:
    for _ in range(1000):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out and (port // 2) % _WORKERS == _WORKER:
            _handed_out.add(port)
            return port
    raise RuntimeError("no fresh port after 1000 tries")


def free_port():
    return _fresh_port(socket.SOCK_STREAM)


def free_udp_port():
    return _fresh_port(socket.SOCK_DGRAM)


class Server:
    """One camrouter process with its own working dir and config."""

    def __init__(self, workdir: Path, config: str, args=(), plugin_dirs=()):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.rtsp_port = free_port()
        self.rtsp_url = f"rtsp://127.0.0.1:{self.rtsp_port}"
        # Tests listen on 127.0.0.1 only: the RTSP server too, unless the
        # test configures it itself.
        if "\nrtsp:" not in "\n" + config:
            config += "rtsp:\n  listen: 127.0.0.1:{rtsp}\n"
        # WebRTC's UDP port likewise (its default, :8555, is every address).
        self.webrtc_port = free_udp_port()
        if "\nwebrtc:" not in "\n" + config:
            config += "webrtc:\n  listen: 127.0.0.1:{webrtc}\n"
        # RTMP's default, :1935, likewise.
        self.rtmp_port = free_port()
        self.rtmp_url = f"rtmp://127.0.0.1:{self.rtmp_port}"
        if "\nrtmp:" not in "\n" + config:
            config += "rtmp:\n  listen: 127.0.0.1:{rtmp}\n"
        self.config_path = workdir / "camrouter.yaml"
        self.config_path.write_text(
            config.replace("{port}", str(self.port))
            .replace("{rtsp}", str(self.rtsp_port))
            .replace("{webrtc}", str(self.webrtc_port))
            .replace("{rtmp}", str(self.rtmp_port))
        )
        self.args = list(args)
        for d in plugin_dirs:
            self.args += ["--plugins", str(d)]
        self.proc = None
        self.binary = BIN

    def start(self, expect_up=True, timeout=20):
        self.log = open(self.workdir / "server.log", "w+")
        self.proc = subprocess.Popen(
            [str(self.binary), *self.args],
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if not expect_up:
            return self
        deadline = time.time() + timeout
        # Home Assistant waits for exactly this line before using the API.
        while time.time() < deadline:
            if "INF [api] listen addr=" in self.output():
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.output()}")
            time.sleep(0.05)
        raise AssertionError(f"server did not come up: {self.output()}")

    def output(self):
        self.log.flush()
        return (self.workdir / "server.log").read_text()

    def stop(self):
        terminate(self.proc)

    def request(self, method, path, body=None, headers=None):
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            return e.code, e.read(), {k.lower(): v for k, v in e.headers.items()}

    def get_json(self, path):
        status, body, _ = self.request("GET", path)
        assert status == 200, (status, body)
        return json.loads(body)


@pytest.fixture
def server_factory(tmp_path):
    servers = []

    def make(config, **kw):
        # Each server after the first gets its own working dir (config,
        # log, files written through the API).
        workdir = tmp_path
        if servers:
            workdir = tmp_path / f"server{len(servers) + 1}"
            workdir.mkdir()
        s = Server(workdir, config, **kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def children_of(pid):
    """PIDs whose parent is `pid` (from /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == pid:
            out.append(int(d.name))
    return out


def stacks(pid):
    """Every thread's backtrace of a running process (gdb, when installed):
    for failures that look like a stall, to say where each thread waits."""
    import shutil
    if not shutil.which("gdb"):
        return "(no gdb for thread backtraces)"
    r = subprocess.run(
        ["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 12"],
        capture_output=True, text=True, timeout=60)
    return "\n".join(l for l in r.stdout.splitlines() if l.startswith(("Thread", "#")))


def wait_until(pred, timeout=10.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


@pytest.fixture
def panicky_plugin_dir(tmp_path):
    src = TARGET / "libpanicky_test_plugin.so"
    assert src.exists(), "build the workspace first (cargo build --workspace)"
    d = tmp_path / "panicky-plugins"
    d.mkdir(mode=0o755)
    os.chmod(d, 0o755)
    dst = d / "libcamrouter_plugin_panicky.so"
    shutil.copy(src, dst)
    os.chmod(dst, 0o644)
    return d


def read_stream(url, seconds, limit=256 << 20):
    """An endless HTTP body (stream.ts, stream.y4m, ...) read for `seconds`:
    (lower-cased headers, bytes)."""
    data = bytearray()
    with urllib.request.urlopen(url, timeout=30) as r:
        headers = {k.lower(): v for k, v in r.headers.items()}
        deadline = time.time() + seconds
        while time.time() < deadline and len(data) < limit:
            chunk = r.read1(1 << 20)
            if not chunk:
                break
            data += chunk
    return headers, bytes(data)
