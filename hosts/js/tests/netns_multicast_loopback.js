// setMulticastLoopback (IoT.js test_dgram_multicast_set_multicast_loop
// style), in the test's namespace: with loopback on, a member on this host
// gets the sender's datagram; with it off, not; setMulticastTTL(0..255).
var assert = require('assert');
var dgram = require('dgram');

var port = 41240;
var group = '230.255.255.251';
var iface = '198.51.100.1';
var got = [];

var server = dgram.createSocket({ type: 'udp4', reuseAddr: true });
server.on('message', function (data) { got.push(data.toString()); });
server.bind(port, function () {
  server.addMembership(group, iface);
  var client = dgram.createSocket('udp4');
  client.bind(0, iface, function () {
    assert.strictEqual(client.setMulticastTTL(1), 1);
    assert.strictEqual(client.setMulticastLoopback(false), false);
    client.send('loop off', port, group, function (err) {
      assert.ifError(err);
      setTimeout(function () {
        assert.strictEqual(client.setMulticastLoopback(true), true);
        client.send('loop on', port, group, function (err) {
          assert.ifError(err);
          setTimeout(function () { server.close(); client.close(); }, 200);
        });
      }, 200);
    });
  });
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(got, ['loop on']);
});
