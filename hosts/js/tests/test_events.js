// EventEmitter: on, once, emit, removeListener, removeAllListeners, the
// order of listeners, and 'error' without a listener throwing.
var assert = require('assert');
var EventEmitter = require('events').EventEmitter;
var util = require('util');

function Thing() { EventEmitter.call(this); }
util.inherits(Thing, EventEmitter);

var t = new Thing();
var log = [];
function a(x) { log.push('a' + x); }
function b(x) { log.push('b' + x); }
assert.strictEqual(t.on('e', a), t);
t.once('e', b);
t.on('e', function (x, y) { log.push('c' + x + y); assert.strictEqual(this, t); });
assert.strictEqual(t.emit('e', 1, 2), true);
t.emit('e', 3, 4);
assert.deepStrictEqual(log, ['a1', 'b1', 'c12', 'a3', 'c34']);
assert.strictEqual(t.listeners('e').length, 2);

log = [];
t.removeListener('e', a);
t.emit('e', 5, 6);
assert.deepStrictEqual(log, ['c56']);

// once removed by removeListener with the original function.
t.once('o', b);
t.removeListener('o', b);
assert.strictEqual(t.emit('o', 1), false);

// A listener removing another during emit does not change that emit.
log = [];
t.on('r', function () { t.removeListener('r', b); log.push('first'); });
t.on('r', b);
t.emit('r', 0);
t.emit('r', 1);
assert.deepStrictEqual(log, ['first', 'b0', 'first']);

t.removeAllListeners('e');
assert.strictEqual(t.emit('e'), false);
t.on('x', a);
t.removeAllListeners();
assert.strictEqual(t.emit('x'), false);
assert.strictEqual(t.emit('r'), false);

var err = new Error('unhandled');
assert.throws(function () { t.emit('error', err); }, function (e) { return e === err; });
assert.throws(function () { t.emit('error', 'text'); }, /Unhandled error/);
t.on('error', function (e) { log.push('handled ' + e.message); });
t.emit('error', err);
assert.strictEqual(log[log.length - 1], 'handled unhandled');
assert.throws(function () { t.on('y', 'not a function'); }, TypeError);

// dgram sockets are EventEmitters.
var s = require('dgram').createSocket('udp4');
assert(s instanceof EventEmitter);
s.close();
