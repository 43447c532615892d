// socket.connect / disconnect / remoteAddress, as Node documents them: an
// unbound socket binds implicitly ('listening' before 'connect'), the
// callback runs after the 'connect' listeners, a connected socket sends to
// its peer without port or address (all three send forms), only the peer's
// datagrams arrive, a destination or a second connect throws
// ERR_SOCKET_DGRAM_IS_CONNECTED, remoteAddress/disconnect throw
// ERR_SOCKET_DGRAM_NOT_CONNECTED until 'connect' and after disconnect, and
// after disconnect the socket is bound as before connect (0.0.0.0 and its
// port), sends with a port again and can connect elsewhere.
var assert = require('assert');
var dgram = require('dgram');

function throwsCode(fn, Ctor, code, message) {
  assert.throws(fn, function (e) {
    return e instanceof Ctor && e.code === code && (message === undefined || e.message === message);
  });
}

var log = [];
var serverGot = [];
var clientGot = [];
var strangerGot = [];
var ports = {};

var server = dgram.createSocket('udp4');
var stranger = dgram.createSocket('udp4');
var client = dgram.createSocket('udp4');

server.on('message', function (msg, rinfo) {
  serverGot.push(msg.toString());
  assert.strictEqual(rinfo.address, '127.0.0.1');
  assert.strictEqual(rinfo.port, ports.client);
  if (serverGot.length === 3) afterThreeSends();
  if (serverGot.length === 4) afterDisconnectedSend();
});
client.on('message', function (msg, rinfo) {
  clientGot.push(msg.toString() + '@' + (rinfo.port === ports.server ? 'server' : 'stranger'));
  if (clientGot.length === 1) disconnectClient();
  if (clientGot.length === 2) reconnectClient();
});
stranger.on('message', function (msg, rinfo) {
  strangerGot.push(msg.toString());
  assert.strictEqual(rinfo.port, ports.client);
  client.close();
  server.close();
  stranger.close();
});
client.on('listening', function () { log.push('listening'); });
client.on('connect', function () { log.push('connect'); });

server.bind(0, '127.0.0.1', function () {
  ports.server = server.address().port;
  stranger.bind(0, '127.0.0.1', function () {
    ports.stranger = stranger.address().port;
    connectClient();
  });
});

