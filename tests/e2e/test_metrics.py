"""`/api/metrics`: Prometheus text format read by the official client
library's parser, values checked against known traffic."""

import base64
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from camera import RtspClient, camera_factory  # noqa: F401  (pytest fixture)
from conftest import ROOT, wait_until

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def scrape(s, headers=None):
    status, body, h = s.request("GET", "/api/metrics", headers=headers)
    assert status == 200, (status, body)
    assert h["content-type"] == CONTENT_TYPE
    return list(text_string_to_metric_families(body.decode()))


def value(families, name, **labels):
    """The sample `name{labels}`; None when it is not there."""
    for f in families:
        for smp in f.samples:
            if smp.name == name and all(smp.labels.get(k) == v for k, v in labels.items()):
                return smp.value
    return None


def stream_labels(families):
    return {smp.labels["stream"] for f in families for smp in f.samples if "stream" in smp.labels}


def reader(url):
    """An ffmpeg player that keeps reading (and decoding nothing) until killed."""
    return subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", url,
         "-map", "0", "-c", "copy", "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def workspace_version():
    text = (ROOT / "Cargo.toml").read_text()
    section = text[text.index("[workspace.package]"):]
    return re.search(r'^version\s*=\s*"([^"]+)"', section, re.M).group(1)


def proc_status_kib(pid, key):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(key)


