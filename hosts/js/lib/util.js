// A small `util`: inherits, format, inspect, the is* predicates of IoT.js,
// and the errno exceptions used by dgram.
'use strict';

exports.inherits = function (ctor, superCtor) {
  ctor.super_ = superCtor;
  ctor.prototype = Object.create(superCtor.prototype, {
    constructor: { value: ctor, enumerable: false, writable: true, configurable: true }
  });
};

exports.isNull = function (v) { return v === null; };
exports.isUndefined = function (v) { return v === undefined; };
exports.isNullOrUndefined = function (v) { return v === null || v === undefined; };
exports.isNumber = function (v) { return typeof v === 'number'; };
exports.isString = function (v) { return typeof v === 'string'; };
exports.isBoolean = function (v) { return typeof v === 'boolean'; };
exports.isFunction = function (v) { return typeof v === 'function'; };
exports.isObject = function (v) { return v !== null && typeof v === 'object'; };
exports.isArray = Array.isArray;
exports.isBuffer = function (v) { return Buffer.isBuffer(v); };
exports.isError = function (v) { return v instanceof Error; };
exports.isRegExp = function (v) { return v instanceof RegExp; };

function inspect(v, depth, seen) {
  if (depth === undefined) depth = 2;
  seen = seen || [];
  switch (typeof v) {
    case 'string': return seen.length ? "'" + v.replace(/'/g, "\\'") + "'" : v;
    case 'number': return (v === 0 && 1 / v < 0) ? '-0' : String(v);
    case 'boolean': case 'undefined': return String(v);
    case 'symbol': return String(v);
    case 'function': return '[Function' + (v.name ? ': ' + v.name : ' (anonymous)') + ']';
  }
  if (v === null) return 'null';
  if (v instanceof Error) {
    return v.stack || String(v);
  }
  if (typeof Buffer === 'function' && Buffer.isBuffer(v)) {
    var hex = [];
    for (var i = 0; i < v.length && i < 50; i++) hex.push((v[i] < 16 ? '0' : '') + v[i].toString(16));
    return '<Buffer' + (hex.length ? ' ' + hex.join(' ') : '') + (v.length > 50 ? ' ... ' : '') + '>';
  }
  if (v instanceof RegExp || v instanceof Date) return String(v);
  if (seen.indexOf(v) >= 0) return '[Circular]';
  if (depth < 0) return Array.isArray(v) ? '[Array]' : '[Object]';
  seen.push(v);
  var parts = [];
  var out;
  if (Array.isArray(v)) {
    for (var j = 0; j < v.length; j++) parts.push(inspect(v[j], depth - 1, seen.concat([])));
    out = parts.length ? '[ ' + parts.join(', ') + ' ]' : '[]';
  } else {
    var keys = Object.keys(v);
    for (var k = 0; k < keys.length; k++) {
      var key = /^[A-Za-z_$][\w$]*$/.test(keys[k]) ? keys[k] : "'" + keys[k] + "'";
      parts.push(key + ': ' + inspect(v[keys[k]], depth - 1, seen.concat([])));
    }
    out = parts.length ? '{ ' + parts.join(', ') + ' }' : '{}';
  }
  seen.pop();
  return out;
}
exports.inspect = function (v) { return inspect(v, 2, typeof v === 'string' ? [v] : []); };

exports.format = function (f) {
  var args = Array.prototype.slice.call(arguments);
  var out = '';
  var i = 0;
  if (typeof f === 'string') {
    i = 1;
    out = f.replace(/%[sdifjoO%]/g, function (m) {
      if (m === '%%') return '%';
      if (i >= args.length) return m;
      var a = args[i++];
      switch (m) {
        case '%s': return typeof a === 'string' ? a : inspect(a, 1, []);
        case '%d': case '%i': return m === '%i' ? String(parseInt(a, 10)) : String(Number(a));
        case '%f': return String(parseFloat(a));
        case '%j': try { return JSON.stringify(a); } catch (e) { return '[Circular]'; }
        default: return inspect(a, 2, []);
      }
    });
  } else {
    out = inspect(f, 2, []);
    i = 1;
  }
  for (; i < args.length; i++) {
    out += ' ' + (typeof args[i] === 'string' ? args[i] : inspect(args[i], 2, []));
  }
  return out;
};

// Node's shapes: code 'EADDRINUSE', errno -98, syscall, and for the
// HostPort variant address and port, with the message
// "bind EADDRINUSE 0.0.0.0:41234".
exports.errnoException = function (code, syscall) {
  var name = native.errName(code);
  var e = new Error(syscall + ' ' + name);
  e.code = name;
  e.errno = code;
  e.syscall = syscall;
  return e;
};

exports.exceptionWithHostPort = function (code, syscall, address, port) {
  var name = native.errName(code);
  var detail = address ? ' ' + address + (port > 0 ? ':' + port : '') : '';
  var e = new Error(syscall + ' ' + name + detail);
  e.code = name;
  e.errno = code;
  e.syscall = syscall;
  e.address = address;
  if (port > 0) e.port = port;
  return e;
};

// A failed host name lookup, as Node's dnsException: code 'ENOTFOUND' (or
// 'EAI_AGAIN'), errno, syscall 'getaddrinfo', hostname, and the message
// "getaddrinfo ENOTFOUND name".
exports.dnsException = function (code, syscall, hostname) {
  var name = native.errName(code);
  var e = new Error(syscall + ' ' + name + (hostname ? ' ' + hostname : ''));
  e.errno = code;
  e.code = name;
  e.syscall = syscall;
  if (hostname) e.hostname = hostname;
  return e;
};
