// require('dgram'): the IoT.js (and Node) dgram API on libdgram.
//
// A Socket owns one integer handle of the C binding (`native`), which maps
// to a dgram_socket. libdgram does the work: bind and implicit bind, sends
// (copied at the call), the 'listening', 'message', 'close' and 'error'
// events and send completions, which main.c delivers here through
// native.dgramHooks. Arguments are checked here, as Node does: a bad type,
// port or address throws at the call; a failed bind or send is an Error with
// code, errno, syscall, address and port, given to the send callback or
// emitted as 'error'.
//
// Where IoT.js's own dgram.js has known bugs this one does not follow it:
//  - a failed bind does not leave its listening callback registered;
//  - send(buf, port, callback) without an address works;
//  - the default send address is 127.0.0.1 (udp4) or ::1 (udp6);
//  - close(cb) registers cb once; close always closes (there is no send
//    queue behind a pending bind here: libdgram binds synchronously).
'use strict';

var EventEmitter = require('events');
var util = require('util');

var UNBOUND = 0, BOUND = 1, CLOSED = 2;

var sockets = {};   // handle -> Socket, until its 'close'
var sendReqs = {};  // request id -> { socket, callback }
var nextReq = 1;

function codeError(Ctor, code, message) {
  var e = new Ctor(message);
  e.code = code;
  return e;
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v === 'string') return "type string ('" + v + "')";
  if (typeof v === 'function') return 'function ' + (v.name || '');
  if (typeof v === 'object') return 'an instance of ' + (v.constructor && v.constructor.name || 'Object');
  return 'type ' + typeof v + ' (' + String(v) + ')';
}

// Node's validatePort: a number or numeric string, an integer 0..65535 (1..
// with allowZero false). Anything else is a RangeError ERR_SOCKET_BAD_PORT.
function validatePort(port, allowZero) {
  if ((typeof port !== 'number' && typeof port !== 'string') ||
      (typeof port === 'string' && port.replace(/\s/g, '').length === 0) ||
      +port !== (+port >>> 0) || +port > 0xFFFF || (+port === 0 && !allowZero)) {
    throw codeError(RangeError, 'ERR_SOCKET_BAD_PORT',
      'Port should be ' + (allowZero ? '>= 0' : '> 0') + ' and < 65536. Received ' +
      describe(port) + '.');
  }
  return +port | 0;
}

function validateAddress(address) {
  if (address !== undefined && address !== null && typeof address !== 'string') {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "address" argument must be of type string. Received ' + describe(address));
  }
}

function hostAddress(socket, address) {
  if (address === undefined || address === null || address === '') return null;
  if (address === 'localhost') return socket.type === 'udp6' ? '::1' : '127.0.0.1';
  return address;
}

function healthCheck(socket) {
  if (socket._state === CLOSED) {
    throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
  }
}

function Socket(type, listener) {
  EventEmitter.call(this);
  var options = {};
  if (type !== null && typeof type === 'object') {
    options = type;
    type = options.type;
  }
  if (type !== 'udp4' && type !== 'udp6') {
    throw codeError(TypeError, 'ERR_SOCKET_BAD_TYPE',
      'Bad socket type specified. Valid types are: udp4, udp6');
  }
  var sizes = [options.recvBufferSize, options.sendBufferSize];
  for (var i = 0; i < 2; i++) {
    if (sizes[i] !== undefined && (typeof sizes[i] !== 'number' ||
        sizes[i] !== (sizes[i] >>> 0) || sizes[i] > 0x7fffffff)) {
      throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
        'The "' + (i ? 'sendBufferSize' : 'recvBufferSize') +
        '" option must be a non-negative integer. Received ' + describe(sizes[i]));
    }
  }
  var h = native.createSocket(type === 'udp6', !!options.reuseAddr, !!options.ipv6Only,
    sizes[0] || 0, sizes[1] || 0);
  if (h < 0) throw util.errnoException(h, 'socket');
  this._handle = h;
  this._state = UNBOUND;
  this.type = type;
  sockets[h] = this;
  if (typeof listener === 'function') this.on('message', listener);
}
util.inherits(Socket, EventEmitter);
exports.Socket = Socket;

