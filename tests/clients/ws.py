"""A WebSocket handshake and one echoed message through the proxy in
$HTTPS_PROXY, to wss://HOST:PORT/ws, sending a placeholder Authorization.
Prints the handshake status line and the echoed text. Usage: ws.py HOST PORT

With a third argument PATH (e.g. /echo/ws), sends nothing and prints the
text of every data message the server sends until it closes (fragments
reassembled, control frames skipped)."""
import base64, os, socket, ssl, struct, sys, urllib.parse

host, port = sys.argv[1], int(sys.argv[2])
path = sys.argv[3] if len(sys.argv) > 3 else "/ws"
p = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
auth = base64.b64encode(f"{p.username}:{p.password}".encode()).decode()
s = socket.create_connection((p.hostname, p.port), timeout=10)
s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += s.recv(1)
assert head.startswith(b"HTTP/1.1 200"), head
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
ctx.set_alpn_protocols(["http/1.1"])
t = ctx.wrap_socket(s, server_hostname=host)
key = base64.b64encode(os.urandom(16)).decode()
t.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer authsome-managed\r\n\r\n").encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    head += t.recv(1)
print(head.split(b"\r\n")[0].decode(), flush=True)
def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = t.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed mid-frame")
        data += chunk
    return data

if path != "/ws":
    message = b""
    while True:
        b0, b1 = recv_exact(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", recv_exact(8))[0]
        payload = recv_exact(n)
        op = b0 & 0x0F
        if op == 0x8:
            break
        if op in (0x0, 0x1, 0x2):
            message += payload
            if b0 & 0x80:
                print(message.decode(), flush=True)
                message = b""
    sys.exit(0)

msg = b"hello through authsome"
mask = os.urandom(4)
t.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
b0, b1 = t.recv(1)[0], t.recv(1)[0]
n = b1 & 0x7F
data = b""
while len(data) < n:
    data += t.recv(n - len(data))
print(data.decode(), flush=True)
