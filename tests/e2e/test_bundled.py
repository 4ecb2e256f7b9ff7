"""The bundled build: one binary with the first-party plugins linked in."""

from pathlib import Path

from conftest import FFMPEG_H264, ROOT, wait_until, children_of

BUNDLED = ROOT / "target" / "bundled" / "camrouter"


def test_bundled_binary_serves_exec_without_plugin_files(server_factory, tmp_path):
    assert BUNDLED.exists(), "tests/run.sh builds it: cargo build -p camrouter --features bundled --profile bundled"
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    s = server_factory(
        f"app:\n  modules: [api, exec]\nstreams:\n  cam: {FFMPEG_H264}\napi:\n  listen: 127.0.0.1:{{port}}\nlog:\n  exec: debug\n",
        plugin_dirs=[empty],
    )
    s.binary = BUNDLED
    s.start()
    maps = Path(f"/proc/{s.proc.pid}/maps").read_text()
    assert "libcamrouter_plugin_" not in maps
    assert s.get_json("/api/schemes") == ["exec"], "the allowlist applies to bundled modules too"
    info = s.get_json("/api/streams?src=cam&video")
    assert info["producers"][0]["receivers"][0]["codec"]["width"] == 640
    # Linked-in plugins log through the host with their module name.
    assert "DBG [exec] exec: started" in s.output()
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=10)


def test_bundled_binary_restreams_over_rtsp(server_factory, tmp_path):
    """What Frigate needs from a binary put in place of go2rtc's: the RTSP
    server and client linked in, no plugin files beside it."""
    import json
    import subprocess

    empty = tmp_path / "no-plugins"
    empty.mkdir()
    s = server_factory(
        f"streams:\n  cam: {FFMPEG_H264}\napi:\n  listen: 127.0.0.1:{{port}}\n",
        plugin_dirs=[empty],
    )
    s.binary = BUNDLED
    s.start()
    assert "rtsp" in s.get_json("/api/schemes")
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json",
         f"{s.rtsp_url}/cam"], capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["streams"][0]
    assert (v["codec_name"], v["width"]) == ("h264", 640)
