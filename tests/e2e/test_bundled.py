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
