"""Process-level behaviour: exit, restart, variables, base path, echo redirects."""

import json

from conftest import FFMPEG_H264, children_of, wait_until


def test_exit_with_code(server_factory):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n").start()
    assert s.request("GET", "/api/exit")[0] == 400
    assert s.request("POST", "/api/exit?code=300")[0] == 400
    try:
        s.request("POST", "/api/exit?code=7")
    except Exception:
        pass  # the process may exit before answering, as go2rtc does
    assert s.proc.wait(10) == 7


def test_restart_keeps_serving(server_factory):
    s = server_factory("api:\n  listen: 127.0.0.1:{port}\n").start()
    pid = s.proc.pid
    assert s.request("POST", "/api/restart")[0] == 200
    # Re-exec keeps the PID and prints the start lines again.
    assert wait_until(lambda: s.output().count("INF [api] listen addr=") == 2, timeout=15), s.output()
    assert wait_until(lambda: s.request("GET", "/api")[0] == 200, timeout=10)
    assert s.proc.pid == pid and s.proc.poll() is None


def test_env_vars_and_json_log(server_factory):
    srv = server_factory(
        "api:\n  listen: ${CAMROUTER_TEST_LISTEN:127.0.0.1:{port}}\n  base_path: /cr\nlog:\n  format: json\n"
    )
    # JSON logs do not carry the text line HA waits for: wait on the API instead.
    srv.start(expect_up=False)
    assert wait_until(lambda: srv.proc.poll() is None and _ok(srv, "/cr/api"), timeout=20), srv.output()
    first = srv.output().splitlines()[0]
    assert json.loads(first)["level"] == "info"
    assert srv.request("GET", "/api")[0] == 404, "outside base_path"


def _ok(srv, path):
    try:
        return srv.request("GET", path)[0] == 200
    except Exception:
        return False


def test_echo_resolves_to_exec(server_factory, tmp_path):
    script = tmp_path / "url.sh"
    script.write_text(f"#!/bin/sh\necho '{FFMPEG_H264}'\n")
    script.chmod(0o755)
    s = server_factory(f"streams:\n  cam: echo:{script}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    info = s.get_json("/api/streams?src=cam&video")
    prod = info["producers"][0]
    assert prod["url"] == f"echo:{script}"
    assert prod["source"] == FFMPEG_H264
    assert prod["medias"] == ["video, recvonly, H264"]
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=10)


def test_expr_fetches_and_redirects(server_factory):
    # The script asks camrouter's own API (a real HTTP fetch), then picks a source.
    script = (
        "expr: let v = fetch('http://127.0.0.1:{port}/api').json().version; "
        f"v == '1.9.14' ? '{FFMPEG_H264}' : 'bad:'"
    )
    s = server_factory(f"streams:\n  cam: |\n    {script}\n  empty: \"expr: ''\"\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    info = s.get_json("/api/streams?src=cam&video")
    prod = info["producers"][0]
    assert prod["source"] == FFMPEG_H264
    assert prod["receivers"][0]["codec"]["height"] == 360
    status, body, _ = s.request("GET", "/api/streams?src=empty&video")
    assert status == 500 and b"expr: result is empty" in body
