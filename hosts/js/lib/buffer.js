// Buffer on Duktape's built-in Node.js Buffer (a Uint8Array): the same
// prototype, so Buffers made by the engine or by dgram are `instanceof
// Buffer`; adds Buffer.from/alloc/allocUnsafe/byteLength, the encodings
// 'hex', 'base64', 'ascii', 'latin1'/'binary' besides 'utf8', and a
// Buffer(...) callable with or without `new`.
'use strict';

var DukBuffer = new Function('return this')().Buffer;
var proto = DukBuffer.prototype;
var dukToString = proto.toString;

function typeError(msg, code) {
  var e = new TypeError(msg);
  e.code = code || 'ERR_INVALID_ARG_TYPE';
  return e;
}

function normEnc(enc) {
  if (enc === undefined || enc === null) return 'utf8';
  enc = String(enc).toLowerCase();
  if (enc === 'utf-8') return 'utf8';
  if (enc === 'binary') return 'latin1';
  if (['utf8', 'hex', 'base64', 'ascii', 'latin1'].indexOf(enc) < 0) {
    throw typeError('Unknown encoding: ' + enc, 'ERR_UNKNOWN_ENCODING');
  }
  return enc;
}

function fromBytes(bytes) { // any array-like of byte values: a copy
  var b = new DukBuffer(bytes.length);
  for (var i = 0; i < bytes.length; i++) b[i] = bytes[i] & 0xff;
  return b;
}

function fromString(str, enc) {
  enc = normEnc(enc);
  if (enc === 'utf8') return new DukBuffer(str);
  var i, bytes = [];
  if (enc === 'hex') {
    for (i = 0; i + 1 < str.length; i += 2) {
      var v = parseInt(str.substr(i, 2), 16);
      if (isNaN(v)) break;
      bytes.push(v);
    }
    return fromBytes(bytes);
  }
  if (enc === 'base64') {
    return fromBytes(Duktape.dec('base64', str.replace(/[^A-Za-z0-9+\/]/g, '').replace(/-/g, '+')
      .replace(/_/g, '/') + ['', '', '==', '='][str.replace(/[^A-Za-z0-9+\/]/g, '').length % 4]));
  }
  for (i = 0; i < str.length; i++) bytes.push(str.charCodeAt(i) & 0xff); // ascii, latin1
  return fromBytes(bytes);
}

function from(value, encOrOffset, length) {
  if (typeof value === 'string') return fromString(value, encOrOffset);
  if (typeof value === 'number') {
    throw typeError('The "value" argument must not be of type number. Received ' + value);
  }
  if (value instanceof ArrayBuffer) {
    var off = encOrOffset === undefined ? 0 : encOrOffset >>> 0;
    var len = length === undefined ? value.byteLength - off : length >>> 0;
    if (off > value.byteLength || off + len > value.byteLength) {
      var re = new RangeError('"offset" or "length" is outside of buffer bounds');
      re.code = 'ERR_BUFFER_OUT_OF_BOUNDS';
      throw re;
    }
    return fromBytes(new Uint8Array(value, off, len));
  }
  if (value && typeof value === 'object') {
    if (value.type === 'Buffer' && Array.isArray(value.data)) return fromBytes(value.data);
    if (typeof value.length === 'number') return fromBytes(value);
  }
  throw typeError('The first argument must be of type string or an instance of Buffer, ' +
    'ArrayBuffer, or Array or an Array-like Object.');
}

function checkSize(size) {
  if (typeof size !== 'number') {
    throw typeError('The "size" argument must be of type number. Received ' + typeof size);
  }
  if (!(size >= 0 && size <= 0x7fffffff) || size !== Math.floor(size)) {
    var e = new RangeError('The value of "size" is out of range. Received ' + size);
    e.code = 'ERR_OUT_OF_RANGE';
    throw e;
  }
}

function alloc(size, fill, enc) {
  checkSize(size);
  var b = new DukBuffer(size);
  if (fill !== undefined && fill !== 0 && size > 0) {
    var pattern = typeof fill === 'string' ? fromString(fill, enc)
      : typeof fill === 'number' ? [fill & 0xff] : fill;
    if (pattern.length) {
      for (var i = 0; i < size; i++) b[i] = pattern[i % pattern.length];
    }
  }
  return b;
}

function Buffer(value, encOrOffset, length) {
  if (typeof value === 'number') return alloc(value);
  return from(value, encOrOffset, length);
}
Buffer.prototype = proto;
Buffer.from = from;
Buffer.alloc = alloc;
Buffer.allocUnsafe = function (size) { return alloc(size); };
Buffer.allocUnsafeSlow = Buffer.allocUnsafe;
Buffer.isBuffer = function (b) { return b instanceof DukBuffer; };
Buffer.isEncoding = function (enc) {
  try { normEnc(enc); return typeof enc === 'string'; } catch (e) { return false; }
};
Buffer.byteLength = function (v, enc) {
  if (typeof v === 'string') return fromString(v, enc).length;
  return v.byteLength;
};
Buffer.compare = DukBuffer.compare;
Buffer.concat = function (list, total) {
  if (!Array.isArray(list)) throw typeError('The "list" argument must be an instance of Array');
  var i, n = 0;
  for (i = 0; i < list.length; i++) {
    if (!(list[i] instanceof Uint8Array)) {
      throw typeError('The "list[' + i + ']" argument must be an instance of Buffer or Uint8Array');
    }
    n += list[i].length;
  }
  if (total !== undefined) n = total >>> 0;
  var b = new DukBuffer(n);
  var pos = 0;
  for (i = 0; i < list.length && pos < n; i++) {
    for (var j = 0; j < list[i].length && pos < n; j++) b[pos++] = list[i][j];
  }
  return b;
};
Buffer.poolSize = 8192;

Object.defineProperty(proto, 'toString', {
  writable: true, configurable: true, enumerable: false,
  value: function (enc, start, end) {
    enc = normEnc(enc);
    start = start === undefined ? 0 : Math.max(0, start | 0);
    end = end === undefined ? this.length : Math.min(this.length, end | 0);
    if (end <= start) return '';
    if (enc === 'utf8') return dukToString.call(this, 'utf8', start, end);
    var i, s = '';
    if (enc === 'hex') {
      for (i = start; i < end; i++) s += (this[i] < 16 ? '0' : '') + this[i].toString(16);
      return s;
    }
    if (enc === 'base64') return Duktape.enc('base64', this.slice(start, end));
    for (i = start; i < end; i++) {
      s += String.fromCharCode(enc === 'ascii' ? this[i] & 0x7f : this[i]);
    }
    return s;
  }
});

if (!proto.equals) {
  proto.equals = function (other) {
    if (!(other instanceof Uint8Array)) throw typeError('The "otherBuffer" argument must be a Buffer');
    if (other.length !== this.length) return false;
    for (var i = 0; i < this.length; i++) if (this[i] !== other[i]) return false;
    return true;
  };
}

exports.Buffer = Buffer;
exports.kMaxLength = 0x7fffffff;