exports.createSocket = function (type, listener) {
  return new Socket(type, listener);
};

// bind([port][, address][, callback]) / bind(options[, callback])
Socket.prototype.bind = function (port, address, callback) {
  healthCheck(this);
  if (this._state !== UNBOUND) {
    throw codeError(Error, 'ERR_SOCKET_ALREADY_BOUND', 'Socket is already bound');
  }
  var cb = arguments.length && typeof arguments[arguments.length - 1] === 'function'
    ? arguments[arguments.length - 1] : undefined;
  if (port !== null && typeof port === 'object') {
    address = port.address;
    port = port.port;
  } else {
    if (typeof port === 'function') port = undefined;
    if (typeof address === 'function') address = undefined;
  }
  port = (port === undefined || port === null) ? 0 : validatePort(port, true);
  validateAddress(address);
  var host = hostAddress(this, address);
  var rc = native.bind(this._handle, port, host);
  if (rc < 0) {
    var self = this;
    var err = util.exceptionWithHostPort(rc, 'bind',
      host || (this.type === 'udp6' ? '::' : '0.0.0.0'), port);
    process.nextTick(function () { self.emit('error', err); });
    return this;
  }
  this._state = BOUND;
  if (cb) this.once('listening', cb);
  return this;
};

function isBytes(v) { return v instanceof Uint8Array; }

function sliceBuffer(buffer, offset, length) {
  if (typeof buffer === 'string') {
    buffer = Buffer.from(buffer);
  } else if (!isBytes(buffer)) {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "buffer" argument must be of type string or an instance of Buffer or Uint8Array. ' +
      'Received ' + describe(buffer));
  }
  offset = offset >>> 0;
  length = length >>> 0;
  if (offset > buffer.length) {
    throw codeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"offset" is outside of buffer bounds');
  }
  if (offset + length > buffer.length) {
    throw codeError(RangeError, 'ERR_BUFFER_OUT_OF_BOUNDS', '"length" is outside of buffer bounds');
  }
  return buffer.subarray(offset, offset + length);
}

function fixBufferList(list) {
  var out = new Array(list.length);
  for (var i = 0; i < list.length; i++) {
    if (typeof list[i] === 'string') out[i] = Buffer.from(list[i]);
    else if (isBytes(list[i])) out[i] = list[i];
    else return null;
  }
  return out;
}

// send(msg, [offset, length,] port[, address][, callback])
Socket.prototype.send = function (buffer, offset, length, port, address, callback) {
  var list;
  if (address || (port && typeof port !== 'function')) {
    buffer = sliceBuffer(buffer, offset, length);
  } else {
    callback = port;
    port = offset;
    address = length;
  }
  if (!Array.isArray(buffer)) {
    if (typeof buffer === 'string') {
      list = [Buffer.from(buffer)];
    } else if (!isBytes(buffer)) {
      throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
        'The "buffer" argument must be of type string or an instance of Buffer, ' +
        'Uint8Array or Array. Received ' + describe(buffer));
    } else {
      list = [buffer];
    }
  } else if (!(list = fixBufferList(buffer))) {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "buffer list" argument must be an Array of strings, Buffers or Uint8Arrays');
  }
  if (typeof address === 'function') {
    callback = address;
    address = undefined;
  } else if (address) {
    validateAddress(address);
  }
  port = validatePort(port, false);
  if (typeof callback !== 'function') callback = undefined;
  healthCheck(this);

  var host = hostAddress(this, address);
  var req = 0;
  if (callback) {
    req = nextReq++;
    sendReqs[req] = { socket: this, callback: callback };
  }
  var rc = native.send(this._handle, list, port, host, req);
  if (this._state === UNBOUND && typeof native.address(this._handle) === 'object') {
    this._state = BOUND; // implicitly bound by libdgram; 'listening' follows
  }
  if (rc < 0) {
    if (req) delete sendReqs[req];
    var self = this;
    var err = util.exceptionWithHostPort(rc, 'send',
      host || (this.type === 'udp6' ? '::1' : '127.0.0.1'), port);
    if (callback) {
      process.nextTick(callback, err);
    } else {
      process.nextTick(function () { self.emit('error', err); });
    }
  }
};

