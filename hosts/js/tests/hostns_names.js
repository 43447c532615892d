// Host names in bind, send and connect (run by hostns.sh: /etc/hosts has
// 127.0.0.2 dgram-test-a, ::1 dgram-test-six and 2001:db8::6
// dgram-test-v6only; nothing else is asked).
// A name binds, sends and connects as its address would, in call order
// (a send made while a bind waits for its lookup goes out after the bind);
// a name that does not resolve, or only to the other family, fails as in
// Node: code 'ENOTFOUND', errno -3008, syscall 'getaddrinfo', hostname, to
// the send or connect callback (alone), else as 'error'; a bind's lookup
// failure is an 'error' that leaves no listening callback behind.
var assert = require('assert');
var dgram = require('dgram');

var UNKNOWN = 'no-such-host.invalid';
var log = [];
var serverGot = [];
var pending = 0;
var sixTested = false;

function isNotFound(err, hostname) {
  assert(err instanceof Error);
  assert.strictEqual(err.code, 'ENOTFOUND');
  assert.strictEqual(err.errno, -3008);
  assert.strictEqual(err.syscall, 'getaddrinfo');
  assert.strictEqual(err.hostname, hostname);
  assert.strictEqual(err.message, 'getaddrinfo ENOTFOUND ' + hostname);
  assert.strictEqual(err.address, undefined);
  assert.strictEqual(err.port, undefined);
  return true;
}

function finish(tag) {
  log.push(tag);
  if (--pending === 0) server.close();
}

// The server binds by name.
var server = dgram.createSocket('udp4');
server.on('message', function (msg, rinfo) {
  serverGot.push(msg.toString() + ' from ' + rinfo.address);
  finish('message');
});
pending += 1 + 3; // the bind, and the three datagrams the server gets
server.bind(0, 'dgram-test-a', function () {
  assert.deepStrictEqual(server.address(),
    { address: '127.0.0.2', family: 'IPv4', port: server.address().port });
  var port = server.address().port;
  sendByName(port);
  connectByName(port);
  sendWhileBinding(port);
  unknownNames(port);
  otherFamily();
  finish('server bound');
});
assert.throws(function () { server.bind(0); },
  function (e) { return e.code === 'ERR_SOCKET_ALREADY_BOUND'; });

function sendByName(port) {
  pending++;
  var c = dgram.createSocket('udp4');
  c.send('by name', port, 'dgram-test-a', function (err, len) {
    assert.strictEqual(err, null);
    assert.strictEqual(len, 7);
    c.close();
    finish('sent by name');
  });
}

// Connect by name on an unbound socket: 'listening', then 'connect'.
function connectByName(port) {
  pending++;
  var c = dgram.createSocket('udp4');
  var events = [];
  c.on('listening', function () { events.push('listening'); });
  c.on('connect', function () { events.push('connect'); });
  c.connect(port, 'dgram-test-a', function () {
    assert.deepStrictEqual(events, ['listening', 'connect']);
    assert.deepStrictEqual(c.remoteAddress(), { address: '127.0.0.2', family: 'IPv4', port: port });
    c.send('connected by name', function (err) {
      assert.strictEqual(err, null);
      c.close();
      finish('connected by name');
    });
  });
}

// A send made while the bind waits for its lookup leaves from the bound
// address, after 'listening'.
function sendWhileBinding(port) {
  pending++;
  var c = dgram.createSocket('udp4');
  var events = [];
  c.bind(0, 'dgram-test-a', function () { events.push('listening'); });
  c.send('after bind', port, '127.0.0.2', function (err) {
    assert.strictEqual(err, null);
    events.push('sent');
    assert.deepStrictEqual(events, ['listening', 'sent']);
    c.close();
    finish('sent while binding');
  });
}

function unknownNames(port) {
  // send: to the callback, with the error alone.
  pending++;
  var a = dgram.createSocket('udp4');
  a.send('x', port, UNKNOWN, function (err) {
    assert.strictEqual(arguments.length, 1);
    isNotFound(err, UNKNOWN);
    // send without a callback: 'error'.
    a.on('error', function (err2) {
      isNotFound(err2, UNKNOWN);
      a.close();
      finish('send ENOTFOUND');
    });
    a.send('y', port, UNKNOWN);
  });

  // bind: 'error', no listening callback; the socket can bind again.
  pending++;
  var b = dgram.createSocket('udp4');
  var listened = [];
  b.on('listening', function () { listened.push('listening'); });
  b.on('error', function (err) {
    isNotFound(err, UNKNOWN);
    assert.throws(function () { b.address(); }, function (e) { return e.code === 'EBADF'; });
    b.bind(0, '127.0.0.1', function () {
      assert.deepStrictEqual(listened, ['listening']);
      b.close();
      finish('bind ENOTFOUND');
    });
  });
  b.bind(0, UNKNOWN, function () { assert.fail('listening callback of a failed bind'); });

  // connect: to the callback, else 'error'; then not connected, and may
  // connect again.
  pending++;
  var c = dgram.createSocket('udp4');
  c.connect(port, UNKNOWN, function (err) {
    assert.strictEqual(arguments.length, 1);
    isNotFound(err, UNKNOWN);
    assert.throws(function () { c.remoteAddress(); },
      function (e) { return e.code === 'ERR_SOCKET_DGRAM_NOT_CONNECTED'; });
    c.on('error', function (err2) {
      isNotFound(err2, UNKNOWN);
      c.connect(port, 'dgram-test-a', function (err3) {
        assert.strictEqual(err3, undefined);
        assert.strictEqual(c.remoteAddress().address, '127.0.0.2');
        c.close();
        finish('connect ENOTFOUND');
      });
    });
    c.connect(port, UNKNOWN);
  });
}

// A name with addresses of the other family only does not resolve.
function otherFamily() {
  pending++;
  var four = dgram.createSocket('udp4');
  four.send('x', 9, 'dgram-test-v6only', function (err) {
    isNotFound(err, 'dgram-test-v6only');
    four.close();
    finish('udp4 other family');
  });
  var six;
  try {
    six = dgram.createSocket('udp6');
  } catch (e) {
    if (e.code !== 'EAFNOSUPPORT' || process.env.DGRAM_TESTS_NO_SKIP) throw e;
    return;
  }
  sixTested = true;
  pending += 2;
  six.bind(0, 'dgram-test-six', function () {
    assert.strictEqual(six.address().address, '::1');
    six.send('x', 9, 'dgram-test-a', function (err) {
      isNotFound(err, 'dgram-test-a');
      six.close();
      finish('udp6 other family');
    });
    finish('udp6 bound by name');
  });
}

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(serverGot.sort(), [
    'after bind from 127.0.0.2',
    'by name from 127.0.0.1',
    'connected by name from 127.0.0.1'
  ]);
  var expected = ['bind ENOTFOUND', 'connect ENOTFOUND', 'connected by name',
    'message', 'message', 'message',
    'send ENOTFOUND', 'sent by name', 'sent while binding', 'server bound', 'udp4 other family'];
  if (sixTested) {
    expected.push('udp6 bound by name', 'udp6 other family');
  }
  assert.deepStrictEqual(log.sort(), expected.sort());
});
