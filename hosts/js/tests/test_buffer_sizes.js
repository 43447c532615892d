// Buffer sizes and the send queue, as Node documents them:
// get/set{Recv,Send}BufferSize throw ERR_SOCKET_BAD_BUFFER_SIZE (TypeError)
// for a size that is not a uint32, and ERR_SOCKET_BUFFER_SIZE (a
// SystemError naming libuv's function) before bind (EBADF), after close,
// and for sizes past INT_MAX (EINVAL); once bound the getters give what
// Linux reports, twice the size set. The createSocket options
// recvBufferSize/sendBufferSize apply too. getSendQueueSize/Count are 0
// before bind and after sends that went straight out.
var assert = require('assert');
var dgram = require('dgram');

function throwsBadSize(fn) {
  assert.throws(fn, function (e) {
    return e instanceof TypeError && e.code === 'ERR_SOCKET_BAD_BUFFER_SIZE' &&
      e.message === 'Buffer size must be a positive integer';
  });
}

function throwsBufferSize(fn, recv, name, errno, text) {
  var syscall = recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size';
  assert.throws(fn, function (e) {
    return e instanceof Error && e.name === 'SystemError' && e.code === 'ERR_SOCKET_BUFFER_SIZE' &&
      e.errno === errno && e.syscall === syscall &&
      e.message === 'Could not get or set buffer size: ' + syscall + ' returned ' + name +
        ' (' + text + ')' &&
      e.info.code === name && e.info.errno === errno && e.info.syscall === syscall;
  });
}

function notBound(s) {
  throwsBufferSize(function () { s.getRecvBufferSize(); }, true, 'EBADF', -9, 'bad file descriptor');
  throwsBufferSize(function () { s.getSendBufferSize(); }, false, 'EBADF', -9, 'bad file descriptor');
  throwsBufferSize(function () { s.setRecvBufferSize(8192); }, true, 'EBADF', -9, 'bad file descriptor');
  throwsBufferSize(function () { s.setSendBufferSize(8192); }, false, 'EBADF', -9, 'bad file descriptor');
}

var done = [];
var s = dgram.createSocket('udp4');

// Not a uint32: checked first, bound or not.
[-1, 1.5, '8192', NaN, 4294967296, null, undefined].forEach(function (bad) {
  throwsBadSize(function () { s.setRecvBufferSize(bad); });
  throwsBadSize(function () { s.setSendBufferSize(bad); });
});
notBound(s);
assert.strictEqual(s.getSendQueueSize(), 0);
assert.strictEqual(s.getSendQueueCount(), 0);

s.bind(0, '127.0.0.1', function () {
  assert.strictEqual(s.setRecvBufferSize(8192), undefined);
  assert.strictEqual(s.setSendBufferSize(16384), undefined);
  assert.strictEqual(s.getRecvBufferSize(), 16384);
  assert.strictEqual(s.getSendBufferSize(), 32768);
  // Size 0 asks, as in Node: nothing changes.
  s.setRecvBufferSize(0);
  assert.strictEqual(s.getRecvBufferSize(), 16384);
  // A uint32 past INT_MAX: the handle's C int refuses it.
  throwsBufferSize(function () { s.setRecvBufferSize(2147483648); }, true, 'EINVAL', -22,
    'invalid argument');
  throwsBufferSize(function () { s.setSendBufferSize(4294967295); }, false, 'EINVAL', -22,
    'invalid argument');
  throwsBadSize(function () { s.setSendBufferSize(-1); });
  assert.strictEqual(s.getRecvBufferSize(), 16384);
  assert.strictEqual(s.getSendBufferSize(), 32768);

  // Sends to a listening socket go straight out: nothing queued, at once
  // and when they have completed.
  var sent = 0;
  s.on('message', function () {});
  for (var i = 0; i < 10; i++) {
    s.send(Buffer.alloc(100 * i), s.address().port, '127.0.0.1', function (err) {
      assert.ifError(err);
      if (++sent < 10) return;
      assert.strictEqual(s.getSendQueueSize(), 0);
      assert.strictEqual(s.getSendQueueCount(), 0);
      s.close(function () {
        notBound(s);
        // A closed socket queues nothing.
        assert.strictEqual(s.getSendQueueSize(), 0);
        assert.strictEqual(s.getSendQueueCount(), 0);
        done.push('s');
      });
    });
  }
  assert.strictEqual(s.getSendQueueSize(), 0);
  assert.strictEqual(s.getSendQueueCount(), 0);
});

// createSocket's options, validated as Node does (falsy sizes are ignored).
function throwsOption(opts, Ctor, code, message) {
  assert.throws(function () { dgram.createSocket(opts); }, function (e) {
    return e instanceof Ctor && e.code === code && e.message === message;
  });
}
throwsOption({ type: 'udp4', recvBufferSize: -1 }, RangeError, 'ERR_OUT_OF_RANGE',
  'The value of "options.recvBufferSize" is out of range. It must be >= 0 && <= 4294967295. ' +
  'Received -1');
throwsOption({ type: 'udp4', sendBufferSize: 1.5 }, RangeError, 'ERR_OUT_OF_RANGE',
  'The value of "options.sendBufferSize" is out of range. It must be an integer. Received 1.5');
throwsOption({ type: 'udp4', sendBufferSize: '4096' }, TypeError, 'ERR_INVALID_ARG_TYPE',
  'The "options.sendBufferSize" property must be of type number. Received type string (\'4096\')');
dgram.createSocket({ type: 'udp4', recvBufferSize: 0, sendBufferSize: null }).close();

var opt = dgram.createSocket({ type: 'udp4', recvBufferSize: 10000, sendBufferSize: 12000 });
notBound(opt);
// Bound implicitly by a send.
opt.send('x', 9, '127.0.0.1', function (err) {
  assert.ifError(err);
  assert.strictEqual(opt.getRecvBufferSize(), 20000);
  assert.strictEqual(opt.getSendBufferSize(), 24000);
  opt.close();
  done.push('opt');
});

process.on('exit', function (code) {
  assert.strictEqual(code, 0);
  assert.deepStrictEqual(done.sort(), ['opt', 's']);
});
