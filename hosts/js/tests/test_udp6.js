// udp6: echo over ::1 with IPv6 rinfo, the default send address ::1, and
// 'localhost' as ::1.
var assert = require('assert');
var dgram = require('dgram');

var server;
try {
  server = dgram.createSocket('udp6');
} catch (e) {
  if (e.code === 'EAFNOSUPPORT' && !process.env.DGRAM_TESTS_NO_SKIP) {
    console.error('SKIP: no IPv6 here');
    process.exit(77);
  }
  throw e;
}
var got = [];
server.on('message', function (msg, rinfo) {
  got.push(msg.toString());
  assert.strictEqual(rinfo.family, 'IPv6');
  assert.strictEqual(rinfo.address, '::1');
  assert.strictEqual(rinfo.size, msg.length);
  server.send(msg, rinfo.port, rinfo.address);
  if (got.length === 3) server.close();
});
server.bind(0, '::1', function () {
  var a = server.address();
  assert.strictEqual(a.family, 'IPv6');
  assert.strictEqual(a.address, '::1');
  var client = dgram.createSocket({ type: 'udp6', ipv6Only: true });
  var echoes = 0;
  client.on('message', function (msg, rinfo) {
    assert.strictEqual(rinfo.port, a.port);
    assert.strictEqual(rinfo.family, 'IPv6');
    if (++echoes === 3) client.close();
  });
  client.send('explicit', a.port, '::1');
  client.send('default', a.port, function (err, len) {  // no address: ::1
    assert.strictEqual(err, null);
    assert.strictEqual(len, 7);
    assert.strictEqual(client.address().family, 'IPv6');
    assert.strictEqual(client.address().address, '::');
  });
  client.send('localhost', a.port, 'localhost');
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(got, ['explicit', 'default', 'localhost']);
});
