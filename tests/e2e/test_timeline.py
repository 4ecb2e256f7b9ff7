"""A reader that stays connected while the camera behind camrouter loses
power sees one continuous timeline (what an NVR recording needs), and gets
frames again about a second after the camera is back."""

import json
import struct
import subprocess
import time

from camera import camera_factory  # noqa: F401
from conftest import wait_until

OUTAGE = 6.0


def packets(path, stream):
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", stream, "-show_entries",
         "packet=pts_time,flags", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    return [(float(p["pts_time"]), p.get("flags", "")) for p in json.loads(r.stdout)["packets"]
            if "pts_time" in p]


def sent_bytes(s):
    cs = s.get_json("/api/streams")["cam"]["consumers"]
    return sum(c.get("bytes_send", 0) for c in cs)


def test_recording_survives_a_camera_power_cut(server_factory, camera_factory, tmp_path):
    cam = camera_factory(audio="aac", fps=25)
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    out = tmp_path / "rec.ts"
    # `-t 18` ends the recording after 18 s of *media* time: with the camera's
    # fresh timestamp base passed through, it would stop right at the restart.
    rec = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/cam",
         "-c", "copy", "-t", "18", "-f", "mpegts", "-y", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert wait_until(lambda: sent_bytes(s) > 200_000, timeout=20), s.get_json("/api/streams")
    cam.kill()
    killed = time.monotonic()
    time.sleep(OUTAGE)  # the outage itself, not an assertion
    before = sent_bytes(s)
    cam.start()
    back = time.monotonic()
    outage = back - killed
    # When the reader got frames again, seen from the server's counters.
    t0 = time.monotonic()
    assert wait_until(lambda: sent_bytes(s) > before, timeout=15, step=0.02), s.output()
    resumed = time.monotonic() - t0
    print(f"frames again {resumed:.2f} s after the camera's port answered")
    assert resumed <= 2.0, f"{resumed:.2f} s to resume"

    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    video = packets(out, "v:0")
    audio = packets(out, "a:0")
    assert len(video) > 250, len(video)
    pts = [p for p, _ in video]
    # DTS order is not PTS order with B-frames, but this camera sends none:
    # each frame is later than the one before, and none goes back.
    steps = [b - a for a, b in zip(pts, pts[1:])]
    assert min(steps) > 0, "video pts go back"
    gaps = [d for d in steps if d > 0.5]
    assert len(gaps) == 1, gaps
    # The gap is the outage as the reader lived it: from the camera's last
    # frame to its first keyframe after coming back.
    assert outage - 0.5 <= gaps[0] <= outage + 1.0 + resumed, (gaps[0], outage)
    # Output resumes at a keyframe.
    after = next(i for i, d in enumerate(steps) if d > 0.5) + 1
    assert "K" in video[after][1], video[after]
    # The recording holds the whole 18 s: media time ran on, not hours ahead.
    assert 17.0 <= pts[-1] - pts[0] <= 18.5, (pts[0], pts[-1])
    apts = [p for p, _ in audio]
    assert all(b > a for a, b in zip(apts, apts[1:])), "audio pts go back"
    assert abs(apts[-1] - pts[-1]) < 1.0, (apts[-1], pts[-1])
    # The outage is logged once and the return once, not once per retry.
    log = s.output()
    assert log.count("source failed") == 1, log
    assert log.count("source is back") == 1, log


