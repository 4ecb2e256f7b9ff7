"""The core HTTP API, config handling and plugin loading, against a real server."""

import base64
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from conftest import BIN, FFMPEG_H264, TARGET, children_of, wait_until


def test_probe_exec_h264_and_child_lifecycle(server_factory):
    s = server_factory(
        f"streams:\n  cam: {FFMPEG_H264}\napi:\n  listen: 127.0.0.1:{{port}}\n"
    ).start()
    assert children_of(s.proc.pid) == [], "nothing runs before a consumer"
    info = s.get_json("/api/streams?src=cam&video=all&audio=all&microphone")
    prod = info["producers"][0]
    assert prod["medias"] == ["video, recvonly, H264"]
    codec = prod["receivers"][0]["codec"]
    assert codec["codec_name"] == "h264"
    assert (codec["width"], codec["height"]) == (640, 360)
    # While a consumer exists, the producer's process runs and is ours.
    pid = prod["pid"]
    assert pid in children_of(s.proc.pid)
    assert b"ffmpeg" in Path(f"/proc/{pid}/cmdline").read_bytes()
    # The probe consumer left: ffmpeg is stopped a few seconds later and reaped.
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=10), children_of(s.proc.pid)
    listed = s.get_json("/api/streams")
    assert listed["cam"]["producers"] == [{"url": FFMPEG_H264}]


def test_unknown_stream_and_scheme(server_factory):
    s = server_factory("streams:\n  bad: foo://x\napi:\n  listen: 127.0.0.1:{port}\n").start()
    status, _, _ = s.request("GET", "/api/streams?src=nope")
    assert status == 404
    status, body, _ = s.request("GET", "/api/streams?src=bad&video")
    assert status == 500
    assert b"unsupported scheme: foo" in body
    assert "unsupported scheme" in s.output()


def test_put_stream_is_saved_with_comments_and_survives_restart(server_factory, panicky_plugin_dir):
    cfg = "# my cameras\napi:\n  listen: 127.0.0.1:{port} # local only\nstreams:\n  # the yard\n  yard: exec:true\n"
    s = server_factory(cfg, plugin_dirs=[panicky_plugin_dir]).start()
    # Sources that run commands or contain spaces are refused through the API.
    status, body, _ = s.request("PUT", "/api/streams?name=door&src=exec:ffmpeg")
    assert (status, body) == (400, b"streams: source from insecure producer\n")
    status, body, _ = s.request("PUT", "/api/streams?name=door&src=panic:a%20b")
    assert (status, body) == (400, b"streams: source with spaces may be insecure\n")
    status, body, _ = s.request("PUT", "/api/streams?name=door&src=nope://x")
    assert (status, body) == (400, b"streams: source not supported\n")
    # `panic:` is the test plugin's scheme: a safe source as far as the API knows.
    status, _, _ = s.request("PUT", "/api/streams?name=door&src=panic:one&src=panic:two")
    assert status == 200
    text = s.config_path.read_text()
    assert "# my cameras" in text and "# the yard" in text and "# local only" in text
    assert "door:" in text and "panic:one" in text and "panic:two" in text
    assert (s.config_path.parent / "camrouter.yaml.bak").exists()
    s.stop()
    s.start()
    listed = s.get_json("/api/streams")
    assert listed["door"]["producers"] == [{"url": "panic:one"}, {"url": "panic:two"}]
    status, _, _ = s.request("DELETE", "/api/streams?src=yard")
    assert status == 200
    text = s.config_path.read_text()
    assert "yard:" not in text and "# my cameras" in text and "door:" in text


def test_auth_allow_paths_and_config_api(server_factory):
    s = server_factory(
        "api:\n  listen: 127.0.0.1:{port}\n  username: admin\n  password: secret\n  local_auth: true\n"
    ).start()
    status, _, headers = s.request("GET", "/api")
    assert status == 401
    assert headers.get("www-authenticate") == 'Basic realm="go2rtc"'
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
    status, body, _ = s.request("GET", "/api", headers=auth)
    assert status == 200 and json.loads(body)["version"].startswith("1.9.")
    bad = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    assert s.request("GET", "/api", headers=bad)[0] == 401

    before = s.config_path.read_text()
    yaml = {**auth, "Content-Type": "application/yaml"}
    status, body, _ = s.request("POST", "/api/config", body=b"api: [unclosed", headers=yaml)
    assert status == 400, body
    assert s.config_path.read_text() == before, "invalid config must leave the file untouched"
    status, body, _ = s.request("GET", "/api/config", headers=auth)
    assert status == 200 and body.decode() == before


