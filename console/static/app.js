// The console page: renders the snapshots and events of /api/events.
// Plain DOM, textContent only (values from the device are never parsed as
// HTML).
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const MAX_EVENTS = 200, MAX_POINTS = 300;
  const HIDDEN_KINDS = new Set(["sensor", "telemetry"]);
  let snap = null;
  const history = new Map();   // sensor key → [[ms, value], …]
  const rows = new Map();      // desired key → row elements
  const cards = new Map();     // sensor key → card elements
  const shadowCards = new Map();
  let faultsKey = "";
  let lastSeq = 0;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k);
    return e;
  }
  function show(v) {
    if (v === undefined || v === null) return "—";
    if (typeof v === "object") return JSON.stringify(v);
    if (typeof v === "number" && !Number.isInteger(v)) return String(+v.toFixed(3));
    return String(v);
  }
  function json(v) { return v == null ? "{}" : JSON.stringify(v, null, 1); }
  function clock(t) {
    const d = new Date(t);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false });
  }
  function duration(ms) { return ms < 1 ? Math.round(ms * 1000) + " µs" : ms < 1000 ? ms.toFixed(1) + " ms" : (ms / 1000).toFixed(2) + " s"; }
  function num(v) { const n = typeof v === "number" ? v : parseFloat(v); return isFinite(n) ? n : null; }
  // Only a change is written, so the live regions announce changes only.
  function setBadge(node, text, cls) {
    if (node.textContent !== text) node.textContent = text;
    node.className = "badge " + (cls || "");
  }

  // ---- rendering a snapshot ------------------------------------------------
  function render(s) {
    snap = s;
    $("thing").textContent = s.thing || "";
    $("mode").textContent = s.mode ? "agent " + s.mode : "";
    const c = s.connection || {};
    const cls = c.state === "online" ? "ok" : (c.state === "offline" || c.state === "closed") ? "bad" : "warn";
    setBadge($("conn"), "cloud: " + (c.state || "unknown") + (c.drops ? " (" + c.drops + (c.drops === 1 ? " drop)" : " drops)") : ""), cls);
    const err = c.last_error || s.last_error;
    const le = $("lasterror");
    le.hidden = !err;
    le.textContent = err ? "Last error" + (c.last_error_at || s.last_error_at ? " at " + clock(c.last_error_at || s.last_error_at) : "") + ": " + err : "";
    $("readonly").hidden = !!s.write;
    renderKeys(s);
    renderSensors(s);
    renderShadows(s);
    renderFaults(s);
  }

  function renderKeys(s) {
    const body = document.querySelector("#keys tbody");
    for (const k of s.keys || []) {
      let r = rows.get(k.key);
      if (!r) {
        r = makeRow(k);
        rows.set(k.key, r);
        body.append(r.tr);
      }
      r.desired.textContent = show(k.value);
      r.hw.textContent = show(k.hardware);
      r.result.className = "result status-" + (k.status || "none");
      r.result.textContent = k.status || "—";
      if (k.message) r.result.append(el("span", { class: "reason", text: k.message }));
      r.latency.textContent = k.latency_ms ? duration(k.latency_ms) : "—";
      r.button.disabled = !s.can_set_desired;
      r.input.disabled = !s.can_set_desired;
    }
  }

  function hint(k) {
    if (k.choices && k.choices.length) return k.choices.join(" | ");
    if (k.type === "bool") return "true | false";
    if (k.type === "number" && k.min != null) return k.min + "–" + k.max + (k.unit ? " " + k.unit : "");
    return k.type || "JSON value";
  }

  function makeRow(k) {
    const id = "set-" + k.key.replace(/[^A-Za-z0-9_-]/g, "_");
    const tr = el("tr", { "data-key": k.key });
    const input = el("input", { type: "text", id: id, name: "value", placeholder: hint(k), autocomplete: "off", "aria-describedby": id + "-hint" });
    const button = el("button", { type: "submit", text: "Set" });
    const form = el("form", { class: "set" },
      el("label", { for: id, class: "visually-hidden", text: "New desired value for " + k.key }),
      input, button,
      el("span", { id: id + "-hint", class: "visually-hidden", text: "Allowed: " + hint(k) }));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); setDesired(k.key, input, button); });
    // data-label names each cell where the table is laid out as cards
    // (phone width).
    const r = {
      tr, input, button,
      desired: el("td", { class: "desired", "data-label": "Applied" }), hw: el("td", { class: "hardware", "data-label": "Hardware" }),
      result: el("td", { class: "result", "data-label": "Result" }), latency: el("td", { class: "latency", "data-label": "Latency" }),
    };
    tr.append(el("th", { scope: "row", text: k.key }), el("td", { "data-label": "Output", text: k.device + "." + k.property }),
      r.desired, r.hw, r.result, r.latency, el("td", { class: "w", "data-label": "Set desired" }, form));
    return r;
  }

  function parseValue(text) {
    const t = text.trim();
    if (t === "") return undefined;
    try { return JSON.parse(t); } catch (e) { return t; }
  }

  async function post(path, body) {
    const res = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), credentials: "same-origin" });
    let data = {};
    try { data = await res.json(); } catch (e) { /* a plain-text answer */ }
    if (!res.ok) throw new Error(data.error || (res.status + " " + res.statusText));
    return data;
  }

  async function setDesired(key, input, button) {
    const v = parseValue(input.value);
    const msg = $("setmsg");
    if (v === undefined) { msg.textContent = "Type a value for " + key + " first."; input.focus(); return; }
    button.disabled = true;
    try {
      await post("/api/desired", { key: key, value: v });
      msg.textContent = "Sent desired " + key + " = " + JSON.stringify(v) + "; the result shows in the table.";
      input.value = "";
    } catch (e) {
      msg.textContent = "Could not send " + key + ": " + e.message;
    } finally {
      button.disabled = !(snap && snap.can_set_desired);
    }
  }

  function renderSensors(s) {
    const box = $("sensors");
    for (const x of s.sensors || []) {
      let c = cards.get(x.key);
      if (!c) {
        c = makeCard(x);
        cards.set(x.key, c);
        box.append(c.card);
      }
      if (x.history) history.set(x.key, x.history.slice(-MAX_POINTS));
      c.value.textContent = x.error ? "error" : show(x.value);
      c.err.textContent = x.error || "";
      c.err.hidden = !x.error;
      drawChart(x.key);
    }
  }

  function makeCard(x) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 100 40");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    const title = document.createElementNS(ns, "title");
    svg.append(title);
    const line = document.createElementNS(ns, "polyline");
    svg.append(line);
    const value = el("div", { class: "value", "aria-live": "off" });
    const range = el("div", { class: "note" });
    const err = el("div", { class: "error" });
    err.hidden = true;
    const card = el("div", { class: "card", "data-sensor": x.key },
      el("h3", { text: x.key }), el("div", { class: "note", text: x.device + "." + x.property }), value, svg, range, err);
    return { card, value, svg, title, line, range, err };
  }

  function drawChart(key) {
    const c = cards.get(key);
    const pts = history.get(key) || [];
    if (!c) return;
    if (pts.length < 2) { c.line.setAttribute("points", ""); c.title.textContent = key + ": not enough readings yet"; c.range.textContent = ""; return; }
    let lo = Infinity, hi = -Infinity;
    for (const p of pts) { lo = Math.min(lo, p[1]); hi = Math.max(hi, p[1]); }
    const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
    const span = Math.max(1, t1 - t0), h = hi - lo || 1;
    const coords = pts.map((p) => ((p[0] - t0) / span * 100).toFixed(2) + "," + (38 - (p[1] - lo) / h * 36).toFixed(2));
    c.line.setAttribute("points", coords.join(" "));
    const secs = Math.round(span / 1000);
    c.title.textContent = key + " over the last " + secs + " s, from " + lo + " to " + hi;
    c.range.textContent = "last " + secs + " s: " + +lo.toFixed(3) + " – " + +hi.toFixed(3);
  }

  function renderShadows(s) {
    const box = $("shadows");
    for (const d of s.shadows || []) {
      const name = d.name || "(classic)";
      let c = shadowCards.get(name);
      if (!c) {
        c = { desired: el("pre"), reported: el("pre"), delta: el("pre"), head: el("div", { class: "note" }) };
        c.card = el("div", { class: "card", "data-shadow": name }, el("h3", { text: name }), c.head,
          el("dl", {}, el("dt", { text: "desired" }), el("dd", {}, c.desired), el("dt", { text: "reported" }), el("dd", {}, c.reported),
            el("dt", { text: "delta" }), el("dd", {}, c.delta)));
        shadowCards.set(name, c);
        box.append(c.card);
      }
      c.head.textContent = !d.known ? "not fetched yet" : !d.exists ? "does not exist yet" : "version " + d.version + (d.in_sync ? ", in sync" : ", delta pending");
      c.desired.textContent = json(d.desired);
      c.reported.textContent = json(d.reported);
      c.delta.textContent = json(d.delta);
    }
  }

  function renderFaults(s) {
    const fs = s.faults || [];
    $("faultsec").hidden = fs.length === 0;
    const key = JSON.stringify(fs);
    if (key === faultsKey) return;
    faultsKey = key;
    const box = $("faults");
    box.replaceChildren();
    for (const f of fs) {
      const label = f.kind === "restart_broker" ? "Restart the broker" : f.kind === "clear" ? "Clear faults on " + f.device : f.kind.replace("i2c_", "I2C ").toUpperCase().replace("I2C ", "I2C ") + " on " + f.device;
      const b = el("button", { type: "button", class: f.kind === "clear" ? "secondary" : "", "data-fault": f.kind, "data-device": f.device || "", text: label });
      b.addEventListener("click", async () => {
        b.disabled = true;
        $("faultmsg").textContent = label + "…";
        try { await post("/api/fault", { kind: f.kind, device: f.device || "" }); $("faultmsg").textContent = label + ": done."; }
        catch (e) { $("faultmsg").textContent = label + " failed: " + e.message; }
        finally { b.disabled = false; }
      });
      box.append(b);
    }
  }

  // ---- events ----------------------------------------------------------------
  function eventText(e) {
    const parts = [];
    if (e.shadow) parts.push("[" + e.shadow + "]");
    if (e.key) parts.push(e.key);
    else if (e.device) parts.push(e.device + (e.property ? "." + e.property : ""));
    if (e.value !== undefined) parts.push(show(e.value));
    if (e.status) parts.push(e.status);
    if (e.message) parts.push("— " + e.message);
    if (e.latency_ms) parts.push("(" + duration(e.latency_ms) + ")");
    return parts.join(" ");
  }
  function addEvent(e) {
    if (e.seq && e.seq <= lastSeq) return;
    lastSeq = e.seq || lastSeq;
    const list = $("events");
    const li = el("li", { class: "kind-" + e.kind.replace(/[^a-z0-9_]/gi, "_"), "data-kind": e.kind },
      el("time", { datetime: e.time, text: clock(e.time) }), el("span", { class: "k", text: e.kind }), " ", eventText(e));
    li.hidden = HIDDEN_KINDS.has(e.kind) && !$("showreadings").checked;
    list.prepend(li);
    while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  }
  $("showreadings").addEventListener("change", () => {
    const on = $("showreadings").checked;
    for (const li of $("events").children) if (HIDDEN_KINDS.has(li.dataset.kind)) li.hidden = !on;
  });

  function onAgentEvent(e) {
    addEvent(e);
    if (e.kind === "sensor" && e.key) {
      const v = num(e.value);
      if (v !== null) {
        const pts = history.get(e.key) || [];
        pts.push([Date.parse(e.time), v]);
        while (pts.length > MAX_POINTS) pts.shift();
        history.set(e.key, pts);
        const c = cards.get(e.key);
        if (c) { c.value.textContent = show(e.value); drawChart(e.key); }
      }
    }
  }

  // ---- the stream (EventSource reconnects by itself after a restart) ------
  function connect() {
    const es = new EventSource("/api/events");
    es.onopen = () => setBadge($("live"), "page: live", "ok");
    es.onerror = () => setBadge($("live"), "page: reconnecting…", "bad");
    es.addEventListener("status", (m) => {
      const s = JSON.parse(m.data);
      if (s.full) {
        $("events").replaceChildren();
        lastSeq = 0;
        history.clear();
        for (const e of s.events || []) addEvent(e);
      }
      render(s);
      setBadge($("live"), "page: live", "ok");
    });
    es.addEventListener("agent", (m) => onAgentEvent(JSON.parse(m.data)));
  }
  connect();
})();
