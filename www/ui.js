// Shared by the pages: the top bar, API helpers, small DOM helpers.
// Paths are relative to the page, so camrouter's api.base_path works unchanged.

export const api = (path) => new URL(path, document.baseURI).toString();

const PAGES = [
  ['index.html', 'Streams'],
  ['add.html', 'Add'],
  ['links.html', 'Links'],
  ['network.html', 'Network'],
  ['log.html', 'Log'],
  ['editor.html', 'Config'],
];

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c);
  return e;
}

// Fetches an API path; throws an Error with the server's own message.
export async function request(path, options = {}) {
  const r = await fetch(api(path), options);
  if (!r.ok) {
    const body = (await r.text()).trim();
    throw new Error(body || `${r.status} ${r.statusText}`);
  }
  return r;
}

export async function getJSON(path) {
  return (await request(path)).json();
}

// The top bar, with the current page marked.
export function header() {
  const here = location.pathname.split('/').pop() || 'index.html';
  const bar = el('header', { class: 'top' },
    el('a', { class: 'brand', href: './' }, el('img', { src: 'favicon.svg', alt: '' }), 'camrouter'),
    el('nav', {}, PAGES.map(([href, name]) => el('a', {
      href, text: name, 'aria-current': href === here ? 'page' : undefined,
    }))),
    el('span', { class: 'version', id: 'version' }));
  document.body.prepend(bar);
  getJSON('api').then((info) => {
    document.getElementById('version').textContent = `camrouter ${info.camrouter_version}`;
  }).catch(() => {});
}

// Copies text; falls back to a selection where the Clipboard API is absent
// (plain http on another host than localhost is not a secure context).
export async function copy(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const t = el('textarea', { style: 'position:fixed;opacity:0' });
  t.value = text;
  document.body.append(t);
  t.select();
  document.execCommand('copy');
  t.remove();
}

// A stream's codecs from /api/streams: "H264 640x360, AAC 16000/1".
// The tracks' codecs when the peer runs, else its SDP-like media lines.
export function describeMedias(x) {
  const tracks = [...(x.receivers || []), ...(x.senders || [])].filter((t) => t.codec).map((t) => codecText(t.codec));
  return [...new Set(tracks.length ? tracks : x.medias || [])];
}

function codecText(c) {
  if (typeof c === 'string') return c;
  const parts = [c.codec_name || c.name || ''];
  if (c.width && c.height) parts.push(`${c.width}x${c.height}`);
  if (c.sample_rate) parts.push(`${c.sample_rate}${c.channels ? '/' + c.channels : ''}`);
  return parts.filter(Boolean).join(' ');
}

export function sizeText(n) {
  if (!n) return '0 B';
  const u = ['B', 'KB', 'MB', 'GB', 'TB'];
  const i = Math.min(u.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return `${(n / 1024 ** i).toFixed(i ? 1 : 0)} ${u[i]}`;
}
