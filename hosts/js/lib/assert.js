// require('assert'): callable, ok, equal, notEqual, strictEqual,
// notStrictEqual, deepEqual, notDeepEqual, deepStrictEqual,
// notDeepStrictEqual, throws, doesNotThrow, fail, AssertionError.
'use strict';
var inspect = require('util').inspect;

function AssertionError(options) {
  this.name = 'AssertionError';
  this.code = 'ERR_ASSERTION';
  this.actual = options.actual;
  this.expected = options.expected;
  this.operator = options.operator;
  this.generatedMessage = !options.message;
  this.message = options.message instanceof Error ? options.message.message
    : options.message ? String(options.message)
    : inspect(options.actual) + ' ' + options.operator + ' ' + inspect(options.expected);
  var trace = String(new Error('x').stack || '').split('\n').slice(1);
  // Drop this module's own frames.
  while (trace.length && /assert\.js/.test(trace[0])) trace.shift();
  Object.defineProperty(this, 'stack', {
    value: this.name + ': ' + this.message + (trace.length ? '\n' + trace.join('\n') : ''),
    writable: true, configurable: true, enumerable: false
  });
}
AssertionError.prototype = Object.create(Error.prototype);
AssertionError.prototype.constructor = AssertionError;
AssertionError.prototype.name = 'AssertionError';
AssertionError.prototype.toString = function () { return this.name + ': ' + this.message; };

function fail(actual, expected, message, operator) {
  if (message instanceof Error) throw message;
  throw new AssertionError({ actual: actual, expected: expected, message: message,
    operator: operator });
}

function ok(value, message) {
  if (!value) {
    fail(value, true, message || (arguments.length === 0
      ? 'No value argument passed to `assert.ok()`'
      : 'The expression evaluated to a falsy value: ' + inspect(value)), '==');
  }
}

var assert = module.exports = ok;
assert.ok = ok;
assert.assert = ok;
assert.AssertionError = AssertionError;

assert.fail = function (actual, expected, message, operator) {
  if (arguments.length < 2) {
    var m = arguments.length === 0 ? 'Failed' : actual;
    if (m instanceof Error) throw m;
    throw new AssertionError({ message: m || 'Failed', operator: 'fail' });
  }
  fail(actual, expected, message, operator === undefined ? '!=' : operator);
};

assert.equal = function (actual, expected, message) {
  // eslint-disable-next-line eqeqeq
  if (!(actual == expected || (actual !== actual && expected !== expected))) {
    fail(actual, expected, message, '==');
  }
};
assert.notEqual = function (actual, expected, message) {
  // eslint-disable-next-line eqeqeq
  if (actual == expected || (actual !== actual && expected !== expected)) {
    fail(actual, expected, message, '!=');
  }
};
assert.strictEqual = function (actual, expected, message) {
  if (!(actual === expected || (actual !== actual && expected !== expected))) {
    fail(actual, expected, message, '===');
  }
};
assert.notStrictEqual = function (actual, expected, message) {
  if (actual === expected || (actual !== actual && expected !== expected)) {
    fail(actual, expected, message, '!==');
  }
};

function isBytes(v) { return v instanceof Uint8Array; }

function deep(a, b, strict, seen) {
  if (strict ? (a === b || (a !== a && b !== b)) : (a === b)) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') {
    // eslint-disable-next-line eqeqeq
    return strict ? false : (a == b || (a !== a && b !== b));
  }
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (isBytes(a) || isBytes(b)) {
    if (!isBytes(a) || !isBytes(b) || a.length !== b.length) return false;
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (a instanceof RegExp && b instanceof RegExp) return String(a) === String(b);
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  for (var s = 0; s < seen.length; s++) {
    if (seen[s][0] === a && seen[s][1] === b) return true;
  }
  var ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  ka.sort();
  kb.sort();
  for (var k = 0; k < ka.length; k++) if (ka[k] !== kb[k]) return false;
  seen = seen.concat([[a, b]]);
  for (k = 0; k < ka.length; k++) {
    if (!deep(a[ka[k]], b[ka[k]], strict, seen)) return false;
  }
  return true;
}

assert.deepEqual = function (actual, expected, message) {
  if (!deep(actual, expected, false, [])) fail(actual, expected, message, 'deepEqual');
};
assert.notDeepEqual = function (actual, expected, message) {
  if (deep(actual, expected, false, [])) fail(actual, expected, message, 'notDeepEqual');
};
assert.deepStrictEqual = function (actual, expected, message) {
  if (!deep(actual, expected, true, [])) fail(actual, expected, message, 'deepStrictEqual');
};
assert.notDeepStrictEqual = function (actual, expected, message) {
  if (deep(actual, expected, true, [])) fail(actual, expected, message, 'notDeepStrictEqual');
};

function matches(actual, expected) {
  if (expected === undefined) return true;
  if (expected instanceof RegExp) return expected.test(String(actual));
  if (typeof expected === 'function') {
    if (expected.prototype !== undefined && actual instanceof expected) return true;
    if (expected === Error || (expected.prototype instanceof Error)) return false;
    return expected.call({}, actual) === true;
  }
  if (expected !== null && typeof expected === 'object') {
    var keys = Object.keys(expected);
    if (expected instanceof Error) keys.push('name', 'message');
    for (var i = 0; i < keys.length; i++) {
      var e = expected[keys[i]], a = actual == null ? undefined : actual[keys[i]];
      if (e instanceof RegExp && typeof a === 'string') {
        if (!e.test(a)) return false;
      } else if (!deep(a, e, true, [])) {
        return false;
      }
    }
    return true;
  }
  return false;
}

assert.throws = function (block, expected, message) {
  if (typeof block !== 'function') {
    throw new TypeError('The "fn" argument must be of type function');
  }
  if (typeof expected === 'string') {
    message = expected;
    expected = undefined;
  }
  var threw = false, actual;
  try {
    block();
  } catch (e) {
    threw = true;
    actual = e;
  }
  if (!threw) {
    fail(undefined, expected, 'Missing expected exception' +
      (expected && expected.name ? ' (' + expected.name + ')' : '') +
      (message ? ': ' + message : '.'), 'throws');
  }
  if (!matches(actual, expected)) {
    if (expected !== null && typeof expected === 'object' && !(expected instanceof RegExp)) {
      fail(actual, expected, message || 'The thrown error does not match ' + inspect(expected) +
        ': ' + inspect(actual), 'throws');
    }
    throw actual;
  }
};

assert.doesNotThrow = function (block, expected, message) {
  if (typeof expected === 'string') message = expected;
  try {
    block();
  } catch (e) {
    fail(e, expected, 'Got unwanted exception' + (message ? ': ' + message : '.') +
      '\nActual message: "' + (e && e.message) + '"', 'doesNotThrow');
  }
};

assert.ifError = function (err) { if (err !== null && err !== undefined) throw err; };
