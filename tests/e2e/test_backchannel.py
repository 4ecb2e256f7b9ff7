"""Two-way audio plumbing: go2rtc's "stream to camera" (POST /api/streams?dst=&src=)
delivers a source's audio to a producer's backchannel (exec #backchannel=1)."""

import time

from conftest import children_of, stacks, wait_until

TONE = (
    "exec:ffmpeg -hide_banner -loglevel error -re -f lavfi "
    "-i sine=frequency=440:sample_rate=8000 -c:a pcm_mulaw -f wav -"
)


def test_play_audio_into_backchannel(server_factory, tmp_path):
    out = tmp_path / "speaker.raw"
    cfg = (
        f"streams:\n  tone: {TONE}\n"
        f"  speaker: exec:sh -c 'cat > {out}'#backchannel=1#audio=mulaw/8000\n"
        "api:\n  listen: 127.0.0.1:{port}\n"
    )
    s = server_factory(cfg).start()
    probe = s.get_json("/api/streams?src=speaker&microphone")
    assert probe["producers"][0]["medias"] == ["audio, sendonly, PCMU/8000"]
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=10)

    status, body, _ = s.request("POST", "/api/streams?dst=speaker&src=tone")
    assert status == 200, body
    # 8000 mu-law samples a second: after 2 s well over 8 KB have arrived.
    # On failure: where the audio stopped (the tone's producer, the play
    # consumer or the speaker's backchannel), from the counters.
    assert wait_until(lambda: out.exists() and out.stat().st_size > 8000, timeout=15), (
        out.exists() and out.stat().st_size, s.get_json("/api/streams"), s.output(),
        stacks(s.proc.pid))
    data = out.read_bytes()
    # mu-law silence is 0xFF/0x7F; a 440 Hz tone has many distinct values.
    assert len(set(data[:4000])) > 20

    status, _, _ = s.request("POST", "/api/streams?dst=speaker&src=")
    assert status == 200
    assert wait_until(lambda: children_of(s.proc.pid) == [], timeout=10), children_of(s.proc.pid)
    size = out.stat().st_size
    time.sleep(1)
    assert out.stat().st_size == size, "nothing plays after stop"

    status, _, _ = s.request("POST", "/api/streams?dst=nope&src=tone")
    assert status == 404
