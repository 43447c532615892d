// Bad arguments throw at the call, as in Node: TypeError for a bad type or
// a non-string address or buffer size, RangeError for a port out of range,
// a bad offset/length or a negative buffer size; libdgram's EINVAL for a TTL out of range comes back as an
// Error with code 'EINVAL'. A failed bind emits 'error' (asynchronously) and
// does not keep its listening callback; the socket can bind again.
var assert = require('assert');
var dgram = require('dgram');

function throwsCode(fn, Ctor, code) {
  assert.throws(fn, function (e) {
    return e instanceof Ctor && e.code === code;
  });
}

throwsCode(function () { dgram.createSocket('udp5'); }, TypeError, 'ERR_SOCKET_BAD_TYPE');
throwsCode(function () { dgram.createSocket({ type: 'tcp' }); }, TypeError, 'ERR_SOCKET_BAD_TYPE');
throwsCode(function () { dgram.createSocket(); }, TypeError, 'ERR_SOCKET_BAD_TYPE');
throwsCode(function () { dgram.createSocket({ type: 'udp4', recvBufferSize: -1 }); },
  RangeError, 'ERR_OUT_OF_RANGE');
throwsCode(function () { dgram.createSocket({ type: 'udp4', sendBufferSize: '4096' }); },
  TypeError, 'ERR_INVALID_ARG_TYPE');

var s = dgram.createSocket('udp4');
throwsCode(function () { s.bind(-1); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.bind(65536); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.bind(1.5); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.bind({ port: 'abc' }); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.bind(0, 127001); }, TypeError, 'ERR_INVALID_ARG_TYPE');

throwsCode(function () { s.send('x', 0); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.send('x', 65536); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.send('x', -5, '127.0.0.1'); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.send('x', 'http'); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.send('x'); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { s.send('x', 9, 12345); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.send(42, 9); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.send({}, 9, '127.0.0.1'); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.send(['ok', 7], 9); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.send(Buffer.from('abc'), 4, 0, 9, '127.0.0.1'); },
  RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS');
throwsCode(function () { s.send(Buffer.from('abc'), 1, 3, 9, '127.0.0.1'); },
  RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS');

throwsCode(function () { s.setTTL('64'); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.setMulticastTTL(null); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.setTTL(0); }, Error, 'EINVAL');
throwsCode(function () { s.setTTL(256); }, Error, 'EINVAL');
throwsCode(function () { s.setMulticastTTL(256); }, Error, 'EINVAL');
assert.throws(function () { s.setTTL(0); }, function (e) {
  return e.syscall === 'setTTL' && e.errno === -22 && e.message === 'setTTL EINVAL';
});
assert.strictEqual(s.setTTL(1), 1);
assert.strictEqual(s.setTTL(255), 255);
assert.strictEqual(s.setMulticastTTL(0), 0);
throwsCode(function () { s.addMembership(); }, TypeError, 'ERR_MISSING_ARGS');
throwsCode(function () { s.addMembership(224); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { s.addMembership('10.0.0.1'); }, Error, 'EINVAL');     // not multicast
throwsCode(function () { s.dropMembership('224.0.0.114'); }, Error, 'EADDRNOTAVAIL');

// None of the throws above bound the socket.
throwsCode(function () { s.address(); }, Error, 'EBADF');

// A failed bind: 'error' with the details, no listening callback left.
var holder = dgram.createSocket('udp4');
var errors = [], listened = 0, rebound = 0;
holder.bind(0, '127.0.0.1', function () {
  var port = holder.address().port;
  s.on('error', function (err) {
    errors.push(err);
    // Bind again, elsewhere: only this callback may run.
    s.bind(0, '127.0.0.1', function () {
      rebound++;
      s.close();
      holder.close();
    });
  });
  s.on('listening', function () { listened++; });
  var ret = s.bind(port, '127.0.0.1', function () { assert.fail('stale listening callback'); });
  assert.strictEqual(ret, s);
  assert.strictEqual(errors.length, 0); // 'error' comes asynchronously
  holder.port = port;
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.strictEqual(errors.length, 1);
  var e = errors[0];
  assert(e instanceof Error);
  assert.strictEqual(e.code, 'EADDRINUSE');
  assert.strictEqual(e.errno, -98);
  assert.strictEqual(e.syscall, 'bind');
  assert.strictEqual(e.address, '127.0.0.1');
  assert.strictEqual(e.port, holder.port);
  assert.strictEqual(e.message, 'bind EADDRINUSE 127.0.0.1:' + holder.port);
  assert.strictEqual(listened, 1);
  assert.strictEqual(rebound, 1);
});
