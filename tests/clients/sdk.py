"""The OpenAI or Anthropic Python SDK through `authsome run`: the client is
built from its environment (the placeholder authsome gives the child), so
the SDK's own key checks run on the placeholder; it sends one request to
BASE_URL and prints the key it holds and the raw answer.
Usage: sdk.py openai|anthropic BASE_URL"""
import sys

which, base = sys.argv[1], sys.argv[2]
if which == "openai":
    from openai import OpenAI

    client = OpenAI(base_url=base, max_retries=0)
else:
    from anthropic import Anthropic

    client = Anthropic(base_url=base, max_retries=0)
raw = client.models.with_raw_response.list()
print("HELD=" + client.api_key, flush=True)
print("STATUS=%d" % raw.http_response.status_code, flush=True)
print(raw.http_response.text, flush=True)
