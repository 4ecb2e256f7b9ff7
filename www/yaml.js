// A YAML reader for the config editor: the part of YAML that config files use
// (block mappings and sequences, plain/quoted scalars, one-line flow
// collections, block scalars, comments). It reports an error at its line, and
// records the line of every key so that later checks can point at it.
//
// What it does not read (anchors, aliases, tags, several documents, plain
// scalars over several lines, flow collections over several lines) raises a
// YamlError with `unsupported` set: the caller leaves that text to the
// server's parser instead of calling it wrong.

export class YamlError extends Error {
  constructor(message, line, unsupported = false) {
    super(message);
    this.line = line;
    this.unsupported = unsupported;
  }
}

// The value, or a YamlError.
export function parseYaml(text) {
  return parseDocument(text).value;
}

// {value, lines}: `lines` maps a key path (`api.listen`, `streams.cam`) to
// its 1-based line.
export function parseDocument(text) {
  const p = new Parser(text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/));
  const value = p.document();
  return { value, lines: p.keyLines };
}

// Where a comment starts in a line (-1: none). `#` starts one at the line's
// start or after whitespace, outside quotes.
function commentAt(s) {
  let quote = '';
  for (let i = 0; i < s.length; i += 1) {
    const c = s[i];
    if (quote) {
      if (quote === '"' && c === '\\') i += 1;
      else if (c === quote) {
        if (quote === "'" && s[i + 1] === "'") i += 1;
        else quote = '';
      }
    } else if (c === '#' && (i === 0 || s[i - 1] === ' ' || s[i - 1] === '\t')) {
      return i;
    } else if ((c === '"' || c === "'") && (i === 0 || /[\s[{,:-]/.test(s[i - 1]))) {
      quote = c;
    }
  }
  return -1;
}

function isSeqItem(content) {
  return content === '-' || content.startsWith('- ');
}

// Splits `key: rest` (rest may be ''); null when the line is no mapping entry.
function splitKey(content, line) {
  if (content[0] === '"' || content[0] === "'") {
    const { value, end } = quoted(content, 0, line);
    const after = content.slice(end);
    const m = /^\s*:(\s+|$)/.exec(after);
    if (!m) return null;
    return [String(value), after.slice(m[0].length).trim()];
  }
  if (content[0] === '?') throw new YamlError('complex keys (`? `) are not checked here', line, true);
  if (content[0] === '[' || content[0] === '{') return null;
  const m = /:(\s|$)/.exec(content);
  if (!m) return null;
  return [content.slice(0, m.index).trim(), content.slice(m.index + 1).trim()];
}

// A quoted scalar starting at s[i]: {value, end} (end: index after the quote).
function quoted(s, i, line) {
  const q = s[i];
  let out = '';
  for (let j = i + 1; j < s.length; j += 1) {
    const c = s[j];
    if (q === "'" && c === "'") {
      if (s[j + 1] === "'") { out += "'"; j += 1; continue; }
      return { value: out, end: j + 1 };
    }
    if (q === '"' && c === '"') return { value: out, end: j + 1 };
    if (q === '"' && c === '\\') {
      const e = s[j + 1];
      const map = { n: '\n', t: '\t', r: '\r', '"': '"', '\\': '\\', '/': '/', 0: '\0', ' ': ' ', e: '\x1b' };
      if (e in map) { out += map[e]; j += 1; continue; }
      const hex = { x: 2, u: 4, U: 8 }[e];
      if (hex && /^[0-9a-fA-F]+$/.test(s.slice(j + 2, j + 2 + hex)) && s.slice(j + 2, j + 2 + hex).length === hex) {
        out += String.fromCodePoint(parseInt(s.slice(j + 2, j + 2 + hex), 16));
        j += 1 + hex;
        continue;
      }
      throw new YamlError(`unknown escape \\${e ?? ''} in a double-quoted string`, line);
    }
    out += c;
  }
  throw new YamlError(`${q === '"' ? 'double' : 'single'}-quoted string not closed on this line`, line, true);
}

function plainScalar(s) {
  if (/^(|~|null|Null|NULL)$/.test(s)) return null;
  if (/^(true|True|TRUE)$/.test(s)) return true;
  if (/^(false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?[0-9]+$/.test(s)) return Number(s);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s, 16);
  if (/^0o[0-7]+$/.test(s)) return parseInt(s.slice(2), 8);
  if (/^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$/.test(s)) return Number(s);
  if (/^[-+]?\.(inf|Inf|INF)$/.test(s)) return s[0] === '-' ? -Infinity : Infinity;
  if (/^\.(nan|NaN|NAN)$/.test(s)) return NaN;
  return s;
}

// One-line flow collections: `[a, "b", {c: d}]`.
function flow(s, line) {
  let i = 0;
  const ws = () => { while (s[i] === ' ' || s[i] === '\t') i += 1; };
  const value = (inFlow) => {
    ws();
    if (s[i] === '[') {
      i += 1;
      const arr = [];
      ws();
      if (s[i] === ']') { i += 1; return arr; }
      for (;;) {
        arr.push(value(true));
        ws();
        if (s[i] === ',') { i += 1; ws(); if (s[i] === ']') { i += 1; return arr; } continue; }
        if (s[i] === ']') { i += 1; return arr; }
        if (i >= s.length) throw new YamlError('`[` not closed on this line', line, true);
        throw new YamlError(`expected , or ] in a flow sequence, found "${s[i]}"`, line);
      }
    }
    if (s[i] === '{') {
      i += 1;
      const obj = {};
      ws();
      if (s[i] === '}') { i += 1; return obj; }
      for (;;) {
        ws();
        const k = value(true);
        ws();
        let v = null;
        if (s[i] === ':') { i += 1; v = value(true); ws(); }
        obj[String(k)] = v;
        if (s[i] === ',') { i += 1; continue; }
        if (s[i] === '}') { i += 1; return obj; }
        if (i >= s.length) throw new YamlError('`{` not closed on this line', line, true);
        throw new YamlError(`expected , or } in a flow mapping, found "${s[i]}"`, line);
      }
    }
    if (s[i] === '"' || s[i] === "'") {
      const r = quoted(s, i, line);
      i = r.end;
      return r.value;
    }
    const start = i;
    const stop = inFlow ? /[,[\]{}]|: |:$/ : /$/;
    const rest = s.slice(i);
    const m = stop.exec(rest);
    const end = m ? m.index : rest.length;
    i = start + end;
    return plainScalar(rest.slice(0, end).trim());
  };
  const v = value(false);
  ws();
  if (i < s.length) throw new YamlError(`unexpected "${s.slice(i)}" after the value`, line);
  return v;
}

class Parser {
  constructor(raw) {
    this.raw = raw;
    this.pos = 0;
    this.pending = null; // the rest of a `- key: v` line, read as its own line
    this.keyLines = new Map();
  }

  // The next line with content: {n, indent, content}, without consuming it.
  peek() {
    if (this.pending) return this.pending;
    while (this.pos < this.raw.length) {
      const l = this.raw[this.pos];
      const indent = /^ */.exec(l)[0].length;
      let rest = l.slice(indent);
      const c = commentAt(rest);
      if (c >= 0) rest = rest.slice(0, c);
      rest = rest.trimEnd();
      if (rest.trim() === '') { this.pos += 1; continue; }
      if (rest[0] === '\t') throw new YamlError('tab in indentation (YAML indents with spaces)', this.pos + 1);
      if (indent === 0 && /^(---|\.\.\.)(\s|$)/.test(rest)) {
        if (this.sawContent) throw new YamlError('several documents in one file are not checked here', this.pos + 1, true);
        this.pos += 1;
        continue;
      }
      return { n: this.pos + 1, indent, content: rest };
    }
    return null;
  }

  next() {
    const l = this.peek();
    if (this.pending) this.pending = null;
    else if (l) this.pos += 1;
    this.sawContent = true;
    return l;
  }

  document() {
    const first = this.peek();
    if (!first) return null;
    const v = this.node(first.indent, []);
    const extra = this.peek();
    if (extra) throw new YamlError('unexpected text: check the indentation of this line', extra.n);
    return v;
  }

  // A block collection or a scalar, whose first line has `indent`.
  node(indent, path) {
    const l = this.peek();
    if (isSeqItem(l.content)) return this.seq(l.indent, path);
    if (splitKey(l.content, l.n)) return this.map(l.indent, path);
    this.next();
    return this.inline(l.content, l.n, indent);
  }

  map(indent, path) {
    const obj = {};
    for (let l = this.peek(); l && l.indent === indent && !isSeqItem(l.content); l = this.peek()) {
      this.next();
      const kv = splitKey(l.content, l.n);
      if (!kv) throw new YamlError(`expected "key: value", found "${l.content}"`, l.n);
      const [key, rest] = kv;
      if (Object.prototype.hasOwnProperty.call(obj, key)) {
        throw new YamlError(`duplicate key "${key}"`, l.n);
      }
      const p = [...path, key];
      this.keyLines.set(p.join('.'), l.n);
      obj[key] = this.valueAfter(rest, indent, l.n, p);
    }
    const l = this.peek();
    if (l && l.indent > indent) throw new YamlError('bad indentation: this line is deeper than the key above it allows', l.n);
    if (l && l.indent === indent && isSeqItem(l.content) && path.length === 0) {
      throw new YamlError('a list item where a "key: value" was expected', l.n);
    }
    return obj;
  }

  valueAfter(rest, indent, line, path) {
    if (rest === '') {
      const n = this.peek();
      if (n && n.indent > indent) return this.node(n.indent, path);
      // YAML lets a list sit at its key's own indent.
      if (n && n.indent === indent && isSeqItem(n.content)) return this.seq(indent, path);
      return null;
    }
    return this.inline(rest, line, indent);
  }

  seq(indent, path) {
    const arr = [];
    for (let l = this.peek(); l && l.indent === indent && isSeqItem(l.content); l = this.peek()) {
      this.next();
      const rest = l.content.slice(1).trimStart();
      const p = [...path, String(arr.length)];
      this.keyLines.set(p.join('.'), l.n);
      if (rest === '') {
        const n = this.peek();
        arr.push(n && n.indent > indent ? this.node(n.indent, p) : null);
        continue;
      }
      const itemIndent = indent + (l.content.length - rest.length);
      if (isSeqItem(rest) || (rest[0] !== '[' && rest[0] !== '{' && splitKey(rest, l.n))) {
        this.pending = { n: l.n, indent: itemIndent, content: rest };
        arr.push(this.node(itemIndent, p));
        continue;
      }
      arr.push(this.inline(rest, l.n, indent));
    }
    const l = this.peek();
    if (l && l.indent > indent) throw new YamlError('bad indentation: this line is deeper than the list item above it allows', l.n);
    return arr;
  }

  // A value on the rest of a line: a scalar, a one-line flow collection, or
  // a block scalar's header (`|`, `>-`) with its lines below.
  inline(s, line, indent) {
    if (/^[&*!]/.test(s)) throw new YamlError('anchors, aliases and tags are not checked here', line, true);
    if (/^[|>]/.test(s)) return this.blockScalar(s, line, indent);
    if (s[0] === '"' || s[0] === "'" || s[0] === '[' || s[0] === '{') return flow(s, line);
    if (/^[@`]/.test(s)) throw new YamlError(`a plain value cannot start with "${s[0]}": quote it`, line);
    if (/: /.test(s)) throw new YamlError('a value with ": " in it must be quoted (or it is a mapping in the wrong place)', line);
    // A plain scalar may go on over more-indented lines.
    const n = this.peek();
    if (n && n.indent > indent && !this.pending) {
      throw new YamlError('this line continues the value above, or is indented too deep', n.n, !isSeqItem(n.content) && !splitKey(n.content, n.n));
    }
    return plainScalar(s);
  }

  blockScalar(header, line, indent) {
    const m = /^([|>])([-+]?)([1-9]?)([-+]?)$/.exec(header);
    if (!m) throw new YamlError(`bad block scalar header "${header}"`, line);
    const chomp = m[2] || m[4];
    const lines = [];
    let contentIndent = m[3] ? indent + Number(m[3]) : 0;
    while (this.pos < this.raw.length) {
      const l = this.raw[this.pos];
      const ind = /^ */.exec(l)[0].length;
      if (l.trim() === '') { lines.push(''); this.pos += 1; continue; }
      if (!contentIndent) contentIndent = ind;
      if (ind < contentIndent || ind <= indent) break;
      lines.push(l.slice(contentIndent));
      this.pos += 1;
    }
    while (chomp !== '+' && lines.length && lines[lines.length - 1] === '') lines.pop();
    let text = m[1] === '|' ? lines.join('\n') : lines.join('\n').replace(/([^\n])\n(?=[^\n ])/g, '$1 ');
    if (chomp !== '-' && lines.length) text += '\n';
    return text;
  }
}
