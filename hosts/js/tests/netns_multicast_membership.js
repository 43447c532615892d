// Multicast membership (IoT.js test_dgram_multicast_membership style), in
// the test's namespace: a member gets the group's datagrams, drops the
// membership after the first, and gets no more; joining twice and dropping
// a group not joined fail with the errno names; udp6 works the same way.
var assert = require('assert');
var dgram = require('dgram');

var port = 41239;
var group = '230.255.255.250';
var iface = '198.51.100.1';
var recv = [], sendCount = 0, recv6 = [];

var server = dgram.createSocket({ type: 'udp4', reuseAddr: true });
server.on('error', function (err) { assert.fail('server: ' + err); });
server.on('message', function (data, rinfo) {
  recv.push(data.toString());
  assert.strictEqual(rinfo.address, iface);
  if (recv.length === 1) {
    server.dropMembership(group, iface);
    server.send('dropped', rinfo.port, rinfo.address);  // the client may go on
  }
});
server.bind(port, function () {
  server.addMembership(group, iface);
  assert.throws(function () { server.addMembership(group, iface); },
    function (e) { return e.code === 'EADDRINUSE' && e.syscall === 'addMembership'; });
  assert.throws(function () { server.dropMembership('230.255.255.251', iface); },
    function (e) { return e.code === 'EADDRNOTAVAIL' && e.syscall === 'dropMembership'; });

  var client = dgram.createSocket('udp4');
  client.on('message', function (msg) {
    assert.strictEqual(msg.toString(), 'dropped');
    var timer = setInterval(function () {
      sendCount++;
      client.send('Hello ' + sendCount, port, group);
      if (sendCount === 3) {
        clearInterval(timer);
        setTimeout(function () { server.close(); client.close(); }, 200);
      }
    }, 20);
  });
  client.bind(0, iface, function () {
    sendCount++;
    client.send('Hello 1', port, group);
  });
});

// udp6: join ff0e::114 on dgv0 by interface name.
var s6 = dgram.createSocket({ type: 'udp6', reuseAddr: true });
s6.on('message', function (data) {
  recv6.push(data.toString());
  s6.close();
});
s6.bind(port, function () {
  s6.addMembership('ff0e::114', 'dgv0');
  var c6 = dgram.createSocket('udp6');
  c6.bind(0, '2001:db8::1', function () {
    c6.send('six', port, 'ff0e::114%dgv0', function (err) {
      assert.ifError(err);
      c6.close();
    });
  });
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.strictEqual(sendCount, 3);
  assert.deepStrictEqual(recv, ['Hello 1']);
  assert.deepStrictEqual(recv6, ['six']);
});