function connectClient() {
  var ret = client.connect(ports.server, '127.0.0.1', function () {
    log.push('callback:' + arguments.length);
    var peer = client.remoteAddress();
    assert.deepStrictEqual(peer, { address: '127.0.0.1', family: 'IPv4', port: ports.server });
    // The kernel gave the implicitly bound socket its source address.
    assert.strictEqual(client.address().address, '127.0.0.1');
    ports.client = client.address().port;
    throwsCode(function () { client.connect(ports.stranger, '127.0.0.1'); },
      Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    // Any destination is an error on a connected socket (Node's forms).
    throwsCode(function () { client.send('x', ports.server, '127.0.0.1', function () {}); },
      Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    throwsCode(function () { client.send(Buffer.from('abc'), 0, 1, ports.server); },
      Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED');
    throwsCode(function () { client.send(Buffer.from('abc'), 0, 1, ports.server, '127.0.0.1'); },
      Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED');
    // send(msg), send(msg, offset, length, cb), send(list, cb).
    client.send('one');
    client.send(Buffer.from('xtwox'), 1, 3, function (err, len) {
      assert.strictEqual(err, null);
      assert.strictEqual(len, 3);
      client.send(['thr', Buffer.from('ee')], function (err2, len2) {
        assert.strictEqual(err2, null);
        assert.strictEqual(len2, 5);
      });
    });
  });
  assert.strictEqual(ret, undefined);
  // Until 'connect' the socket is connecting: as in Node.
  throwsCode(function () { client.remoteAddress(); },
    Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
  throwsCode(function () { client.disconnect(); }, Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED');
  throwsCode(function () { client.connect(ports.server); }, Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED');
  assert.deepStrictEqual(log, []);
}

// The stranger's datagram is not for the connected client; the server's is.
function afterThreeSends() {
  stranger.send('from stranger', ports.client, '127.0.0.1', function (err) {
    assert.ifError(err);
    server.send('reply', ports.client, '127.0.0.1');
  });
}

function disconnectClient() {
  assert.strictEqual(client.disconnect(), undefined);
  throwsCode(function () { client.remoteAddress(); }, Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED');
  throwsCode(function () { client.disconnect(); }, Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED');
  // Bound as before connect: every address, the same port.
  assert.deepStrictEqual(client.address(), { address: '0.0.0.0', family: 'IPv4', port: ports.client });
  throwsCode(function () { client.send('no port'); }, RangeError, 'ERR_SOCKET_BAD_PORT');
  client.send('four', ports.server, '127.0.0.1');
}

function afterDisconnectedSend() {
  // Disconnected: the stranger's datagrams arrive again, on any local
  // address (the socket is bound to 0.0.0.0 again).
  stranger.send('hello again', ports.client, '127.0.0.2');
}

function reconnectClient() {
  client.connect(ports.stranger, function (err) {
    assert.strictEqual(err, undefined);
    assert.deepStrictEqual(client.remoteAddress(),
      { address: '127.0.0.1', family: 'IPv4', port: ports.stranger });
    client.send('to stranger');
  });
}

// Bad arguments throw at the call, before anything else happens.
var other = dgram.createSocket('udp4');
throwsCode(function () { other.connect(0); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { other.connect(65536, '127.0.0.1'); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { other.connect('http'); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { other.connect(); }, RangeError, 'ERR_SOCKET_BAD_PORT');
throwsCode(function () { other.connect(9, 127001); }, TypeError, 'ERR_INVALID_ARG_TYPE',
  'The "address" argument must be of type string. Received type number (127001)');
throwsCode(function () { other.connect(9, null); }, TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { other.connect(9, '127.0.0.1', 'not a function'); },
  TypeError, 'ERR_INVALID_ARG_TYPE');
throwsCode(function () { other.remoteAddress(); }, Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED');
throwsCode(function () { other.disconnect(); }, Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED');
// None of that bound it.
throwsCode(function () { other.address(); }, Error, 'EBADF');
other.close();
throwsCode(function () { other.connect(9); }, Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
throwsCode(function () { other.remoteAddress(); }, Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING');

// A connect that fails at once (an IPv6 literal on udp4: EINVAL) goes to
// its callback, asynchronously, or without one to 'error'; the socket is
// then not connected and may connect again.
var failing = dgram.createSocket('udp4');
var failures = [];
var sync = true;
failing.connect(9, '::1', function (err) {
  assert.strictEqual(sync, false);
  assert(err instanceof Error);
  failures.push(err.code + ':' + err.syscall + ':' + err.address + ':' + err.port + ':' + err.message);
  throwsCode(function () { failing.remoteAddress(); }, Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED');
  failing.on('error', function (err2) {
    failures.push('error:' + err2.code + ':' + err2.syscall);
    failing.connect(9, function () {
      failures.push('connected:' + failing.remoteAddress().port);
      failing.close();
    });
  });
  failing.connect(9, '::1');
});
sync = false;

// udp6: the default peer is ::1.
var six;
try {
  six = dgram.createSocket('udp6');
} catch (e) {
  if (e.code !== 'EAFNOSUPPORT' || process.env.DGRAM_TESTS_NO_SKIP) throw e;
}
var sixPeer = null;
if (six) {
  six.connect(9, function () {
    sixPeer = six.remoteAddress();
    six.close();
  });
}

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  // The second connect (after disconnect) binds nothing: no second 'listening'.
  assert.deepStrictEqual(log, ['listening', 'connect', 'callback:0', 'connect']);
  assert.deepStrictEqual(serverGot, ['one', 'two', 'three', 'four']);
  assert.deepStrictEqual(clientGot, ['reply@server', 'hello again@stranger']);
  assert.deepStrictEqual(strangerGot, ['to stranger']);
  assert.deepStrictEqual(failures, [
    'EINVAL:connect:::1:9:connect EINVAL ::1:9',
    'error:EINVAL:connect',
    'connected:9'
  ]);
  if (six) assert.deepStrictEqual(sixPeer, { address: '::1', family: 'IPv6', port: 9 });
});
