"""A raw CONNECT through the proxy in $HTTPS_PROXY. Prints the proxy's
answer (status line, headers, body). With `--banner`, after a 200 it sends
nothing and prints what the server says first (3 s at most).
Usage: connect.py HOST PORT [--banner]"""
import base64, os, socket, sys, urllib.parse

host, port = sys.argv[1], int(sys.argv[2])
banner = "--banner" in sys.argv[3:]
p = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
auth = base64.b64encode(f"{p.username}:{p.password}".encode()).decode()
s = socket.create_connection((p.hostname, p.port), timeout=15)
s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
          f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    c = s.recv(1)
    if not c:
        break
    head += c
print(head.decode(errors="replace").rstrip(), flush=True)
status = head.split(b" ")[1] if b" " in head else b""
if status != b"200":
    # The error body, up to Content-Length.
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            break
        body += c
    print(body.decode(errors="replace"), flush=True)
elif banner:
    s.settimeout(3)
    try:
        print("banner:", s.recv(100).decode(errors="replace").strip(), flush=True)
    except socket.timeout:
        print("banner: (none within 3 s)", flush=True)
