"""The ffmpeg: source, built into commands that a real ffmpeg runs."""

from conftest import children_of, wait_until


def test_ffmpeg_virtual_mjpeg_pipe(server_factory):
    s = server_factory(
        "streams:\n  v: ffmpeg:virtual?video&size=320x240#video=mjpeg\n"
        "  a: ffmpeg:virtual?audio#audio=pcma\napi:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    info = s.get_json("/api/streams?src=v&video")
    prod = info["producers"][0]
    assert prod["url"] == "ffmpeg:virtual?video&size=320x240#video=mjpeg"
    assert prod["source"].startswith("exec:ffmpeg ") and "-f mjpeg -" in prod["source"]
    assert prod["medias"] == ["video, recvonly, JPEG"]
    codec = prod["receivers"][0]["codec"]
    assert (codec["codec_name"], codec["width"], codec["height"]) == ("mjpeg", 320, 240)
    info = s.get_json("/api/streams?src=a&audio")
    assert info["producers"][0]["medias"] == ["audio, recvonly, PCMA/8000"]
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=10)
