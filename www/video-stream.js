// <video-stream>: plays one camrouter (or go2rtc) stream in the browser.
//
//   <script type="module" src="video-stream.js"></script>
//   <video-stream src="cam"></video-stream>
//
// Attributes:
//   src         stream name (required)
//   mode        modes to try, in order: webrtc, mse, hls, mjpeg (default all four)
//   microphone  with webrtc: send this browser's microphone to the stream (two-way audio)
//   media       go2rtc's `media=video,audio,microphone` (microphone here = the attribute above)
//   server      base URL of the server (default: this page's directory, so base_path works)
//   background  keep playing while the page or the element is hidden
//
// Properties for scripts: `mode` (the mode playing now, or ''), `state`
// ('idle' | 'connecting' | 'playing' | 'error' | 'paused'), `errorText`, `frames`
// (pictures shown in mjpeg mode), `skipped` (why each mode before the current
// one did not play, as 'mode: reason'), `video` (the <video> element),
// `peerConnection` (in webrtc mode). Events
// `statechange` (detail: {state, mode, error}) fire on every change.
//
// Each mode is tried in order until one shows a picture; a mode the browser
// lacks is skipped, one the server refuses (an error message, a 404, no picture
// in time) hands over to the next. After a playing mode stops (network loss,
// server restart, camera gone) the whole order is tried again with a growing
// delay, so the picture comes back by itself.

const ALL_MODES = ['webrtc', 'mse', 'hls', 'mjpeg'];
// Codecs offered for MSE: what the server may send, kept to what this browser plays.
const MSE_CODECS = [
  'avc1.640029', 'avc1.64002A', 'avc1.640033', 'hvc1.1.6.L153.B0', 'av01.0.08M.08',
  'mp4a.40.2', 'mp4a.40.5', 'flac', 'opus',
];
// How long a mode may take to show its first picture, and how long a playing
// picture may stand still, before it counts as failed.
const START_TIMEOUT_MS = 15000;
const STALL_TIMEOUT_MS = 10000;
const RETRY_DELAYS_MS = [1000, 2000, 5000, 10000];
// A mode whose media element fails before its first picture is started again
// this many times before the next mode is tried: WebKitGTK's MSE fails a
// start now and then (a race in its GStreamer pipeline, "Failed to push
// buffer") and plays on the next, which beats falling back to HLS's latency.
const MEDIA_START_ATTEMPTS = 3;

const STYLE = `
:host { display: block; position: relative; background: #000; overflow: hidden; aspect-ratio: 16 / 9; }
video, img { width: 100%; height: 100%; object-fit: contain; display: block; background: #000; }
img[hidden], video[hidden] { display: none; }
.badge { position: absolute; top: .4rem; left: .4rem; padding: .1rem .4rem; border-radius: .25rem;
  font: 600 12px/1.4 system-ui, sans-serif; color: #fff; background: rgba(0,0,0,.55); pointer-events: none;
  text-transform: uppercase; letter-spacing: .03em; }
.error { position: absolute; inset: auto .5rem .5rem .5rem; padding: .4rem .6rem; border-radius: .3rem;
  font: 13px/1.4 system-ui, sans-serif; color: #fff; background: rgba(170,20,20,.85); white-space: pre-wrap; }
.error[hidden] { display: none; }
`;

function mediaSourceClass() {
  // iOS Safari 17+ has only ManagedMediaSource.
  return window.ManagedMediaSource || window.MediaSource || null;
}

