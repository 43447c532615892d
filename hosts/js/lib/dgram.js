// require('dgram'): the IoT.js (and Node) dgram API on libdgram.
//
// A Socket owns one integer handle of the C binding (`native`), which maps
// to a dgram_socket. libdgram does the work: bind and implicit bind, connect,
// sends (copied at the call), host name lookups (on its resolver thread), the
// 'listening', 'connect', 'message', 'close' and 'error' events and send
// completions, which main.c delivers here through native.dgramHooks.
// Arguments are checked here, as Node does: a bad type, port or address
// throws at the call; a failed bind, connect or send is an Error with code,
// errno, syscall, address and port (or, for a failed lookup, code
// 'ENOTFOUND', syscall 'getaddrinfo' and hostname), given to the send or
// connect callback or emitted as 'error'.
//
// Where IoT.js's own dgram.js has known bugs this one does not follow it:
//  - a failed bind does not leave its listening callback registered;
//  - send(buf, port, callback) without an address works;
//  - the default send address is 127.0.0.1 (udp4) or ::1 (udp6);
//  - close(cb) registers cb once; close always closes (there is no send
//    queue behind a pending bind here: libdgram keeps sends, connects and
//    binds that wait for a lookup in call order itself).
// Where this one differs from Node: the socket options (setTTL,
// setBroadcast, setMulticastInterface...) work before bind, as libdgram makes
// the OS socket at createSocket; addMembership and
// addSourceSpecificMembership do not bind implicitly; there is no `lookup`
// option (libdgram resolves with getaddrinfo, first answer of the socket's
// family).
'use strict';

var EventEmitter = require('events');
var util = require('util');

// Bind state: UNBOUND; BINDING while a bind (explicit, or implicit for a
// connect) waits for a host name lookup; BOUND; CLOSED.
var UNBOUND = 0, BINDING = 1, BOUND = 2, CLOSED = 3;
// Connect state, as Node's: CONNECTING from connect() until its 'connect'.
var DISCONNECTED = 0, CONNECTING = 1, CONNECTED = 2;

var EBADF = native.codes.EBADF, EINVAL = native.codes.EINVAL, ECANCELED = native.codes.ECANCELED;

var sockets = {};   // handle -> Socket, until its 'close'
var sendReqs = {};  // request id -> { socket, callback }
var nextReq = 1;

function codeError(Ctor, code, message) {
  var e = new Ctor(message);
  e.code = code;
  return e;
}

// Node's description of a received value in ERR_INVALID_ARG_TYPE messages.
function describe(v) {
  if (v === null || v === undefined) return String(v);
  if (typeof v === 'string') return "type string ('" + v + "')";
  if (typeof v === 'function') return 'function ' + (v.name || '');
  if (typeof v === 'object') return 'an instance of ' + (v.constructor && v.constructor.name || 'Object');
  return 'type ' + typeof v + ' (' + String(v) + ')';
}

function invalidArgType(name, type, value) {
  var kind = name.indexOf('.') >= 0 ? 'property' : 'argument';
  return codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
    'The "' + name + '" ' + kind + ' must be of type ' + type + '. Received ' + describe(value));
}

function validateString(value, name) {
  if (typeof value !== 'string') throw invalidArgType(name, 'string', value);
}

// Node's validateUint32 (createSocket's recvBufferSize and sendBufferSize).
function validateUint32(value, name) {
  if (typeof value !== 'number') throw invalidArgType(name, 'number', value);
  var range = Math.floor(value) !== value ? 'an integer'
    : (value < 0 || value > 4294967295) ? '>= 0 && <= 4294967295' : null;
  if (range) {
    throw codeError(RangeError, 'ERR_OUT_OF_RANGE', 'The value of "' + name +
      '" is out of range. It must be ' + range + '. Received ' + String(value));
  }
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
  if (address !== undefined && address !== null) validateString(address, 'address');
}

// The address given to libdgram: null for its default, 'localhost' as the
// loopback address; anything else (a literal or a host name) as is.
function hostAddress(socket, address) {
  if (address === undefined || address === null || address === '') return null;
  if (address === 'localhost') return socket.type === 'udp6' ? '::1' : '127.0.0.1';
  return address;
}

// Text libdgram may look up as a host name (not an IPv4 or IPv6 literal).
function maybeHostName(host) {
  return host !== null && host.indexOf(':') < 0 && !/^[0-9.]+$/.test(host);
}

function healthCheck(socket) {
  if (socket._state === CLOSED) {
    throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_RUNNING', 'Not running');
  }
}

