// One request through the environment's proxy, as a Node program would make
// it. Usage: node client.mjs axios|undici URL [HEADER=VALUE...]
//
// Prints the status on the first line and the body after it. Trust comes from
// NODE_EXTRA_CA_CERTS, the proxy from HTTPS_PROXY (both set by `authsome run`).
// Node 20's built-in fetch ignores the proxy variables (NODE_USE_ENV_PROXY
// needs Node >= 24), hence undici's EnvHttpProxyAgent.
const [lib, url, ...hs] = process.argv.slice(2);
const headers = Object.fromEntries(hs.map((h) => h.split(/=(.*)/s).slice(0, 2)));

if (lib === "axios") {
  const { default: axios } = await import("axios");
  const r = await axios.get(url, { headers, validateStatus: () => true, responseType: "text" });
  console.log(r.status);
  console.log(r.data);
} else if (lib === "undici") {
  const { fetch, EnvHttpProxyAgent } = await import("undici");
  const r = await fetch(url, { headers, dispatcher: new EnvHttpProxyAgent() });
  console.log(r.status);
  console.log(await r.text());
} else {
  console.error(`unknown library ${lib}`);
  process.exit(2);
}