export class VideoStream extends HTMLElement {
  static get observedAttributes() { return ['src', 'mode', 'microphone', 'media', 'server']; }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style>
      <video part="video" muted playsinline controls></video>
      <img part="image" alt="" hidden>
      <span class="badge" part="badge"></span>
      <div class="error" part="error" role="alert" hidden></div>`;
    this.video = root.querySelector('video');
    this.image = root.querySelector('img');
    this.badge = root.querySelector('.badge');
    this.errorBox = root.querySelector('.error');
    this.mode = '';
    this.state = 'idle';
    this.errorText = '';
    this.frames = 0;
    this.skipped = [];
    this._session = 0; // bumped on every stop: late callbacks of an old attempt see a stale number
    this._cleanup = [];
    this._retry = 0;
    this._retryTimer = null;
    this._visible = true;
    this._onVisibility = () => this._visibilityChanged();
  }

  connectedCallback() {
    document.addEventListener('visibilitychange', this._onVisibility);
    if ('IntersectionObserver' in window) {
      this._observer = new IntersectionObserver((entries) => {
        this._visible = entries.some((e) => e.isIntersecting);
        this._visibilityChanged();
      });
      this._observer.observe(this);
    }
    this._start();
  }

  disconnectedCallback() {
    document.removeEventListener('visibilitychange', this._onVisibility);
    if (this._observer) this._observer.disconnect();
    this._stop();
    this._setState('idle');
  }

  attributeChangedCallback(_name, oldValue, newValue) {
    if (oldValue !== newValue && this.isConnected) this._start();
  }

  // Modes to try, in the order asked for, leaving out unknown names.
  get modes() {
    const asked = (this.getAttribute('mode') || ALL_MODES.join(','))
      .split(',').map((m) => m.trim().toLowerCase()).filter(Boolean);
    return asked.filter((m, i) => ALL_MODES.includes(m) && asked.indexOf(m) === i);
  }

  get wantsMicrophone() {
    const media = (this.getAttribute('media') || '').split(',');
    return this.hasAttribute('microphone') || media.includes('microphone');
  }

  // Resolves an API path against the server (default: the page's directory).
  url(path, ws = false) {
    const base = this.getAttribute('server') || document.baseURI;
    const u = new URL(path, new URL('.', base));
    if (ws) u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    return u.toString();
  }

  _hiddenNow() {
    return !this.hasAttribute('background') && (document.hidden || !this._visible);
  }

  _visibilityChanged() {
    if (this._hiddenNow()) {
      if (this.state !== 'paused' && this.state !== 'idle') {
        this._stop();
        this._setState('paused');
      }
    } else if (this.state === 'paused') {
      this._start();
    }
  }

  _setState(state, error = '') {
    this.state = state;
    this.errorText = error;
    this.badge.textContent = state === 'playing' ? this.mode
      : state === 'connecting' ? (this.mode ? `${this.mode}…` : 'connecting…')
        : state === 'paused' ? 'paused' : state === 'error' ? 'no video' : '';
    this.badge.hidden = !this.badge.textContent;
    this.errorBox.textContent = error;
    this.errorBox.hidden = !error;
    this.dispatchEvent(new CustomEvent('statechange', { detail: { state, mode: this.mode, error } }));
  }

  _stop() {
    this._session += 1;
    clearTimeout(this._retryTimer);
    this._retryTimer = null;
    for (const f of this._cleanup.splice(0)) {
      try { f(); } catch (_) { /* closing what is already closed */ }
    }
    this.video.pause();
    this.video.removeAttribute('src');
    this.video.srcObject = null;
    this.video.load();
    if (this.image.src.startsWith('blob:')) URL.revokeObjectURL(this.image.src);
    this.image.removeAttribute('src');
    delete this.image.dataset.loading;
    this.mode = '';
  }

  _start() {
    this._stop();
    this._retry = 0;
    if (!this.getAttribute('src')) {
      this._setState('error', 'no stream: set the src attribute');
      return;
    }
    if (this._hiddenNow()) {
      this._setState('paused');
      return;
    }
    this._tryModes();
  }

  async _tryModes() {
    const session = this._session;
    const failures = [];
    this.skipped = failures;
    const modes = this.modes;
    if (!modes.length) {
      this._setState('error', `no known mode in "${this.getAttribute('mode')}" (use ${ALL_MODES.join(', ')})`);
      return;
    }
    for (const mode of modes) {
      if (session !== this._session) return;
      const missing = this._browserLacks(mode);
      if (missing) {
        failures.push(`${mode}: ${missing}`);
        continue;
      }
      for (let attempt = 1; ; attempt += 1) {
        this.mode = mode;
        this._setState('connecting');
        const ended = await this._play(mode, session);
        if (session !== this._session) return;
        if (ended.played) {
          // It played, then stopped: start over from the first mode.
          this._retry = 0;
          this._scheduleRetry(`${mode}: ${ended.error}`);
          return;
        }
        this._teardown();
        if (!ended.media || attempt >= MEDIA_START_ATTEMPTS) {
          failures.push(`${mode}: ${ended.error}`);
          break;
        }
      }
    }
    this.mode = '';
    this._scheduleRetry(failures.join('\n'));
  }

  // Ends the current attempt's resources but keeps the session number.
  _teardown() {
    for (const f of this._cleanup.splice(0)) {
      try { f(); } catch (_) { /* already closed */ }
    }
    this.video.srcObject = null;
    this.video.removeAttribute('src');
    this.image.hidden = true;
    this.video.hidden = false;
  }

  _scheduleRetry(error) {
    this._teardown();
    const delay = RETRY_DELAYS_MS[Math.min(this._retry, RETRY_DELAYS_MS.length - 1)];
    this._retry += 1;
    this.mode = '';
    this._setState('error', `${error}\nretrying in ${Math.round(delay / 1000)} s`);
    const session = this._session;
    this._retryTimer = setTimeout(() => {
      if (session === this._session && !this._hiddenNow()) this._tryModes();
    }, delay);
  }

  _browserLacks(mode) {
    switch (mode) {
      case 'webrtc':
        return 'RTCPeerConnection' in window ? '' : 'this browser has no WebRTC';
      case 'mse':
        return mediaSourceClass() ? '' : 'this browser has no Media Source Extensions';
      case 'hls':
        return this.video.canPlayType('application/vnd.apple.mpegurl') || mediaSourceClass()
          ? '' : 'this browser plays neither HLS nor MSE';
      default:
        return '';
    }
  }

  // Runs one mode until it fails to start or stops after playing. Resolves
  // {played, error, media}; `media`: the media element failed (not the
  // server, the network or a timeout).
  _play(mode, session) {
    return new Promise((resolve) => {
      let played = false;
      let done = false;
      let lastProgress = Date.now();
      const started = Date.now();
      const finish = (error, media = false) => {
        if (done) return;
        done = true;
        clearInterval(watchdog);
        resolve({ played, error, media });
      };
      // Called by the mode each time the picture advances.
      const progress = () => {
        lastProgress = Date.now();
        if (!played && session === this._session) {
          played = true;
          this._retry = 0;
          this._setState('playing');
        }
      };
      const watchdog = setInterval(() => {
        if (session !== this._session) return finish('stopped');
        if (!played && Date.now() - started > START_TIMEOUT_MS) finish('no picture in time');
        else if (played && Date.now() - lastProgress > STALL_TIMEOUT_MS) finish('the picture stopped');
      }, 500);
      this._cleanup.push(() => clearInterval(watchdog));
      const ctx = { session, progress, fail: finish };
      this.image.hidden = mode !== 'mjpeg';
      this.video.hidden = mode === 'mjpeg';
      const run = { webrtc: this._webrtc, mse: this._mse, hls: this._hls, mjpeg: this._mjpeg }[mode];
      Promise.resolve(run.call(this, ctx)).catch((e) => finish(String(e && e.message || e)));
    });
  }

  // A WebSocket to /api/ws for this stream; `onText(msg)` gets parsed JSON,
  // binary messages go to `onBinary`; errors and closing end the mode.
  _socket(ctx, { onOpen, onText, onBinary }) {
    const src = encodeURIComponent(this.getAttribute('src'));
    const ws = new WebSocket(this.url(`api/ws?src=${src}`, true));
    ws.binaryType = 'arraybuffer';
    this._cleanup.push(() => ws.close());
    ws.onopen = () => onOpen(ws);
    ws.onmessage = (ev) => {
      if (typeof ev.data !== 'string') {
        if (onBinary) onBinary(ev.data);
        return;
      }
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      if (msg.type === 'error') ctx.fail(String(msg.value));
      else onText(msg);
    };
    ws.onclose = () => ctx.fail('connection to the server closed');
    return ws;
  }

  // The video element reports progress while its clock moves.
  _watchVideo(ctx) {
    const v = this.video;
    let last = -1;
    const tick = () => {
      if (v.currentTime !== last && v.readyState >= 2) {
        last = v.currentTime;
        ctx.progress();
      }
    };
    v.addEventListener('timeupdate', tick);
    this._cleanup.push(() => v.removeEventListener('timeupdate', tick));
    const onError = () => ctx.fail(`video element: ${v.error ? v.error.message || `code ${v.error.code}` : 'error'}`, true);
    v.addEventListener('error', onError);
    this._cleanup.push(() => v.removeEventListener('error', onError));
  }

  _autoplay(ctx) {
    this.video.play().catch((e) => {
      // Not allowed to play with sound without a gesture: muted always may.
      if (e && e.name === 'NotAllowedError' && !this.video.muted) {
        this.video.muted = true;
        this.video.play().catch(() => {});
      } else if (e && e.name !== 'AbortError') {
        ctx.fail(`play: ${e.message || e}`, true);
      }
    });
  }

  _mse(ctx) {
    const MS = mediaSourceClass();
    const ms = new MS();
    const v = this.video;
    v.disableRemotePlayback = true; // ManagedMediaSource needs it without an AirPlay source
    const objectUrl = URL.createObjectURL(ms);
    v.src = objectUrl;
    this._cleanup.push(() => URL.revokeObjectURL(objectUrl));
    this._watchVideo(ctx);
    ms.addEventListener('sourceopen', () => {
      const codecs = MSE_CODECS.filter((c) => MS.isTypeSupported(`video/mp4; codecs="${c}"`));
      let sb = null;
      const queue = [];
      const pump = () => {
        if (!sb || sb.updating || !queue.length) return;
        try {
          sb.appendBuffer(queue.shift());
        } catch (e) {
          if (e.name === 'QuotaExceededError') {
            // Full: drop what is long played and try again.
            queue.length = 0;
            trim(0);
          } else ctx.fail(`append: ${e.message}`);
        }
      };
      const trim = (keep) => {
        if (!sb || sb.updating || ms.readyState !== 'open' || !sb.buffered.length) return;
        const start = sb.buffered.start(0);
        if (v.currentTime - start > keep + 1) sb.remove(start, v.currentTime - keep);
      };
      this._socket(ctx, {
        onOpen: (ws) => ws.send(JSON.stringify({ type: 'mse', value: codecs.join(',') })),
        onText: (msg) => {
          if (msg.type !== 'mse' || sb) return;
          try {
            sb = ms.addSourceBuffer(msg.value);
          } catch (e) {
            ctx.fail(`the browser cannot play ${msg.value}: ${e.message}`);
            return;
          }
          sb.mode = 'segments';
          sb.addEventListener('updateend', () => {
            // A media element that failed closes its MediaSource and detaches
            // this buffer (reading it would throw); its error event ends the mode.
            if (ms.readyState !== 'open') return;
            // Stay near the live edge: after a gap, or when behind by more than
            // a couple of seconds (a tab that was slow), jump ahead.
            if (sb.buffered.length) {
              const end = sb.buffered.end(sb.buffered.length - 1);
              const start = sb.buffered.start(sb.buffered.length - 1);
              if (v.currentTime < start || end - v.currentTime > 3) v.currentTime = Math.max(start, end - 0.5);
            }
            if (!sb.updating && !queue.length) trim(10);
            pump();
          });
          this._autoplay(ctx);
        },
        onBinary: (data) => {
          queue.push(data);
          // A page that cannot keep up keeps only the newest data.
          if (queue.length > 100) queue.splice(0, queue.length - 50);
          pump();
        },
      });
    }, { once: true });
  }

  _mjpeg(ctx) {
    const img = this.image;
    let pending = null;
    this._socket(ctx, {
      onOpen: (ws) => ws.send(JSON.stringify({ type: 'mjpeg' })),
      onText: () => {},
      onBinary: (data) => {
        // Show the newest picture only; one decode at a time.
        if (pending) URL.revokeObjectURL(pending);
        pending = URL.createObjectURL(new Blob([data], { type: 'image/jpeg' }));
        if (!img.dataset.loading) show();
      },
    });
    const show = () => {
      if (!pending) return;
      const url = pending;
      pending = null;
      img.dataset.loading = '1';
      img.onload = () => {
        delete img.dataset.loading;
        this.frames += 1;
        ctx.progress();
        show();
      };
      img.onerror = () => {
        delete img.dataset.loading;
        show();
      };
      const old = img.src;
      img.src = url;
      if (old.startsWith('blob:')) URL.revokeObjectURL(old);
    };
  }

  async _webrtc(ctx) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.peerConnection = pc; // for scripts that want its stats
    this._cleanup.push(() => { pc.close(); this.peerConnection = null; });
    const v = this.video;
    this._watchVideo(ctx);
    pc.addTransceiver('video', { direction: 'recvonly' });
    if (this.wantsMicrophone) {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new Error('no microphone access here (needs https or localhost)');
      }
      const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
      if (ctx.session !== this._session) {
        mic.getTracks().forEach((t) => t.stop());
        return;
      }
      this._cleanup.push(() => mic.getTracks().forEach((t) => t.stop()));
      pc.addTransceiver(mic.getAudioTracks()[0], { direction: 'sendrecv' });
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
    }
    const remote = new MediaStream();
    pc.ontrack = (ev) => {
      remote.addTrack(ev.track);
      if (v.srcObject !== remote) v.srcObject = remote;
      this._autoplay(ctx);
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed') ctx.fail('WebRTC connection failed (no route to the server\'s candidates?)');
      else if (pc.connectionState === 'closed') ctx.fail('WebRTC connection closed');
    };
    let ws = null;
    pc.onicecandidate = (ev) => {
      // go2rtc's shape: the bare candidate line (end of gathering is not sent).
      if (!ev.candidate || !ev.candidate.candidate) return;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'webrtc/candidate', value: ev.candidate.candidate }));
    };
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (ctx.session !== this._session) return;
    ws = this._socket(ctx, {
      onOpen: (sock) => sock.send(JSON.stringify({ type: 'webrtc/offer', value: pc.localDescription.sdp })),
      onText: (msg) => {
        if (msg.type === 'webrtc/answer') {
          pc.setRemoteDescription({ type: 'answer', sdp: msg.value })
            .catch((e) => ctx.fail(`answer: ${e.message}`));
        } else if (msg.type === 'webrtc/candidate' && msg.value) {
          pc.addIceCandidate({ candidate: msg.value, sdpMid: '0' }).catch(() => {});
        }
      },
    });
  }

  async _hls(ctx) {
    const v = this.video;
    const src = encodeURIComponent(this.getAttribute('src'));
    const playlist = this.url(`api/stream.m3u8?src=${src}&mp4`);
    this._watchVideo(ctx);
    // hls.js wherever there is MSE: Chromium's own HLS (new, and it answers
    // canPlayType) fails on these fMP4 segments; Safari on an iPhone without
    // MSE has native HLS.
    if (!mediaSourceClass() && v.canPlayType('application/vnd.apple.mpegurl')) {
      v.src = playlist;
      this._autoplay(ctx);
      return;
    }
    const Hls = await loadHlsJs();
    if (ctx.session !== this._session) return;
    if (!Hls.isSupported()) throw new Error('hls.js: not supported in this browser');
    const hls = new Hls({ liveSyncDurationCount: 2, maxLiveSyncPlaybackRate: 1.5 });
    this._cleanup.push(() => hls.destroy());
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      // A refused playlist carries the server's reason (404 stream not found, …).
      const r = data.response;
      const why = r && r.code ? `${r.code} ${typeof r.data === 'string' ? r.data.trim() : r.text || ''}` : '';
      ctx.fail(`hls.js: ${data.details}${why ? ` (${why.trim()})` : ''}`, data.type === Hls.ErrorTypes.MEDIA_ERROR);
    });
    hls.loadSource(playlist);
    hls.attachMedia(v);
    hls.on(Hls.Events.MANIFEST_PARSED, () => this._autoplay(ctx));
  }
}

let hlsLoading = null;
// hls.js is vendored next to this file (www/vendor/hls.min.js) and loaded only
// when HLS mode needs it.
function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = new URL('vendor/hls.min.js', import.meta.url).toString();
      s.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error('hls.js did not load')));
      s.onerror = () => {
        hlsLoading = null;
        reject(new Error('hls.js is missing (www/vendor/hls.min.js)'));
      };
      document.head.append(s);
    });
  }
  return hlsLoading;
}

if (!customElements.get('video-stream')) customElements.define('video-stream', VideoStream);
