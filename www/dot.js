// A small reader and drawer for the Graphviz DOT that /api/streams.dot
// serves: node and edge statements with attribute lists, in one (di)graph.
// Drawn left to right in layers (producers → streams → consumers) as SVG.

export function parseDot(text) {
  const tokens = [];
  const re = /\s+|\/\/[^\n]*|#[^\n]*|\/\*[\s\S]*?\*\/|"((?:[^"\\]|\\.)*)"|(->|--)|([{}[\];=,])|([A-Za-z0-9_.\u0080-\uffff-]+)/y;
  let m;
  re.lastIndex = 0;
  while (re.lastIndex < text.length) {
    const at = re.lastIndex;
    m = re.exec(text);
    if (!m) throw new Error(`DOT: unexpected "${text.slice(at, at + 20)}"`);
    if (m[1] !== undefined) tokens.push({ t: 'id', v: m[1].replace(/\\(.)/g, (_, c) => (c === 'n' || c === 'l' || c === 'r' ? '\n' : c)) });
    else if (m[2]) tokens.push({ t: 'edge' });
    else if (m[3]) tokens.push({ t: m[3] });
    else if (m[4]) tokens.push({ t: 'id', v: m[4] });
  }
  let i = 0;
  const peek = () => tokens[i] || { t: 'eof' };
  const take = (t) => {
    const tok = peek();
    if (t && tok.t !== t) throw new Error(`DOT: expected ${t}, found ${tok.t}`);
    i += 1;
    return tok;
  };
  const nodes = new Map();
  const edges = [];
  const node = (id) => {
    if (!nodes.has(id)) nodes.set(id, { id, attrs: {} });
    return nodes.get(id);
  };
  const attrs = () => {
    const out = {};
    while (peek().t === '[') {
      take('[');
      while (peek().t !== ']') {
        const k = take('id').v;
        let v = 'true';
        if (peek().t === '=') { take('='); v = take('id').v; }
        out[k] = v;
        if (peek().t === ',' || peek().t === ';') take();
      }
      take(']');
    }
    return out;
  };
  if (peek().t === 'id' && peek().v === 'strict') take();
  if (peek().t === 'id' && /^(di)?graph$/.test(peek().v)) take();
  if (peek().t === 'id') take();
  take('{');
  while (peek().t !== '}' && peek().t !== 'eof') {
    const first = take('id').v;
    if (['graph', 'node', 'edge'].includes(first) && peek().t === '[') { attrs(); }
    else if (peek().t === '=') { take('='); take('id'); }
    else {
      const chain = [first];
      while (peek().t === 'edge') { take(); chain.push(take('id').v); }
      const a = attrs();
      if (chain.length === 1) Object.assign(node(first).attrs, a);
      else {
        chain.forEach(node);
        for (let k = 0; k + 1 < chain.length; k += 1) edges.push({ from: chain[k], to: chain[k + 1], attrs: a });
      }
    }
    if (peek().t === ';' || peek().t === ',') take();
  }
  take('}');
  return { nodes: [...nodes.values()], edges };
}

// Layers by longest path from a node without inputs; within a layer, nodes
// follow the mean position of what feeds them, so edges cross little.
export function layout(graph, measure, vertical = false) {
  const incoming = new Map(graph.nodes.map((n) => [n.id, []]));
  const outgoing = new Map(graph.nodes.map((n) => [n.id, []]));
  for (const e of graph.edges) { incoming.get(e.to).push(e.from); outgoing.get(e.from).push(e.to); }
  const rank = new Map();
  const visit = (id, seen) => {
    if (rank.has(id)) return rank.get(id);
    if (seen.has(id)) return 0; // a cycle: cut it here
    seen.add(id);
    const r = incoming.get(id).reduce((m, p) => Math.max(m, visit(p, seen) + 1), 0);
    rank.set(id, r);
    return r;
  };
  for (const n of graph.nodes) visit(n.id, new Set());
  const layers = [];
  for (const n of graph.nodes) (layers[rank.get(n.id)] ||= []).push(n);
  const PAD_X = 14; const LINE = 16; const PAD_Y = 8; const GAP_Y = 14; const GAP_X = 70;
  for (const n of graph.nodes) {
    const lines = (n.attrs.label ?? n.id).split('\n');
    n.lines = lines;
    n.w = Math.max(...lines.map(measure)) + 2 * PAD_X;
    n.h = lines.length * LINE + 2 * PAD_Y;
  }
  const pos = new Map();
  if (vertical) return layoutRows(layers, incoming, pos, GAP_Y, GAP_X);
  let x = 10;
  let height = 0;
  layers.forEach((layer, li) => {
    if (li > 0) orderByParents(layer, incoming, pos);
    const w = Math.max(...layer.map((n) => n.w));
    let y = 10;
    layer.forEach((n, k) => {
      n.x = x + (w - n.w) / 2;
      n.y = y;
      y += n.h + GAP_Y;
      pos.set(n.id, k);
    });
    height = Math.max(height, y);
    x += w + GAP_X;
  });
  // Centre each layer vertically against the tallest.
  for (const layer of layers) {
    const bottom = Math.max(...layer.map((n) => n.y + n.h));
    const shift = (height - GAP_Y + 10 - bottom) / 2;
    for (const n of layer) n.y += Math.max(0, shift);
  }
  return { width: x - GAP_X + 10, height: height + 10, LINE, PAD_Y };
}

