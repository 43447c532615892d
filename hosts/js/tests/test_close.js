// close(): 'close' once and close(cb) once, calls after close throw "Not
// running", an unbound socket closes too, close from inside 'message' stops
// further messages, and a closed socket no longer keeps the process alive.
var assert = require('assert');
var dgram = require('dgram');

var count = { unboundClose: 0, unboundCb: 0, serverClose: 0, serverCb: 0, messages: 0,
  sent: 0, otherClose: 0 };

// An unbound socket closes, and its 'close' comes asynchronously.
var unbound = dgram.createSocket('udp4');
unbound.on('close', function () { count.unboundClose++; });
var sync = true;
unbound.close(function () {
  assert.strictEqual(sync, false);
  count.unboundCb++;
});
sync = false;
['close', 'address', 'setBroadcast'].forEach(function (m) {
  assert.throws(function () { unbound[m](); },
    function (e) { return e.code === 'ERR_SOCKET_DGRAM_NOT_RUNNING' && e.message === 'Not running'; });
});
assert.throws(function () { unbound.bind(0); }, /Not running/);
assert.throws(function () { unbound.send('x', 1234); }, /Not running/);
assert.throws(function () { unbound.addMembership('224.0.0.114'); }, /Not running/);

// A server that closes in its first 'message': the other datagrams are
// never delivered.
var server = dgram.createSocket('udp4');
server.on('message', function () {
  count.messages++;
  server.close(function () { count.serverCb++; });
});
server.on('close', function () { count.serverClose++; });
server.bind(0, '127.0.0.1', function () {
  var port = server.address().port;
  var client = dgram.createSocket('udp4');
  var done = 0;
  for (var i = 0; i < 5; i++) {
    client.send('m' + i, port, function (err) {
      assert.ifError(err);
      count.sent++;
      if (++done === 5) client.close();
    });
  }
});

// Close right after bind: 'listening' may or may not come (the close may
// win), 'close' comes exactly once, its callback once.
var other = dgram.createSocket('udp4');
other.bind(0);
other.close(function () { count.otherClose++; });

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepEqual(count, { unboundClose: 1, unboundCb: 1, serverClose: 1, serverCb: 1,
    messages: 1, sent: 5, otherClose: 1 });
});
