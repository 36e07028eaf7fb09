#!/usr/bin/env python3
"""Drives the authsome dashboard in headless Chromium, as a person would.

Run by tests/it/dashboard.rs with Playwright for Python pointed at the
system Chromium (no `playwright install`). The environment gives:

  DASH_URL   the one-time link printed by `authsome dashboard --no-browser --json`
  BIN        the authsome binary (the script runs `authsome run -- curl ...` itself)
  UP         the port of the test's HTTPS upstream (api.acme.test, x.acme.test)
  ACME_KEY   the key stored for `acme` by the test (must never appear in a page)
  BETA_KEY   the key this script types into the `beta` connect form
  SHOTS      where to write a screenshot of each page
  MODE       `tour` (the default: everything above), `revoke` (revoke the
             OAuth connection `acmeoauth` through its confirmation page),
             `oauth` (connect it with PKCE) or `device` (with a device code)
  CHROMIUM   the Chromium binary (default /usr/bin/chromium)

Every authsome variable of the test's home is inherited. Exits non-zero with
the failing step on stderr; prints one JSON line on success.
"""

import http.server
import json
import os
import re
import subprocess
import sys
import threading

from playwright.sync_api import expect, sync_playwright

MODE = os.environ.get("MODE", "tour")
URL = os.environ["DASH_URL"]
BIN = os.environ["BIN"]
UP = os.environ["UP"]
ACME_KEY = os.environ.get("ACME_KEY", "")
BETA_KEY = os.environ.get("BETA_KEY", "")
SHOTS = os.environ.get("SHOTS", "")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
BASE = URL.split("/?", 1)[0]
PORT = BASE.rsplit(":", 1)[1]
CMD_SECRET = "cmdsecret-" + os.urandom(6).hex()
CURL = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}\n"]
steps = []


def fail(msg):
    print(f"FAIL after {steps}: {msg}", file=sys.stderr)
    if current is not None:
        print(f"page: {current.url}\n{current.inner_text('body')}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def step(name):
    steps.append(name)
    print(f"step: {name}", file=sys.stderr, flush=True)


def authsome(*args, stdin=None):
    return subprocess.run(
        [BIN, *args], input=stdin, capture_output=True, text=True, timeout=120
    )


def master_key():
    try:
        with open(os.path.join(os.environ["AUTHSOME_HOME"], "master.key")) as f:
            return f.read().strip()
    except OSError:
        return ""


def no_secret(page, where):
    html = page.content()
    for k in (ACME_KEY, BETA_KEY, master_key()):
        if not k:
            continue
        check(k not in html, f"{where}: a key is in the page")
        check(k not in page.url, f"{where}: a key is in the URL")


def focus_visible(page, what):
    """The focused element shows it: an outline or a ring (computed style)."""
    outline, width, ring = page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return [s.outlineStyle, s.outlineWidth, s.boxShadow]; }"
    )
    check((outline != "none" and width != "0px") or ring != "none",
          f"{what}: no visible focus ({outline} {width}, {ring})")


def shot(page, name):
    page.screenshot(path=os.path.join(SHOTS, f"dashboard-{name}.png"), full_page=True)


class Attacker(http.server.BaseHTTPRequestHandler):
    """Another origin (same host, other port: the browser still sends the
    daemon's cookie) whose page auto-submits a form to the dashboard."""

    body = b""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *a):
        pass


def revoke():
    global current
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        current = page
        step("open the link: the OAuth connection is listed")
        page.goto(URL)
        row = page.locator('tr[data-provider="acmeoauth"]')
        expect(row).to_contain_text("OAuth (client_credentials)")
        check("ATCANARY" not in page.content(), "a token in the page")
        step("revoke: a confirmation page first, nothing removed yet")
        row.get_by_role("link", name="Revoke").click()
        expect(page.locator("h1")).to_contain_text("Revoke acmeoauth?")
        page.get_by_role("link", name="Cancel").click()
        expect(row).to_have_count(1)
        row.get_by_role("link", name="Revoke").click()
        page.get_by_role("button", name="Revoke them").click()
        expect(page.get_by_role("status")).to_contain_text("Revoked every connection of acmeoauth")
        expect(row).to_have_count(0)
        browser.close()
    print(json.dumps({"ok": True, "steps": steps}))


