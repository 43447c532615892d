// One server, several clients (IoT.js test_dgram_1_server_n_clients style):
// each client sends its number, the server echoes it to that client only.
var assert = require('assert');
var dgram = require('dgram');

var sockcount = 5;
var perClient = 20;
var received = {};     // server side: text -> count
var echoed = 0, clientsDone = 0;
var server = dgram.createSocket('udp4');

server.on('error', function (err) { assert.fail('server error: ' + err); });

server.on('message', function (data, rinfo) {
  var text = data.toString();
  received[text] = (received[text] || 0) + 1;
  server.send(data, rinfo.port, 'localhost', function (err, len) {
    assert.ifError(err);
    assert.strictEqual(len, data.length);
    if (++echoed === sockcount * perClient) server.close();
  });
});

server.bind(0, function () {
  var port = server.address().port;
  for (var i = 0; i < sockcount; i++) {
    (function (i) {
      var client = dgram.createSocket('udp4');
      var got = [];
      client.on('error', function (err) { assert.fail('client error: ' + err); });
      client.on('message', function (data, rinfo) {
        assert.strictEqual(rinfo.port, port);
        got.push(data.toString());
        if (got.length === perClient) {
          var want = [];
          for (var k = 0; k < perClient; k++) want.push(i + ':' + k);
          assert.deepEqual(got, want);   // loopback keeps the order
          clientsDone++;
          client.close();
        }
      });
      for (var k = 0; k < perClient; k++) client.send(i + ':' + k, port, 'localhost');
    })(i);
  }
});

process.on('exit', function (code) {
  assert.equal(code, 0);
  assert.strictEqual(Object.keys(received).length, sockcount * perClient);
  for (var i = 0; i < sockcount; i++) {
    for (var k = 0; k < perClient; k++) assert.strictEqual(received[i + ':' + k], 1);
  }
  assert.strictEqual(echoed, sockcount * perClient);
  assert.strictEqual(clientsDone, sockcount);
});
