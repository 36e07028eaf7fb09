"""Holds one keep-alive connection through the proxy in $HTTPS_PROXY to
https://HOST:PORT, sends a request, waits until the file GO exists, then
sends a second request on the same connection. Prints each status.
Usage: keepalive.py HOST PORT GO"""
import base64, http.client, os, ssl, sys, time, urllib.parse

host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
auth = base64.b64encode(f"{p.username}:{p.password}".encode()).decode()
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
c = http.client.HTTPSConnection(p.hostname, p.port, context=ctx, timeout=10)
c.set_tunnel(host, port, headers={"Proxy-Authorization": "Basic " + auth})
c.request("GET", "/first")
r = c.getresponse(); r.read()
print("first", r.status, flush=True)
for _ in range(200):
    if os.path.exists(go):
        break
    time.sleep(0.05)
try:
    c.request("GET", "/second")
    r = c.getresponse(); body = r.read().decode()
    print("second", r.status, body, flush=True)
except Exception as e:
    print("second failed", type(e).__name__, flush=True)