def oauth():
    """Connect `acmeoauth` (PKCE) from the dashboard: no client is stored, so
    the daemon's client form comes first, then the test authorization server
    (auth.acme.test, trusted through ignore_https_errors) and its callback."""
    global current
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP auth.acme.test 127.0.0.1"],
        )
        ctx = browser.new_context(ignore_https_errors=True)
        page = ctx.new_page()
        current = page
        step("open the link and start the OAuth sign-in")
        page.goto(URL)
        page.goto(BASE + "/ui/providers/acmeoauth/connect")
        page.get_by_role("button", name="Sign in with").click()
        step("continue to the daemon's OAuth client form")
        page.locator("#continue").click()
        page.fill('input[name="client_id"]', os.environ["CLIENT_ID"])
        page.fill('input[name="client_secret"]', os.environ["CLIENT_SECRET"])
        page.get_by_role("button", name="Continue to").click()
        step("the authorization server sends the browser back to the callback")
        try:
            page.wait_for_url(re.compile(r"/auth/callback/oauth"), timeout=10_000)
        except Exception:
            fail(f"stuck at {page.url}")
        expect(page.locator("body")).to_contain_text("acmeoauth")
        page.goto(BASE + "/")
        row = page.locator('tr[data-provider="acmeoauth"]')
        expect(row).to_contain_text("OAuth (pkce)")
        expect(row).to_contain_text("connected")
        browser.close()
    print(json.dumps({"ok": True, "steps": steps}))


def device():
    """Connect `work` of `acmeoauth` (device code, no OAuth client stored
    yet) from the dashboard: without a client the form says so and offers
    the client fields; with the client id typed in, the code and where to
    enter it are on the page; the test authorization server approves after
    a few polls (out of band), and the connection is listed."""
    global current
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        current = page
        step("open the link and connect the device-code provider")
        page.goto(URL)
        page.goto(BASE + "/ui/providers?q=acmeoauth")
        page.locator('tr[data-provider="acmeoauth"]').get_by_role("link", name="Connect").click()
        page.fill('input[name="connection"]', "work")
        page.get_by_role("button", name="Sign in with").click()
        step("no client configured: the form says so and opens the client fields")
        expect(page.get_by_role("alert")).to_contain_text("no OAuth client is configured")
        page.fill('input[name="connection"]', "work")
        page.get_by_label("Client ID").fill(os.environ["CLIENT_ID"])
        page.get_by_role("button", name="Sign in with").click()
        step("the user code and the verification URL are on the page")
        expect(page.locator("body")).to_contain_text("WDJB-MJHT", timeout=10_000)
        expect(page.locator("body")).to_contain_text("https://auth.acme.test/device")
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            shot(page, "device")
        step("approved out of band: the connection is listed")
        row = page.locator('tr[data-provider="acmeoauth"][data-connection="work"]')
        for _ in range(30):
            page.goto(BASE + "/")
            if row.count():
                break
            page.wait_for_timeout(500)
        expect(row).to_contain_text("OAuth (device_code)")
        expect(row).to_contain_text("connected")
        check("ATCANARY" not in page.content(), "a token in the page")
        browser.close()
    print(json.dumps({"ok": True, "steps": steps}))


