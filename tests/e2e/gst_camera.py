#!/usr/bin/python3
"""A fake RTSP camera for end-to-end tests, built on GStreamer's RTSP server.

Run with the *system* Python (it needs python3-gi and gir1.2-gst-rtsp-server-1.0):

    /usr/bin/python3 gst_camera.py --port 8554 [--user U --password W]
        [--auth digest|basic] [--video h264|h265|mjpeg]
        [--audio none|aac|pcmu|pcma|opus] [--size 640x360] [--fps 25]
        [--onvif-backchannel OUT_FILE] [--path /cam]

It serves a live test pattern with a running clock at rtsp://127.0.0.1:PORT/cam
(127.0.0.1 only) and prints, line-buffered on stdout:

    READY rtsp://127.0.0.1:PORT/cam   once it accepts connections
    SESSION <n>                       when client connection number n arrives
    CLOSED <n>                        when client connection n goes away
    PLAY <n>                          when connection n starts playing

With --onvif-backchannel the server speaks ONVIF's backchannel extension: a
DESCRIBE carrying `Require: www.onvif.org/ver20/backchannel` gets one extra
`a=sendonly` PCMU/8000 audio media; mu-law bytes sent to it (RTP payload type 0)
are written, depayloaded but not decoded, to OUT_FILE.

SIGTERM / SIGINT stop it cleanly (exit status 0).
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

VIDEO = {
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate=1000 "
        "! video/x-h264,profile=baseline "
        "! rtph264pay name=pay0 pt=96 config-interval={ci}"
    ),
    "h265": (
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate=1000 "
        "! rtph265pay name=pay0 pt=96 config-interval={ci}"
    ),
    "mjpeg": "jpegenc quality=70 ! rtpjpegpay name=pay0 pt=26",
}

AUDIO = {
    "aac": (
        "audio/x-raw,rate=16000,channels=1 ! avenc_aac bitrate=64000 "
        "! rtpmp4gpay name=pay1 pt=97"
    ),
    "pcmu": "audio/x-raw,rate=8000,channels=1 ! mulawenc ! rtppcmupay name=pay1 pt=0",
    "pcma": "audio/x-raw,rate=8000,channels=1 ! alawenc ! rtppcmapay name=pay1 pt=8",
    "l16": (
        "audio/x-raw,format=S16BE,rate=16000,channels=1 ! rtpL16pay name=pay1 pt=98"
    ),
    "opus": (
        "audio/x-raw,rate=48000,channels=2 ! opusenc bitrate=32000 "
        "! rtpopuspay name=pay1 pt=111"
    ),
}


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def launch_line(args):
    w, h = (int(x) for x in args.size.lower().split("x"))
    parts = [
        f"videotestsrc is-live=true pattern=smpte "
        f"! video/x-raw,width={w},height={h},framerate={args.fps}/1 "
        "! timeoverlay halignment=left valignment=top font-desc=\"Sans 18\" "
        "! clockoverlay halignment=right valignment=top font-desc=\"Sans 18\" "
        "time-format=\"%H:%M:%S\" "
        "! videoconvert ! video/x-raw,format=I420 "
        "! " + VIDEO[args.video].format(gop=args.fps * 2, ci=args.config_interval)
    ]
    if args.audio != "none":
        parts.append(
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.3 "
            "! audioconvert ! audioresample ! " + AUDIO[args.audio]
        )
    return "( " + " ".join(parts) + " )"


BACKCHANNEL = (
    "( capsfilter name=depay_backchannel "
    "caps=\"application/x-rtp,media=audio,payload=0,clock-rate=8000,encoding-name=PCMU\" "
    "! rtppcmudepay "
    "! filesink location=\"{path}\" async=false sync=false buffer-mode=unbuffered )"
)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user")
    p.add_argument("--password", default="")
    p.add_argument("--auth", choices=["digest", "basic"], default="digest")
    p.add_argument("--video", choices=sorted(VIDEO), default="h264")
    p.add_argument("--audio", choices=["none", *sorted(AUDIO)], default="aac")
    p.add_argument("--size", default="640x360")
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--onvif-backchannel", metavar="OUT_FILE")
    p.add_argument("--path", default="/cam")
    # 0: parameter sets only in the SDP, as some cameras do.
    p.add_argument("--config-interval", type=int, default=1)
    args = p.parse_args()
    if not args.path.startswith("/"):
        args.path = "/" + args.path

    Gst.init(None)
    loop = GLib.MainLoop()

    if args.onvif_backchannel:
        server = GstRtspServer.RTSPOnvifServer.new()
        factory = GstRtspServer.RTSPOnvifMediaFactory.new()
        factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia)
        factory.set_backchannel_launch(BACKCHANNEL.format(path=args.onvif_backchannel))
        # Each client gets its own pipeline (and its own backchannel).
        factory.set_shared(False)
    else:
        server = GstRtspServer.RTSPServer.new()
        factory = GstRtspServer.RTSPMediaFactory.new()
        # Like a real camera: one encoder, however many clients.
        factory.set_shared(True)
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory.set_launch(launch_line(args))
    factory.set_latency(0)

    if args.user:
        auth = GstRtspServer.RTSPAuth.new()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        if args.auth == "digest":
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
            auth.add_digest(args.user, args.password, token)
        else:
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
            auth.add_basic(
                GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, "
            "media.factory.construct=(boolean)true"))

    server.get_mount_points().add_factory(args.path, factory)

    count = [0]

    def on_client(_server, client):
        count[0] += 1
        n = count[0]
        out(f"SESSION {n}")
        client.connect("closed", lambda _c: out(f"CLOSED {n}"))
        client.connect("play-request", lambda _c, _ctx: out(f"PLAY {n}"))

    server.connect("client-connected", on_client)

    if server.attach(None) == 0:
        out(f"ERROR cannot listen on 127.0.0.1:{args.port}")
        return 1

    # Drop idle sessions of clients that vanished without TEARDOWN.
    def cleanup():
        server.get_session_pool().cleanup()
        return True

    GLib.timeout_add_seconds(2, cleanup)

    def stop():
        out("STOPPING")
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, stop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, stop)

    out(f"READY rtsp://127.0.0.1:{args.port}{args.path}")
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
