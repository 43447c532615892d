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
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")
