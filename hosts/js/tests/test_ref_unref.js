// socket.ref() / socket.unref(), as Node documents them: both return the
// socket and may be called any number of times, also before bind and after
// close; an unref'd socket does not keep the process alive but still gets
// its datagrams while something else does; ref() undoes unref(). The
// process ends (status 0) with two unref'd sockets still bound; if it did
// not, the unref'd watchdog would end it with status 1 (and CTest's timeout
// would catch a host whose timers do not fire either).
var assert = require('assert');
var dgram = require('dgram');

var watchdog = setTimeout(function () {
  console.error('unref\'d sockets kept the process alive');
  process.exit(1);
}, 20000);
assert.strictEqual(watchdog.unref(), watchdog);

var got = [];
var listened = [];

// Unref'd before bind: never keeps the process alive.
var early = dgram.createSocket('udp4');
assert.strictEqual(early.unref(), early);
early.bind(0, '127.0.0.1');

// Unref'd once bound (twice: no different from once).
var quiet = dgram.createSocket('udp4');
quiet.on('listening', function () { listened.push('quiet'); });
quiet.on('message', function (msg) {
  got.push(msg.toString());
  // Only `keeper` kept the process alive until now.
  keeper.close();
});
quiet.bind(0, '127.0.0.1', function () {
  assert.strictEqual(quiet.unref(), quiet);
  assert.strictEqual(quiet.unref(), quiet);
  startKeeper();
});

// Unref'd, then ref'd again: it keeps the process alive until closed, so
// `quiet` gets the datagram. Without ref() the process could end first.
var keeper = dgram.createSocket('udp4');
function startKeeper() {
  keeper.bind(0, '127.0.0.1', function () {
    assert.strictEqual(keeper.unref().ref().ref(), keeper);
    setTimeout(function () {
      keeper.send('hello', quiet.address().port, '127.0.0.1');
    }, 50).unref();
  });
}

// A closed socket: no throw, the socket back.
var closed = dgram.createSocket('udp4');
closed.close();
assert.strictEqual(closed.ref(), closed);
assert.strictEqual(closed.unref(), closed);

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(got, ['hello']);
  assert.deepStrictEqual(listened, ['quiet']);
  // Still open and bound as the process ends.
  assert(quiet.address().port > 0);
  assert(early.address().port > 0);
});
