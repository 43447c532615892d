// EventEmitter, as in Node and IoT.js: require('events') is the class, and
// require('events').EventEmitter too.
'use strict';

function EventEmitter() {
  if (!this._events || this._events === Object.getPrototypeOf(this)._events) {
    this._events = {};
  }
}
module.exports = EventEmitter;
EventEmitter.EventEmitter = EventEmitter;
EventEmitter.defaultMaxListeners = 10;

function checkListener(listener) {
  if (typeof listener !== 'function') {
    var e = new TypeError('The "listener" argument must be of type function');
    e.code = 'ERR_INVALID_ARG_TYPE';
    throw e;
  }
}

function events(self) {
  if (!self._events) self._events = {};
  return self._events;
}

function add(self, type, listener, prepend) {
  checkListener(listener);
  var ev = events(self);
  if (ev.newListener && type !== 'newListener') {
    self.emit('newListener', type, listener.listener ? listener.listener : listener);
  }
  var list = Object.prototype.hasOwnProperty.call(ev, type) ? ev[type] : (ev[type] = []);
  if (prepend) list.unshift(listener); else list.push(listener);
  return self;
}

EventEmitter.prototype.on = function (type, listener) { return add(this, type, listener, false); };
EventEmitter.prototype.addListener = EventEmitter.prototype.on;
EventEmitter.prototype.prependListener = function (type, listener) {
  return add(this, type, listener, true);
};

function onceWrapper(self, type, listener) {
  var fired = false;
  function wrapper() {
    self.removeListener(type, wrapper);
    if (fired) return undefined;
    fired = true;
    return listener.apply(self, arguments);
  }
  wrapper.listener = listener;
  return wrapper;
}

EventEmitter.prototype.once = function (type, listener) {
  checkListener(listener);
  return add(this, type, onceWrapper(this, type, listener), false);
};
EventEmitter.prototype.prependOnceListener = function (type, listener) {
  checkListener(listener);
  return add(this, type, onceWrapper(this, type, listener), true);
};

EventEmitter.prototype.removeListener = function (type, listener) {
  checkListener(listener);
  var ev = events(this);
  var list = Object.prototype.hasOwnProperty.call(ev, type) ? ev[type] : null;
  if (!list) return this;
  for (var i = list.length - 1; i >= 0; i--) {
    if (list[i] === listener || list[i].listener === listener) {
      list.splice(i, 1);
      if (!list.length) delete ev[type];
      if (ev.removeListener) this.emit('removeListener', type, listener);
      break;
    }
  }
  return this;
};
EventEmitter.prototype.off = EventEmitter.prototype.removeListener;

EventEmitter.prototype.removeAllListeners = function (type) {
  var ev = events(this);
  if (arguments.length === 0 || type === undefined) {
    this._events = {};
  } else {
    delete ev[type];
  }
  return this;
};

EventEmitter.prototype.emit = function (type) {
  var ev = events(this);
  var list = Object.prototype.hasOwnProperty.call(ev, type) ? ev[type] : null;
  var args = Array.prototype.slice.call(arguments, 1);
  if (!list || !list.length) {
    if (type === 'error') {
      var err = args[0];
      if (err instanceof Error) throw err;
      var e = new Error('Unhandled error.' + (err === undefined ? '' : ' (' + err + ')'));
      e.context = err;
      e.code = 'ERR_UNHANDLED_ERROR';
      throw e;
    }
    return false;
  }
  list = list.slice();
  for (var i = 0; i < list.length; i++) {
    list[i].apply(this, args);
  }
  return true;
};

EventEmitter.prototype.listeners = function (type) {
  var ev = events(this);
  var list = Object.prototype.hasOwnProperty.call(ev, type) ? ev[type] : [];
  return list.map(function (l) { return l.listener || l; });
};
EventEmitter.prototype.rawListeners = function (type) {
  var ev = events(this);
  return (Object.prototype.hasOwnProperty.call(ev, type) ? ev[type] : []).slice();
};
EventEmitter.prototype.listenerCount = function (type) {
  var ev = events(this);
  return Object.prototype.hasOwnProperty.call(ev, type) ? ev[type].length : 0;
};
EventEmitter.listenerCount = function (emitter, type) { return emitter.listenerCount(type); };
EventEmitter.prototype.eventNames = function () { return Object.keys(events(this)); };
EventEmitter.prototype.setMaxListeners = function (n) { this._maxListeners = n; return this; };
EventEmitter.prototype.getMaxListeners = function () {
  return this._maxListeners === undefined ? EventEmitter.defaultMaxListeners : this._maxListeners;
};
