// Checks www/yaml.js (the config editor's YAML reader) against what the
// server's parser says about the same texts. Exits non-zero on a failure.
// Run by tests/e2e/test_webui.py::test_yaml_reader.
import assert from 'node:assert/strict';
import { parseDocument } from '../../www/yaml.js';

const ok = (text, value, lines = {}) => {
  const d = parseDocument(text);
  assert.deepEqual(d.value, value, text);
  for (const [k, n] of Object.entries(lines)) assert.equal(d.lines.get(k), n, `${k} in ${text}`);
};
const bad = (text, line, unsupported = false) => {
  assert.throws(() => parseDocument(text), (e) => {
    assert.equal(e.line, line, `${text}: ${e.message}`);
    assert.equal(e.unsupported, unsupported, `${text}: ${e.message}`);
    return true;
  });
};

ok('streams:\n  cam: rtsp://u:p@h/x#video=h264 # c\n  two:\n    - rtsp://a\n    - "ffmpeg:cam#audio=opus"\n',
  { streams: { cam: 'rtsp://u:p@h/x#video=h264', two: ['rtsp://a', 'ffmpeg:cam#audio=opus'] } },
  { streams: 1, 'streams.cam': 2, 'streams.two': 3, 'streams.two.1': 5 });
ok("api:\n  listen: ':1984'\n  allow_paths: [/api, '/api/streams']\n  n: 5\n  f: 1.5\n  t: true\n  z: ~\n",
  { api: { listen: ':1984', allow_paths: ['/api', '/api/streams'], n: 5, f: 1.5, t: true, z: null } });
ok('x:\n- a: 1\n  b: 2\n- c\nd: |\n  l1\n  l2\ne: >-\n  f1\n  f2\n',
  { x: [{ a: 1, b: 2 }, 'c'], d: 'l1\nl2\n', e: 'f1 f2' }, { 'x.0.b': 3, e: 8 });
ok('# only a comment\na: "x # not a comment"\nb: it\'s\n', { a: 'x # not a comment', b: "it's" });
ok('{"a": {"b": [1, 2]}}', { a: { b: [1, 2] } });
ok('---\na: 1\n', { a: 1 });
ok('', null);
bad('a: 1\na: 2\n', 2);
bad('a:\n  b: 1\n   c: 2\n', 3);
bad('a:\n\tb: 1\n', 2);
bad('a: b: c\n', 1);
bad('a:\n  - x\n  y: 1\n', 3);
bad('a: "open\n', 1, true);
bad('a: [1\n', 1, true);
bad('a: &x 1\n', 1, true);
console.log('ok');