def proc_start_time(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    starttime = int(stat[stat.rfind(")") + 2:].split()[19])
    btime = next(int(l.split()[1]) for l in Path("/proc/stat").read_text().splitlines()
                 if l.startswith("btime "))
    return btime + starttime / os.sysconf("SC_CLK_TCK")


def test_metrics_follow_two_readers_of_a_camera(server_factory, camera_factory):
    cam = camera_factory(user="admin", password="s3cret", audio="aac")
    s = server_factory(
        f"streams:\n  cam: {cam.url}\n  'yard \"north\"': {cam.url}\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    idle = scrape(s)
    assert value(idle, "camrouter_stream_producers", stream="cam") == 0
    assert value(idle, "camrouter_stream_consumers", stream="cam") == 0
    # A label value with quotes survives escaping and parsing.
    assert value(idle, "camrouter_stream_producers", stream='yard "north"') == 0

    readers = [reader(f"{s.rtsp_url}/cam") for _ in range(2)]
    try:
        assert wait_until(
            lambda: value(scrape(s), "camrouter_stream_sent_bytes_total", stream="cam") > 0,
            timeout=20,
        ), s.output()
        first = scrape(s)
        listed = s.get_json("/api/streams")["cam"]
        assert value(first, "camrouter_stream_producers", stream="cam") == 1
        # Each reader is a consumer, as /api/streams lists them.
        assert value(first, "camrouter_stream_consumers", stream="cam") == 2
        assert len(listed["consumers"]) == 2
        names = ["received_bytes", "received_packets", "sent_bytes", "sent_packets"]
        before = {n: value(first, f"camrouter_stream_{n}_total", stream="cam") for n in names}
        assert all(v > 0 for v in before.values()), before

        def all_rose():
            now = scrape(s)
            return all(value(now, f"camrouter_stream_{n}_total", stream="cam") > before[n]
                       for n in names)

        assert wait_until(all_rose, timeout=10)
        assert all(r.poll() is None for r in readers), [r.stderr.read() for r in readers]
    finally:
        for r in readers:
            r.kill()
            r.wait()

    # Readers that left keep their counts in the stream's totals.
    assert wait_until(
        lambda: value(scrape(s), "camrouter_stream_consumers", stream="cam") == 0, timeout=10
    )
    fams = scrape(s)
    for n in names:
        assert value(fams, f"camrouter_stream_{n}_total", stream="cam") > before[n], n
    # Credentials and URLs are in no label (nor anywhere in the text).
    for f in fams:
        for smp in f.samples:
            for v in smp.labels.values():
                assert "://" not in v and "s3cret" not in v and "admin:" not in v, smp
    _, body, _ = s.request("GET", "/api/metrics")
    assert b"s3cret" not in body and b"rtsp://" not in body
    assert stream_labels(fams) == {"cam", 'yard "north"'}

    # Plugins with their versions, the same the API reports.
    version = workspace_version()
    modules = {m["name"]: m["version"] for m in s.get_json("/api")["camrouter_modules"]}
    assert value(fams, "camrouter_plugin_info", module="rtsp", version=version) == 1
    for name, v in modules.items():
        assert value(fams, "camrouter_plugin_info", module=name, version=v) == 1, name

    # Process metrics agree with what the kernel says about the process.
    pid = s.proc.pid
    rss = value(fams, "process_resident_memory_bytes")
    vm_rss = proc_status_kib(pid, "VmRSS") * 1024
    assert rss > 1 << 20
    assert 0.5 * vm_rss < rss < 2 * vm_rss, (rss, vm_rss)
    fds = value(fams, "process_open_fds")
    assert abs(fds - len(os.listdir(f"/proc/{pid}/fd"))) < 20, fds
    assert value(fams, "process_max_fds") >= fds
    assert abs(value(fams, "process_start_time_seconds") - proc_start_time(pid)) < 0.05
    assert value(fams, "process_start_time_seconds") <= time.time()
    assert value(fams, "process_cpu_seconds_total") > 0


def test_restarts_counted_and_hidden_streams_left_out(server_factory):
    # ffmpeg publishes into a hidden plumbing stream through {output}; the
    # exec source relays it as `pattern`'s own.
    src = (
        "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x180:rate=10 "
        "-t 2 -c:v libx264 -g 10 -f rtsp {output}"
    )
    s = server_factory(
        f"streams:\n  pattern: {src}\npreload:\n  pattern: video\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    # ffmpeg stops after 2 s of video; while the preload wants it, the source
    # is started again: each start after a failure is a restart.
    assert wait_until(
        lambda: (value(scrape(s), "camrouter_stream_producer_restarts_total", stream="pattern")
                 or 0) >= 1,
        timeout=40,
    ), s.output()
    fams = scrape(s)
    assert stream_labels(fams) == {"pattern"}, "hidden streams are not exported"
    assert value(fams, "camrouter_stream_received_bytes_total", stream="pattern") > 0
    # The preload is a consumer.
    assert value(fams, "camrouter_stream_consumers", stream="pattern") == 1


def test_frames_dropped_for_a_reader_that_stops_reading(server_factory):
    # MJPEG at 50 fps: every frame is a keyframe and large, so the socket
    # fills soon and the session falls MAX_PENDING (256) frames behind.
    src = (
        "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=50 "
        "-c:v mjpeg -q:v 2 -f mjpeg -"
    )
    s = server_factory(f"streams:\n  pattern: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    url = f"{s.rtsp_url}/pattern"
    c = RtspClient(url)
    try:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        _, _, _, sdp = c.request("DESCRIBE", headers={"Accept": "application/sdp"})
        control = next(l[len("a=control:"):] for l in sdp.decode().splitlines()
                       if l.startswith("a=control:") and l != "a=control:*")
        track = control if control.startswith("rtsp://") else f"{url}/{control}"
        c.request("SETUP", uri=track, headers={"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        c.request("PLAY")
        # From here on the client reads nothing.
        assert wait_until(
            lambda: (value(scrape(s), "camrouter_stream_dropped_frames_total", stream="pattern")
                     or 0) > 0,
            timeout=30,
        ), s.output()
        fams = scrape(s)
        assert value(fams, "camrouter_stream_consumers", stream="pattern") == 1
    finally:
        c.close()
    # The client left: its drops stay in the stream's total.
    assert wait_until(
        lambda: value(scrape(s), "camrouter_stream_consumers", stream="pattern") == 0, timeout=10
    )
    assert value(scrape(s), "camrouter_stream_dropped_frames_total", stream="pattern") > 0


def test_metrics_behind_auth_and_allow_paths(server_factory):
    s = server_factory(
        "api:\n  listen: 127.0.0.1:{port}\n  username: admin\n  password: secret\n  local_auth: true\n"
    ).start()
    status, _, headers = s.request("GET", "/api/metrics")
    assert status == 401
    assert headers.get("www-authenticate") == 'Basic realm="go2rtc"'
    auth = {"Authorization": "Basic " + base64.b64encode(b"admin:secret").decode()}
    assert value(scrape(s, auth), "process_open_fds") > 0
    assert s.request("POST", "/api/metrics", headers=auth)[0] == 405

    s2 = server_factory("api:\n  listen: 127.0.0.1:{port}\n  allow_paths: [/api, /api/streams]\n").start()
    assert s2.request("GET", "/api/metrics")[0] == 403
    s3 = server_factory("api:\n  listen: 127.0.0.1:{port}\n  allow_paths: [/api/metrics]\n").start()
    assert value(scrape(s3), "process_open_fds") > 0
