// dgramjs start-up: called once by main.c as bootstrap(native, argv, env).
// Sets up the globals a script for IoT.js or Node expects (process, console,
// timers, Buffer, require, global) and returns the `host` object through
// which the C loop calls back into JavaScript. Every host entry point drains
// the process.nextTick queue before it returns.
function (native, argv, env) {
  'use strict';
  var global = new Function('return this')();
  global.global = global;

  // ---- modules -----------------------------------------------------------
  var BUILTINS = ['assert', 'buffer', 'console', 'dgram', 'events', 'timers', 'util'];
  var builtinCache = {};
  var fileCache = {};

  function wrap(source) {
    if (source.charAt(0) === '#' && source.charAt(1) === '!') {
      source = '//' + source; // a shebang line
    }
    return 'function (exports, require, module, __filename, __dirname, native) {' +
      source + '\n}';
  }

  function requireBuiltin(name) {
    if (builtinCache[name]) return builtinCache[name].exports;
    var module = { exports: {}, id: name, filename: name, loaded: false };
    builtinCache[name] = module;
    var fn = native.compile(wrap(native.builtin(name)), name + '.js');
    fn.call(module.exports, module.exports, makeRequire('/'), module, name + '.js', '/',
      native);
    module.loaded = true;
    return module.exports;
  }

  function dirname(p) {
    var i = p.lastIndexOf('/');
    if (i < 0) return '.';
    if (i === 0) return '/';
    return p.slice(0, i);
  }

  function normalize(p) {
    var abs = p.charAt(0) === '/';
    var out = [];
    var parts = p.split('/');
    for (var i = 0; i < parts.length; i++) {
      var s = parts[i];
      if (s === '' || s === '.') continue;
      if (s === '..') {
        if (out.length && out[out.length - 1] !== '..') out.pop();
        else if (!abs) out.push('..');
      } else {
        out.push(s);
      }
    }
    return (abs ? '/' : '') + out.join('/');
  }

  function resolveFile(base) {
    var tries = [base, base + '.js', base + '.json', base + '/index.js', base + '/index.json'];
    for (var i = 0; i < tries.length; i++) {
      if (native.isFile(tries[i])) return native.realpath(tries[i]) || tries[i];
    }
    return null;
  }

  function notFound(id) {
    var e = new Error("Cannot find module '" + id + "'");
    e.code = 'MODULE_NOT_FOUND';
    return e;
  }

  function loadFile(filename) {
    if (fileCache[filename]) return fileCache[filename].exports;
    var source = native.readFile(filename);
    if (source === undefined) throw notFound(filename);
    var module = { exports: {}, id: filename, filename: filename, loaded: false };
    fileCache[filename] = module;
    try {
      if (/\.json$/.test(filename)) {
        module.exports = JSON.parse(source);
      } else {
        var fn = native.compile(wrap(source), filename);
        var req = makeRequire(dirname(filename));
        req.main = mainModule;
        module.require = req;
        fn.call(module.exports, module.exports, req, module, filename, dirname(filename));
      }
    } catch (e) {
      delete fileCache[filename];
      throw e;
    }
    module.loaded = true;
    return module.exports;
  }

  function makeRequire(dir) {
    function require(id) {
      if (typeof id !== 'string' || id === '') {
        throw new TypeError('The "id" argument must be a non-empty string');
      }
      var name = id.indexOf('node:') === 0 ? id.slice(5) : id;
      if (BUILTINS.indexOf(name) >= 0) return requireBuiltin(name);
      if (id === 'process') return process;
      var first = id.charAt(0);
      if (first === '.' || first === '/') {
        var base = normalize(first === '/' ? id : dir + '/' + id);
        var file = resolveFile(base);
        if (!file) throw notFound(id);
        return loadFile(file);
      }
      throw notFound(id);
    }
    require.cache = fileCache;
    require.resolve = function (id) {
      var first = id.charAt(0);
      if (first !== '.' && first !== '/') return id;
      var f = resolveFile(normalize(first === '/' ? id : dir + '/' + id));
      if (!f) throw notFound(id);
      return f;
    };
    return require;
  }

  var mainModule = null;

  // ---- process, timers, console, Buffer ------------------------------------
  var EventEmitter = requireBuiltin('events');
  var process = new EventEmitter();
  global.process = process;
  process.title = 'dgramjs';
  process.platform = 'linux';
  process.version = 'v0.0.0-dgramjs';
  process.versions = { dgramjs: '0.1.0' };
  process.env = env;
  process.argv = argv.slice();
  process.execPath = argv[0];
  process.exitCode = undefined;
  process._exiting = false;
  process.cwd = function () { return native.cwd(); };

  var tickQueue = [];
  process.nextTick = function (fn) {
    if (typeof fn !== 'function') {
      throw new TypeError('The "callback" argument must be of type function');
    }
    tickQueue.push({ fn: fn, args: Array.prototype.slice.call(arguments, 1) });
  };
  function drainTicks() {
    while (tickQueue.length) {
      var t = tickQueue.shift();
      t.fn.apply(undefined, t.args);
    }
  }

  process.exit = function (code) {
    if (code !== undefined) process.exitCode = code | 0;
    if (!process._exiting) {
      process._exiting = true;
      process.emit('exit', process.exitCode | 0);
    }
    native.exit(process.exitCode | 0);
  };

  var timers = requireBuiltin('timers');
  global.setTimeout = timers.setTimeout;
  global.setInterval = timers.setInterval;
  global.clearTimeout = timers.clearTimeout;
  global.clearInterval = timers.clearInterval;
  global.setImmediate = timers.setImmediate;
  global.clearImmediate = timers.clearImmediate;

  global.console = requireBuiltin('console');
  global.Buffer = requireBuiltin('buffer').Buffer;

  // ---- the host interface used by main.c ----------------------------------
  function entry(fn) {
    return function () {
      fn.apply(undefined, arguments);
      drainTicks();
    };
  }

  function hooks() { return native.dgramHooks; }

  var host = {
    runMain: entry(function (path) {
      var file = resolveFile(path.charAt(0) === '/' ? path : normalize(native.cwd() + '/' + path));
      if (!file) throw notFound(path);
      process.argv[1] = file;
      mainModule = { exports: {}, id: '.', filename: file, loaded: false };
      // loadFile makes the module; make it the main one.
      fileCache[file] = undefined;
      var source = native.readFile(file);
      if (source === undefined) throw notFound(path);
      fileCache[file] = mainModule;
      var fn = native.compile(wrap(source), file);
      var req = makeRequire(dirname(file));
      req.main = mainModule;
      mainModule.require = req;
      fn.call(mainModule.exports, mainModule.exports, req, mainModule, file, dirname(file));
      mainModule.loaded = true;
    }),
    runTimers: entry(function () { timers._run(drainTicks); }),
    nextTimeout: function () { return timers._nextTimeout(); },
    hasRef: function () { return (timers._hasRef() || tickQueue.length) ? 1 : 0; },
    onMessage: entry(function (id, buf, address, family, port) {
      hooks().message(id, buf, address, family, port);
    }),
    onListening: entry(function (id) { hooks().listening(id); }),
    onConnect: entry(function (id) { hooks().connect(id); }),
    onClose: entry(function (id) { hooks().close(id); }),
    onError: entry(function (id, code, syscall, address, port, hostname) {
      hooks().error(id, code, syscall, address, port, hostname);
    }),
    onSent: entry(function (req, length, code, syscall, address, port, hostname) {
      hooks().sent(req, length, code, syscall, address, port, hostname);
    }),
    // After the loop: process 'exit'. `fatal`: an exception escaped (code 1).
    emitExit: function (code, fatal) {
      if (process._exiting) return code;
      process._exiting = true;
      if (!fatal && process.exitCode !== undefined) code = process.exitCode | 0;
      process.exitCode = code;
      process.emit('exit', code);
      return fatal ? code : (process.exitCode | 0);
    }
  };
  return host;
}