// After a call that may have bound the socket implicitly (send, connect).
function syncBound(socket) {
  if ((socket._state === UNBOUND || socket._state === BINDING) &&
      typeof native.address(socket._handle) === 'object') {
    socket._state = BOUND; // 'listening' follows
  }
}

// The Error for a libdgram error event or completion, in Node's shapes.
function makeError(code, syscall, address, port, hostname) {
  if (typeof hostname === 'string') return util.dnsException(code, syscall, hostname);
  if (syscall === 'recvmsg' || !address) return util.errnoException(code, syscall);
  return util.exceptionWithHostPort(code, syscall, address, port);
}

function Socket(type, listener) {
  EventEmitter.call(this);
  var options = {};
  if (type !== null && typeof type === 'object') {
    options = type;
    type = options.type;
    // As Node: falsy sizes are ignored, others must be a uint32.
    if (options.recvBufferSize) validateUint32(options.recvBufferSize, 'options.recvBufferSize');
    if (options.sendBufferSize) validateUint32(options.sendBufferSize, 'options.sendBufferSize');
  }
  if (type !== 'udp4' && type !== 'udp6') {
    throw codeError(TypeError, 'ERR_SOCKET_BAD_TYPE',
      'Bad socket type specified. Valid types are: udp4, udp6');
  }
  var h = native.createSocket(type === 'udp6', !!options.reuseAddr, !!options.ipv6Only,
    options.recvBufferSize || 0, options.sendBufferSize || 0);
  if (h < 0) throw util.errnoException(h, 'socket');
  this._handle = h;
  this._state = UNBOUND;
  this._connectState = DISCONNECTED;
  this._bindPending = false;     // a bind waits for its host name lookup
  this._bindCallback = null;     // that bind's callback
  this._connectCallback = null;  // connect's callback until 'connect'
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
  if (cb) this.once('listening', cb);
  if (typeof native.address(this._handle) === 'object') {
    this._state = BOUND;
  } else {
    // A host name: 'listening' or 'error' when the lookup is done.
    this._state = BINDING;
    this._bindPending = true;
    this._bindCallback = cb || null;
  }
  return this;
};

// connect(port[, address][, callback]): Node's argument rules; 'connect'
// comes once libdgram has connected (after 'listening' when it bound the
// socket). A failure goes to the callback, or without one to 'error'.
Socket.prototype.connect = function (port, address, callback) {
  port = validatePort(port, false);
  if (typeof address === 'function') {
    callback = address;
    address = '';
  } else if (address === undefined) {
    address = '';
  }
  validateString(address, 'address');
  if (callback !== undefined && callback !== null && typeof callback !== 'function') {
    throw invalidArgType('listener', 'function', callback);
  }
  if (this._connectState !== DISCONNECTED) {
    throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
  }
  healthCheck(this);
  var rc = native.connect(this._handle, port, hostAddress(this, address));
  syncBound(this);
  if (rc < 0) {
    var self = this;
    var err = util.exceptionWithHostPort(rc, 'connect', address, port);
    process.nextTick(function () {
      if (callback) callback(err);
      else self.emit('error', err);
    });
    return;
  }
  this._connectState = CONNECTING;
  if (this._state === UNBOUND) this._state = BINDING; // bound after the lookup
  if (callback) {
    this._connectCallback = callback;
    this.once('connect', callback);
  }
};

function connectFailed(socket, err) {
  socket._connectState = DISCONNECTED;
  if (socket._state === BINDING && !socket._bindPending) {
    socket._state = UNBOUND; // the implicit bind never happened
  }
  var cb = socket._connectCallback;
  socket._connectCallback = null;
  if (cb) {
    socket.removeListener('connect', cb);
    cb(err);
  } else {
    socket.emit('error', err);
  }
}

Socket.prototype.disconnect = function () {
  if (this._connectState !== CONNECTED) {
    throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
  }
  var rc = native.disconnect(this._handle);
  if (rc < 0) throw util.errnoException(rc, 'connect');
  this._connectState = DISCONNECTED;
};

Socket.prototype.remoteAddress = function () {
  healthCheck(this);
  if (this._connectState !== CONNECTED) {
    throw codeError(Error, 'ERR_SOCKET_DGRAM_NOT_CONNECTED', 'Not connected');
  }
  var a = native.remoteAddress(this._handle);
  if (typeof a === 'number') throw util.errnoException(a, 'getpeername');
  return a;
};

function isBytes(v) { return v instanceof Uint8Array; }

