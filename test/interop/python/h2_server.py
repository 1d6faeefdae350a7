#!/usr/bin/env python3
"""A WebSocket-over-HTTP/2 echo server (RFC 8441) written with Python's `h2`
and `wsproto`, for test/http2/python.test.ts: tether's client connects to it.

  h2_server.py --cert FILE --key FILE [--no-connect-protocol]

Listens on 127.0.0.1 (a port the OS chooses) over TLS with ALPN h2, and
sends SETTINGS_ENABLE_CONNECT_PROTOCOL in its first SETTINGS frame (unless
--no-connect-protocol). Reports on stdout, one JSON object per line:
  {"event": "listening", "port": N}
  {"event": "connection", "id": k}                       a new HTTP/2 connection
  {"event": "open", "connection": k, "stream": id, "path": ..., "headers": {...}}
  {"event": "message", "path": ..., "binary": bool, "length": N, "sha256": hex}
  {"event": "closed", "path": ..., "code": N, "reason": ..., "connection": k}
  {"event": "stream_ended" | "reset", "path": ..., "code": N}
Each extended CONNECT is answered 200 (the first subprotocol offered, and
permessage-deflate when offered) and echoes every message with its type.
Paths: /refuse answers 403; /close/CODE closes with CODE after the first
message; /reset resets the stream after the first message; /ping pings
(payload "are you there") after the first message.
"""
import argparse
import socket
import ssl
import sys

from h2ws import CANCEL, ENABLE_CONNECT_PROTOCOL, H2Link, emit, header_dict, server_context, sha256

import h2.events
import h2.settings
import wsproto.connection
import wsproto.events
import wsproto.extensions
import wsproto.utilities


class Stream:
    def __init__(self, connection, stream_id, path, ws):
        self.connection = connection
        self.stream_id = stream_id
        self.path = path
        self.ws = ws
        self.partial = None
        self.ended = False
        self.messages = 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--no-connect-protocol", action="store_true")
    args = parser.parse_args()
    context = server_context(args.cert, args.key)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    emit({"event": "listening", "port": listener.getsockname()[1]})
    settings = {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100}
    if not args.no_connect_protocol:
        settings[ENABLE_CONNECT_PROTOCOL] = 1
    links = []
    counter = [0]

    while True:
        import select
        readable, _, _ = select.select([listener] + [link.sock for link in links if not link.closed], [], [], 0.05)
        if listener in readable:
            raw, _ = listener.accept()
            raw.settimeout(5)
            try:
                sock = context.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError) as error:
                emit({"event": "tls_error", "message": str(error)})
                raw.close()
                continue
            sock.setblocking(False)
            counter[0] += 1
            links.append(serve(sock, counter[0], settings))
            emit({"event": "connection", "id": counter[0]})
        for link in list(links):
            if link.closed:
                links.remove(link)
            elif link.sock in readable or link.sock.pending():
                link.pump(0)


def serve(sock, connection_id, settings):
    streams = {}

    def finish_message(stream, binary, data):
        stream.messages += 1
        emit({"event": "message", "path": stream.path, "binary": binary, "length": len(data), "sha256": sha256(data)})
        reply = wsproto.events.BytesMessage(data=data) if binary else wsproto.events.TextMessage(data=data.decode())
        link.send_ws(stream.stream_id, stream.ws.send(reply))
        if stream.messages == 1 and stream.path.startswith("/close/"):
            code = int(stream.path.split("/")[2])
            link.send_ws(stream.stream_id, stream.ws.send(wsproto.events.CloseConnection(code=code, reason="python says bye")))
        elif stream.messages == 1 and stream.path == "/reset":
            link.conn.reset_stream(stream.stream_id, error_code=CANCEL)
            link.write()
        elif stream.messages == 1 and stream.path == "/ping":
            link.send_ws(stream.stream_id, stream.ws.send(wsproto.events.Ping(payload=b"are you there")))

    def handle(event):
        if event is None:
            return
        if isinstance(event, h2.events.RequestReceived):
            headers = header_dict(event.headers)
            path = headers.get(":path", "")
            if headers.get(":method") != "CONNECT" or headers.get(":protocol") != "websocket":
                link.conn.send_headers(event.stream_id, [(":status", "400")], end_stream=True)
                return
            if path == "/refuse":
                link.conn.send_headers(event.stream_id, [(":status", "403"), ("content-type", "text/plain")])
                link.conn.send_data(event.stream_id, b"refused by python", end_stream=True)
                return
            answer = [(":status", "200")]
            offered = headers.get("sec-websocket-protocol")
            if offered:
                answer.append(("sec-websocket-protocol", offered.split(",")[0].strip()))
            extensions = []
            offer = headers.get("sec-websocket-extensions", "")
            if offer.startswith("permessage-deflate"):
                deflate = wsproto.extensions.PerMessageDeflate()
                accepted = deflate.accept(offer)
                if accepted is not None:
                    answer.append(("sec-websocket-extensions", "permessage-deflate" + ("; " + accepted if accepted else "")))
                    extensions.append(deflate)
            link.conn.send_headers(event.stream_id, answer)
            ws = wsproto.connection.Connection(wsproto.connection.ConnectionType.SERVER, extensions=extensions)
            streams[event.stream_id] = Stream(connection_id, event.stream_id, path, ws)
            emit({"event": "open", "connection": connection_id, "stream": event.stream_id, "path": path, "headers": headers})
            return
        stream = streams.get(getattr(event, "stream_id", None))
        if stream is None:
            return
        if isinstance(event, h2.events.DataReceived):
            link.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            try:
                stream.ws.receive_data(event.data)
            except wsproto.utilities.LocalProtocolError:
                return
            for ws_event in stream.ws.events():
                if isinstance(ws_event, wsproto.events.Message):
                    binary = isinstance(ws_event, wsproto.events.BytesMessage)
                    data = bytes(ws_event.data) if binary else ws_event.data.encode()
                    if stream.partial is None:
                        stream.partial = bytearray()
                    stream.partial.extend(data)
                    if ws_event.message_finished:
                        whole, stream.partial = bytes(stream.partial), None
                        finish_message(stream, binary, whole)
                elif isinstance(ws_event, wsproto.events.Ping):
                    link.send_ws(stream.stream_id, stream.ws.send(ws_event.response()))
                elif isinstance(ws_event, wsproto.events.Pong):
                    emit({"event": "pong", "path": stream.path, "data": bytes(ws_event.payload).decode()})
                elif isinstance(ws_event, wsproto.events.CloseConnection):
                    if stream.ws.state == wsproto.connection.ConnectionState.REMOTE_CLOSING:
                        link.send_ws(stream.stream_id, stream.ws.send(ws_event.response()))
                    emit({"event": "closed", "path": stream.path, "code": ws_event.code, "reason": ws_event.reason or "", "connection": stream.connection})
                    # RFC 6455 §7.1.1 over RFC 8441 §5: the server ends first, with END_STREAM.
                    if not stream.ended:
                        stream.ended = True
                        link.send_ws(stream.stream_id, b"", end=True)
        elif isinstance(event, h2.events.StreamEnded):
            emit({"event": "stream_ended", "path": stream.path, "code": 0})
            if not stream.ended:
                stream.ended = True
                link.send_ws(stream.stream_id, b"", end=True)
        elif isinstance(event, h2.events.StreamReset):
            emit({"event": "reset", "path": stream.path, "code": event.error_code})

    link = H2Link(sock, False, handle, local_settings=settings)
    return link


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
