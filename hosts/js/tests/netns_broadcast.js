// Broadcast (IoT.js test_dgram_broadcast style), inside the test's network
// namespace: two reuseAddr listeners on one port each get every broadcast
// exactly once, to the subnet's and to the limited broadcast address; a
// send without setBroadcast(true) fails with EACCES.
var assert = require('assert');
var dgram = require('dgram');

var port = 41237;
var got = { a: [], b: [] };
var denied = null;

function listener(name) {
  var s = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  s.on('error', function (err) { assert.fail(name + ': ' + err); });
  s.on('message', function (msg, rinfo) {
    assert.strictEqual(rinfo.address, '198.51.100.1');
    got[name].push(msg.toString());
  });
  return s;
}

var a = listener('a'), b = listener('b');
a.bind(port, function () {
  b.bind({ port: port }, function () {
    var sender = dgram.createSocket('udp4');
    sender.bind(0, '198.51.100.1', function () {
      sender.send('denied', port, '198.51.100.255', function (err) {
        denied = err;
        sender.setBroadcast(true);
        sender.send('subnet', port, '198.51.100.255', function (err) {
          assert.ifError(err);
          sender.send('limited', port, '255.255.255.255', function (err) {
            assert.ifError(err);
            sender.setBroadcast(false);
            // Leave time for a duplicate to show up, then stop.
            setTimeout(function () { a.close(); b.close(); sender.close(); }, 200);
          });
        });
      });
    });
  });
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert(denied instanceof Error);
  assert.strictEqual(denied.code, 'EACCES');
  assert.strictEqual(denied.syscall, 'send');
  assert.deepStrictEqual(got.a, ['subnet', 'limited']);
  assert.deepStrictEqual(got.b, ['subnet', 'limited']);
});
