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


def test_hardware_without_a_gpu_falls_back_to_software(server_factory):
    """`#hardware` with no engine on this machine (no /dev/dri render node,
    no NVIDIA driver) is software encoding: the stream plays, as H.264 from
    libx264."""
    import json
    import subprocess

    s = server_factory(
        "streams:\n  hw: ffmpeg:virtual?video&size=320x240#video=h264#hardware\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    prod = s.get_json("/api/streams?src=hw&video")["producers"][0]
    import os
    gpu = os.path.exists("/dev/nvidiactl") or (
        os.path.isdir("/dev/dri") and any(d.startswith("renderD") for d in os.listdir("/dev/dri")))
    if not gpu:
        assert "-c:v libx264" in prod["source"], prod["source"]
        assert "hwaccel" not in prod["source"] and "vaapi" not in prod["source"]
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json",
         f"{s.rtsp_url}/hw"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)["streams"][0]
    assert (st["codec_name"], st["width"], st["height"]) == ("h264", 320, 240)


def test_video_raw_template_plays_as_h264(server_factory):
    """`#video=raw` pipes Y4M out of ffmpeg (go2rtc's `-c:v rawvideo` made
    ffmpeg refuse to start); the pictures are encoded to H.264 once, so an
    RTSP reader gets H.264 at the source's size."""
    import json
    import subprocess

    s = server_factory(
        "streams:\n  r: ffmpeg:virtual?video&size=320x240#video=raw\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    ).start()
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-count_frames", "-read_intervals", "%+2",
         "-show_streams", "-of", "json", f"{s.rtsp_url}/r"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr + s.output()[-2000:]
    st = json.loads(r.stdout)["streams"][0]
    assert (st["codec_name"], st["width"], st["height"]) == ("h264", 320, 240), st
    assert int(st["nb_read_frames"]) >= 10, st
    prod = s.get_json("/api/streams?src=r")["producers"][0]
    assert "-c:v wrapped_avframe" in prod["source"], prod["source"]
