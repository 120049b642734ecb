// node --test: the JSON Patch applier (no server needed).
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { applyPatch, parsePointer, PatchError } = require('../patch');

test('pointers unescape ~1 then ~0', () => {
  assert.deepStrictEqual(parsePointer(''), []);
  assert.deepStrictEqual(parsePointer('/'), ['']);
  assert.deepStrictEqual(parsePointer('/a~1b/~0c/~01'), ['a/b', '~c', '~1']);
  assert.throws(() => parsePointer('a'), PatchError);
});

test('add, remove, replace on objects and arrays', () => {
  const doc = { rows: [{ id: 1, tags: [] }, { id: 3 }], 'a/b': 0, '~': 0 };
  const out = applyPatch(doc, [
    { op: 'add', path: '/rows/1', value: { id: 2 } }, // insert before index 1
    { op: 'add', path: '/rows/-', value: { id: 4 } }, // append
    { op: 'add', path: '/rows/0/tags/0', value: 'x' }, // insert at the end (index = length)
    { op: 'replace', path: '/rows/2/id', value: 30 },
    { op: 'remove', path: '/rows/3' },
    { op: 'add', path: '/rows/0/title', value: 't' },
    { op: 'add', path: '/rows/0/title', value: 'u' }, // add replaces an existing member
    { op: 'replace', path: '/a~1b', value: 1 },
    { op: 'remove', path: '/~0' },
    { op: 'replace', path: '/rows/0/tags', value: null },
  ]);
  assert.strictEqual(out, doc, 'patched in place');
  assert.deepStrictEqual(doc, { rows: [{ id: 1, tags: null, title: 'u' }, { id: 2 }, { id: 30 }], 'a/b': 1 });
});

test('a patch at "" replaces the whole document', () => {
  assert.deepStrictEqual(applyPatch({ a: 1 }, [{ op: 'replace', path: '', value: { b: 2 } }]), { b: 2 });
});

test('a column named __proto__ is a member, not the prototype', () => {
  const doc = applyPatch({}, [{ op: 'add', path: '/__proto__', value: { polluted: true } }]);
  assert.deepStrictEqual(Object.keys(doc), ['__proto__']);
  assert.strictEqual({}.polluted, undefined);
  assert.strictEqual(Object.getPrototypeOf(doc), Object.prototype);
});

test('bad operations throw PatchError', () => {
  const bad = [
    [{ op: 'move', from: '/a', path: '/b' }],
    [{ op: 'add', path: '/a' }], // no value
    [{ op: 'replace', path: '/nosuch', value: 1 }],
    [{ op: 'remove', path: '/nosuch' }],
    [{ op: 'remove', path: '' }],
    [{ op: 'replace', path: '/rows/2', value: 1 }], // index = length: only add may
    [{ op: 'add', path: '/rows/3', value: 1 }], // beyond the end
    [{ op: 'add', path: '/rows/01', value: 1 }],
    [{ op: 'remove', path: '/rows/-' }],
    [{ op: 'add', path: '/rows/0/x/y', value: 1 }], // through a missing member
    [{ op: 'add', path: '/a/x', value: 1 }], // through a number
    [{ op: 'add', path: 'rows', value: 1 }],
    {},
    [null],
  ];
  for (const patch of bad) {
    assert.throws(() => applyPatch({ a: 1, rows: [{}, {}] }, patch), PatchError, JSON.stringify(patch));
  }
});
