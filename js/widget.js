// nglive widget front-end: embeds the kernel's Neuroglancer client and shows binding status.
// Plain ES module, no build step. The server-address logic is exported for tests.

const PROBE_TIMEOUT_MS = 3000;
const ACK_TIMEOUT_MS = 5000;

// Resolves once the status from Python names ``url`` as its server, or after ``ms``.
export function serverAcknowledged(model, url, ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      model.off("change:status", check);
      resolve();
    };
    const check = () => {
      const status = model.get("status");
      if (status && status.server === url) done();
    };
    const timer = setTimeout(done, ms);
    model.on("change:status", check);
    check();
  });
}

export function isLoopbackHost(host) {
  return (
    host === "localhost" ||
    host === "::1" ||
    host === "[::1]" ||
    /^127(\.\d{1,3}){3}$/.test(host)
  );
}

// JupyterLab and Notebook 7 put their config in a JSON script tag; classic uses data-base-url.
export function jupyterBaseUrl(doc = globalThis.document) {
  const el = doc?.getElementById?.("jupyter-config-data");
  if (el) {
    try {
      const cfg = JSON.parse(el.textContent);
      if (cfg.baseUrl) return cfg.baseUrl;
    } catch (_) {
      // fall through
    }
  }
  return doc?.body?.dataset?.baseUrl || null;
}

// Ordered candidate server roots (no trailing slash) for a connection mode.
export function candidateServerUrls({ mode, port, directUrl, location, baseUrl }) {
  const proxied = baseUrl
    ? new URL(`${baseUrl.replace(/\/?$/, "/")}proxy/${port}`, location.origin).href
    : null;
  let order;
  if (mode === "direct") order = [directUrl];
  else if (mode === "proxy") order = [proxied];
  else if (isLoopbackHost(location.hostname)) order = [directUrl, proxied];
  else order = [proxied, directUrl];
  return order.filter(Boolean).map((u) => u.replace(/\/+$/, ""));
}

async function reachable(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), PROBE_TIMEOUT_MS);
  try {
    const sameOrigin = new URL(url, location.href).origin === location.origin;
    // Cross-origin (direct from a notebook page): an opaque answer still proves reachability.
    const resp = await fetch(url, { signal: ctl.signal, mode: sameOrigin ? "cors" : "no-cors" });
    return resp.type === "opaque" || resp.ok;
  } catch (_) {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export async function resolveServerUrl(model) {
  const mode = model.get("connection");
  const port = model.get("port");
  const colab = globalThis.google?.colab?.kernel?.proxyPort;
  if (mode === "colab" || (mode === "auto" && colab)) {
    const url = await colab(port, { cache: false });
    return String(url).replace(/\/+$/, "");
  }
  const candidates = candidateServerUrls({
    mode,
    port,
    directUrl: model.get("direct_url"),
    location: globalThis.location,
    baseUrl: jupyterBaseUrl(),
  });
  const path = model.get("viewer_path");
  for (const url of candidates) {
    if (await reachable(url + path)) return url;
  }
  return candidates[0] || model.get("direct_url");
}

function escapeText(s) {
  return String(s ?? "");
}

export function statusText(status) {
  if (!status || !status.layers) return "starting…";
  const parts = status.layers.map((l) => {
    const gens = Object.entries(l.generations || {})
      .map(([k, v]) => `${k}@${v}`)
      .join(" ");
    const state = l.error ? "error" : l.updating ? "updating…" : l.updated ? `updated ${l.updated}` : "";
    return `${l.name} [${gens}] ${state}`.trim();
  });
  return parts.length ? parts.join(" · ") : "no bound layers";
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "nglive-root";
  root.style.height = model.get("height");
  const frame = document.createElement("iframe");
  frame.className = "nglive-frame";
  frame.setAttribute("allow", "fullscreen; clipboard-write");
  const bar = document.createElement("div");
  bar.className = "nglive-status";
  const info = document.createElement("span");
  info.className = "nglive-status-layers";
  const err = document.createElement("span");
  err.className = "nglive-status-error";
  bar.append(info, err);
  root.append(frame, bar);
  el.append(root);

  const showStatus = () => {
    const status = model.get("status");
    info.textContent = statusText(status);
    err.textContent = status && status.error ? ` ⚠ ${escapeText(status.error)}` : "";
    root.classList.toggle("nglive-has-error", Boolean(status && status.error));
  };
  model.on("change:status", showStatus);
  model.on("change:height", () => (root.style.height = model.get("height")));
  showStatus();

  // Tell the kernel this view exists (and when it goes): a viewer nothing displays and
  // nothing refers to is freed there.
  const viewId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  const announce = (open) => {
    try {
      model.send({ nglive_view: viewId, open });
    } catch (_) {
      // the kernel side is gone already
    }
  };
  announce(true);

  if (model.get("page_origin") !== location.origin) {
    // the kernel's server answers CORS requests from this page's origin
    model.set("page_origin", location.origin);
    model.save_changes();
  }

  let cancelled = false;
  resolveServerUrl(model).then(async (url) => {
    if (cancelled) return;
    root.dataset.serverUrl = url;
    if (model.get("server_url") !== url) {
      model.set("server_url", url);
      model.save_changes();
      // Wait until Python has rewritten the layer sources for this address, so the
      // client does not first fetch from one it cannot reach (a busy kernel: give up
      // waiting after a while; the sources follow as soon as the kernel is free).
      await serverAcknowledged(model, url, ACK_TIMEOUT_MS);
    }
    if (!cancelled) frame.src = url + model.get("viewer_path");
  });
  return () => {
    cancelled = true;
    announce(false);
  };
}

export default { render };