def test_reader_continues_when_a_publisher_reconnects(server_factory, tmp_path):
    clip = tmp_path / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
         "-t", "6", "-c:v", "libx264", "-g", "25", "-bf", "0", str(clip)],
        check=True, timeout=120,
    )
    s = server_factory("streams:\n  pushed:\napi:\n  listen: 127.0.0.1:{port}\n").start()

    def publish():
        return subprocess.Popen(
            ["ffmpeg", "-v", "error", "-re", "-i", str(clip), "-c", "copy", "-f", "rtsp",
             "-rtsp_transport", "tcp", f"{s.rtsp_url}/pushed"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    pub = publish()
    assert wait_until(lambda: s.get_json("/api/streams")["pushed"]["producers"], timeout=15)
    out = tmp_path / "rec.ts"
    rec = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/pushed",
         "-c", "copy", "-t", "12", "-f", "mpegts", "-y", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert pub.wait(timeout=30) == 0
        # The publisher is gone for a moment, then pushes the same clip
        # again: its timestamps start from zero once more.
        time.sleep(2)
        pub = publish()
        _, err = rec.communicate(timeout=60)
        assert rec.returncode == 0, err
    finally:
        for p in (pub, rec):
            if p.poll() is None:
                p.kill()
                p.wait()
    pts = [p for p, _ in packets(out, "v:0")]
    # More than one 6 s clip's worth (150 frames): the second publisher's
    # frames reached the reader that stayed connected.
    assert len(pts) > 200, (len(pts), s.output())
    steps = [b - a for a, b in zip(pts, pts[1:])]
    assert min(steps) > 0, "video pts go back"
    gaps = [d for d in steps if d > 0.5]
    assert len(gaps) == 1 and 1.5 <= gaps[0] <= 5.0, gaps
    # `-t 12` ended it after 12 s of media time, not at the reconnect.
    assert 11.0 <= pts[-1] - pts[0] <= 12.5, (pts[0], pts[-1])


def test_reader_continues_across_exec_respawns(server_factory, tmp_path):
    # The command ends after 3 s and is started again while the reader
    # stays; each run's MPEG-TS starts its timestamps afresh.
    src = ("exec:ffmpeg -hide_banner -v error -re -f lavfi -i testsrc2=size=320x240:rate=25 "
           "-t 3 -c:v libx264 -g 25 -bf 0 -f mpegts -")
    s = server_factory(f"streams:\n  gen: {src}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    out = tmp_path / "rec.ts"
    rec = subprocess.run(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/gen",
         "-c", "copy", "-t", "8", "-f", "mpegts", "-y", str(out)],
        capture_output=True, text=True, timeout=90,
    )
    assert rec.returncode == 0, rec.stderr
    pts = [p for p, _ in packets(out, "v:0")]
    steps = [b - a for a, b in zip(pts, pts[1:])]
    assert min(steps) > 0, "video pts go back"
    # 8 s of media time, made of more than one run of the command (75
    # frames each), with the respawns as gaps.
    assert 7.0 <= pts[-1] - pts[0] <= 8.5, (pts[0], pts[-1])
    assert len(pts) > 100, len(pts)
    assert [d for d in steps if d > 0.2], steps


def test_reader_moves_to_the_next_source_when_the_first_stays_down(
        server_factory, camera_factory, tmp_path):
    main = camera_factory(audio="aac", fps=25)
    spare = camera_factory(audio="aac", fps=25)
    s = server_factory(
        f"streams:\n  cam:\n    - {main.url}\n    - {spare.url}\napi:\n  listen: 127.0.0.1:{{port}}\n"
    ).start()
    out = tmp_path / "rec.ts"
    rec = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/cam",
         "-c", "copy", "-t", "12", "-f", "mpegts", "-y", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert wait_until(lambda: sent_bytes(s) > 100_000, timeout=20), s.get_json("/api/streams")
    assert spare.sessions() == 0, "the spare is not used while the first camera plays"
    main.kill()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    assert spare.plays() >= 1, s.output()
    pts = [p for p, _ in packets(out, "v:0")]
    steps = [b - a for a, b in zip(pts, pts[1:])]
    assert min(steps) > 0, "video pts go back"
    gaps = [d for d in steps if d > 0.5]
    # Failover waits 3 s (a camera restart is quicker), then the spare plays.
    assert len(gaps) == 1 and 2.5 <= gaps[0] <= 6.0, gaps
    assert 11.0 <= pts[-1] - pts[0] <= 12.5, (pts[0], pts[-1])
    apts = [p for p, _ in packets(out, "a:0")]
    assert all(b > a for a, b in zip(apts, apts[1:])), "audio pts go back"
    assert apts[-1] > pts[0] + 9, "audio moved to the spare too"
    assert "consumers moved to the next source" in s.output()


def _set_camera_arg(cam, flag, value):
    cam.args[cam.args.index(flag) + 1] = value


def test_camera_back_with_another_resolution_continues_in_band(
        server_factory, camera_factory, tmp_path):
    # Parameter sets only in the SDP, as some cameras send them: the reader
    # (whose SDP still has the old ones) learns the new ones only from the
    # keyframes camrouter sends it.
    cam = camera_factory(audio="none", fps=25, size="640x360", config_interval=0)
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    out = tmp_path / "rec.ts"
    rec = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/cam",
         "-c", "copy", "-t", "8", "-f", "mpegts", "-y", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    assert wait_until(lambda: sent_bytes(s) > 100_000, timeout=20)
    cam.kill()
    _set_camera_arg(cam, "--size", "320x240")
    cam.start()
    _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "frame=width,height", "-of", "csv=p=0", str(out)],
        capture_output=True, text=True, timeout=60,
    )
    sizes = [l.strip() for l in r.stdout.splitlines() if l.strip()]
    # Decoded frames of both sizes: the new SPS reached the reader in band.
    assert "640,360" in sizes and "320,240" in sizes, sorted(set(sizes))
    assert sizes.index("320,240") > sizes.index("640,360")
    assert sizes.count("320,240") > 50, sizes.count("320,240")