function sliceBuffer(buffer, offset, length) {
  if (typeof buffer === 'string') {
    buffer = Buffer.from(buffer);
  } else if (!isBytes(buffer)) {
    throw invalidArgType('buffer', 'string or an instance of Buffer or Uint8Array', buffer);
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

// send(msg, [offset, length,] port[, address][, callback]), and on a
// connected socket send(msg, [offset, length,][callback]): the argument
// shuffling is Node's, quirks included.
Socket.prototype.send = function (buffer, offset, length, port, address, callback) {
  var list;
  var connected = this._connectState === CONNECTED;
  if (!connected) {
    if (address || (port && typeof port !== 'function')) {
      buffer = sliceBuffer(buffer, offset, length);
    } else {
      callback = port;
      port = offset;
      address = length;
    }
  } else {
    if (typeof length === 'number') {
      buffer = sliceBuffer(buffer, offset, length);
      if (typeof port === 'function') {
        callback = port;
        port = null;
      }
    } else {
      callback = offset;
    }
    if (port || address) {
      throw codeError(Error, 'ERR_SOCKET_DGRAM_IS_CONNECTED', 'Already connected');
    }
  }
  if (!Array.isArray(buffer)) {
    if (typeof buffer === 'string') {
      list = [Buffer.from(buffer)];
    } else if (!isBytes(buffer)) {
      throw invalidArgType('buffer', 'string or an instance of Buffer, Uint8Array or Array', buffer);
    } else {
      list = [buffer];
    }
  } else if (!(list = fixBufferList(buffer))) {
    throw codeError(TypeError, 'ERR_INVALID_ARG_TYPE',
      'The "buffer list" argument must be an Array of strings, Buffers or Uint8Arrays');
  }
  if (!connected) port = validatePort(port, false);
  if (typeof callback !== 'function') callback = undefined;
  if (typeof address === 'function') {
    callback = address;
    address = undefined;
  } else {
    validateAddress(address);
  }
  healthCheck(this);

  var host = connected ? null : hostAddress(this, address);
  var req = 0;
  // A send that waits for a lookup reports its failure here (to the
  // callback, else as 'error'), never mixed with bind's or connect's.
  if (callback || maybeHostName(host)) {
    req = nextReq++;
    sendReqs[req] = { socket: this, callback: callback };
  }
  var rc = native.send(this._handle, list, connected ? 0 : port, host, req);
  syncBound(this);
  if (rc < 0) {
    if (req) delete sendReqs[req];
    var self = this;
    var err = connected ? util.errnoException(rc, 'send')
      : util.exceptionWithHostPort(rc, 'send', host || (this.type === 'udp6' ? '::1' : '127.0.0.1'), port);
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

// ref()/unref(): whether the socket keeps dgramjs running (libdgram's
// dgram_socket_ref/unref; the loop ends when nothing referenced is left).
Socket.prototype.ref = function () {
  if (this._state !== CLOSED) native.ref(this._handle);
  return this;
};

Socket.prototype.unref = function () {
  if (this._state !== CLOSED) native.unref(this._handle);
  return this;
};

Socket.prototype.getSendQueueSize = function () {
  var n = native.sendQueueSize(this._handle);
  return n < 0 ? 0 : n;
};

Socket.prototype.getSendQueueCount = function () {
  var n = native.sendQueueCount(this._handle);
  return n < 0 ? 0 : n;
};

// Node's SystemError ERR_SOCKET_BUFFER_SIZE, from libuv's names.
function bufferSizeError(code, syscall) {
  var name = native.errName(code);
  var text = native.strerror(code);
  var e = new Error('Could not get or set buffer size: ' + syscall + ' returned ' + name +
    ' (' + text + ')');
  e.name = 'SystemError';
  e.code = 'ERR_SOCKET_BUFFER_SIZE';
  e.errno = code;
  e.syscall = syscall;
  e.info = { errno: code, code: name, message: text, syscall: syscall };
  return e;
}

// Node's bufferSize(): size 0 reads the size. As in Node the socket must be
// bound (before that Node has no fd: EBADF), and sizes over INT_MAX are EINVAL.
function bufferSize(socket, size, recv) {
  if (size >>> 0 !== size) {
    throw codeError(TypeError, 'ERR_SOCKET_BAD_BUFFER_SIZE', 'Buffer size must be a positive integer');
  }
  var syscall = recv ? 'uv_recv_buffer_size' : 'uv_send_buffer_size';
  if (socket._state !== BOUND) throw bufferSizeError(EBADF, syscall);
  if (size > 0x7fffffff) throw bufferSizeError(EINVAL, syscall);
  var h = socket._handle;
  var rc;
  if (size === 0) {
    rc = recv ? native.getRecvBufferSize(h) : native.getSendBufferSize(h);
  } else {
    rc = recv ? native.setRecvBufferSize(h, size) : native.setSendBufferSize(h, size);
  }
  if (rc < 0) throw bufferSizeError(rc, syscall);
  return size === 0 ? rc : size;
}

Socket.prototype.setRecvBufferSize = function (size) { bufferSize(this, size, true); };
Socket.prototype.setSendBufferSize = function (size) { bufferSize(this, size, false); };
Socket.prototype.getRecvBufferSize = function () { return bufferSize(this, 0, true); };
Socket.prototype.getSendBufferSize = function () { return bufferSize(this, 0, false); };

function option(socket, name, rc) {
  if (rc < 0) throw util.errnoException(rc, name);
}

function checkNumber(v, name) {
  if (typeof v !== 'number') throw invalidArgType(name, 'number', v);
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

Socket.prototype.setMulticastInterface = function (interfaceAddress) {
  healthCheck(this);
  validateString(interfaceAddress, 'interfaceAddress');
  option(this, 'setMulticastInterface', native.setMulticastInterface(this._handle, interfaceAddress));
};

function membership(socket, name, group, iface) {
  healthCheck(socket);
  if (group === undefined || group === null || group === '') {
    throw codeError(TypeError, 'ERR_MISSING_ARGS', 'The "multicastAddress" argument must be specified');
  }
  if (typeof group !== 'string') throw invalidArgType('multicastAddress', 'string', group);
  if (iface !== undefined && iface !== null && typeof iface !== 'string') {
    throw invalidArgType('multicastInterface', 'string', iface);
  }
  option(socket, name, native[name](socket._handle, group, iface === undefined ? null : iface));
}

Socket.prototype.addMembership = function (group, iface) {
  membership(this, 'addMembership', group, iface);
};

Socket.prototype.dropMembership = function (group, iface) {
  membership(this, 'dropMembership', group, iface);
};

// As Node: source and group must be strings; the interface, when given, is
// used as a string.
function sourceMembership(socket, name, source, group, iface) {
  healthCheck(socket);
  validateString(source, 'sourceAddress');
  validateString(group, 'groupAddress');
  option(socket, name, native[name](socket._handle, source, group,
    iface === undefined || iface === null ? null : String(iface)));
}

Socket.prototype.addSourceSpecificMembership = function (source, group, iface) {
  sourceMembership(this, 'addSourceSpecificMembership', source, group, iface);
};

Socket.prototype.dropSourceSpecificMembership = function (source, group, iface) {
  sourceMembership(this, 'dropSourceSpecificMembership', source, group, iface);
};

// ---- events from main.c ---------------------------------------------------
native.dgramHooks = {
  message: function (h, buf, address, family, port) {
    var s = sockets[h];
    if (s) s.emit('message', buf, { address: address, family: family, port: port, size: buf.length });
  },
  listening: function (h) {
    var s = sockets[h];
    if (!s) return;
    if (s._state !== CLOSED) s._state = BOUND;
    s._bindPending = false;
    s._bindCallback = null;
    s.emit('listening');
  },
  connect: function (h) {
    var s = sockets[h];
    if (!s || s._state === CLOSED) return;
    s._connectState = CONNECTED;
    s._connectCallback = null;
    s.emit('connect');
  },
  close: function (h) {
    var s = sockets[h];
    delete sockets[h];
    if (s) s.emit('close');
  },
  error: function (h, code, syscall, address, port, hostname) {
    var s = sockets[h];
    if (!s) return;
    var err = makeError(code, syscall, address, port, hostname);
    var lookupOr = function (name) { return syscall === 'getaddrinfo' || syscall === name; };
    // libdgram runs what waits for a lookup in call order: a pending bind's
    // failure comes before a later connect's.
    if (s._bindPending && lookupOr('bind')) {
      // The bind that waited for its lookup failed: it may be tried again.
      s._bindPending = false;
      s._state = UNBOUND;
      if (s._bindCallback) s.removeListener('listening', s._bindCallback);
      s._bindCallback = null;
      s.emit('error', err);
    } else if (s._connectState === CONNECTING && lookupOr('connect')) {
      connectFailed(s, err);
    } else {
      s.emit('error', err);
    }
  },
  sent: function (req, length, code, syscall, address, port, hostname) {
    var r = sendReqs[req];
    delete sendReqs[req];
    if (!r) return;
    if (!code) {
      if (r.callback) r.callback(null, length);
      return;
    }
    var err = makeError(code, syscall, address, port, hostname);
    if (r.callback) {
      // A failed lookup gives the error alone, as Node's doSend does.
      if (typeof hostname === 'string') r.callback(err);
      else r.callback(err, length);
    } else if (code !== ECANCELED && r.socket._state !== CLOSED) {
      r.socket.emit('error', err);
    }
  }
};
