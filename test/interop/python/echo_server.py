#!/usr/bin/env python3
"""A WebSocket server written with Python's `websockets` (10.x asyncio API),
for test/interop/python.test.ts: tether's client talks to it.

Usage: echo_server.py [--subprotocols a,b] [--no-compression]
                      [--tls-cert FILE --tls-key FILE]   (wss://)

Listens on 127.0.0.1 on a port the OS chooses and reports on stdout, one
JSON object per line:
  {"event": "listening", "port": N, "version": "10.4", "tls": bool}
  {"event": "closed", "id": ..., "path": ..., "code": N, "reason": "..."}
    once a connection is over (code/reason: the close frame it received,
    1006 if none);
  {"event": "error", "id": ..., "message": "..."} if a handler failed.
Exits when stdin reaches EOF (so it never outlives the test that started
it), or when killed.

What a connection does depends on its path (the query string carries
parameters and an `id` that the "closed" line repeats):
  /echo          sends every message back, text as text, binary as binary.
  /hash          answers every message with a text JSON digest:
                 {"binary": bool, "length": bytes, "sha256": hex,
                  "text": the text itself, for text up to 4096 characters}.
  /info          first sends a text JSON description of the handshake
                 (subprotocol, extensions and their parameters, the client's
                 request headers), then echoes.
  /close         closes at once with ?code=N&reason=...
  /ping          pings with ?data=..., waits for the matching pong, sends
                 the text "pong:<data>", then echoes.
  /bad-utf8      sends a text frame that is not UTF-8 (a protocol error on
                 the client's side), then waits for the client's close.
"""
import argparse
import asyncio
import hashlib
import json
import os
import ssl
import sys
import threading
import urllib.parse

try:
    import websockets
    from websockets.frames import OP_TEXT
except ImportError as error:  # reported to the test, which fails with a hint
    print(json.dumps({"event": "fatal", "message": f"cannot import websockets: {error}"}), flush=True)
    sys.exit(3)

TIMEOUT = 10


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def digest(message):
    data = message.encode("utf-8") if isinstance(message, str) else message
    out = {"binary": not isinstance(message, str), "length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if isinstance(message, str) and len(message) <= 4096:
        out["text"] = message
    return out


def describe(ws):
    extensions = []
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
        extensions.append(item)
    return {
        "subprotocol": ws.subprotocol,
        "extensions": extensions,
        "request_extensions": ws.request_headers.get("Sec-WebSocket-Extensions"),
        "request_protocols": ws.request_headers.get_all("Sec-WebSocket-Protocol"),
        "response_extensions": ws.response_headers.get("Sec-WebSocket-Extensions"),
    }


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def handler(ws):
    url = urllib.parse.urlsplit(ws.path)
    route = url.path
    query = dict(urllib.parse.parse_qsl(url.query))
    try:
        if route == "/echo":
            await echo(ws)
        elif route == "/hash":
            async for message in ws:
                await ws.send(json.dumps(digest(message)))
        elif route == "/info":
            await ws.send(json.dumps(describe(ws)))
            await echo(ws)
        elif route == "/close":
            await ws.close(int(query.get("code", "1000")), query.get("reason", ""))
        elif route == "/ping":
            data = query.get("data", "")
            waiter = await ws.ping(data)
            await asyncio.wait_for(waiter, TIMEOUT)
            await ws.send("pong:" + data)
            await echo(ws)
        elif route == "/bad-utf8":
            # A text frame whose payload is not UTF-8 (compressed like any
            # data frame when permessage-deflate is on).
            await ws.write_frame(True, OP_TEXT, b"caf\xc3\xa9 \xff\xfe")
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        else:
            await ws.close(4404, "no such route")
    except websockets.ConnectionClosed:
        pass
    except Exception as error:  # noqa: BLE001 -- reported, then the connection fails
        emit({"event": "error", "id": query.get("id"), "path": route, "message": repr(error)})
        raise
    finally:
        try:
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
        except asyncio.TimeoutError:
            ws.transport.abort()
            await ws.wait_closed()
        emit({"event": "closed", "id": query.get("id"), "path": route, "code": ws.close_code, "reason": ws.close_reason})


def exit_on_stdin_eof():
    sys.stdin.read()
    os._exit(0)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subprotocols", default="")
    parser.add_argument("--no-compression", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    subprotocols = [p for p in args.subprotocols.split(",") if p] or None
    server = await websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=subprotocols,
        compression=None if args.no_compression else "deflate",
        max_size=None,  # the tests send up to 16 MiB; the default is 1 MiB
        max_queue=None,
        ping_interval=None,
        ssl=context,
    )
    port = server.sockets[0].getsockname()[1]
    emit({"event": "listening", "port": port, "version": websockets.__version__, "tls": context is not None})
    threading.Thread(target=exit_on_stdin_eof, daemon=True).start()
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