def main():
    if MODE == "revoke":
        return revoke()
    if MODE == "oauth":
        return oauth()
    if MODE == "device":
        return device()
    os.makedirs(SHOTS, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--host-resolver-rules=MAP evil.test 127.0.0.1"],
        )
        ctx = browser.new_context(viewport={"width": 1280, "height": 760})
        page = ctx.new_page()
        global current
        current = page

        step("open the one-time link")
        page.goto(URL)
        check(page.url == BASE + "/", f"the token must leave the address bar: {page.url}")
        expect(page.locator('tr[data-provider="acme"]')).to_be_visible()
        expect(page.locator('tr[data-provider="acme"] .badge.default')).to_be_visible()
        no_secret(page, "connections")
        shot(page, "connections")

        step("search the catalogue and connect beta with an API key")
        page.get_by_role("link", name="Providers", exact=True).click()
        page.fill('input[name="q"]', "beta")
        page.press('input[name="q"]', "Enter")
        page.wait_for_url(re.compile(r"q=beta"))
        expect(page.locator('tr[data-provider="beta"]')).to_be_visible()
        expect(page.locator('tr[data-provider="acme"]')).to_have_count(0)
        step("keyboard only: Tab to beta's Connect, Enter, type the key, Enter")
        connect = page.locator('tr[data-provider="beta"]').get_by_role("link", name="Connect")
        for _ in range(40):
            page.keyboard.press("Tab")
            if connect.evaluate("el => el === document.activeElement"):
                break
        else:
            fail("Tab never reached beta's Connect link")
        focus_visible(page, "the Connect link")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/ui/providers/beta/connect"))
        key = page.locator('input[name="api_key"]')
        check(key.get_attribute("type") == "password", "key field")
        expect(key).to_be_focused()
        focus_visible(page, "the key field")
        check(page.locator('label:has(input[name="api_key"])').count() == 1, "the key field has a label")
        shot(page, "connect")
        page.keyboard.type(BETA_KEY)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(re.escape(BASE) + r"/\?done=connected"))
        expect(page.locator('tr[data-provider="beta"]')).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("Connected beta")
        no_secret(page, "after connect")

        step("a following `authsome run` injects the new key")
        out = authsome("run", "--", *CURL, f"https://x.acme.test:{UP}/after-connect")
        check(out.returncode == 0 and out.stdout.strip() == "200", f"{out.stdout} {out.stderr}")

        step("a request appears live on the Requests page")
        page.get_by_role("link", name="Requests", exact=True).click()
        expect(page.locator("#live")).to_have_text("live", timeout=10_000)
        expect(page.locator("#requests tbody tr", has_text="/after-connect")).to_have_count(1)
        out = authsome("run", "--", *CURL, f"https://api.acme.test:{UP}/live-probe")
        check(out.stdout.strip() == "200", f"{out.stdout} {out.stderr}")
        live = page.locator("#requests tbody tr.fresh", has_text="/live-probe")
        expect(live).to_have_count(1, timeout=15_000)
        expect(live).to_contain_text("injected")
        no_secret(page, "requests")
        shot(page, "requests")
        page.goto(BASE + "/ui/requests?provider=beta")
        expect(page.locator("#requests tbody tr", has_text="/after-connect")).to_have_count(1)
        expect(page.locator("#requests tbody tr", has_text="/live-probe")).to_have_count(0)

        step("log out of beta through the page while a run is active: the proxy fails closed")
        # `:` does nothing; its arguments stand for a secret typed on the
        # command line, which the Runs page must not show.
        script = (
            f": --api-key {CMD_SECRET}; "
            f"curl -sS -o /dev/null -w '%{{http_code}}\\n' https://x.acme.test:{UP}/before-logout; "
            "read go; "
            f"curl -sS -o /dev/null -w '%{{http_code}}\\n' https://x.acme.test:{UP}/after-logout"
        )
        proc = subprocess.Popen(
            [BIN, "run", "--", "sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = proc.stdout.readline().strip()
        check(first == "200", f"before logout: {first!r}")
        page.get_by_role("link", name="Runs", exact=True).click()
        expect(page.locator("#runs tbody tr")).to_have_count(1)
        expect(page.locator("#runs tbody tr")).to_contain_text(f"x.acme.test")
        expect(page.locator("#runs tbody tr")).to_contain_text("yes")
        command = page.locator("#runs tbody tr td.command")
        expect(command).to_contain_text("sh -c ': --api-key •••; curl -sS")
        check(CMD_SECRET not in page.content(), "a secret typed on the command line is in the page")
        out = authsome("proxy", "status", "--json")
        runs = json.loads(out.stdout)["runs"]
        check(len(runs) == 1 and runs[0]["command"][:2] == ["sh", "-c"], out.stdout)
        check("--api-key •••;" in runs[0]["command"][2], out.stdout)
        check(CMD_SECRET not in out.stdout, "a typed secret in GET /api/proxy/runs")
        shot(page, "runs")
        page.get_by_role("link", name="Connections", exact=True).click()
        page.locator('tr[data-provider="beta"]').get_by_role("button", name="Log out").click()
        expect(page.get_by_role("status")).to_contain_text("Logged out of beta")
        expect(page.locator('tr[data-provider="beta"]')).to_have_count(0)
        rest, err = proc.communicate("go\n", timeout=60)
        check(rest.strip() == "401", f"after logout: {rest!r} {err}")

        step("add a custom provider from a file, then remove it")
        page.goto(BASE + "/ui/providers")
        mygamma = json.dumps({"name": "mygamma", "auth_type": "api_key", "flow": "api_key",
                            "api_url": ["api.mygamma.test"], "api_key": {}})
        page.set_input_files("#definition-file", files=[
            {"name": "mygamma.json", "mimeType": "application/json", "buffer": mygamma.encode()}])
        expect(page.locator('textarea[name="definition"]')).to_have_value(mygamma)
        page.get_by_role("button", name="Register").click()
        expect(page.get_by_role("status")).to_contain_text("Registered mygamma")
        expect(page.locator('tr[data-provider="mygamma"]')).to_contain_text("custom")
        page.locator('tr[data-provider="mygamma"]').get_by_role("button", name="Remove").click()
        expect(page.get_by_role("status")).to_contain_text("Removed mygamma")
        expect(page.locator('tr[data-provider="mygamma"]')).to_have_count(0)

        step("providers and health pages")
        page.goto(BASE + "/ui/providers")
        shot(page, "providers")
        page.get_by_role("link", name="Health", exact=True).click()
        expect(page.locator('#checks tr[data-check="vault"]')).to_contain_text("passes")
        expect(page.locator('#checks tr[data-check="daemon"]')).to_contain_text("running at")
        step("health: a vault file others can read fails doctor's check, with its hint")
        vault = os.path.join(os.environ["AUTHSOME_HOME"], "vault.db")
        os.chmod(vault, 0o644)
        try:
            # The result is kept for a few seconds: "Check again" runs them anew.
            page.get_by_role("button", name="Check again").click()
            bad = page.locator('#checks tr[data-check="vault file"]')
            expect(bad).to_contain_text("fails")
            expect(bad).to_contain_text(f"run `chmod 600 {vault}` so only you can read it")
            expect(page.get_by_role("status")).to_contain_text("1 check(s) fail")
            no_secret(page, "health")
            shot(page, "health")
        finally:
            os.chmod(vault, 0o600)
        page.get_by_role("button", name="Check again").click()
        expect(page.locator('#checks tr[data-check="vault file"]')).to_have_count(0)

        step("a forged CSRF token is refused")
        row = page.locator('tr[data-provider="acme"]')
        page.goto(BASE + "/")
        row.locator('input[name="csrf"]').first.evaluate("el => { el.value = 'forged'; }")
        row.get_by_role("button", name="Log out").click()
        expect(page.locator("body")).to_contain_text("Refused")
        page.goto(BASE + "/")
        expect(row).to_have_count(1)

        step("a cross-origin POST (with the right token, the cookie sent along) is refused")
        csrf = row.locator('input[name="csrf"]').first.get_attribute("value")
        Attacker.body = (
            f'<form method="post" action="{BASE}/ui/connections/acme/default/logout">'
            f'<input name="csrf" value="{csrf}"></form>'
            "<script>document.forms[0].submit()</script>"
        ).encode()
        srv = http.server.HTTPServer(("127.0.0.1", 0), Attacker)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        page.goto(f"http://127.0.0.1:{srv.server_address[1]}/")
        page.wait_for_url(BASE + "/ui/connections/acme/default/logout")
        expect(page.locator("body")).to_contain_text("Refused")
        step("a page of another port (same site: the cookie is sent) cannot load a dashboard page")
        Attacker.body = (
            f'<a id="go" href="{BASE}/ui/health">health</a>'
            "<script>document.getElementById('go').click()</script>"
        ).encode()
        page.goto(f"http://127.0.0.1:{srv.server_address[1]}/")
        page.wait_for_url(BASE + "/ui/health")
        expect(page.locator("body")).to_contain_text("Refused: dashboard pages open only")
        check("data-check" not in page.content(), "no checks in the refusal")
        srv.shutdown()
        page.goto(BASE + "/ui/health")
        expect(page.locator('#checks tr[data-check="daemon"]')).to_contain_text("running at")
        page.goto(BASE + "/")
        expect(row).to_have_count(1)

        step("a foreign Host (DNS rebinding) gets nothing")
        page.goto(f"http://evil.test:{PORT}/")
        check("host_not_allowed" in page.content(), page.content())
        check("acme" not in page.content().replace("api.acme", ""), "no data")

        step("a browser without the session, and a reused link, get nothing")
        other = browser.new_context()
        q = other.new_page()
        for url in (BASE + "/", BASE + "/ui/requests", URL):
            q.goto(url)
            expect(q.locator("body")).to_contain_text("authsome dashboard")
            check('data-provider="acme"' not in q.content(), f"{url}: data without a session")
        other.close()

        step("dark mode")
        dark = browser.new_context(viewport={"width": 1280, "height": 760}, color_scheme="dark")
        dark.add_cookies(ctx.cookies())
        d = dark.new_page()
        d.goto(BASE + "/")
        expect(d.locator('tr[data-provider="acme"]')).to_be_visible()
        shot(d, "connections-dark")
        step("dark mode, keyboard: the skip link shows on the first Tab and leads to the content")
        d.keyboard.press("Tab")
        skip = d.get_by_role("link", name="Skip to the content")
        expect(skip).to_be_focused()
        box = skip.bounding_box()
        check(box is not None and box["x"] >= 0 and box["y"] >= 0, f"skip link off screen: {box}")
        focus_visible(d, "the skip link (dark)")
        d.keyboard.press("Enter")
        check(d.evaluate("() => document.activeElement.id") == "main", "focus did not move to main")
        for _ in range(10):
            d.keyboard.press("Tab")
            if d.evaluate("() => document.activeElement.tagName") == "BUTTON":
                break
        focus_visible(d, "a button (dark)")
        shot(d, "focus-dark")
        step("dark mode: the revoke confirmation by keyboard (then cancelled)")
        d.goto(BASE + "/ui/connections/acme/revoke")
        for _ in range(20):
            d.keyboard.press("Tab")
            if d.evaluate("() => document.activeElement.textContent") == "Cancel":
                break
        else:
            fail("Tab never reached Cancel")
        d.keyboard.press("Enter")
        d.wait_for_url(BASE + "/")
        expect(d.locator('tr[data-provider="acme"]')).to_have_count(1)
        dark.close()

        step("sign out")
        page.goto(BASE + "/")
        page.get_by_role("button", name="Sign out").click()
        page.goto(BASE + "/")
        expect(page.locator('tr[data-provider="acme"]')).to_have_count(0)
        browser.close()
    print(json.dumps({"ok": True, "steps": steps}))


current = None

if __name__ == "__main__":
    try:
        main()
    except Exception:
        if current is not None:
            try:
                print(f"page at failure: {current.url}\n{current.inner_text('body')}", file=sys.stderr)
            except Exception:
                pass
        raise
