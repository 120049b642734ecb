// patch.js: a small RFC 6902 JSON Patch applier, only what ectosync.changes()
// sends (add, remove, replace), so that the example needs no dependency
// besides `pg`.  Anything else, or a path that does not fit the value, throws
// a PatchError: the holder then holds again instead of keeping a copy that
// may have drifted from the server's.
'use strict';

class PatchError extends Error {}

// RFC 6901: "/a~1b/~0c" -> ["a/b", "~c"]; ~1 before ~0, so that "~01" is "~1".
function parsePointer(path) {
  if (typeof path !== 'string') throw new PatchError(`path is not a string: ${JSON.stringify(path)}`);
  if (path === '') return [];
  if (path[0] !== '/') throw new PatchError(`path does not start with "/": ${path}`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

const hasOwn = (o, k) => Object.prototype.hasOwnProperty.call(o, k);
const isContainer = (v) => v !== null && typeof v === 'object';

// An array index as RFC 6901 spells it ("0", "12"; not "01", "-1", "1.0"),
// below max (inclusive for add, which may insert at the end).
function arrayIndex(token, length, op) {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`bad array index "${token}"`);
  const i = Number(token);
  if (i > length || (op !== 'add' && i === length)) throw new PatchError(`index ${i} out of range (${length})`);
  return i;
}

// A column may be named "__proto__": define it, never run the setter of Object.prototype.
function setMember(obj, key, value) {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

// Applies one operation to doc, in place where it can; returns the document
// (a new one only when the whole value is replaced: path "").
function applyOp(doc, op) {
  if (!isContainer(op) || !['add', 'remove', 'replace'].includes(op.op))
    throw new PatchError(`unsupported operation: ${JSON.stringify(op)}`);
  if (op.op !== 'remove' && !hasOwn(op, 'value')) throw new PatchError(`${op.op} without a value`);
  const tokens = parsePointer(op.path);
  if (tokens.length === 0) {
    if (op.op === 'remove') throw new PatchError('cannot remove the whole document');
    return op.value;
  }
  let parent = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(parent)) parent = parent[arrayIndex(t, parent.length, 'get')];
    else if (isContainer(parent) && hasOwn(parent, t)) parent = parent[t];
    else throw new PatchError(`no such path: ${op.path}`);
  }
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) {
    if (op.op === 'add' && last === '-') parent.push(op.value);
    else {
      const i = arrayIndex(last, parent.length, op.op);
      if (op.op === 'add') parent.splice(i, 0, op.value);
      else if (op.op === 'remove') parent.splice(i, 1);
      else parent[i] = op.value;
    }
  } else if (isContainer(parent)) {
    if (op.op !== 'add' && !hasOwn(parent, last)) throw new PatchError(`no such member: ${op.path}`);
    if (op.op === 'remove') delete parent[last];
    else setMember(parent, last, op.value); // add on an existing member replaces it (RFC 6902 4.1)
  } else {
    throw new PatchError(`parent of ${op.path} is not a container`);
  }
  return doc;
}

// Applies a whole patch.  It mutates doc: a value of hundreds of kB is not
// copied for a one-field change.  After a PatchError doc may be half
// patched; the caller must not keep it (the holder holds again).
function applyPatch(doc, patch) {
  if (!Array.isArray(patch)) throw new PatchError('a patch is an array of operations');
  for (const op of patch) doc = applyOp(doc, op);
  return doc;
}

module.exports = { applyPatch, parsePointer, PatchError };
