// Every form of socket.send, with and without address and callback; the
// server checks each datagram's exact bytes, in order, and every callback
// gets (null, length).
var assert = require('assert');
var dgram = require('dgram');

var server = dgram.createSocket('udp4');
var client = dgram.createSocket('udp4');
var got = [];
var callbacks = [];

function cb(tag) {
  return function (err, len) {
    assert.strictEqual(err, null, tag);
    callbacks.push(tag + ':' + len);
  };
}

var expected = [
  'buffer', 'string', 'array', 'OFFSET', 'nohost', 'port+cb', 'bare', 'noclb',
  'sub', '', '', 'h\u00e9llo', 'leg', 'u8', 'str-off'
];

server.on('message', function (msg, rinfo) {
  assert(msg instanceof Buffer);
  assert.strictEqual(rinfo.size, msg.length);
  got.push(msg.toString());
  if (got.length === expected.length) {
    server.close();
    client.close();
  }
});

server.bind(0, '127.0.0.1', function () {
  var port = server.address().port;
  client.send(Buffer.from('buffer'), port, '127.0.0.1', cb('buffer'));
  client.send('string', port, '127.0.0.1', cb('string'));
  client.send([Buffer.from('arr'), 'ay'], port, '127.0.0.1', cb('array'));
  client.send(Buffer.from('xxOFFSETxx'), 2, 6, port, '127.0.0.1', cb('offset'));
  client.send(Buffer.from('--nohost'), 2, 6, port, cb('offset-nohost'));
  client.send('port+cb', port, cb('port+cb'));           // no address: 127.0.0.1
  client.send('bare', port);                             // neither address nor callback
  client.send('noclb', port, '127.0.0.1');
  client.send(new Buffer('..sub..'), 2, 3, port);        // offset/length, nothing else
  client.send(Buffer.alloc(0), port, cb('empty-buffer'));
  client.send([], port, '127.0.0.1', cb('empty-array'));
  client.send('h\u00e9llo', port, 'localhost', cb('utf8'));
  client.sendto(Buffer.from('legacy'), 0, 3, port, '127.0.0.1', cb('sendto'));
  client.send(new Uint8Array([117, 56]), port, cb('u8'));
  client.send('..str-off', 2, 7, port, cb('string-offset'));
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(got, expected);
  assert.deepStrictEqual(callbacks, [
    'buffer:6', 'string:6', 'array:5', 'offset:6', 'offset-nohost:6', 'port+cb:7',
    'empty-buffer:0', 'empty-array:0', 'utf8:6', 'sendto:3', 'u8:2', 'string-offset:7'
  ]);
});
