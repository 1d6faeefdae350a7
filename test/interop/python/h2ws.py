"""WebSockets over HTTP/2 (RFC 8441) with Python's `h2` (the HTTP/2 state
machine) and `wsproto` (WebSocket frames, no handshake), both Debian
packages (python3-h2, python3-wsproto): the pieces shared by h2_client.py
and h2_server.py, which test/http2/python.test.ts runs against tether.

An `H2Link` is one HTTP/2 connection over a (TLS) socket: it feeds what the
socket reads to the h2 connection, hands each h2 event to a handler, and
writes what h2 wants to send. WebSocket bytes for a stream wait in a
per-stream buffer and leave as the stream's and the connection's flow
control windows allow (h2 refuses to overrun them); received DATA is
acknowledged as soon as the WebSocket layer took it, so windows reopen.
"""
import hashlib
import json
import select
import ssl
import sys
import time

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
    import wsproto.connection
    import wsproto.events
    import wsproto.extensions
except ImportError as error:  # reported to the test, which fails with a hint
    print(json.dumps({"op": "fatal", "event": "fatal", "message": f"cannot import h2 or wsproto: {error}"}), flush=True)
    sys.exit(3)

ENABLE_CONNECT_PROTOCOL = h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL
CANCEL = 0x8


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def header_dict(headers):
    out = {}
    for name, value in headers:
        name = name.decode() if isinstance(name, bytes) else name
        value = value.decode() if isinstance(value, bytes) else value
        out[name] = value if name not in out else out[name] + ", " + value
    return out


class H2Link:
    """One HTTP/2 connection; `handler(event)` gets every h2 event."""

    def __init__(self, sock, client_side, handler, local_settings=None):
        self.sock = sock
        self.handler = handler
        config = h2.config.H2Configuration(
            client_side=client_side,
            header_encoding="utf-8",
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config=config)
        if local_settings:
            # Sent in the first SETTINGS frame (initiate_connection), as the RFC's §3 expects of a server.
            self.conn.local_settings = h2.settings.Settings(client=client_side, initial_values=local_settings)
        self.conn.initiate_connection()
        self.pending = {}
        self.ending = set()
        self.closed = False
        self.write()

    def write(self):
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                self.sock.sendall(data)
            except (OSError, ssl.SSLError):
                self.closed = True

    def send_ws(self, stream_id, data, end=False):
        """Queues WebSocket bytes for a stream (and END_STREAM after them)."""
        self.pending.setdefault(stream_id, bytearray()).extend(data)
        if end:
            self.ending.add(stream_id)
        self.flush()

    def flush(self):
        for stream_id in list(self.pending):
            buffer = self.pending[stream_id]
            try:
                while buffer:
                    window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
                    if window <= 0:
                        break
                    chunk = bytes(buffer[:window])
                    del buffer[:window]
                    self.conn.send_data(stream_id, chunk)
                if not buffer:
                    del self.pending[stream_id]
                    if stream_id in self.ending:
                        self.ending.discard(stream_id)
                        self.conn.end_stream(stream_id)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                self.pending.pop(stream_id, None)
                self.ending.discard(stream_id)
        self.write()

    def pump(self, wait):
        """Reads what arrived within `wait` seconds and handles it; False once the connection is gone."""
        if self.closed:
            return False
        readable, _, _ = select.select([self.sock], [], [], wait)
        if not readable and not (hasattr(self.sock, "pending") and self.sock.pending()):
            return True
        while True:
            try:
                data = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                break
            except (BlockingIOError, InterruptedError):
                break
            except (OSError, ssl.SSLError):
                data = b""
            if not data:
                self.closed = True
                self.handler(None)
                return False
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError as error:
                emit({"op": "h2_protocol_error", "event": "h2_protocol_error", "message": str(error)})
                self.write()
                self.closed = True
                self.handler(None)
                return False
            for event in events:
                if isinstance(event, h2.events.WindowUpdated):
                    continue
                self.handler(event)
            self.flush()
            if not (hasattr(self.sock, "pending") and self.sock.pending()):
                break
        self.flush()
        return True


def client_context(ca_pem):
    context = ssl.create_default_context()
    if ca_pem:
        context.load_verify_locations(cadata=ca_pem)
    context.set_alpn_protocols(["h2"])
    return context


def server_context(cert_file, key_file):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["h2"])
    return context


def deadline(seconds):
    end = time.monotonic() + seconds
    return lambda: max(0.0, end - time.monotonic())


def new_websocket(client, extension_answer):
    """A wsproto frame-level connection, with permessage-deflate if it was agreed (`extension_answer`)."""
    extensions = []
    if extension_answer and extension_answer.strip().startswith("permessage-deflate"):
        deflate = wsproto.extensions.PerMessageDeflate()
        deflate.finalize(extension_answer)
        extensions.append(deflate)
    kind = wsproto.connection.ConnectionType.CLIENT if client else wsproto.connection.ConnectionType.SERVER
    return wsproto.connection.Connection(kind, extensions=extensions)
