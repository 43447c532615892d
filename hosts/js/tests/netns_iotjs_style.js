// Scripts written the way IoT.js's own dgram tests are: fixed ports, bind()
// with no address (all interfaces), sends to 'localhost' and to the default
// address, results checked at process exit. Run inside a network namespace
// of its own (netns.sh), where the fixed ports are certainly free.
var assert = require('assert');
var dgram = require('dgram');

// ---- one server, several clients, port 41237 -------------------------------
var port = 41237;
var clients = 3;
var serverGot = 0;
var clientGot = [];
var server = dgram.createSocket('udp4');

server.on('message', function (data, rinfo) {
  serverGot++;
  server.send(data, rinfo.port, rinfo.address);
});

server.bind(port, function () {
  assert.equal(server.address().port, port);
  assert.equal(server.address().address, '0.0.0.0');
  for (var i = 0; i < clients; i++) {
    (function (id) {
      var client = dgram.createSocket('udp4');
      clientGot[id] = 0;
      client.on('message', function (data) {
        clientGot[id]++;
        assert.equal(data.toString(), 'client ' + id);
        client.close();
        if (clientGot.reduce(function (a, b) { return a + b; }, 0) === clients) {
          server.close();
        }
      });
      client.send('client ' + id, port, 'localhost');
    })(i);
  }
});

// ---- address() after bind to a fixed port and address, port 41234 ----------
var fixed = dgram.createSocket({ type: 'udp4', reuseAddr: true });
fixed.bind({ port: 41234, address: '198.51.100.1' }, function () {
  var a = fixed.address();
  assert.equal(a.address, '198.51.100.1');
  assert.equal(a.port, 41234);
  assert.equal(a.family, 'IPv4');
  fixed.close();
});

// ---- setTTL and a send with the default address, port 41238 ----------------
var ttlServer = dgram.createSocket('udp4');
var ttlGot = 0;
ttlServer.on('message', function (data, rinfo) {
  ttlGot++;
  assert.equal(data, 'ttl');
  assert.equal(rinfo.address, '127.0.0.1');
  ttlServer.close();
});
ttlServer.bind(41238, function () {
  var ttlClient = dgram.createSocket('udp4');
  ttlClient.bind(function () {
    ttlClient.setTTL(2);
    ttlClient.send(new Buffer('ttl'), 0, 3, 41238, function (err, len) {
      assert.equal(err, null);
      assert.equal(len, 3);
      ttlClient.close();
    });
  });
});

process.on('exit', function (code) {
  assert.equal(code, 0);
  assert.equal(serverGot, clients);
  for (var i = 0; i < clients; i++) {
    assert.equal(clientGot[i], 1);
  }
  assert.equal(ttlGot, 1);
});
