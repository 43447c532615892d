// console.log/info/debug to stdout, console.error/warn to stderr, formatted
// as util.format does.
'use strict';
var format = require('util').format;

function writer(fd) {
  return function () { native.print(fd, format.apply(undefined, arguments) + '\n'); };
}
exports.log = writer(1);
exports.info = exports.log;
exports.debug = exports.log;
exports.error = writer(2);
exports.warn = exports.error;
exports.trace = function () {
  var e = new Error(format.apply(undefined, arguments));
  native.print(2, 'Trace: ' + (e.stack || e) + '\n');
};