def test_camera_back_with_another_codec_ends_its_readers_with_a_reason(
        server_factory, camera_factory):
    cam = camera_factory(audio="none", fps=25, video="h264")
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    rec = subprocess.Popen(
        ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"{s.rtsp_url}/cam",
         "-c", "copy", "-f", "null", "-"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: sent_bytes(s) > 100_000, timeout=20)
        cam.kill()
        _set_camera_arg(cam, "--video", "h265")
        cam.start()
        # The reader was given H.264; it is disconnected rather than fed H.265.
        rec.wait(timeout=30)
    finally:
        if rec.poll() is None:
            rec.kill()
            rec.wait()
    assert "codec changed from H264 to H265" in s.output(), s.output()
    assert wait_until(lambda: s.get_json("/api/streams")["cam"]["consumers"] == [], timeout=10)
    # A new reader gets the new codec.
    r = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-show_streams", "-of", "json",
         f"{s.rtsp_url}/cam"], capture_output=True, text=True, timeout=30,
    )
    assert json.loads(r.stdout)["streams"][0]["codec_name"] == "hevc", r.stdout + r.stderr


def test_rtp_sequence_ssrc_and_timestamps_continue_across_a_camera_restart(
        server_factory, camera_factory):
    from camera import RtspClient

    cam = camera_factory(audio="none", fps=25)
    s = server_factory(f"streams:\n  cam: {cam.url}\napi:\n  listen: 127.0.0.1:{{port}}\n").start()
    c = RtspClient(f"{s.rtsp_url}/cam")
    rtp = []  # (seq, timestamp, ssrc, wall time)
    c.on_frame = lambda ch, p: ch == 0 and len(p) >= 12 and rtp.append(
        (struct.unpack(">H", p[2:4])[0], struct.unpack(">I", p[4:8])[0],
         struct.unpack(">I", p[8:12])[0], time.monotonic()))
    try:
        c.request("DESCRIBE", headers={"Accept": "application/sdp"})
        c.request("SETUP", f"{s.rtsp_url}/cam/trackID=0",
                  headers={"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1"})
        c.request("PLAY")

        def read_until(pred, timeout):
            deadline = time.monotonic() + timeout
            while not pred() and time.monotonic() < deadline:
                c.skip_frames()
            return pred()

        assert read_until(lambda: len(rtp) > 100, 20)
        before = len(rtp)
        cam.kill()
        killed = time.monotonic()
        time.sleep(3)  # the outage
        cam.start()
        assert read_until(lambda: any(w > killed + 3 for *_, w in rtp[before:])
                          and len(rtp) > before + 100, 30), len(rtp)
    finally:
        c.close()
    seqs = [r[0] for r in rtp]
    assert len({r[2] for r in rtp}) == 1, "one SSRC across the restart"
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:])), "RTP sequence has a hole"
    ts = [r[1] for r in rtp]
    steps = [(b - a) % (1 << 32) for a, b in zip(ts, ts[1:])]
    # Timestamps never go back (a step of more than 2^31 would be one), and
    # the one big step is the outage in 90 kHz units.
    assert max(steps) < 1 << 31, max(steps)
    big = [d / 90000 for d in steps if d > 0.5 * 90000]
    assert len(big) == 1 and 2.5 <= big[0] <= 6.0, big
