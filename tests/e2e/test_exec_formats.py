"""exec's pipe transport detects what a real ffmpeg writes to stdout."""

from pathlib import Path

import pytest

from conftest import children_of, wait_until

LAVFI_V = "-f lavfi -i testsrc2=size=320x240:rate=15"
LAVFI_A = "-f lavfi -i sine=frequency=440:sample_rate={rate}"

CASES = [
    # (name, ffmpeg output args, expected medias)
    ("h265", f"{LAVFI_V} -c:v libx265 -x265-params log-level=error -g 15 -f hevc -", ["video, recvonly, H265"]),
    ("mjpeg", f"{LAVFI_V} -c:v mjpeg -f mjpeg -", ["video, recvonly, JPEG"]),
    (
        "mpegts",
        f"{LAVFI_V} {LAVFI_A.format(rate=48000)} -c:v libx264 -g 15 -c:a aac -f mpegts -",
        ["video, recvonly, H264", "audio, recvonly, MPEG4-GENERIC/48000"],
    ),
    ("adts", f"{LAVFI_A.format(rate=16000)} -c:a aac -f adts -", ["audio, recvonly, MPEG4-GENERIC/16000"]),
    ("alaw", f"{LAVFI_A.format(rate=8000)} -c:a pcm_alaw -f wav -", ["audio, recvonly, PCMA/8000"]),
    ("s16", f"{LAVFI_A.format(rate=16000)} -c:a pcm_s16le -f wav -", ["audio, recvonly, PCML/16000"]),
]


@pytest.mark.parametrize("name,args,medias", CASES, ids=[c[0] for c in CASES])
def test_pipe_format_is_detected(server_factory, name, args, medias):
    src = f"exec:ffmpeg -hide_banner -loglevel error -re {args}"
    s = server_factory(f"streams:\n  {name}: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    info = s.get_json(f"/api/streams?src={name}&video=all&audio=all")
    prod = info["producers"][0]
    assert prod["medias"] == medias
    if medias[0].startswith("video"):
        codec = prod["receivers"][0]["codec"]
        assert (codec["width"], codec["height"]) == (320, 240)


def test_no_orphans_when_the_command_forks(server_factory):
    # sh starts ffmpeg as its own child: stopping must take both down.
    marker = "testsrc2=size=646x364"
    src = f"exec:sh -c 'ffmpeg -hide_banner -loglevel error -re -f lavfi -i {marker}:rate=25 -c:v libx264 -f h264 -'"
    s = server_factory(f"streams:\n  cam: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()

    def with_marker():
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if marker.encode() in (d / "cmdline").read_bytes():
                        out.append(int(d.name))
                except OSError:
                    pass
        return out

    info = s.get_json("/api/streams?src=cam&video")
    assert info["producers"][0]["receivers"][0]["codec"]["width"] == 646
    assert len(with_marker()) == 2, "sh and its ffmpeg child run"
    assert wait_until(lambda: with_marker() == [], timeout=10), with_marker()
    assert children_of(s.proc.pid) == []
