// A connected socket whose peer port is closed: the send itself succeeds,
// then the peer's ICMP port unreachable comes as one 'error' event in
// Node's shape (code ECONNREFUSED, errno -111, syscall 'recvmsg', message
// 'recvmsg ECONNREFUSED'); the socket stays connected and usable.
var assert = require('assert');
var dgram = require('dgram');

var events = [];
var client = dgram.createSocket('udp4');
var gone = dgram.createSocket('udp4');

client.on('error', function (err) {
  assert(err instanceof Error);
  events.push('error:' + err.code + ':' + err.errno + ':' + err.syscall + ':' + err.message);
  assert.strictEqual(err.address, undefined);
  assert.deepStrictEqual(client.remoteAddress(),
    { address: '127.0.0.1', family: 'IPv4', port: gone.port });
  if (events.length === 2) client.close();
});

// A port that was just in use and is now closed.
gone.bind(0, '127.0.0.1', function () {
  gone.port = gone.address().port;
  gone.close(function () {
    client.connect(gone.port, '127.0.0.1', function () {
      client.send('ping', function (err, len) {
        assert.strictEqual(err, null);
        assert.strictEqual(len, 4);
        events.push('sent');
        if (events.length === 2) client.close();
      });
    });
  });
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  // The send's completion and the ICMP error race on the I/O thread.
  assert.deepStrictEqual(events.slice().sort(),
    ['error:ECONNREFUSED:-111:recvmsg:recvmsg ECONNREFUSED', 'sent']);
});
