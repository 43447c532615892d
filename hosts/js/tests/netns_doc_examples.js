// The examples of IoT.js's dgram documentation (docs/api/IoT.js-API-DGRAM.md),
// unmodified except for what makes them end (a sender, then close), run
// inside the test's namespace because they use fixed ports and broadcast.
var assert = require('assert');
var log = [];
var origLog = console.log;
console.log = function (s) { log.push(s); };

// -- Dgram: a UDP server on 41234 (plus a client so that it ends).
(function () {
  var dgram = require('dgram');
  var server = dgram.createSocket('udp4');

  server.on('error', function (err) {
    console.log('Error: ' + err);
    server.close();
  });

  server.on('message', function(msg, rinfo) {
    // prints: message received
    console.log('server got: ' + msg);
    server.close();
  });

  server.on('listening', function() {
    console.log('server listening at ' + server.address().port);
    var client = dgram.createSocket('udp4');
    client.send('ping', 41234, '127.0.0.1', function () { client.close(); });
  });

  server.bind(41234);
})();

// -- createSocket(options) / createSocket(type)
(function () {
  var dgram = require('dgram');
  var server = dgram.createSocket({ type: 'udp4', reuseAddr: true});
  var server2 = dgram.createSocket('udp4');
  assert(server instanceof dgram.Socket && server2 instanceof dgram.Socket);
})();

// -- addMembership / dropMembership on 12345 (a member drops on its first message)
(function () {
  var dgram = require('dgram');
  var server = dgram.createSocket('udp4');
  var multicast_address = '230.255.255.250';

  server.bind(12345 /* port */, function() {
    server.addMembership(multicast_address);
    var c = dgram.createSocket('udp4');
    c.send('to the group', 12345, multicast_address, function () { c.close(); });
  });

  server.on('message', function(data, rinfo) {
    // Drop membership when a message arrived.
    server.dropMembership(multicast_address);
    console.log('member got: ' + data);
    server.close();
  });
})();

// -- address() on 12346 (the example's 12345 is taken by the member above)
(function () {
  var dgram = require('dgram');
  var server = dgram.createSocket('udp4');

  server.on('listening', function () {
    var address = server.address();
    // prints: address and port of the server address
    console.log('Addr: ' + address.address + ' port: ' + address.port);
    server.close();
  });

  server.bind(12346 /* port */);
})();

// -- bind(port, cb) and bind(options, cb), both reuseAddr on 12347
(function () {
  var dgram = require('dgram');
  var socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  var socket2 = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  var port = 12347;

  socket.bind(port, function () {
    // prints: Listening for packets
    console.log('Listening for packets');
    socket.close();
  });
  socket2.bind({ port:12347 }, function () {
    // prints: Listening for packets
    console.log('Listening for packets');
    socket2.close();
  });
})();

// -- close(cb) of a socket never bound
(function () {
  var dgram = require('dgram');
  var socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });

  // prints: Close!
  socket.close(function () {
    // prints: Socket is closed
    console.log('Socket is closed');
  });
})();

// -- setBroadcast, send to 255.255.255.255, setMulticastLoopback,
//    setMulticastTTL, setTTL: all on 41237 with reuseAddr
(function () {
  var dgram = require('dgram');
  var socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  var broadcast_address = '255.255.255.255';
  var port = 41237;

  socket.bind(port, function() {
    socket.setBroadcast(true);
    socket.setMulticastLoopback(true);
    socket.setMulticastTTL(1);
    socket.setTTL(64);
    socket.send('Hello IoT.js', port, broadcast_address);
  });
  socket.on('message', function (msg) {
    console.log('broadcast got: ' + msg);
    socket.close();
  });
})();

process.on('exit', function (code) {
  console.log = origLog;
  assert.strictEqual(code, 0);
  log.sort();
  assert.deepStrictEqual(log, [
    'Addr: 0.0.0.0 port: 12346',
    'Listening for packets',
    'Listening for packets',
    'Socket is closed',
    'broadcast got: Hello IoT.js',
    'member got: to the group',
    'server got: ping',
    'server listening at 41234'
  ]);
});
