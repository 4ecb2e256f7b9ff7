"""The web UI in headless Chromium: the stream list with producers and consumers
(the other pages and the player: test_webui.py)."""

import json
import os
import subprocess

from conftest import FFMPEG_H264, ROOT


def see(url, tmp_path, wait_for=None):
    env = dict(os.environ)
    if wait_for:
        env["WAIT_FOR"] = wait_for
    r = subprocess.run(
        ["node", str(ROOT / "tests/browser/ui.mjs"), url, str(tmp_path / "ui.png")],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_stream_list_shows_producers_and_consumers(server_factory, tmp_path):
    s = server_factory(
        f"streams:\n  cam: {FFMPEG_H264}\n  other: exec:true\napi:\n  listen: 127.0.0.1:{{port}}\n  base_path: /cr\n"
        "preload:\n  cam: video\n"
    ).start()
    # Served under base_path, and the page's API calls follow it.
    seen = see(s.url + "/cr/", tmp_path, wait_for="h264 640x360")
    # `exec:true` gives no picture: its preview's 500 is the only error.
    assert all("/cr/api/frame.jpeg?src=other" in e for e in seen["errors"]), seen["errors"]
    assert "camrouter" in seen["info"] and "1.9.14" in seen["info"]
    rows = {r["stream"]: r for r in seen["rows"]}
    assert set(rows) == {"cam", "other"}
    assert "h264 640x360" in rows["cam"]["producers"]
    assert "preload" in rows["cam"]["consumers"]
    assert rows["other"]["producers"].strip() == "exec:true"
    assert (tmp_path / "ui.png").stat().st_size > 5000
