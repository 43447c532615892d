// Send failures: an oversized datagram gives EMSGSIZE to the send callback,
// or without a callback an 'error' event, asynchronously in both cases and
// with the Error fields; the socket stays usable. A bad address literal is
// EINVAL the same way.
var assert = require('assert');
var dgram = require('dgram');

var server = dgram.createSocket('udp4');
var results = [];
var big = Buffer.alloc(65508, 0x61);

server.on('message', function (msg) {
  results.push('message:' + msg);
  server.close();
  client.close();
});

var client = dgram.createSocket('udp4');
client.on('error', function (err) {
  results.push('error:' + err.code + ':' + err.syscall);
  assert.strictEqual(err.errno, -90);
  assert.strictEqual(err.address, '127.0.0.1');
});

server.bind(0, '127.0.0.1', function () {
  var port = server.address().port;
  var sync = true;
  client.send(big, port, '127.0.0.1', function (err, len) {
    assert.strictEqual(sync, false);
    assert(err instanceof Error);
    assert.strictEqual(err.code, 'EMSGSIZE');
    assert.strictEqual(err.errno, -90);
    assert.strictEqual(err.syscall, 'send');
    assert.strictEqual(err.address, '127.0.0.1');
    assert.strictEqual(err.port, port);
    assert.strictEqual(err.message, 'send EMSGSIZE 127.0.0.1:' + port);
    results.push('callback:' + err.code);
  });
  client.send(big, port);               // no callback: 'error'
  client.send('x', port, 'not an address', function (err) {
    results.push('callback:' + err.code);
  });
  sync = false;
  assert.deepStrictEqual(results, []);
  setTimeout(function () { client.send('still works', port); }, 10);
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(results, ['callback:EMSGSIZE', 'error:EMSGSIZE:send', 'callback:EINVAL',
    'message:still works']);
});
