#!/usr/bin/env python3
"""CPU cost of encoding a Y4M source to H.264 (plugin API `rawvideo`).

    python3 bench/y4m_encode.py [WIDTHxHEIGHT] [SECONDS]

Starts target/debug/camrouter (or $CAMROUTER) with an `exec:` source giving
ffmpeg's testsrc2 as Y4M at 15 fps, reads it over RTSP with ffmpeg, and
after a warm-up reports over SECONDS (default 30) the CPU time of the
encoder thread (`y4m-h264`) and of the whole process, from /proc."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("CAMROUTER", os.path.join(ROOT, "target/debug/camrouter"))
SIZE = sys.argv[1] if len(sys.argv) > 1 else "640x480"
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 30.0
TICK = os.sysconf("SC_CLK_TCK")


def port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid, thread=None):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            fields = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if thread is None or name == thread:
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICK


def main():
    api, rtsp = port(), port()
    src = (f"exec:ffmpeg -hide_banner -loglevel error -re -f lavfi "
           f"-i testsrc2=size={SIZE}:rate=15 -f yuv4mpegpipe -")
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "camrouter.yaml")
        with open(cfg, "w") as f:
            f.write(f"streams:\n  raw: {src}\napi:\n  listen: 127.0.0.1:{api}\n"
                    f"rtsp:\n  listen: 127.0.0.1:{rtsp}\nwebrtc:\n  listen: 127.0.0.1:{port()}\n"
                    f"rtmp:\n  listen: 127.0.0.1:{port()}\n")
        srv = subprocess.Popen([BIN, "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        reader = None
        try:
            time.sleep(2)
            reader = subprocess.Popen(
                ["ffmpeg", "-v", "error", "-rtsp_transport", "tcp", "-i", f"rtsp://127.0.0.1:{rtsp}/raw",
                 "-c", "copy", "-f", "null", "-"])
            time.sleep(8)  # warm-up: source started, encoder initialised
            s0 = json.load(urllib.request.urlopen(f"http://127.0.0.1:{api}/api/streams"))["raw"]
            all0, enc0, t0 = cpu_seconds(srv.pid), cpu_seconds(srv.pid, "y4m-h264"), time.time()
            time.sleep(SECONDS)
            all1, enc1, t1 = cpu_seconds(srv.pid), cpu_seconds(srv.pid, "y4m-h264"), time.time()
            s1 = json.load(urllib.request.urlopen(f"http://127.0.0.1:{api}/api/streams"))["raw"]
            rss = next(l.split(":")[1].strip() for l in open(f"/proc/{srv.pid}/status")
                       if l.startswith("VmRSS"))
            bits = (s1["producers"][0]["bytes_recv"] - s0["producers"][0]["bytes_recv"]) * 8
            dt = t1 - t0
            print(f"{SIZE}@15: encoder thread {(enc1 - enc0) / dt:.3f} cores, "
                  f"camrouter {(all1 - all0) / dt:.3f} cores, H.264 {bits / dt / 1e6:.2f} Mb/s, RSS {rss}")
        finally:
            for p in (reader, srv):
                if p:
                    p.terminate()
                    p.wait()


main()