def test_allow_paths(server_factory):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n  allow_paths: [/api, /api/streams]\n").start()
    assert s.request("GET", "/api")[0] == 200
    assert s.request("GET", "/api/streams")[0] == 200
    assert s.request("GET", "/api/config")[0] == 403
    assert s.request("GET", "/api/log")[0] == 403


def test_config_error_exits_with_location(tmp_path):
    (tmp_path / "camrouter.yaml").write_text("api:\n  listen: :1984\n bad: [\n")
    r = subprocess.run([str(BIN)], cwd=tmp_path, capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "camrouter.yaml:3:" in r.stdout + r.stderr


def test_log_api_and_levels(server_factory):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\nlog:\n  level: debug\n  format: text\n").start()
    status, body, headers = s.request("GET", "/api/log")
    assert status == 200
    lines = [json.loads(l) for l in body.decode().splitlines()]
    assert any(l["message"].startswith("[api] listen") for l in lines)
    assert all({"level", "time", "message"} <= set(l) for l in lines)
    assert s.request("DELETE", "/api/log")[0] == 200
    status, body, _ = s.request("GET", "/api/log")
    assert b"[api] listen" not in body


def test_allowlist_keeps_other_plugins_unopened(server_factory):
    s = server_factory("app:\n  modules: [api, exec, srtp]\napi:\n  listen: 127.0.0.1:{port}\n").start()
    maps = Path(f"/proc/{s.proc.pid}/maps").read_text()
    assert "libcamrouter_plugin_exec.so" in maps
    assert "libcamrouter_plugin_echo.so" not in maps
    assert s.get_json("/api/schemes") == ["exec"]
    assert "module=srtp" in s.output(), "unknown module names are a warning"


def test_bad_plugin_files_are_refused(server_factory, tmp_path):
    d = tmp_path / "plugins"
    d.mkdir()
    os.chmod(d, 0o755)
    junk = d / "libcamrouter_plugin_junk.so"
    shutil.copy("/lib/x86_64-linux-gnu/libz.so.1", junk)
    os.chmod(junk, 0o644)
    loose = d / "libcamrouter_plugin_loose.so"
    shutil.copy(TARGET / "libcamrouter_plugin_echo.so", loose)
    os.chmod(loose, 0o664)
    old = d / "libcamrouter_plugin_oldabi.so"
    shutil.copy(TARGET / "liboldabi_test_plugin.so", old)
    os.chmod(old, 0o644)
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n", plugin_dirs=[d]).start()
    out = s.output()
    refused = [l for l in out.splitlines() if "plugin refused" in l]
    # One line per bad file, each naming the file and the reason.
    assert len(refused) == 3, refused
    assert any("libcamrouter_plugin_junk.so" in l for l in refused)
    assert any("libcamrouter_plugin_loose.so" in l and "writable by group or others" in l for l in refused)
    assert any("libcamrouter_plugin_oldabi.so" in l and "incompatible plugin-api" in l for l in refused)
    assert all(len(l) < 600 for l in refused), "no layout dumps in the log"
    assert s.request("GET", "/api")[0] == 200


def test_panicking_plugin_does_not_take_the_host_down(server_factory, panicky_plugin_dir):
    s = server_factory(
        "streams:\n  boom: panic:now\napi:\n  listen: 127.0.0.1:{port}\n",
        plugin_dirs=[panicky_plugin_dir],
    ).start()
    status, _, _ = s.request("GET", "/api/panic")
    assert status == 500
    status, body, _ = s.request("GET", "/api/streams?src=boom&video")
    assert status == 500
    assert s.proc.poll() is None
    assert s.request("GET", "/api")[0] == 200
    assert "panic in http" in s.output()


def test_config_patch_and_dot(server_factory):
    s = server_factory("# keep me\napi:\n  listen: 127.0.0.1:{port}\nstreams:\n  a: exec:true\n").start()
    status, body, _ = s.request(
        "PATCH", "/api/config", body=b'{"streams": {"b": "exec:false"}}', headers={"Content-Type": "application/json"}
    )
    assert status == 200, body
    text = s.config_path.read_text()
    assert "# keep me" in text and "a: exec:true" in text and "b: exec:false" in text
    status, body, headers = s.request("GET", "/api/streams.dot")
    assert status == 200 and headers["content-type"] == "text/vnd.graphviz"
    dot = body.decode()
    assert dot.startswith("digraph {") and '"stream_a"' in dot and "exec:true" in dot
    status, _, _ = s.request("PATCH", "/api/config", body=b"streams: [", headers={"Content-Type": "application/yaml"})
    assert status == 400
    assert "b: exec:false" in s.config_path.read_text()