// Orders a layer by the mean position of each node's parents in the layer
// before (barycentre), so edges cross less.
function orderByParents(layer, incoming, pos) {
  const key = (n) => {
    const ps = incoming.get(n.id).map((p) => pos.get(p)).filter((v) => v !== undefined);
    return ps.length ? ps.reduce((a, b) => a + b, 0) / ps.length : 0;
  };
  layer.sort((a, b) => key(a) - key(b));
}

// Top to bottom, for narrow screens: each layer a row, rows centred.
function layoutRows(layers, incoming, pos, gapX, gapY) {
  let y = 10;
  let width = 0;
  const GAP_ROW = 40;
  layers.forEach((layer, li) => {
    if (li > 0) orderByParents(layer, incoming, pos);
    const h = Math.max(...layer.map((n) => n.h));
    let x = 10;
    layer.forEach((n, k) => {
      n.x = x;
      n.y = y + (h - n.h) / 2;
      x += n.w + gapX;
      pos.set(n.id, k);
    });
    width = Math.max(width, x - gapX + 10);
    y += h + GAP_ROW;
  });
  for (const layer of layers) {
    const right = Math.max(...layer.map((n) => n.x + n.w)) + 10;
    const shift = (width - right) / 2;
    for (const n of layer) n.x += Math.max(0, shift);
  }
  return { width, height: y - GAP_ROW + 10, LINE: 16, PAD_Y: 8, vertical: true };
}

const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
};

// An <svg> of the graph; node kinds (producer_, stream_, consumer_) get classes.
export function drawDot(text, { vertical = false } = {}) {
  const graph = parseDot(text);
  const ctx = document.createElement('canvas').getContext('2d');
  ctx.font = '12px system-ui, sans-serif';
  const size = layout(graph, (s) => ctx.measureText(s).width, vertical);
  const svg = svgEl('svg', { viewBox: `0 0 ${size.width} ${size.height}`, width: size.width, height: size.height, role: 'img' });
  const defs = svgEl('defs', {});
  const marker = svgEl('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(svgEl('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead' }));
  defs.append(marker);
  svg.append(defs);
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  for (const e of graph.edges) {
    const a = byId.get(e.from); const b = byId.get(e.to);
    let d;
    if (size.vertical) {
      const x1 = a.x + a.w / 2; const y1 = a.y + a.h; const x2 = b.x + b.w / 2; const y2 = b.y;
      const dy = (y2 - y1) / 2;
      d = `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 - dy} ${x2},${y2}`;
    } else {
      const x1 = a.x + a.w; const y1 = a.y + a.h / 2; const x2 = b.x; const y2 = b.y + b.h / 2;
      const dx = (x2 - x1) / 2;
      d = `M${x1},${y1} C${x1 + dx},${y1} ${x2 - dx},${y2} ${x2},${y2}`;
    }
    svg.append(svgEl('path', { d, class: 'edge', 'marker-end': 'url(#arrow)' }));
  }
  for (const n of graph.nodes) {
    const kind = (/^(producer|stream|consumer)_/.exec(n.id) || [, 'node'])[1];
    const g = svgEl('g', { class: `node ${kind}`, 'data-id': n.id });
    const round = n.attrs.shape === 'box' ? 4 : n.h / 2;
    g.append(svgEl('rect', { x: n.x, y: n.y, width: n.w, height: n.h, rx: Math.min(round, 14) }));
    n.lines.forEach((line, k) => {
      const t = svgEl('text', { x: n.x + n.w / 2, y: n.y + size.PAD_Y + (k + 0.78) * size.LINE, 'text-anchor': 'middle', class: k ? 'sub' : 'main' });
      t.textContent = line;
      g.append(t);
    });
    const title = svgEl('title', {});
    title.textContent = n.lines.join('\n');
    g.append(title);
    svg.append(g);
  }
  return { svg, graph };
}
