// Source-specific multicast and the outgoing multicast interface, in the
// test's namespace (dgv0 198.51.100.1, dgv1 198.51.100.2, see netns.sh).
// The receiver joins (source 198.51.100.2, group 232.1.2.3) on dgv0 and
// gets only what that source sends there: not the same group from
// 198.51.100.1, not what leaves by dgv1 (setMulticastInterface), nothing
// once it has left, while an any-source group still arrives. Senders use
// multicast TTL 0, so the only copy of each datagram is the one looped
// back on the interface it leaves by. Bad arguments throw as in Node:
// ERR_INVALID_ARG_TYPE for non-strings, then libdgram's and the kernel's
// codes with the syscall named after the method.
var assert = require('assert');
var dgram = require('dgram');

var GROUP = '232.1.2.3';
var ANY_GROUP = '239.1.2.3';
var SOURCE = '198.51.100.2';
var OTHER = '198.51.100.1';
var DGV0 = '198.51.100.1';
var DGV1 = '198.51.100.2';

function throwsCode(fn, Ctor, code, message) {
  assert.throws(fn, function (e) {
    return e instanceof Ctor && e.code === code && (message === undefined || e.message === message);
  });
}

var got = [];
var receiver = dgram.createSocket({ type: 'udp4', reuseAddr: true });
var source = dgram.createSocket('udp4');
var other = dgram.createSocket('udp4');
var port;

receiver.on('message', function (msg, rinfo) {
  got.push(msg.toString() + ' from ' + rinfo.address);
  if (msg.toString() === 'right interface') afterFirst();
  if (msg.toString() === 'any-source group') {
    receiver.close();
    source.close();
    other.close();
  }
});

receiver.bind(0, function () {
  port = receiver.address().port;
  assert.strictEqual(receiver.addSourceSpecificMembership(SOURCE, GROUP, DGV0), undefined);
  source.bind(0, SOURCE, function () {
    source.setMulticastTTL(0);
    other.bind(0, OTHER, function () {
      other.setMulticastTTL(0);
      other.setMulticastInterface(DGV0);
      sendInOrder();
    });
  });
});

// One at a time: each datagram is out (and looped back) before the next.
function sendInOrder() {
  source.setMulticastInterface(DGV1);
  source.send('wrong interface', port, GROUP, function (err) {
    assert.ifError(err);
    other.send('wrong source', port, GROUP, function (err2) {
      assert.ifError(err2);
      source.setMulticastInterface(DGV0);
      source.send('right interface', port, GROUP);
    });
  });
}

function afterFirst() {
  assert.strictEqual(receiver.dropSourceSpecificMembership(SOURCE, GROUP, DGV0), undefined);
  throwsCode(function () { receiver.dropSourceSpecificMembership(SOURCE, GROUP, DGV0); },
    Error, 'EINVAL', 'dropSourceSpecificMembership EINVAL'); // the group is gone
  receiver.addMembership(ANY_GROUP, DGV0);
  source.send('after leaving', port, GROUP, function (err) {
    assert.ifError(err);
    source.send('any-source group', port, ANY_GROUP);
  });
}

// ---- arguments -------------------------------------------------------------
var s = dgram.createSocket('udp4');
['add', 'drop'].forEach(function (verb) {
  var name = verb + 'SourceSpecificMembership';
  throwsCode(function () { s[name](); }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "sourceAddress" argument must be of type string. Received undefined');
  throwsCode(function () { s[name](SOURCE); }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "groupAddress" argument must be of type string. Received undefined');
  throwsCode(function () { s[name](0xc6336402, GROUP); }, TypeError, 'ERR_INVALID_ARG_TYPE');
  throwsCode(function () { s[name](SOURCE, null); }, TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "groupAddress" argument must be of type string. Received null');
  // Not multicast, a multicast source, the other family, a bad interface.
  throwsCode(function () { s[name](SOURCE, '198.51.100.3'); }, Error, 'EINVAL', name + ' EINVAL');
  throwsCode(function () { s[name]('232.1.1.1', GROUP); }, Error, 'EINVAL');
  throwsCode(function () { s[name]('2001:db8::2', GROUP); }, Error, 'EINVAL');
  throwsCode(function () { s[name](SOURCE, GROUP, 'bogus'); }, Error, 'EINVAL');
  throwsCode(function () { s[name](SOURCE, GROUP, 5); }, Error, 'EINVAL');
});
// An interface address that is not local: the kernel finds no device.
throwsCode(function () { s.addSourceSpecificMembership(SOURCE, GROUP, '198.51.100.99'); },
  Error, 'ENODEV', 'addSourceSpecificMembership ENODEV');
s.addSourceSpecificMembership(SOURCE, GROUP, DGV0);
assert.throws(function () { s.addSourceSpecificMembership(SOURCE, GROUP, DGV0); }, function (e) {
  return e.code === 'EADDRNOTAVAIL' && e.errno === -99 && e.syscall === 'addSourceSpecificMembership';
});
s.addSourceSpecificMembership(OTHER, GROUP, DGV0);
s.dropSourceSpecificMembership(SOURCE, GROUP, DGV0);
// The group is still joined (for OTHER): SOURCE is just not in it.
throwsCode(function () { s.dropSourceSpecificMembership(SOURCE, GROUP, DGV0); },
  Error, 'EADDRNOTAVAIL', 'dropSourceSpecificMembership EADDRNOTAVAIL');

throwsCode(function () { s.setMulticastInterface(); }, TypeError, 'ERR_INVALID_ARG_TYPE',
  'The "interfaceAddress" argument must be of type string. Received undefined');
throwsCode(function () { s.setMulticastInterface(5); }, TypeError, 'ERR_INVALID_ARG_TYPE',
  'The "interfaceAddress" argument must be of type string. Received type number (5)');
throwsCode(function () { s.setMulticastInterface('bogus'); }, Error, 'EINVAL',
  'setMulticastInterface EINVAL');
throwsCode(function () { s.setMulticastInterface('::%dgv0'); }, Error, 'EINVAL');
throwsCode(function () { s.setMulticastInterface('198.51.100.99'); }, Error, 'EADDRNOTAVAIL',
  'setMulticastInterface EADDRNOTAVAIL');
assert.strictEqual(s.setMulticastInterface('0.0.0.0'), undefined);
s.close();
['setMulticastInterface', 'addSourceSpecificMembership', 'dropSourceSpecificMembership']
  .forEach(function (m) {
    throwsCode(function () { s[m](SOURCE, GROUP); }, Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING');
  });

// udp6: Node's "::%iface" form, an interface name, "::" for the default.
var s6 = dgram.createSocket('udp6');
s6.setMulticastInterface('::%dgv0');
s6.setMulticastInterface('dgv1');
s6.setMulticastInterface('::');
throwsCode(function () { s6.setMulticastInterface('::%nope0'); }, Error, 'ENODEV');
s6.addSourceSpecificMembership('2001:db8::2', 'ff3e::8000:1', 'dgv0');
s6.dropSourceSpecificMembership('2001:db8::2', 'ff3e::8000:1', 'dgv0');
throwsCode(function () { s6.addSourceSpecificMembership(SOURCE, GROUP); }, Error, 'EINVAL');
s6.close();

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(got, ['right interface from ' + SOURCE, 'any-source group from ' + SOURCE]);
});
