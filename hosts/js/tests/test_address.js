// address(): before bind (throws EBADF), after an explicit bind, after the
// implicit bind of a first send (at once, in 'listening' and in the send
// callback), and after close (throws "Not running").
var assert = require('assert');
var dgram = require('dgram');

var events = [];
var server = dgram.createSocket('udp4');
assert.throws(function () { server.address(); },
  function (e) { return e.code === 'EBADF' && e.syscall === 'getsockname'; });

server.bind({ port: 0, address: '127.0.0.1' }, function () {
  var a = server.address();
  assert.deepEqual(Object.keys(a).sort(), ['address', 'family', 'port']);
  assert.strictEqual(a.address, '127.0.0.1');
  assert.strictEqual(a.family, 'IPv4');
  assert(a.port > 0 && a.port < 65536);

  var client = dgram.createSocket({ type: 'udp4' });
  client.on('listening', function () {
    events.push('listening');
    assert.strictEqual(client.address().port, implicit.port);
  });
  client.send('x', a.port, function (err, len) {
    events.push('sent');
    assert.strictEqual(err, null);
    assert.strictEqual(len, 1);
    assert.deepEqual(client.address(), implicit);
    client.close();
    assert.throws(function () { client.address(); },
      function (e) { return e instanceof Error && e.code === 'ERR_SOCKET_DGRAM_NOT_RUNNING'; });
  });
  // The implicit bind happened inside send(): address() works at once.
  var implicit = client.address();
  assert.strictEqual(implicit.address, '0.0.0.0');
  assert.strictEqual(implicit.family, 'IPv4');
  assert(implicit.port > 0);
  // ... and the socket counts as bound now.
  assert.throws(function () { client.bind(0); }, /already bound/);
});

server.on('message', function (msg, rinfo) {
  events.push('message');
  assert.strictEqual(msg.toString(), 'x');
  server.close();
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  // 'listening' of an implicit bind comes before the send callback.
  assert.strictEqual(events.indexOf('listening'), 0);
  assert(events.indexOf('sent') > 0);
  assert.strictEqual(events.length, 3);
});
