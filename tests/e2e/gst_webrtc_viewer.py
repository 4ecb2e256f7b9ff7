"""A WebRTC viewer on GStreamer's own stack (webrtcbin, libnice, its DTLS
and SRTP): offers to receive video in one codec, signals by WHEP, decodes
what arrives with decodebin and reports the frames it saw.

Run with the system python3 (python3-gi):
  python3 gst_webrtc_viewer.py WHEP_URL CODEC FRAMES TIMEOUT
prints one JSON line: {"frames", "width", "height", "caps", "error"}.
"""

import json
import sys
import threading
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

URL, CODEC, WANT, TIMEOUT = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
Gst.init(None)
result = {"frames": 0, "width": None, "height": None, "caps": None, "error": None,
          "stages": []}


def stage(name):
    """How far the session got (for a failure's report)."""
    result["stages"].append(name)
loop = GLib.MainLoop()
pipe = Gst.Pipeline.new("viewer")
webrtc = Gst.ElementFactory.make("webrtcbin", "webrtc")
webrtc.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
pipe.add(webrtc)


def fail(msg):
    result["error"] = msg
    loop.quit()


def on_sample(sink):
    sample = sink.emit("pull-sample")
    s = sample.get_caps().get_structure(0)
    result["frames"] += 1
    result["width"], result["height"] = s.get_value("width"), s.get_value("height")
    if result["frames"] >= WANT:
        GLib.idle_add(loop.quit)
    return Gst.FlowReturn.OK


def on_pad(_, pad):
    if pad.get_direction() != Gst.PadDirection.SRC:
        return
    stage("pad")
    result["caps"] = pad.get_current_caps().to_string()
    # The depayloader and libav's decoder for the codec offered (decodebin
    # would pick the same but links them late, racing the first packets).
    c = CODEC.lower()
    bin_ = Gst.parse_bin_from_description(
        f"queue ! rtp{c}depay ! {c}parse ! avdec_{c} ! videoconvert ! "
        "appsink name=sink emit-signals=true sync=false", True)
    pipe.add(bin_)
    bin_.sync_state_with_parent()
    bin_.get_by_name("sink").connect("new-sample", on_sample)
    pad.link(bin_.get_static_pad("sink"))


def post_offer(sdp_text):
    stage("post")
    req = urllib.request.Request(URL, data=sdp_text.encode(), method="POST",
                                 headers={"Content-Type": "application/sdp"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            answer = r.read().decode()
    except Exception as e:  # the server's refusal is the result
        GLib.idle_add(fail, f"signaling: {e}")
        return
    stage("answered")
    GLib.idle_add(set_answer, answer)


def set_answer(text):
    ok, msg = GstSdp.SDPMessage.new_from_text(text)
    if ok != GstSdp.SDPResult.OK:
        fail("bad answer SDP")
        return
    desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
    webrtc.emit("set-remote-description", desc, None)


def on_gathering(element, _):
    # Candidates gathered: the whole offer goes in one POST (no trickle).
    state = element.get_property("ice-gathering-state")
    stage(f"gathering:{state.value_nick}")
    if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
        sdp = element.get_property("local-description").sdp.as_text()
        threading.Thread(target=post_offer, args=(sdp,), daemon=True).start()


def on_offer(promise, _):
    stage("offer")
    reply = promise.get_reply()
    offer = reply.get_value("offer")
    webrtc.emit("set-local-description", offer, None)


def on_negotiation_needed(element):
    stage("negotiation-needed")
    promise = Gst.Promise.new_with_change_func(on_offer, None)
    element.emit("create-offer", None, promise)


def on_bus(_, message):
    if message.type == Gst.MessageType.ERROR:
        err, _dbg = message.parse_error()
        fail(f"gstreamer: {err.message}")


# H.264 in packetization-mode 1, as browsers offer it.
extra = ",packetization-mode=(string)1,profile-level-id=(string)42e01f" if CODEC == "H264" else ""
caps = Gst.Caps.from_string(
    f"application/x-rtp,media=video,encoding-name={CODEC},payload=96,clock-rate=90000{extra}")
webrtc.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, caps)
webrtc.connect("on-negotiation-needed", on_negotiation_needed)
webrtc.connect("notify::ice-gathering-state", on_gathering)
webrtc.connect("pad-added", on_pad)
webrtc.connect("notify::ice-connection-state",
               lambda e, _: stage("ice:" + e.get_property("ice-connection-state").value_nick))
webrtc.connect("notify::connection-state",
               lambda e, _: stage("pc:" + e.get_property("connection-state").value_nick))
bus = pipe.get_bus()
bus.add_signal_watch()
bus.connect("message", on_bus)
GLib.timeout_add(int(TIMEOUT * 1000), lambda: fail("timeout") or False)
pipe.set_state(Gst.State.PLAYING)
loop.run()
pipe.set_state(Gst.State.NULL)
print(json.dumps(result), flush=True)
