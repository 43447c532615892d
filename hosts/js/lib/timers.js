// setTimeout / setInterval / setImmediate and their clear* functions. The C
// loop asks _nextTimeout() how long poll() may wait, _hasRef() whether a
// timer keeps the process alive, and calls _run() to fire the due timers.
'use strict';

var timers = [];   // active Timeout objects, unordered (scripts keep few)
var seq = 0;

function Timeout(fn, ms, args, repeat) {
  ms = +ms;
  if (!(ms >= 1 && ms <= 2147483647)) ms = 1; // as Node: NaN, < 1 or too big
  this._fn = fn;
  this._ms = ms;
  this._args = args;
  this._repeat = repeat;
  this._ref = true;
  this._active = true;
  this._when = native.now() + ms;
  this._seq = ++seq;
  timers.push(this);
}
Timeout.prototype.ref = function () { this._ref = true; return this; };
Timeout.prototype.unref = function () { this._ref = false; return this; };
Timeout.prototype.hasRef = function () { return this._ref; };
Timeout.prototype.refresh = function () {
  if (this._active) { this._when = native.now() + this._ms; this._seq = ++seq; }
  return this;
};
Timeout.prototype.close = function () { clear(this); return this; };

function checkFn(fn) {
  if (typeof fn !== 'function') {
    var e = new TypeError('The "callback" argument must be of type function. Received ' +
      (fn === null ? 'null' : typeof fn));
    e.code = 'ERR_INVALID_ARG_TYPE';
    throw e;
  }
}

function clear(t) {
  if (!t || !(t instanceof Timeout) || !t._active) return;
  t._active = false;
  var i = timers.indexOf(t);
  if (i >= 0) timers.splice(i, 1);
}

exports.setTimeout = function (fn, ms) {
  checkFn(fn);
  return new Timeout(fn, ms, Array.prototype.slice.call(arguments, 2), false);
};
exports.setInterval = function (fn, ms) {
  checkFn(fn);
  return new Timeout(fn, ms, Array.prototype.slice.call(arguments, 2), true);
};
exports.setImmediate = function (fn) {
  checkFn(fn);
  var t = new Timeout(fn, 1, Array.prototype.slice.call(arguments, 1), false);
  t._when = native.now(); // due at the next turn of the loop
  return t;
};
exports.clearTimeout = clear;
exports.clearInterval = clear;
exports.clearImmediate = clear;

exports._nextTimeout = function () {
  if (!timers.length) return -1;
  var min = Infinity;
  for (var i = 0; i < timers.length; i++) {
    if (timers[i]._when < min) min = timers[i]._when;
  }
  var d = min - native.now();
  return d > 0 ? d : 0;
};

exports._hasRef = function () {
  for (var i = 0; i < timers.length; i++) {
    if (timers[i]._ref) return true;
  }
  return false;
};

// Fires the timers due now, earliest first; timers made meanwhile wait for
// the next turn. `after` (the nextTick drain) runs after each callback.
exports._run = function (after) {
  var now = native.now();
  var limit = seq;
  for (;;) {
    var next = null;
    for (var i = 0; i < timers.length; i++) {
      var t = timers[i];
      if (t._when <= now && t._seq <= limit &&
          (!next || t._when < next._when || (t._when === next._when && t._seq < next._seq))) {
        next = t;
      }
    }
    if (!next) return;
    if (next._repeat) {
      next._when = native.now() + next._ms;
      next._seq = ++seq;
    } else {
      clear(next);
    }
    next._fn.apply(next, next._args);
    after();
  }
};
