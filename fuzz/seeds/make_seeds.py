#!/usr/bin/env python3
"""Writes the hand-made seed inputs of the api_sequence target into
fuzz/corpus/api_sequence/ (seed-*). Each seed is a small scenario spelled in
the target's encoding (see fuzz_targets/api_sequence.rs): two sockets
ping-ponging over 127.0.0.1 / ::1 with callbacks that reply, close and free,
on host-dispatch and I/O-thread contexts. The fuzzer mutates from there."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "corpus", "api_sequence")

def ctx(c, io=False, max_pending=0):
    # op 0: create_context(slot, kind, max_pending mode [, value])
    kind = 4 if io else 1
    if max_pending:
        return [0, c, kind, 2, max_pending - 1]   # 1 + v % 40
    return [0, c, kind, 0]

def sock(slot, c, udp6=False, handlers=()):
    # op 3: create_socket(slot, ctx, opts mode, type, reuse x2, v6only x2,
    #                     recv, send, with_msg, null_out, more handlers?)
    out = [3, slot, c, 1, 4 if udp6 else 0, 1, 0, 1, 0, 1, 1, 1, 1]
    if not handlers:
        return out + [0]
    first, *rest = handlers
    out += [1, first, 1]
    for h in rest:                           # op 14: on_*(slot, which, set)
        out += [14, slot, h, 1]
    return out

MESSAGE, LISTENING, CLOSE, ERROR = 0, 1, 2, 3

def bind(slot, addr_index=0, once=True):
    # op 6: bind(slot, port mode 0 -> 0, address fixed[idx], one-shot cb)
    return [6, slot, 0, 1, addr_index, 1 if once else 0]

def send(slot, to_slot, length, dest_index=0, vectored=False, cb=True):
    # op 7: send(slot, port of to_slot, dest fixed[idx], with_cb, vectored, len, null_msg)
    out = [7, slot, 0, to_slot, 1, dest_index, 1 if cb else 0, 0 if vectored else 1]
    out += [1, length] if length < 256 else [3] + list(struct.pack("<H", length))
    out += [1]
    if vectored:
        out += [1, 2]                        # 1 + 2 % 4 = 3 pieces
        out += list(struct.pack("<H", 5)) + list(struct.pack("<H", 7))
        out += [1]                           # bufs not NULL
    return out

def dispatch(c, n=0):
    return [15, c, 0, 1, 0] * (n or 1)

def sleep(units=50):
    return [18, units]

def close(slot, once=True):
    return [10, slot, 1 if once else 0]

def free(slot):
    return [11, slot]

def free_ctx(c):
    return [2, c]

# Callback actions (8 bytes each are read; unused ones are ignored).
def reply(length):   # op 0: reply to the sender's port (at 127.0.0.1)
    return [0, 1, 0, 1, 1, 1, length, 1]

def cb_close():      # op 3: close this socket, with a one-shot close callback
    return [3, 1, 0, 0, 0, 0, 0, 0]

def cb_free():       # op 4: free this socket
    return [4, 0, 0, 0, 0, 0, 0, 0]

def cb_dispatch():   # op 6: dispatch its own context from inside: EBUSY
    return [6, 0, 0, 0, 0, 0, 0, 0]

def cb_free_ctx():   # op 5: free this socket's context
    return [5, 0, 0, 0, 0, 0, 0, 0]

def nothing():
    return [15, 0, 0, 0, 0, 0, 0, 0]

# Issue 8: connect, batches, offloads, metadata (ops 20..23; callback ops 16..19).
def connect(slot, to_slot, dest=None, once=True):
    # op 20: connect(slot, port of to_slot, dest None or fixed[idx], one-shot cb)
    d = [0] if dest is None else [1, dest]
    return [20, slot, 0, to_slot] + d + [1 if once else 0]

def disconnect(slot):
    return [21, slot, 0]

def remote_address(slot):
    return [21, slot, 3]

def send_peer(slot, length, cb=True):
    # op 7 with port 0 (mode 3) and NULL address: to the connected peer
    return [7, slot, 3, 0, 1 if cb else 0, 1, 1, length, 1]

def batch(slot, to_slot, count, size, half_last=False, dest=0, cb=True):
    # op 22: batch(slot, port of to_slot (to_slot None: port 0), dest, with_cb,
    #              count 1 + (count-1) % 140, one size (u16 % 1600), last, no NULLs)
    port = [3] if to_slot is None else [0, to_slot]
    d = [0] if dest is None else [1, dest]
    return ([22, slot] + port + d + [1 if cb else 0, 4, count - 1, 0, 10]
            + list(struct.pack("<H", size)) + [1 if half_last else 0, 1, 1])

def meta_on(slot):       # op 23/5: set_message_meta(true)
    return [23, slot, 5, 1]

def offload(slot, flags): # op 23/4: set_offload(flags 0..3)
    return [23, slot, 4, 0, flags]

def queue_figures(slot): # op 23/2
    return [23, slot, 2]

CONNECT = 4

def cb_meta():       # callback op 19/6: message_meta from a callback
    return [19, 6, 1, 0, 0, 0, 0, 0]

def cb_disconnect(): # callback op 17/0
    return [17, 0, 0, 0, 0, 0, 0, 0]

def seed(script, ops):
    script = bytes(b for part in script for b in part)
    ops = bytes(b for part in ops for b in part)
    return struct.pack("<H", len(script)) + script + ops

SEEDS = {
    "seed-host-pingpong": seed(
        [nothing(), nothing(), reply(20), reply(30), cb_dispatch(), reply(40), cb_close(), cb_free()],
        [ctx(0), sock(0, 0, handlers=(LISTENING, CLOSE, ERROR)), sock(1, 0, handlers=(CLOSE,)),
         bind(0), bind(1), send(1, 0, 10), send(0, 1, 200, vectored=True),
         dispatch(0), sleep(), dispatch(0), sleep(), dispatch(0), sleep(), dispatch(0),
         close(0), dispatch(0, 2), free(0), free(1), free_ctx(0)]),
    "seed-io-pingpong": seed(
        [reply(20), reply(30), reply(40), reply(50), cb_close(), cb_free(), reply(5), cb_free_ctx()],
        [ctx(0, io=True), sock(0, 0, handlers=(LISTENING, CLOSE, ERROR)), sock(1, 0, handlers=(CLOSE,)),
         bind(0), bind(1), send(1, 0, 10), send(0, 1, 100),
         sleep(100), sleep(100), send(1, 0, 1000), sleep(100), close(1), sleep(100)]),
    "seed-two-contexts-udp6": seed(
        [reply(9), nothing(), reply(8), cb_close(), reply(7), cb_free(), cb_free_ctx()],
        [ctx(0), ctx(1, io=True, max_pending=2), sock(0, 0, udp6=True, handlers=(CLOSE, ERROR)),
         sock(1, 1, udp6=True, handlers=(LISTENING,)), sock(2, 1),
         bind(0, addr_index=1), bind(1, addr_index=1), bind(2),
         send(0, 1, 33, dest_index=1), send(1, 0, 44, dest_index=1), send(2, 2, 55),
         send(0, 1, 60000, dest_index=1), send(1, 0, 65527 & 0xffff, dest_index=1),
         dispatch(0), sleep(), dispatch(0), sleep(), dispatch(0), free_ctx(1), dispatch(0)]),
    "seed-refused": seed(
        [nothing()],
        # Sends to a port nobody listens on (port of an unbound slot is 1):
        # the ICMP errors come back as send errors and 'error' events.
        [ctx(0), sock(0, 0, handlers=(ERROR,)), send(0, 5, 10), send(0, 5, 10, cb=False),
         dispatch(0), sleep(), dispatch(0), sleep(), send(0, 5, 10), dispatch(0)]),
    "seed-connect-host": seed(
        [reply(10), cb_meta(), nothing(), reply(20), cb_disconnect(), reply(30), nothing(), cb_close()],
        [ctx(0), sock(0, 0, handlers=(LISTENING, CLOSE, ERROR)), sock(1, 0, handlers=(CONNECT, ERROR)),
         meta_on(0), bind(0), bind(1), connect(1, 0), remote_address(1),
         send_peer(1, 12), send(1, 0, 5), dispatch(0), sleep(), dispatch(0),
         batch(1, None, 5, 100, dest=None), queue_figures(1), dispatch(0), sleep(), dispatch(0),
         disconnect(1), remote_address(1), send(1, 0, 7), dispatch(0), sleep(), dispatch(0)]),
    "seed-connect-io-udp6": seed(
        [reply(8), reply(9), cb_meta(), cb_disconnect(), reply(10), cb_close(), cb_free()],
        [ctx(0, io=True), sock(0, 0, udp6=True, handlers=(CLOSE, ERROR)),
         sock(1, 0, udp6=True, handlers=(CONNECT, CLOSE)), meta_on(0), meta_on(1),
         bind(0, addr_index=1), connect(1, 0, dest=1), send_peer(1, 40), sleep(100),
         batch(1, None, 3, 500, dest=None), sleep(100), remote_address(1), disconnect(1), sleep(100)]),
    "seed-batch-gso": seed(
        [nothing(), cb_meta(), nothing(), reply(3), nothing(), cb_meta()],
        [ctx(0), sock(0, 0, handlers=(CLOSE, ERROR)), sock(1, 0), offload(0, 3), offload(1, 3),
         meta_on(0), bind(0), batch(1, 0, 70, 1200, half_last=True), batch(1, 0, 4, 0),
         batch(1, 0, 140, 1400), queue_figures(1),
         dispatch(0), sleep(), dispatch(0), sleep(), dispatch(0), queue_figures(1), dispatch(0)]),
}

if __name__ == "__main__":
    import sys
    out = sys.argv[1] if len(sys.argv) > 1 else OUT   # another directory, e.g. a work corpus
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")
