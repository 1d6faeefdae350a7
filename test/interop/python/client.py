#!/usr/bin/env python3
"""A WebSocket client written with Python's `websockets` (10.x asyncio API),
for test/interop/python.test.ts: it talks to a tether server.

Reads one JSON object on stdin:
  {"url": "ws://127.0.0.1:N/path",
   "subprotocols": ["a", "b"] | null,
   "compression": "deflate" | null | {ClientPerMessageDeflateFactory arguments},
   "timeout": seconds (default 20),
   "ca": PEM certificate to trust, for wss:// (optional),
   "steps": [...]}
and reports on stdout, one JSON object per line: first
  {"op": "open", "subprotocol": ..., "extensions": [...], "response_extensions": ...}
then one line per step, then {"op": "end", "code": N, "reason": "..."} with
the close frame received from the server. Any failure is reported as
{"op": "error", "type": ..., "message": ...} with exit status 1.

Steps:
  {"op": "send", "text": "..."}                       a text message
  {"op": "send", "binary": bool, "size": N,
   "fill": "random" | "compressible", "block": K}    generated payload;
      binary random: os.urandom; text random: base64 characters;
      "compressible": a random K-byte block repeated to N bytes.
      Reports {"op": "send", "length": bytes, "sha256": hex}.
  {"op": "send_fragments", "binary": bool, "sizes": [N, ...], "fill": ...}
                      one message sent as one fragment per size (websockets
                      sends an iterable as fragments); reports like "send"
  {"op": "raw_text_fragments", "hex": ["e282", "ac"]}
                      one text message written frame by frame (first frame
                      text, the others continuations), so a character can be
                      split across frames or the bytes be invalid; reports
                      {"op": "sent_raw"}
  {"op": "recv"}      reports {"op": "recv", "binary", "length", "sha256",
                      "text" (up to 4096 characters)}
  {"op": "ping", "data": "..."}   pings, waits for the matching pong
  {"op": "close", "code": N, "reason": "..."}  closing handshake; reports
                      the code and reason the server echoed
  {"op": "close_empty"}   closing handshake with an empty close frame (no
                      code: the API's close() always sends one); reports
                      the close frame received ("code", "reason")
  {"op": "expect_close"}   waits for the server to close; reports the close
                      frame received ("code", "reason")
  {"op": "bad_utf8"}  sends a text frame that is not UTF-8, then waits for
                      the server to close the connection
"""
import asyncio
import base64
import hashlib
import json
import os
import ssl
import sys

try:
    import websockets
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
    from websockets.frames import OP_CONT, OP_TEXT, Close
except ImportError as error:  # reported to the test, which fails with a hint
    print(json.dumps({"op": "fatal", "message": f"cannot import websockets: {error}"}), flush=True)
    sys.exit(3)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def payload(step):
    if "text" in step:
        return step["text"]
    size = step["size"]
    binary = step.get("binary", True)
    if step.get("fill", "random") == "compressible":
        block = os.urandom(step.get("block", 64))
        if not binary:
            block = base64.b64encode(block)
        data = (block * (size // len(block) + 1))[:size]
    elif binary:
        data = os.urandom(size)
    else:
        data = base64.b64encode(os.urandom(size * 3 // 4 + 3))[:size]
    return data if binary else data.decode("ascii")


def report_message(message):
    data = message.encode("utf-8") if isinstance(message, str) else message
    out = {"op": "recv", "binary": not isinstance(message, str), "length": len(data), "sha256": sha256(data)}
    if isinstance(message, str) and len(message) <= 4096:
        out["text"] = message
    return out


def extensions_of(ws):
    out = []
    for extension in ws.extensions:
        item = {"name": extension.name}
        for attribute in (
            "remote_no_context_takeover",
            "local_no_context_takeover",
            "remote_max_window_bits",
            "local_max_window_bits",
        ):
            if hasattr(extension, attribute):
                item[attribute] = getattr(extension, attribute)
        out.append(item)
    return out


async def run(spec):
    compression = spec.get("compression", "deflate")
    options = {}
    if isinstance(compression, dict):
        options["extensions"] = [ClientPerMessageDeflateFactory(**compression)]
        compression = None
    if spec.get("ca"):
        options["ssl"] = ssl.create_default_context(cadata=spec["ca"])
    ws = await websockets.connect(
        spec["url"],
        subprotocols=spec.get("subprotocols"),
        compression=compression,
        max_size=None,  # the tests send up to 16 MiB; the default is 1 MiB
        max_queue=None,
        ping_interval=None,
        open_timeout=10,
        close_timeout=10,
        **options,
    )
    emit({
        "op": "open",
        "subprotocol": ws.subprotocol,
        "extensions": extensions_of(ws),
        "response_extensions": ws.response_headers.get("Sec-WebSocket-Extensions"),
        "request_extensions": ws.request_headers.get("Sec-WebSocket-Extensions"),
    })
    for step in spec.get("steps", []):
        op = step["op"]
        if op == "send":
            message = payload(step)
            await ws.send(message)
            data = message.encode("utf-8") if isinstance(message, str) else message
            emit({"op": "send", "length": len(data), "sha256": sha256(data)})
        elif op == "send_fragments":
            chunks = [payload({**step, "size": size}) for size in step["sizes"]]
            await ws.send(chunks)
            data = b"".join(c.encode("utf-8") if isinstance(c, str) else c for c in chunks)
            emit({"op": "send", "length": len(data), "sha256": sha256(data)})
        elif op == "raw_text_fragments":
            pieces = [bytes.fromhex(h) for h in step["hex"]]
            for i, piece in enumerate(pieces):
                await ws.write_frame(i == len(pieces) - 1, OP_TEXT if i == 0 else OP_CONT, piece)
            emit({"op": "sent_raw"})
        elif op == "recv":
            emit(report_message(await ws.recv()))
        elif op == "ping":
            waiter = await ws.ping(step.get("data", ""))
            await asyncio.wait_for(waiter, 10)
            emit({"op": "ping", "pong": True})
        elif op == "close":
            await ws.close(step.get("code", 1000), step.get("reason", ""))
            emit({"op": "close", "code": ws.close_code, "reason": ws.close_reason})
        elif op == "close_empty":
            await ws.write_close_frame(Close(1005, ""), b"")
            await asyncio.wait_for(ws.wait_closed(), 10)
            emit({"op": "closed", "code": ws.close_code, "reason": ws.close_reason})
        elif op == "expect_close":
            try:
                message = await ws.recv()
                emit({"op": "error", "type": "unexpected", "message": f"a message instead of a close: {message!r:.200}"})
                sys.exit(1)
            except websockets.ConnectionClosed:
                pass
            emit({"op": "closed", "code": ws.close_code, "reason": ws.close_reason})
        elif op == "bad_utf8":
            await ws.write_frame(True, OP_TEXT, b"caf\xc3\xa9 \xff\xfe")
            await asyncio.wait_for(ws.wait_closed(), 10)
            emit({"op": "closed", "code": ws.close_code, "reason": ws.close_reason})
        else:
            raise ValueError(f"unknown step {op!r}")
    await ws.close()
    emit({"op": "end", "code": ws.close_code, "reason": ws.close_reason})


def main():
    spec = json.loads(sys.stdin.read())
    try:
        asyncio.run(asyncio.wait_for(run(spec), spec.get("timeout", 20)))
    except Exception as error:  # noqa: BLE001 -- reported to the test
        emit({"op": "error", "type": type(error).__name__, "message": str(error)})
        sys.exit(1)


if __name__ == "__main__":
    main()
