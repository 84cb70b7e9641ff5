// zoneapp zone map: polls /zones and /violations with the API key kept in sessionStorage.
"use strict";
(function () {
  const KEY = "zoneapp.apiKey";
  const REFRESH_MS = 3000;
  const $ = (id) => document.getElementById(id);
  let timer = null;

  // A key may arrive in the URL fragment (#key=..., as `make run` prints it; browsers never
  // send the fragment to the server), for kiosks and automation too: it is
  // moved into sessionStorage and removed from the address bar and history entry.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("key")) {
    sessionStorage.setItem(KEY, hash.get("key"));
    history.replaceState(null, "", location.pathname + location.search);
  }

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  const fmt = (n) => (typeof n === "number" ? n.toLocaleString("en-US") : "–");
  const rate = (n) => (typeof n === "number" ? n.toFixed(1) + "/s" : "–");
  const ms = (s) => (typeof s === "number" ? (s * 1000).toFixed(2) + " ms" : "–");

  function showLogin(message) {
    $("map").hidden = true;
    $("login").hidden = false;
    $("forget").hidden = true;
    $("login-error").textContent = message || "";
    if (timer) { clearTimeout(timer); timer = null; }
  }

  async function api(path) {
    const key = sessionStorage.getItem(KEY);
    const resp = await fetch(path, { headers: { Authorization: "Bearer " + key },
      cache: "no-store", credentials: "omit" });
    if (resp.status === 401) { const e = new Error("unauthorized"); e.status = 401; throw e; }
    if (!resp.ok) { const e = new Error("HTTP " + resp.status); e.status = resp.status; throw e; }
    return resp.json();
  }

  function stat(dl, label, value, cls) {
    dl.appendChild(el("dt", null, label));
    const dd = el("dd", cls, value);
    dl.appendChild(dd);
  }

  function renderZones(data) {
    const zones = data.zones;
    const index = new Map(zones.map((z, i) => [z.name, i]));
    const cols = "repeat(" + zones.length + ", minmax(10rem, 1fr))";
    const grid = $("zones");
    grid.style.gridTemplateColumns = cols;
    grid.replaceChildren();
    for (const z of zones) {
      const card = el("section", "zone " + z.level);
      card.dataset.zone = z.name;
      card.appendChild(el("h3", null, z.name));
      card.appendChild(el("div", "level", z.level));
      const dl = el("dl");
      stat(dl, "records in", fmt(z.consumed), "count-consumed");
      stat(dl, "forwarded out", fmt(z.forwarded), "count-forwarded");
      stat(dl, "quarantined", fmt(z.quarantined), "count-quarantined");
      stat(dl, "forwarded in", fmt(z.forwarded_in), "count-forwarded-in");
      stat(dl, "in rate", rate(z.rates_per_second.consumed), "rate-consumed");
      stat(dl, "p99 latency", ms(z.latency_seconds.p99));
      stat(dl, "lag", fmt(z.consumer_lag), "lag");
      card.appendChild(dl);
      grid.appendChild(card);
    }
    const lanes = $("lanes");
    lanes.style.gridTemplateColumns = cols;
    lanes.replaceChildren();
    for (const b of data.boundaries) {
      const from = index.get(b.source_zone), to = index.get(b.destination_zone);
      if (from === undefined || to === undefined) continue;
      const arrow = el("div", "arrow");
      arrow.dataset.boundary = b.name;
      arrow.style.gridColumn = (Math.min(from, to) + 1) + " / " + (Math.max(from, to) + 2);
      arrow.title = b.sources.join(", ") + " → " + b.destination;
      arrow.appendChild(el("span", "name", b.name));
      arrow.appendChild(el("span", "rate", rate(b.rates_per_second.forwarded)));
      arrow.appendChild(el("span", "blocked", fmt(b.quarantined) + " blocked"));
      lanes.appendChild(arrow);
    }
  }

  function renderViolations(page) {
    const body = $("violations");
    body.replaceChildren();
    for (const v of page.items) {
      const tr = el("tr");
      tr.appendChild(el("td", null, (v.timestamp || "").replace("T", " ").replace("Z", "")));
      tr.appendChild(el("td", null, v.boundary));
      tr.appendChild(el("td", "reason", v.reason));
      tr.appendChild(el("td", null, v.detector || ""));
      tr.appendChild(el("td", null, v.field_path || ""));
      const src = v.source || {};
      tr.appendChild(el("td", null, (src.topic || "") + " [" + src.partition + "]@" + src.offset));
      body.appendChild(tr);
    }
    $("violations-note").textContent = page.items.length ? "" : "none so far";
  }

  async function refresh() {
    try {
      const zones = await api("/zones");
      $("login").hidden = true;
      $("map").hidden = false;
      $("forget").hidden = false;
      renderZones(zones);
      const status = $("status");
      status.className = "status";
      status.textContent = "updated " + zones.generated_at + " · policy " + zones.policy.version +
        " · workers " + zones.workers.answered + (zones.workers.missing ? " (" +
        zones.workers.missing + " not answering)" : "");
      try {
        renderViolations(await api("/violations?limit=15"));
      } catch (e) {
        $("violations").replaceChildren();
        $("violations-note").textContent = e.status === 403
          ? "This key has no analyst role: violations are hidden." : "violations: " + e.message;
      }
    } catch (e) {
      if (e.status === 401 || e.status === 403) {
        sessionStorage.removeItem(KEY);
        showLogin(e.status === 401 ? "That key was not accepted." : "That key may not view stats.");
        return;
      }
      $("status").className = "status stale";
      $("status").textContent = "cannot reach the worker (" + e.message + "); retrying";
    }
    timer = setTimeout(refresh, REFRESH_MS);
  }

  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin("");
  });

  if (sessionStorage.getItem(KEY)) refresh(); else showLogin("");
})();
