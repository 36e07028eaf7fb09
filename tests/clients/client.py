"""One request through the environment's proxy, as a Python program would
make it. Usage: client.py requests|httpx|urllib URL [HEADER=VALUE...]

Prints the status on the first line and the body after it. Trust and proxy
come only from the environment `authsome run` sets (HTTPS_PROXY,
REQUESTS_CA_BUNDLE, SSL_CERT_FILE)."""
import sys

lib, url = sys.argv[1], sys.argv[2]
headers = dict(h.split("=", 1) for h in sys.argv[3:])

if lib == "requests":
    import requests

    r = requests.get(url, headers=headers, timeout=20)
    status, body = r.status_code, r.text
elif lib == "httpx":
    import httpx

    # httpx reads HTTPS_PROXY and SSL_CERT_FILE with trust_env (the default).
    with httpx.Client(timeout=20) as c:
        r = c.get(url, headers=headers)
    status, body = r.status_code, r.text
elif lib == "urllib":
    import urllib.request
    import urllib.error

    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            status, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
else:
    sys.exit(f"unknown library {lib}")

print(status)
print(body)
