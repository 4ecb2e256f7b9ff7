"""ONVIF (plugins/onvif): `onvif://` sources resolved through a fake ONVIF
camera (onvif_fake.py) to the GStreamer test cameras, WS-Discovery and the
profile list of `/api/onvif`, and the Add page's ONVIF list in Chromium."""

import json
import subprocess
import urllib.parse

import pytest

from camera import camera_factory  # noqa: F401
from conftest import free_port, wait_until
from onvif_fake import OnvifFake, Profile


def ffprobe_video(url):
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-select_streams", "v",
         "-show_streams", "-of", "json", url],
        capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    v = json.loads(r.stdout)["streams"][0]
    return v["codec_name"], v["width"], v["height"]


@pytest.fixture
def device(camera_factory):  # noqa: F811
    """A fake ONVIF camera whose two profiles are two GStreamer cameras of
    different sizes."""
    main = camera_factory(audio="none", size="640x360")
    sub = camera_factory(audio="none", size="320x180")
    dev = OnvifFake(user="admin", password="s3cret", profiles=[
        Profile("Profile_1", "mainStream", main.plain_url, 640, 360),
        Profile("Profile_2", "subStream", sub.plain_url, 320, 180),
    ]).start()
    yield dev
    dev.stop()


def server_with(server_factory, streams, extra=""):
    lines = "".join(f"  {k}: {v}\n" for k, v in streams.items())
    return server_factory(
        f"streams:\n{lines}api:\n  listen: 127.0.0.1:{{port}}\n{extra}").start()


def test_onvif_source_plays_the_chosen_profile(server_factory, device):
    """onvif:// opens the first profile's RTSP stream; subtype= picks another
    by token, or by index as go2rtc does."""
    s = server_with(server_factory, {
        "main": device.url,
        "sub": device.url + "?subtype=Profile_2",
        "second": device.url + "?subtype=1",
    })
    assert ffprobe_video(f"{s.rtsp_url}/main") == ("h264", 640, 360)
    assert ffprobe_video(f"{s.rtsp_url}/sub") == ("h264", 320, 180)
    assert ffprobe_video(f"{s.rtsp_url}/second") == ("h264", 320, 180)
    ops = device.operations()
    assert {"GetCapabilities", "GetProfiles", "GetStreamUri"} <= set(ops), ops
    # Every call carried a digest the camera accepted.
    assert all(ok for _, ok in device.calls), device.calls


def test_camera_clock_far_from_ours(server_factory, device):
    """A camera whose clock is two hours ahead refuses a UsernameToken made
    with our time; the source asks for the camera's time and plays."""
    device.clock_offset = 7200
    s = server_with(server_factory, {"main": device.url})
    assert ffprobe_video(f"{s.rtsp_url}/main") == ("h264", 640, 360)
    ops = device.operations()
    assert ops[:3] == ["GetCapabilities", "GetSystemDateAndTime", "GetCapabilities"], ops
    assert device.calls[0][1] is False and all(ok for _, ok in device.calls[1:]), device.calls
    assert "the device's clock is +7200 s from ours" in s.output() or \
        "the device's clock is +7199 s from ours" in s.output(), s.output()


def test_http_digest_on_top_of_ws_security(server_factory, device):
    """A camera that also answers 401 with an HTTP Digest challenge gets
    the same user and password that way too."""
    device.http_digest = True
    s = server_with(server_factory, {"sub": device.url + "?subtype=Profile_2"})
    assert ffprobe_video(f"{s.rtsp_url}/sub") == ("h264", 320, 180)
    ops = device.operations()
    assert ops[0] == "HTTP 401" and "GetStreamUri" in ops, ops
    # Answered once, then sent with every call.
    assert ops.count("HTTP 401") == 1, ops


def test_wrong_password_is_a_clear_error(server_factory, device):
    s = server_with(server_factory, {"bad": device.with_password("Wr0ngPw")})
    # A viewer starts the source; it fails before any RTSP is tried.
    subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/bad"],
                   capture_output=True, timeout=60)

    def error():
        for p in s.get_json("/api/streams?src=bad").get("producers", []):
            if p.get("error"):
                return p["error"]
        return None

    assert wait_until(lambda: error() is not None, timeout=20), s.output()
    e = error()
    assert "unauthorized" in e and "NotAuthorized" in e, e
    assert "Wr0ngPw" not in e  # the password is not shown
    assert "onvif: unauthorized" in s.output()
    # Only the unauthenticated clock query got through (the clocks agree,
    # so the refusal stands).
    assert device.calls and all(ok == (op == "GetSystemDateAndTime")
                                for op, ok in device.calls), device.calls
    assert "GetStreamUri" not in device.operations()


@pytest.mark.parametrize("case", ["unreachable", "no_profiles", "no_media_service"])
def test_device_errors_are_clear(server_factory, case):
    """What `/api/onvif?src=` (and the source, with the same client) says
    when the device cannot give a stream."""
    dev = None
    if case == "unreachable":
        url = f"onvif://admin:pw@127.0.0.1:{free_port()}"
        want = b"unreachable"
    else:
        dev = OnvifFake(user="admin", password="pw", media=case != "no_media_service",
                        profiles=[]).start()
        url = dev.url
        want = {"no_profiles": b"media profiles not found",
                "no_media_service": b"media service not found"}[case]
    try:
        s = server_with(server_factory, {})
        status, body, _ = s.request("GET", "/api/onvif?src=" + urllib.parse.quote(url, safe=""))
        assert status == 500 and want in body, (status, body)
        if case == "no_media_service":
            # GetServices was asked too before giving up.
            assert dev.operations() == ["GetCapabilities", "GetServices"], dev.calls
    finally:
        if dev:
            dev.stop()


def test_device_answering_an_exec_uri_is_refused(server_factory, tmp_path):
    """A hostile device's GetStreamUri answer is opened by the host without
    the checks a client's URL goes through: only rtsp/http URLs are
    followed, never exec: (which would run a command on the server)."""
    marker = tmp_path / "pwned"
    dev = OnvifFake(user="admin", password="pw", profiles=[
        Profile("p", "main", f"exec:touch {marker}", 640, 360)]).start()
    try:
        s = server_with(server_factory, {"evil": dev.url})
        subprocess.run(["ffprobe", "-v", "error", "-rtsp_transport", "tcp", f"{s.rtsp_url}/evil"],
                       capture_output=True, timeout=60)
        assert wait_until(lambda: "source failed" in s.output(), timeout=20), s.output()
        assert not marker.exists(), "the device's exec: URI ran"
        assert "only rtsp, rtsps, http, https are opened" in s.output(), s.output()
        assert "GetStreamUri" in dev.operations()
    finally:
        dev.stop()


def test_api_onvif_discovers_the_fake_and_lists_its_profiles(server_factory, device):
    s = server_with(server_factory, {},
                    extra=f"onvif:\n  discovery: [127.0.0.1:{device.udp_port}]\n")
    found = s.get_json("/api/onvif")["sources"]
    assert device.probes >= 1
    assert found == [{
        "name": f"127.0.0.1:{device.port}",
        "info": "FakeCam FC-1",
        "url": f"onvif://user:pass@127.0.0.1:{device.port}",
    }], found

    src = urllib.parse.quote(device.url, safe="")
    listed = s.get_json(f"/api/onvif?src={src}")["sources"]
    assert [x["url"] for x in listed] == [
        device.url + "?subtype=Profile_1", device.url + "?subtype=Profile_2"], listed
    assert [x["name"] for x in listed] == ["FakeCam FC-1 stream0", "FakeCam FC-1 stream1"]
    assert "640x360" in listed[0]["info"] and "320x180" in listed[1]["info"], listed

    status, body, _ = s.request(
        "GET", "/api/onvif?src=" + urllib.parse.quote(device.with_password("nope"), safe=""))
    assert status == 500 and b"unauthorized" in body, (status, body)
    assert b"nope" not in body



def test_snapshot_profile(server_factory, device):
    """`&snapshot` opens the profile's GetSnapshotUri (an HTTP JPEG URL)
    with the http plugin; /api/onvif?src= lists it when the media service
    says it has snapshots. The fake's snapshot URL is camrouter's own
    frame.jpeg of the first profile's stream."""
    s = server_with(server_factory, {
        "main": device.url, "snap": device.url + "?subtype=Profile_1&snapshot"})
    device.snapshot_uri = f"http://127.0.0.1:{s.port}/api/frame.jpeg?src=main"
    listed = s.get_json("/api/onvif?src=" + urllib.parse.quote(device.url, safe=""))["sources"]
    assert listed[-1] == {"name": "FakeCam FC-1 snapshot",
                          "url": device.url + "?subtype=Profile_1&snapshot"}, listed
    status, body, headers = s.request("GET", "/api/frame.jpeg?src=snap")
    assert status == 200 and body[:2] == b"\xff\xd8", (status, body[:100], s.output())
    assert "GetSnapshotUri" in device.operations()


def test_add_page_lists_the_discovered_device(server_factory, device):
    """In Chromium: the Add page's ONVIF list shows the device; Use asks for
    the credentials, fills the URL and lists the device's profiles."""
    from test_webui import browse, clean

    s = server_with(server_factory, {},
                    extra=f"onvif:\n  discovery: [127.0.0.1:{device.udp_port}]\n")
    box = "#discovery .source[data-path='api/onvif']"
    out = browse({
        "url": f"{s.url}/add.html",
        "wait": f"document.querySelector(\"{box} button\")",
        "timeout_ms": 45000,
        "steps": [
            {"click": f"{box} button"},
            {"wait": f"document.querySelectorAll(\"{box} .item\").length > 0"},
            {"eval": f"document.querySelector(\"{box} .list\").innerText"},
            {"click": f"{box} .item button"},
            {"fill": [f"{box} .credentials input[name=user]", device.user]},
            {"fill": [f"{box} .credentials input[name=password]", device.password]},
            {"click": f"{box} .credentials button"},
            {"wait": f"document.querySelectorAll(\"{box} .profiles .item\").length === 2"},
            {"eval": "document.getElementById('src').value"},
            {"eval": f"[...document.querySelectorAll(\"{box} .profiles .item code\")].map(c => c.textContent)"},
            {"click": f"{box} .profiles .item:nth-child(2) button"},
            {"eval": "document.getElementById('src').value"},
        ],
    })
    clean(out)
    listed, filled, profiles, second = out["steps"]
    assert f"127.0.0.1:{device.port}" in listed and "FakeCam FC-1" in listed, listed
    assert filled == device.url, filled
    assert profiles == [device.url + "?subtype=Profile_1", device.url + "?subtype=Profile_2"]
    assert second == device.url + "?subtype=Profile_2"
