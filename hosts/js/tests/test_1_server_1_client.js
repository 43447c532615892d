// One server, one client (in the style of IoT.js test_dgram_1_server_1_client):
// the client sends, the server echoes, both check the bytes and rinfo.
var assert = require('assert');
var dgram = require('dgram');

var msg = 'Hello IoT.js';
var serverGot = 0, clientGot = 0, closed = 0;
var server = dgram.createSocket('udp4');

server.on('error', function (err) {
  assert.fail('server error: ' + err);
});

server.on('message', function (data, rinfo) {
  serverGot++;
  assert(Buffer.isBuffer(data));
  assert.equal(data, msg);
  assert.strictEqual('' + data, msg);
  assert.strictEqual(rinfo.address, '127.0.0.1');
  assert.strictEqual(rinfo.family, 'IPv4');
  assert.strictEqual(rinfo.size, msg.length);
  server.send(data, rinfo.port, '127.0.0.1', function (err, len) {
    assert.strictEqual(err, null);
    assert.strictEqual(len, msg.length);
    server.close();
  });
});

server.on('close', function () { closed++; });

server.bind(0, '127.0.0.1', function () {
  var port = server.address().port;
  assert(port > 0);
  var client = dgram.createSocket('udp4');
  client.on('message', function (data, rinfo) {
    clientGot++;
    assert.equal(data, msg);
    assert.strictEqual(rinfo.port, port);
    assert.strictEqual(rinfo.address, '127.0.0.1');
    client.close(function () { closed++; });
  });
  client.send(msg, port, '127.0.0.1');
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.strictEqual(serverGot, 1);
  assert.strictEqual(clientGot, 1);
  assert.strictEqual(closed, 2);
});