// Legacy IoT.js form: offset and length mandatory.
Socket.prototype.sendto = function (buffer, offset, length, port, address, callback) {
  if (typeof offset !== 'number' || typeof length !== 'number') {
    throw new Error('send takes offset and length as args 2 and 3');
  }
  if (typeof address !== 'string') {
    throw new Error(this.type + ' sockets must send to port, address');
  }
  this.send(buffer, offset, length, port, address, callback);
};

Socket.prototype.close = function (callback) {
  healthCheck(this);
  if (typeof callback === 'function') this.once('close', callback);
  this._state = CLOSED;
  native.close(this._handle);
  return this;
};

Socket.prototype.address = function () {
  healthCheck(this);
  var a = native.address(this._handle);
  if (typeof a === 'number') throw util.errnoException(a, 'getsockname');
  return a;
};

function option(socket, name, rc) {
  if (rc < 0) throw util.errnoException(rc, name);
}

function checkNumber(v, name) {
  if (typeof v !== 'number') {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "' + name + '" argument must be of type number. Received ' + describe(v));
  }
}

Socket.prototype.setBroadcast = function (flag) {
  healthCheck(this);
  option(this, 'setBroadcast', native.setBroadcast(this._handle, !!flag));
};

Socket.prototype.setTTL = function (ttl) {
  checkNumber(ttl, 'ttl');
  healthCheck(this);
  option(this, 'setTTL', native.setTTL(this._handle, ttl === (ttl | 0) ? ttl : -1));
  return ttl;
};

Socket.prototype.setMulticastTTL = function (ttl) {
  checkNumber(ttl, 'ttl');
  healthCheck(this);
  option(this, 'setMulticastTTL', native.setMulticastTTL(this._handle, ttl === (ttl | 0) ? ttl : -1));
  return ttl;
};

Socket.prototype.setMulticastLoopback = function (flag) {
  healthCheck(this);
  option(this, 'setMulticastLoopback', native.setMulticastLoopback(this._handle, !!flag));
  return flag;
};

function membership(socket, name, group, iface) {
  healthCheck(socket);
  if (group === undefined || group === null || group === '') {
    throw codeError(TypeError, 'ERR_MISSING_ARGS', 'The "multicastAddress" argument must be specified');
  }
  if (typeof group !== 'string') {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "multicastAddress" argument must be of type string. Received ' + describe(group));
  }
  if (iface !== undefined && iface !== null && typeof iface !== 'string') {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "multicastInterface" argument must be of type string. Received ' + describe(iface));
  }
  option(socket, name, native[name](socket._handle, group, iface === undefined ? null : iface));
}

Socket.prototype.addMembership = function (group, iface) {
  membership(this, 'addMembership', group, iface);
};

Socket.prototype.dropMembership = function (group, iface) {
  membership(this, 'dropMembership', group, iface);
};

// ---- events from main.c ---------------------------------------------------
native.dgramHooks = {
  message: function (h, buf, address, family, port) {
    var s = sockets[h];
    if (s) s.emit('message', buf, { address: address, family: family, port: port, size: buf.length });
  },
  listening: function (h) {
    var s = sockets[h];
    if (s) s.emit('listening');
  },
  close: function (h) {
    var s = sockets[h];
    delete sockets[h];
    if (s) s.emit('close');
  },
  error: function (h, code, syscall, address, port) {
    var s = sockets[h];
    if (s) s.emit('error', util.exceptionWithHostPort(code, syscall, address, port));
  },
  sent: function (req, length, code, syscall, address, port) {
    var r = sendReqs[req];
    delete sendReqs[req];
    if (!r) return;
    r.callback(code ? util.exceptionWithHostPort(code, syscall, address, port) : null, length);
  }
};
