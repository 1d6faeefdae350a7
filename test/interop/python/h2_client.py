#!/usr/bin/env python3
"""A WebSocket-over-HTTP/2 client (RFC 8441) written with Python's `h2` and
`wsproto`, for test/http2/python.test.ts: it opens several WebSockets as
streams of ONE HTTP/2 connection to a tether server, over TLS (ALPN h2).

Reads one JSON object on stdin:
  {"host": "127.0.0.1", "port": N, "ca": PEM to trust, "timeout": seconds,
   "sockets": [{"path": "/x", "subprotocols": [...], "compression": bool,
                "headers": [[name, value], ...],       extra request fields
                "fields": [[name, value], ...],        replaces the whole request (malformed cases)
                "steps": [...]}, ...]}
and reports on stdout, one JSON object per line:
  {"op": "settings", "enable_connect_protocol": 0|1}   the server's first SETTINGS
  {"socket": i, "op": "response", "status": N, "headers": {...}}
  {"socket": i, "op": <step>, ...}                      one line per step
  {"socket": i, "op": "end", "ended": bool, "reset": code|null, "close": [code, reason]|null,
   "body": text of an error answer}
  {"op": "done", "connections": 1}
The WebSockets run their steps concurrently; each ends when its stream is
closed both ways (END_STREAM from each side) or reset. Steps:
  {"op": "send", "text": "..."}                         a text message
  {"op": "send", "binary": bool, "size": N}             random payload; reports length and sha256
  {"op": "recv"}        the next message: {"binary", "length", "sha256", "text" (up to 4096)}
  {"op": "ping", "data": "..."}   pings and waits for the matching pong
  {"op": "close", "code": N, "reason": "..."}  closing handshake; reports the close frame received
  {"op": "expect_close"}   waits for the server's close frame (answered); reports it
  {"op": "reset"}       resets the stream (RST_STREAM CANCEL)
  {"op": "bad_utf8"}    a text frame that is not UTF-8 (the server must fail with 1007)
"""
import base64
import json
import os
import socket
import sys

from h2ws import CANCEL, ENABLE_CONNECT_PROTOCOL, H2Link, client_context, deadline, emit, header_dict, new_websocket, sha256

import h2.events
import wsproto.connection
import wsproto.events
import wsproto.extensions
import wsproto.utilities


class Socket:
    def __init__(self, index, spec):
        self.index = index
        self.spec = spec
        self.steps = list(spec.get("steps", []))
        self.stream_id = None
        self.ws = None
        self.status = None
        self.body = b""
        self.messages = []
        self.partial = None
        self.pongs = []
        self.peer_close = None
        self.sent_step = False
        self.ended = False
        self.we_ended = False
        self.reset = None
        self.done = False
        self.reported_end = False

    def report(self, obj):
        obj["socket"] = self.index
        emit(obj)


def request_fields(spec, host, port):
    if "fields" in spec:
        return [(name, value) for name, value in spec["fields"]]
    fields = [
        (":method", "CONNECT"),
        (":protocol", "websocket"),
        (":scheme", "https"),
        (":path", spec.get("path", "/")),
        (":authority", f"{host}:{port}"),
        ("sec-websocket-version", "13"),
    ]
    if spec.get("subprotocols"):
        fields.append(("sec-websocket-protocol", ", ".join(spec["subprotocols"])))
    if spec.get("compression"):
        fields.append(("sec-websocket-extensions", "permessage-deflate; " + wsproto.extensions.PerMessageDeflate().offer()))
    for name, value in spec.get("headers", []):
        fields.append((name, value))
    return fields


def payload(step):
    if "text" in step:
        return step["text"]
    size = step["size"]
    if step.get("binary", True):
        return os.urandom(size)
    return base64.b64encode(os.urandom(size))[:size].decode()


