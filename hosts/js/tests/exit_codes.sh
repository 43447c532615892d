#!/bin/sh
# The host's exit status and stderr: 0 when a script ends normally; 1 with
# the message and stack on stderr when an exception escapes the script, a
# callback, a timer or an exit listener, or an 'error' event has no
# listener; process.exit(code) and process.exitCode; a script with nothing
# left to do (only an unbound socket, an unref'ed timer or socket) ends at once.
#   exit_codes.sh DGRAMJS TESTS_DIR
dgramjs=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0

# check NAME WANT_STATUS STDERR_REGEX(or -) STDOUT_EXACT(or -) < script
check() {
    name=$1 want=$2 errre=$3 out=$4
    cat > "$dir/$name.js"
    timeout 20 "$dgramjs" "$dir/$name.js" > "$dir/out" 2> "$dir/err"
    got=$?
    if [ "$got" != "$want" ]; then
        echo "FAIL $name: status $got, want $want"; cat "$dir/err"; fails=$((fails + 1)); return
    fi
    if [ "$errre" = - ]; then
        if [ -s "$dir/err" ]; then echo "FAIL $name: unexpected stderr"; cat "$dir/err"; fails=$((fails + 1)); return; fi
    elif ! grep -Eq "$errre" "$dir/err"; then
        echo "FAIL $name: stderr does not match /$errre/:"; cat "$dir/err"; fails=$((fails + 1)); return
    fi
    if [ "$out" != - ] && [ "$(cat "$dir/out")" != "$out" ]; then
        echo "FAIL $name: stdout:"; cat "$dir/out"; echo "want: $out"; fails=$((fails + 1)); return
    fi
    echo "ok $name"
}

check normal 0 - 'a 1 x
exit 0' <<'EOF_JS'
console.log('a', 1, 'x');
process.on('exit', function (c) { console.log('exit', c); });
EOF_JS

check throw_main 1 'Uncaught Error: top level' 'exit 1' <<'EOF_JS'
process.on('exit', function (c) { console.log('exit', c); });
throw new Error('top level');
EOF_JS

check throw_listening 1 'throw_listening\.js:3' 'exit 1' <<'EOF_JS'
var s = require('dgram').createSocket('udp4');
process.on('exit', function (c) { console.log('exit', c); });
s.bind(0, '127.0.0.1', function () { throw new Error('in listening'); });
EOF_JS

check throw_message 1 'TypeError' 'before' <<'EOF_JS'
var dgram = require('dgram');
var s = dgram.createSocket('udp4', function () { console.log('before'); null.x = 1; });
s.bind(0, '127.0.0.1', function () { dgram.createSocket('udp4').send('x', s.address().port); });
EOF_JS

check throw_send_callback 1 'Error: in send callback' - <<'EOF_JS'
var s = require('dgram').createSocket('udp4');
s.send('x', 9, function () { throw new Error('in send callback'); });
EOF_JS

check throw_timer 1 'Error: in timer' '' <<'EOF_JS'
setTimeout(function () { process.nextTick(function () { console.log('tick'); }); throw new Error('in timer'); }, 1);
setTimeout(function () { console.log('never'); }, 50);
EOF_JS

check throw_exit_listener 1 'Error: in exit' - <<'EOF_JS'
process.on('exit', function () { throw new Error('in exit'); });
EOF_JS

check assertion_in_exit 1 'AssertionError: 1 == 2' - <<'EOF_JS'
process.on('exit', function () { require('assert').equal(1, 2); });
EOF_JS

check unhandled_bind_error 1 'bind EADDRINUSE 127\.0\.0\.1:' - <<'EOF_JS'
var dgram = require('dgram');
var a = dgram.createSocket('udp4');
a.bind(0, '127.0.0.1', function () {
  dgram.createSocket('udp4').bind(a.address().port, '127.0.0.1');
});
EOF_JS

check exit_code 3 - 'exit 3' <<'EOF_JS'
var s = require('dgram').createSocket('udp4');
s.bind(0);               // would keep the process alive
setTimeout(function () {}, 100000);
process.on('exit', function (c) { console.log('exit', c); });
process.nextTick(function () { process.exit(3); console.log('not reached'); });
EOF_JS

check exit_code_property 4 - - <<'EOF_JS'
process.exitCode = 4;
EOF_JS

check nothing_left 0 - 'done' <<'EOF_JS'
var s = require('dgram').createSocket('udp4');   // never bound: not alive
s.setTTL(10);
setTimeout(function () { console.log('unref timer fired'); }, 100000).unref();
console.log('done');
EOF_JS

check unref_socket 0 - 'listening
exit 0' <<'EOF_JS'
var s = require('dgram').createSocket('udp4');
s.bind(0, '127.0.0.1', function () { console.log('listening'); s.unref(); });
process.on('exit', function (c) { console.log('exit', c); });
EOF_JS

check syntax_error 1 'SyntaxError' - <<'EOF_JS'
var x = ;
EOF_JS

check missing_module 1 "Cannot find module './nope'" - <<'EOF_JS'
require('./nope');
EOF_JS

timeout 10 "$dgramjs" "$dir/does-not-exist.js" 2>/dev/null
[ $? = 1 ] && echo "ok missing_script" || { echo "FAIL missing_script"; fails=$((fails + 1)); }

# netns.sh: skipped (77) when not root, failed (1) under DGRAM_TESTS_NO_SKIP.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    echo 'process.exit(0)' > "$dir/ns.js"
    chmod 755 "$dir"; chmod 644 "$dir/ns.js"
    setpriv --reuid=65534 --regid=65534 --clear-groups env -u DGRAM_TESTS_NO_SKIP \
        sh "$2/netns.sh" "$dgramjs" "$dir/ns.js" 2>/dev/null
    s1=$?
    setpriv --reuid=65534 --regid=65534 --clear-groups env DGRAM_TESTS_NO_SKIP=1 \
        sh "$2/netns.sh" "$dgramjs" "$dir/ns.js" 2>/dev/null
    s2=$?
    if [ $s1 = 77 ] && [ $s2 = 1 ]; then echo "ok netns_skip"; else
        echo "FAIL netns_skip: $s1 $s2 (want 77 1)"; fails=$((fails + 1)); fi
fi

[ $fails = 0 ]
