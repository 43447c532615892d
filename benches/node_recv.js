// Node's dgram module as a receive contender (benches/run.py starts it like
// the C receivers): binds 127.0.0.1:0, prints "PORT n", counts datagrams,
// stops when --count came or 300 ms after SIGUSR2 ("sender done") with
// nothing new, then prints the same RESULT line as bench_common.c's
// rx_report. CPU is process.cpuUsage() (user + system, every thread).
'use strict';
const dgram = require('dgram');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? Number(process.argv[i + 1]) : def;
}
const expected = arg('--count', 0);
const warmup = Math.max(1, arg('--warmup', 1000));
const idleMs = arg('--idle-ms', 300);

let count = 0, bytes = 0, firstNs = 0n, lastNs = 0n, cpu0 = null;
let senderDone = false, seenCount = 0, seenAt = Date.now();
const startedAt = Date.now();

const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
sock.on('message', (msg) => {
  count++;
  bytes += msg.length;
  if (count === 1) firstNs = process.hrtime.bigint();
  if ((count & 63) === 0 || count === expected || count === 1) lastNs = process.hrtime.bigint();
  if (count === warmup) cpu0 = process.cpuUsage();
});
sock.on('error', (err) => { console.error(err); process.exit(1); });
process.on('SIGUSR2', () => { senderDone = true; });
process.on('SIGTERM', () => finish());

function finish() {
  const window = count >= warmup ? count - warmup : 0;
  const cpu = window ? process.cpuUsage(cpu0) : { user: 0, system: 0 };
  // VmHWM, as the C programs (maxRSS would include the runner's peak).
  const hwm = /VmHWM:\s*(\d+)/.exec(require('fs').readFileSync('/proc/self/status', 'utf8'));
  const rss = hwm ? Number(hwm[1]) : -1;
  const wall = count ? Number(lastNs - firstNs) / 1e9 : 0;
  console.log(`RESULT received=${count} bytes=${bytes} wall_s=${wall.toFixed(6)} window=${window} ` +
              `cpu_s=${((cpu.user + cpu.system) / 1e6).toFixed(6)} allocs=-1 rss_kib=${rss} ` +
              `rcvbuf=${sock.getRecvBufferSize()}`);
  sock.close();
  clearInterval(timer);
}

// The same stop rules as rx_should_stop in bench_common.c.
const timer = setInterval(() => {
  const now = Date.now();
  if (expected && count >= expected) return finish();
  if (count !== seenCount) { seenCount = count; seenAt = now; return; }
  if (count === 0) {
    if (now - startedAt > 20000 || (senderDone && now - seenAt > 2000)) finish();
    return;
  }
  if (senderDone && now - seenAt > idleMs) finish();
}, 10);

sock.bind(0, '127.0.0.1', () => {
  console.log(`PORT ${sock.address().port}`);
});