def main():
    spec = json.load(sys.stdin)
    remaining = deadline(spec.get("timeout", 20))
    host, port = spec.get("host", "127.0.0.1"), spec["port"]
    raw = socket.create_connection((host, port), timeout=remaining())
    sock = client_context(spec.get("ca")).wrap_socket(raw, server_hostname=host)
    if sock.selected_alpn_protocol() != "h2":
        emit({"op": "error", "message": f"ALPN gave {sock.selected_alpn_protocol()}, not h2"})
        sys.exit(1)
    sock.setblocking(False)
    sockets = [Socket(i, s) for i, s in enumerate(spec["sockets"])]
    by_stream = {}
    state = {"settings": None}

    def handle(event):
        if event is None or isinstance(event, h2.events.ConnectionTerminated):
            for s in sockets:
                if not s.done:
                    s.done = True
                    s.reset = s.reset if s.reset is not None else "connection"
            return
        if isinstance(event, h2.events.RemoteSettingsChanged):
            if state["settings"] is None:
                changed = event.changed_settings.get(ENABLE_CONNECT_PROTOCOL)
                state["settings"] = changed.new_value if changed else 0
                emit({"op": "settings", "enable_connect_protocol": state["settings"]})
            return
        s = by_stream.get(getattr(event, "stream_id", None))
        if s is None:
            return
        if isinstance(event, h2.events.ResponseReceived):
            headers = header_dict(event.headers)
            s.status = int(headers.get(":status", "0"))
            s.report({"op": "response", "status": s.status, "headers": headers})
            if 200 <= s.status < 300:
                s.ws = new_websocket(True, headers.get("sec-websocket-extensions"))
            else:
                s.steps = []
        elif isinstance(event, h2.events.DataReceived):
            link.conn.acknowledge_received_data(event.flow_controlled_length, s.stream_id)
            if s.ws is None:
                s.body += event.data
                return
            try:
                s.ws.receive_data(event.data)
            except wsproto.utilities.LocalProtocolError:
                return  # data after the closing handshake: nothing more to read
            for ws_event in s.ws.events():
                if isinstance(ws_event, wsproto.events.Message):
                    data = ws_event.data.encode() if isinstance(ws_event, wsproto.events.TextMessage) else bytes(ws_event.data)
                    binary = isinstance(ws_event, wsproto.events.BytesMessage)
                    if s.partial is None:
                        s.partial = (binary, bytearray())
                    s.partial[1].extend(data)
                    if ws_event.message_finished:
                        s.messages.append((s.partial[0], bytes(s.partial[1])))
                        s.partial = None
                elif isinstance(ws_event, wsproto.events.Ping):
                    link.send_ws(s.stream_id, s.ws.send(ws_event.response()))
                elif isinstance(ws_event, wsproto.events.Pong):
                    s.pongs.append(bytes(ws_event.payload))
                elif isinstance(ws_event, wsproto.events.CloseConnection):
                    s.peer_close = [ws_event.code, ws_event.reason or ""]
                    if s.ws.state == wsproto.connection.ConnectionState.REMOTE_CLOSING:
                        link.send_ws(s.stream_id, s.ws.send(ws_event.response()))
        elif isinstance(event, h2.events.StreamEnded):
            s.ended = True
            # RFC 8441 §5: END_STREAM stands in for FIN; once the server ended its side, the client ends its own.
            if not s.we_ended:
                s.we_ended = True
                link.send_ws(s.stream_id, b"", end=True)
            s.done = True
        elif isinstance(event, h2.events.StreamReset):
            s.reset = event.error_code
            s.done = True

    link = H2Link(sock, True, handle)
    # Wait for the server's SETTINGS (RFC 8441 §3: no :protocol before it allowed it).
    while state["settings"] is None and remaining() > 0:
        if not link.pump(min(0.05, remaining())):
            break
    for s in sockets:
        s.stream_id = link.conn.get_next_available_stream_id()
        by_stream[s.stream_id] = s
        link.conn.send_headers(s.stream_id, request_fields(s.spec, host, port))
    link.write()

    while remaining() > 0 and not all(s.done for s in sockets):
        for s in sockets:
            advance(s, link)
        if not link.pump(min(0.02, remaining())):
            break
    for s in sockets:
        advance(s, link)
    for s in sockets:
        s.report({
            "op": "end",
            "ended": s.ended,
            "reset": s.reset,
            "close": s.peer_close,
            "body": s.body.decode("utf-8", "replace") if s.ws is None else None,
            "steps_left": [step["op"] for step in s.steps],
            "done": s.done,
        })
    emit({"op": "done", "connections": 1})
    link.write()
    sock.close()
    sys.exit(0 if all(s.done for s in sockets) else 1)


def advance(s, link):
    while s.steps and s.ws is not None:
        step = s.steps[0]
        op = step["op"]
        # Once the stream is over, only what already arrived can still be reported.
        if s.done and not (op in ("recv", "expect_close") or (op == "close" and s.peer_close is not None)):
            return
        if op == "send":
            data = payload(step)
            message = wsproto.events.TextMessage(data=data) if isinstance(data, str) else wsproto.events.BytesMessage(data=data)
            encoded = data.encode() if isinstance(data, str) else data
            link.send_ws(s.stream_id, s.ws.send(message))
            s.report({"op": "send", "length": len(encoded), "sha256": sha256(encoded)})
        elif op == "recv":
            if not s.messages:
                return
            binary, data = s.messages.pop(0)
            report = {"op": "recv", "binary": binary, "length": len(data), "sha256": sha256(data)}
            if not binary:
                report["text"] = data.decode()[:4096]
            s.report(report)
        elif op == "ping":
            data = step.get("data", "").encode()
            if not s.sent_step:
                s.sent_step = True
                link.send_ws(s.stream_id, s.ws.send(wsproto.events.Ping(payload=data)))
            if data not in s.pongs:
                return
            s.report({"op": "pong", "data": data.decode()})
        elif op == "close":
            if not s.sent_step:
                s.sent_step = True
                link.send_ws(s.stream_id, s.ws.send(wsproto.events.CloseConnection(code=step.get("code", 1000), reason=step.get("reason"))))
            if s.peer_close is None:
                return
            s.report({"op": "close", "code": s.peer_close[0], "reason": s.peer_close[1]})
        elif op == "expect_close":
            if s.peer_close is None:
                return
            s.report({"op": "expect_close", "code": s.peer_close[0], "reason": s.peer_close[1]})
        elif op == "reset":
            link.conn.reset_stream(s.stream_id, error_code=CANCEL)
            link.write()
            s.report({"op": "reset"})
            s.reset = CANCEL
            s.done = True
        elif op == "bad_utf8":
            # A masked text frame holding 0xff (never valid UTF-8), written by hand: wsproto only sends valid text.
            mask = os.urandom(4)
            link.send_ws(s.stream_id, bytes([0x81, 0x81]) + mask + bytes([0xFF ^ mask[0]]))
            s.report({"op": "bad_utf8"})
        else:
            s.report({"op": "error", "message": f"unknown step {op}"})
        s.steps.pop(0)
        s.sent_step = False


if __name__ == "__main__":
    main()
