// The host: process.argv, nextTick and timer order, setInterval and
// clear*, Buffer, console formatting, relative require and module caching.
var assert = require('assert');

assert.strictEqual(process.argv.length, 4);
assert(/test_host\.js$/.test(process.argv[1]));
assert.deepStrictEqual(process.argv.slice(2), ['arg1', 'arg2']);
assert.strictEqual(typeof process.env, 'object');

// require: relative, nested, cached, and errors for missing modules.
var counter = require('./fixtures/counter');
assert.strictEqual(require('./fixtures/counter.js'), counter);
assert.strictEqual(counter.next(), 1);
assert.strictEqual(require('./fixtures/../fixtures/counter').next(), 2);
assert.strictEqual(counter.loads, 1);
assert.strictEqual(counter.helper(21), 42);
assert(/fixtures\/sub$/.test(counter.helper.dir));
assert(/fixtures\/counter\.js$/.test(counter.file));
assert.throws(function () { require('./fixtures/missing'); },
  function (e) { return e.code === 'MODULE_NOT_FOUND'; });
assert.throws(function () { require('no-such-module'); }, /Cannot find module/);
assert.strictEqual(require('events').EventEmitter, require('events'));
assert.strictEqual(require('buffer').Buffer, Buffer);

// Buffer.
var b = Buffer.from('h\u00e9llo');
assert.strictEqual(b.length, 6);
assert.strictEqual(b[0], 0x68);
assert.strictEqual(b.toString(), 'h\u00e9llo');
assert.strictEqual(b.slice(3).toString(), 'llo');
assert(Buffer.from([1, 2, 3]).equals(new Buffer([1, 2, 3])));
assert(!Buffer.from([1, 2, 3]).equals(Buffer.from([1, 2])));
assert.strictEqual(Buffer.concat([Buffer.from('ab'), Buffer.from('cd')]).toString(), 'abcd');
assert.strictEqual(new Buffer(4).length, 4);
assert.strictEqual(Buffer.alloc(3)[2], 0);
assert.strictEqual(Buffer.from('ff00', 'hex')[0], 255);
assert.strictEqual(Buffer.from([0xde, 0xad]).toString('hex'), 'dead');
assert.strictEqual(Buffer.from('hi').toString('base64'), 'aGk=');
assert.strictEqual(Buffer.from('aGk=', 'base64').toString(), 'hi');
assert(Buffer.isBuffer(b) && !Buffer.isBuffer('x'));
assert.equal(b, 'h\u00e9llo');
assert.strictEqual('' + Buffer.from('abc'), 'abc');
assert.deepEqual(Buffer.from('ab'), Buffer.from('ab'));
assert.notDeepEqual(Buffer.from('ab'), Buffer.from('ac'));

// util.format as console.log uses it.
var util = require('util');
assert.strictEqual(util.format('%s=%d %j', 'a', 42, { x: [1] }), 'a=42 {"x":[1]}');
assert.strictEqual(util.format('x', 1, 'y', { a: 'b' }), "x 1 y { a: 'b' }");

// Order: sync code, then nextTicks, then timers by deadline and creation.
var order = [];
setTimeout(function (a, b) { order.push('t20:' + a + b); }, 20, 'x', 'y');
setTimeout(function () { order.push('t0'); }, 0);
setTimeout(function () {
  order.push('t1');
  process.nextTick(function () { order.push('tick-in-timer'); });
}, 1);
process.nextTick(function (v) {
  order.push('tick:' + v);
  process.nextTick(function () { order.push('tick2'); });
}, 'v');
var cancelled = setTimeout(function () { order.push('cancelled'); }, 5);
clearTimeout(cancelled);
clearTimeout(undefined);
clearTimeout(null);
var n = 0;
var iv = setInterval(function (tag) {
  order.push(tag + (++n));
  if (n === 3) clearInterval(iv);
}, 2, 'i');
order.push('sync');

var exits = 0;
process.on('exit', function (code) {
  exits++;
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(order.slice(0, 6),
    ['sync', 'tick:v', 'tick2', 't0', 't1', 'tick-in-timer']);
  assert.deepStrictEqual(order.filter(function (e) { return e[0] === 'i'; }), ['i1', 'i2', 'i3']);
  assert.strictEqual(order.filter(function (e) { return e === 't20:xy'; }).length, 1);
  assert.strictEqual(order.length, 10);
});
process.on('exit', function () { assert.strictEqual(exits, 1); });
