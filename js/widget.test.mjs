// Tests of the widget's server-address logic (node --test js/).
import assert from "node:assert/strict";
import test from "node:test";

import {
  candidateServerUrls,
  isLoopbackHost,
  jupyterBaseUrl,
  serverAcknowledged,
  statusText,
} from "./widget.js";

const direct = "http://127.0.0.1:8123";

test("loopback hosts", () => {
  for (const h of ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  for (const h of ["hub.mybinder.org", "10.0.0.1", "jupyter.test", "127.0.0.1.evil.com"]) {
    assert.ok(!isLoopbackHost(h), h);
  }
});

test("local page tries direct first, then the proxy", () => {
  const urls = candidateServerUrls({
    mode: "auto", port: 8123, directUrl: direct,
    location: new URL("http://localhost:8888/lab"), baseUrl: "/",
  });
  assert.deepEqual(urls, [direct, "http://localhost:8888/proxy/8123"]);
});

test("Binder-like page tries the proxy under base_url first", () => {
  const urls = candidateServerUrls({
    mode: "auto", port: 8123, directUrl: direct,
    location: new URL("https://hub.example.org/user/ada-xyz/lab/tree/x.ipynb"),
    baseUrl: "/user/ada-xyz/",
  });
  assert.deepEqual(urls, ["https://hub.example.org/user/ada-xyz/proxy/8123", direct]);
});

test("forced modes and a page without Jupyter config", () => {
  const loc = new URL("http://jupyter.test:9000/lab");
  assert.deepEqual(
    candidateServerUrls({ mode: "direct", port: 1, directUrl: direct, location: loc, baseUrl: "/b" }),
    [direct],
  );
  assert.deepEqual(
    candidateServerUrls({ mode: "proxy", port: 7, directUrl: direct, location: loc, baseUrl: "/b" }),
    ["http://jupyter.test:9000/b/proxy/7"],
  );
  assert.deepEqual(
    candidateServerUrls({ mode: "auto", port: 7, directUrl: direct, location: loc, baseUrl: null }),
    [direct],
  );
});

test("base URL from JupyterLab's config script tag, else from data-base-url", () => {
  const lab = {
    getElementById: (id) =>
      id === "jupyter-config-data" ? { textContent: '{"baseUrl": "/user/x/"}' } : null,
  };
  assert.equal(jupyterBaseUrl(lab), "/user/x/");
  const classic = { getElementById: () => null, body: { dataset: { baseUrl: "/c/" } } };
  assert.equal(jupyterBaseUrl(classic), "/c/");
  assert.equal(jupyterBaseUrl({ getElementById: () => null }), null);
});

test("status line text", () => {
  assert.equal(statusText(null), "starting…");
  assert.equal(statusText({ layers: [] }), "no bound layers");
  const text = statusText({
    layers: [{ name: "shapes", generations: { mesh: 0, properties: 2 }, updated: "12:00:01" }],
  });
  assert.equal(text, "shapes [mesh@0 properties@2] updated 12:00:01");
  assert.match(statusText({ layers: [{ name: "a", generations: {}, error: "bad" }] }), /error/);
});

test("waits for Python to acknowledge the server address, or times out", async () => {
  const handlers = {};
  let status = { server: "http://old" };
  const model = {
    get: () => status,
    on: (ev, fn) => (handlers[ev] = fn),
    off: (ev) => delete handlers[ev],
  };
  const start = Date.now();
  const waiting = serverAcknowledged(model, "http://new", 2000);
  setTimeout(() => {
    status = { server: "http://new" };
    handlers["change:status"]();
  }, 50);
  await waiting;
  assert.ok(Date.now() - start < 1000);
  assert.equal(handlers["change:status"], undefined);
  const t0 = Date.now();
  await serverAcknowledged(model, "http://never", 100);
  assert.ok(Date.now() - t0 >= 90);
});
