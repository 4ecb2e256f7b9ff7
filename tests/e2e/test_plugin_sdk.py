"""The example out-of-tree plugin (examples/plugin-hello), built alone in its
own folder as a plugin author would, loaded by the host only when listed."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

EXAMPLE = ROOT / "examples" / "plugin-hello"


@pytest.fixture(scope="module")
def hello_so(tmp_path_factory):
    # Its own target dir below ours: shares nothing with the workspace's
    # builds, and `cargo clean` still removes it. The dev profile: a release
    # build takes CI minutes more and proves nothing more about the plugin.
    target = ROOT / "target" / "plugin-hello"
    r = subprocess.run(
        ["cargo", "build"], cwd=EXAMPLE, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
    )
    assert r.returncode == 0, r.stderr
    built = target / "debug" / "libcamrouter_plugin_hello.so"
    assert built.exists()
    d = tmp_path_factory.mktemp("hello-plugins")
    os.chmod(d, 0o755)
    shutil.copy(built, d / built.name)
    os.chmod(d / built.name, 0o644)
    return d / built.name


def test_listed_hello_plugin_serves_its_route_and_source(server_factory, hello_so):
    s = server_factory(
        "app:\n  modules: [api, rtsp, hello]\nhello:\n  greeting: hi there\n"
        "streams:\n  tone: hello:1000\napi:\n  listen: 127.0.0.1:{port}\n",
        plugin_dirs=[hello_so.parent],
    ).start()
    assert str(hello_so) in Path(f"/proc/{s.proc.pid}/maps").read_text()
    assert s.get_json("/api/hello") == {"message": "hi there", "module": "hello", "version": "0.1.0"}
    assert "hello" in s.get_json("/api/schemes")
    assert "unknown key" not in s.output().lower(), "config_keys covers the section"
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json",
         f"{s.rtsp_url}/tone"], capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)["streams"][0]
    assert (a["codec_name"], a["sample_rate"], a["channels"]) == ("pcm_mulaw", "8000", 1)
    # A second of the tone decoded by ffmpeg: 8000 samples, loud (not silence).
    r = subprocess.run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/tone",
         "-t", "1", "-f", "s16le", "-ac", "1", "-ar", "8000", "-"],
        capture_output=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    pcm = r.stdout
    assert len(pcm) >= 2 * 7000
    peak = max(abs(int.from_bytes(pcm[i:i + 2], "little", signed=True)) for i in range(0, len(pcm), 2))
    assert peak > 4000


def test_unlisted_hello_plugin_is_never_mapped(server_factory, hello_so):
    s = server_factory(
        "app:\n  modules: [api, rtsp]\nstreams:\n  tone: \"hello:\"\napi:\n  listen: 127.0.0.1:{port}\n",
        plugin_dirs=[hello_so.parent],
    ).start()
    assert "libcamrouter_plugin_hello" not in Path(f"/proc/{s.proc.pid}/maps").read_text()
    assert s.request("GET", "/api/hello")[0] == 404
    assert "hello" not in s.get_json("/api/schemes")


def test_example_has_its_own_passing_tests(hello_so):
    r = subprocess.run(
        ["cargo", "test", "-q"], cwd=EXAMPLE, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "CARGO_TARGET_DIR": str(ROOT / "target" / "plugin-hello")},
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout
