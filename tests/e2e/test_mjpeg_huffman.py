"""MJPEG with non-standard Huffman tables over RTSP: RTP/JPEG (RFC 2435)
cannot carry Huffman tables, so camrouter re-encodes the scan with the
standard ones. A real ffmpeg reader must decode exactly the pixels of the
source JPEGs (go2rtc sends such images as they are: garbage)."""

import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

TESTDATA = ROOT / "plugins" / "media" / "testdata"


def md5s(args):
    """framemd5 hashes of the video frames ffmpeg decodes with `args`."""
    r = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", *args, "-map", "0:v", "-f", "framemd5", "-"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return r.stderr, [l.split(",")[-1].strip() for l in r.stdout.splitlines() if l and not l.startswith("#")]


def read_rtsp(server, frames=10):
    return md5s(["-rtsp_transport", "tcp", "-i", f"{server.rtsp_url}/cam", "-frames:v", str(frames)])


def make_stream(tmp_path: Path):
    """20 different 320x240 4:2:0 JPEGs with ffmpeg's optimal tables."""
    path = tmp_path / "frames.mjpeg"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10",
         "-frames:v", "20", "-c:v", "mjpeg", "-huffman", "optimal", "-q:v", "5", "-f", "mjpeg", str(path)],
        check=True, timeout=60,
    )
    return path


@pytest.fixture
def optimal_stream(tmp_path):
    path = make_stream(tmp_path)
    # It really has its own tables: ffmpeg's first DHT is not the standard
    # luminance DC table (T.81 K.3: 0 1 5 1 1 1 1 1 1 0 ...).
    data = path.read_bytes()
    dht = data.index(b"\xff\xc4")
    assert data[dht + 5 : dht + 21] != bytes([0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    return path


def test_optimal_huffman_mjpeg_decodes_to_the_source_pixels(server_factory, optimal_stream):
    _, expected = md5s(["-f", "mjpeg", "-i", str(optimal_stream)])
    assert len(set(expected)) == 20, "every source frame differs"
    src = (
        "exec:ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -framerate 10 "
        f"-f mjpeg -i {optimal_stream} -c copy -f mjpeg -"
    )
    s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    errors, got = read_rtsp(s, frames=15)
    assert errors == "", errors
    assert len(got) == 15
    # Every decoded frame is one of the source frames, pixel for pixel,
    # and they come in the source's (looping) order.
    assert all(h in expected for h in got), (got, expected)
    idx = [expected.index(h) for h in got]
    steps = [(b - a) % 20 for a, b in zip(idx, idx[1:])]
    assert sum(1 for d in steps if d == 1) >= 10, idx
    assert "cannot send" not in s.output()


def test_optimal_huffman_with_restart_markers(server_factory):
    # jpegtran -optimize -restart 2B: optimal tables and RST markers every
    # two MCUs (RTP/JPEG type 65).
    jpeg = TESTDATA / "jpeg_opt_420_rst.jpg"
    _, expected = md5s(["-i", str(jpeg)])
    src = (
        "exec:ffmpeg -hide_banner -loglevel error -re -loop 1 -framerate 10 "
        f"-i {jpeg} -c copy -f mjpeg -"
    )
    s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    errors, got = read_rtsp(s, frames=5)
    assert errors == "", errors
    assert got == expected * 5
    assert "cannot send" not in s.output()


def test_sampling_rfc2435_cannot_describe_is_refused_with_a_warning(server_factory):
    # ffmpeg writes 4:2:2 as Y 2x2 + chroma 1x2; RFC 2435 has no type for
    # it: one clear warning, nothing sent, the server keeps running.
    jpeg = TESTDATA / "jpeg_opt_422.jpg"
    src = (
        "exec:ffmpeg -hide_banner -loglevel error -re -loop 1 -framerate 10 "
        f"-i {jpeg} -c copy -f mjpeg -"
    )
    s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    r = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "3000000",
         "-i", f"{s.rtsp_url}/cam", "-frames:v", "1", "-f", "null", "-"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0
    out = s.output()
    assert out.count("cannot send") == 1, out
    assert "4:2:2 or 4:2:0" in out
    assert s.proc.poll() is None


def test_ffmpeg_mjpeg_template_plays_over_rtsp(server_factory, tmp_path):
    # Our template: standard tables and 4:2:0, so even `virtual`'s RGB
    # (4:4:4 with go2rtc's template) goes over RTP/JPEG as it is.
    s = server_factory(
        "streams:\n  cam: ffmpeg:virtual?video&size=320x240#video=mjpeg\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    prod = s.get_json("/api/streams?src=cam&video")["producers"][0]
    assert "-c:v mjpeg -huffman:v default -pix_fmt:v yuvj420p" in prod["source"]
    errors, got = read_rtsp(s, frames=10)
    assert errors == "", errors
    assert len(got) == 10
    assert "cannot send" not in s.output()
