// Live tenant pages: one websocket per page (ws/tenants/<slug>/; the operators' diag page: ws/ops/), no polling
// while connected.
// The server sends a snapshot on connect, then one message per change (triggers/live/broadcast.py):
// trigger.status, trigger.pods, deployment, delivery, diag; operators' pages (ws/ops/: the all-tenants
// overview, diag) get `deliveries` (the triggers that had some) instead of each delivery. Lost connection → reconnect with
// exponential backoff (0.5 s doubling to 15 s, with jitter); the next snapshot refreshes everything.
// Closed with code 4403 (access.revoked: removed, signed out…) → say why and stop reconnecting.
(() => {
  "use strict";
  const indicator = document.getElementById("live-indicator");
  if (!indicator || !("WebSocket" in window)) return;

  const slug = indicator.dataset.liveTenant;
  const socketPath = indicator.dataset.liveSocket || `/ws/tenants/${encodeURIComponent(slug)}/`;
  const root = document.getElementById("live-trigger"); // only on a trigger page
  const opsDiag = document.getElementById("diag-live"); // only on the operators' diagnostics page
  const deliveryList = document.getElementById("delivery-results"); // only on a trigger's deliveries page
  const listTriggerId = deliveryList ? Number(deliveryList.dataset.triggerId) : null;
  const opsOverview = document.getElementById("ops-overview"); // only on the operators' all-tenants overview
  const overview = opsOverview || document.getElementById("tenant-triggers"); // a tenant's or all tenants' overview
  const triggerId = root ? Number(root.dataset.triggerId) : null;
  const MIN_DELAY = 500, MAX_DELAY = 15000, RECENT = 10, ACCESS_REVOKED = 4403;
  const STATUS_LABELS = { pending: "Pending", applying: "Applying", waiting: "Waiting for Knative", ready: "Ready",
    failed: "Failed", error: "Error", superseded: "Superseded" };
  // Other scripts of the page (static/js/logs.js) listen for "relay:message" events on document (every message,
  // the snapshot first after each (re)connect) and send requests with relayLive.send({...}).
  const live = window.relayLive = { state: "connecting", connects: 0, events: [],
    send: (request) => { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(request)); } };
  let socket = null, retryTimer = null, backoff = MIN_DELAY;
  const readyPods = new Map();

  // ------------------------------------------------------------------ helpers
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };
  const hhmmss = (iso) => { const d = new Date(iso); return isNaN(d) ? iso : d.toISOString().slice(11, 19); };

  function setState(name, text) {
    live.state = name;
    indicator.dataset.state = name;
    setText(indicator.querySelector(".live-text"), text);
  }

  // ------------------------------------------------------------------ badges and pod counts
  function applyTrigger(p) {
    if (opsOverview && !document.getElementById(`overview-${p.id}`)) refresh(["ops-overview"]); // a new trigger
    document.querySelectorAll(`[data-trigger-badge="${p.id}"]`).forEach((badge) => {
      badge.className = `badge live-badge live-${p.badge}`;
      badge.dataset.badge = p.badge;
      setText(badge, p.badge_text);
    });
    applyPodCount(p.id, p.ready_pods);
    if (p.id !== triggerId) return;
    applyKnative(p);
    applyNotice(p.notice);
    if (p.last_deployment) applyDeployment(p.last_deployment);
  }

  // The "Knative status" card and the failure notice: the same fields templates/triggers/_live_knative*.html
  // draw from broadcast.trigger_payload, so one trigger.status event refreshes every card.
  function applyKnative(p) {
    const card = document.getElementById("knative-status");
    if (!card) return;
    const field = (name) => card.querySelector(`[data-knative="${name}"]`);
    const row = (name, shown) => card.querySelectorAll(`[data-knative-row="${name}"]`).forEach((r) => { r.hidden = !shown; });
    setText(field("ready"), p.ready || "unknown");
    setText(field("reason"), p.reason || ""); field("reason").hidden = !p.reason;
    setText(field("message"), p.message || ""); row("message", !!p.message);
    setText(field("address_url"), p.address_url || ""); field("address_url").hidden = !p.address_url;
    card.querySelector('[data-knative-empty="address_url"]').hidden = !!p.address_url;
    setText(field("url"), p.url || ""); row("url", !!p.url && p.url !== p.address_url);
    setText(field("latest_ready_revision"), p.latest_ready_revision || "—");
    setText(field("latest_created_revision"), p.latest_created_revision || "—");
    const observed = field("observed_at");
    observed.setAttribute("datetime", p.observed_at || "");
    setText(observed, p.observed_at ? hhmmss(p.observed_at) : "");
    row("observed_at", !!p.observed_at);
  }

  function applyNotice(n) {
    const box = document.getElementById("trigger-notice");
    if (!box) return;
    const current = box.dataset.notice ?? "?"; // unset: the server drew it, compare nothing
    const key = n ? JSON.stringify(n) : "";
    if (current === key) return;
    box.dataset.notice = key;
    if (!n) { box.replaceChildren(); return; }
    const div = el("div", { class: "notice bad", role: "alert" });
    if (n.kind === "old_revision") {
      div.id = "old-revision";
      div.append("Revision ", el("code", {}, n.serving), " still serves traffic; the newest revision ",
        el("code", {}, n.newest), ` failed: ${n.message || ""}`);
    } else {
      div.id = "failure-notice";
      div.textContent = n.text;
    }
    box.replaceChildren(div);
  }

  function applyPodCount(id, count) {
    document.querySelectorAll(`[data-trigger-pods="${id}"]`).forEach((n) => setText(n, count == null ? "—" : String(count)));
    const before = readyPods.get(id);
    readyPods.set(id, count);
    if (id === triggerId && before !== undefined && before !== count) refresh(["scale-timeline", "charts", "pod-savings"]);
  }

  // ------------------------------------------------------------------ trigger page
  function renderPods(pods) {
    const body = document.getElementById("pods-body");
    if (!body) return;
    const rows = pods.map((p) => {
      const tr = el("tr", { "data-pod": p.name });
      const name = el("td"); name.append(el("code", {}, p.name));
      tr.append(name, el("td", {}, p.phase || ""), el("td", {}, p.ready ? "yes" : "no"),
        el("td", {}, String(p.restarts ?? 0)), el("td", {}, p.reason || "—"));
      return tr;
    });
    if (!rows.length) {
      const tr = el("tr", { class: "empty-row" });
      const zero = readyPods.get(triggerId) === 0 ? ": scaled to zero, the next webhook starts one" : "";
      tr.append(el("td", { colspan: "5", class: "muted" }, `No pods${zero}.`));
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function applyDeployment(d) {
    if (overview && ["failed", "error"].includes(d.status)) refresh(["recent-failures"]);
    const card = document.getElementById("deployment-progress");
    if (!card || d.trigger_id !== triggerId) return;
    const known = Number(card.dataset.deploymentId || 0);
    if (d.id < known) return; // an older deployment settling late
    const status = document.getElementById("deployment-status");
    if (d.id !== known || !status || !status.dataset.status) {
      refresh(["deployment-progress", "deployment-history", "revisions"]);
      return;
    }
    status.className = `badge status-${d.status}`;
    status.dataset.status = d.status;
    setText(status, STATUS_LABELS[d.status] || d.status);
    const steps = document.getElementById("deployment-steps");
    if (steps) steps.dataset.status = d.status;
    const detail = document.getElementById("deployment-detail");
    if (detail) {
      detail.replaceChildren();
      if (d.reason) detail.append(el("code", {}, d.reason), " ");
      if (d.message) detail.append(d.message);
      if (d.revision) detail.append(" ", el("small", { class: "muted" }, `revision ${d.revision}`));
    }
    // settled: the history, and the Revisions panel (a new revision, or the Route's new traffic split)
    if (!["pending", "applying", "waiting"].includes(d.status)) refresh(["deployment-history", "revisions"]);
  }

  // The deliveries page and the overview's rows re-read their fragment (filters, pages, counts and
  // percentiles are the server's), throttled like every refresh below.
  const overviewIds = () => overview ? [...document.querySelectorAll("#tenant-triggers tr[id^='overview-']")].map((r) => r.id) : [];
  function overviewDelivery(id) {
    if (document.getElementById(`overview-${id}`)) refresh([`overview-${id}`, "overview-totals", "recent-failures"]);
    else if (opsOverview) refresh(["ops-overview"]);
  }
  function applyDelivery(d) {
    if (deliveryList && d.trigger_id === listTriggerId) refresh(["delivery-results"]);
    if (overview) overviewDelivery(d.trigger_id);
    if (d.trigger_id !== triggerId) return;
    const table = document.getElementById("recent-deliveries");
    if (table) {
      const body = table.tBodies[0];
      const url = root.dataset.deliveryUrl.replace("00000000-0000-0000-0000-000000000000", d.id);
      const tr = el("tr", { "data-delivery": d.id });
      const when = el("td"); when.append(el("a", { href: url }, hhmmss(d.received_at)));
      const req = el("td"); req.append(el("code", {}, `${d.method} ${(d.path || "").slice(0, 40)}`));
      const state = el("td");
      state.append(el("span", { class: `badge state-${d.state}` }, d.state.charAt(0).toUpperCase() + d.state.slice(1)));
      if (d.status) state.append(" ", el("small", {}, String(d.status)));
      const start = el("td");
      start.append(d.cold_start ? el("span", { class: "badge state-deploying" }, "cold") : el("span", { class: "muted" }, "warm"));
      tr.append(when, req, state, el("td", {}, d.latency_ms == null ? "—" : `${Math.round(d.latency_ms)} ms`), start);
      const existing = body.querySelector(`tr[data-delivery="${d.id}"]`);
      if (existing) existing.replaceWith(tr);
      else {
        body.querySelectorAll("tr.empty-row").forEach((r) => r.remove());
        body.prepend(tr);
        while (body.rows.length > RECENT) body.lastElementChild.remove();
      }
    }
    refresh(["charts"]);
  }

  // ------------------------------------------------------------------ fragments re-read from the server
  // After a reconnect (events may have been missed) and for parts the events do not carry (scale timeline,
  // deployment history, Ambassador route, the charts of triggers/pages/charts.py, the deliveries page's table,
  // the overview's rows), the page is fetched once (its own URL: the deliveries page keeps its filters) and
  // those blocks replaced: requests within 150 ms share one fetch, and a page fetches at most once a second
  // (a burst of deliveries redraws the charts, it does not flood the server). Badges and pod counts inside a
  // block stay as the socket last set them, and keyboard focus inside a block returns to the same link.
  const pending = new Set();
  let refreshTimer = null, lastFetch = 0;
  const MIN_GAP = 1000;
  function refresh(ids) {
    if (!root && !opsDiag && !deliveryList && !overview) return;
    ids.forEach((id) => pending.add(id));
    if (refreshTimer) return;
    refreshTimer = setTimeout(doRefresh, Math.max(150, lastFetch + MIN_GAP - Date.now()));
  }
  async function doRefresh() {
    const ids = pending.has("ops-overview") ? ["ops-overview"] : [...pending]; // the whole overview holds the rest
    pending.clear();
    lastFetch = Date.now();
    let html;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      html = await response.text();
    } catch (e) { return; } finally {
      refreshTimer = null;
      if (pending.size) refresh([]); // asked for again while fetching
    }
    const doc = new DOMParser().parseFromString(html, "text/html");
    for (const id of ids) {
      const fresh = doc.getElementById(id), old = document.getElementById(id);
      if (fresh && old) replaceBlock(old, document.importNode(fresh, true));
    }
  }
  function replaceBlock(old, node) {
    for (const attr of ["data-trigger-badge", "data-trigger-pods"]) {
      node.querySelectorAll(`[${attr}]`).forEach((n) => {
        const kept = old.querySelector(`[${attr}="${CSS.escape(n.getAttribute(attr))}"]`);
        if (kept) n.replaceWith(kept);
      });
    }
    const focused = old.contains(document.activeElement) ? document.activeElement : null;
    old.replaceWith(node);
    if (!focused) return;
    const selector = focused.id ? `#${CSS.escape(focused.id)}`
      : focused.getAttribute("href") ? `[href="${CSS.escape(focused.getAttribute("href"))}"]` : null;
    const again = selector && node.querySelector(selector);
    if (again) again.focus({ preventScroll: true });
  }

  // ------------------------------------------------------------------ the socket
  function handle(message) {
    const { type, payload } = message;
    live.events.push({ type, id: payload && (payload.id ?? null), trigger: payload && (payload.trigger_id ?? payload.id ?? null) });
    if (live.events.length > 200) live.events.shift();
    if (type === "snapshot") {
      (payload.triggers || []).forEach(applyTrigger);
      if (opsDiag && live.connects > 1) refresh(["diag-live"]);
      else if (opsOverview && live.connects > 1) refresh(["ops-overview"]);
      else if ((deliveryList || overview) && live.connects > 1) {
        refresh([...(deliveryList ? ["delivery-results"] : []),
          ...(overview ? [...overviewIds(), "overview-totals", "recent-failures"] : [])]);
      }
      else if (live.connects > 1) {
        refresh(["pods-body", "deployment-progress", "deployment-history", "charts", "recent-deliveries",
          "scale-timeline", "trigger-diag", "pod-savings", "revisions"]);
      }
    } else if (type === "trigger.status") applyTrigger(payload);
    else if (type === "trigger.pods") {
      applyPodCount(payload.id, payload.ready_pods);
      if (payload.id === triggerId) renderPods(payload.pods || []);
    } else if (type === "deployment") applyDeployment(payload);
    else if (type === "delivery") applyDelivery(payload);
    else if (type === "deliveries") { if (overview) (payload.trigger_ids || []).forEach(overviewDelivery); }
    else if (type === "diag") refresh([opsDiag ? "diag-live" : "trigger-diag"]);
  }

  function connect() {
    retryTimer = null;
    setState(live.connects ? "reconnecting" : "connecting", live.connects ? "Reconnecting…" : "Connecting…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = socket = live.socket = new WebSocket(`${scheme}//${location.host}${socketPath}`);
    ws.onmessage = (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message.type === "snapshot") {
        live.connects += 1;
        backoff = MIN_DELAY;
        setState("live", "Live");
      }
      if (message.type === "access.revoked") { live.revoked = message.reason || "Access was revoked."; return; }
      handle(message);
      document.dispatchEvent(new CustomEvent("relay:message", { detail: message }));
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      if (event.code === ACCESS_REVOKED) {
        live.revoked = live.revoked || "Access was revoked.";
        setState("revoked", `Not live: ${live.revoked}`);
        return;
      }
      schedule();
    };
  }

  function schedule() {
    const delay = backoff / 2 + Math.random() * backoff / 2; // jitter: spread reconnects of many pages
    backoff = Math.min(backoff * 2, MAX_DELAY);
    setState("reconnecting", `Reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
    retryTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", () => {
    if (retryTimer && !live.revoked) { clearTimeout(retryTimer); connect(); }
  });
  window.addEventListener("pagehide", () => { if (socket) { const ws = socket; socket = null; ws.close(); } });
  window.addEventListener("pageshow", (event) => { if (event.persisted && !socket && !retryTimer && !live.revoked) connect(); });

  document.querySelectorAll("[data-trigger-pods]").forEach((n) => {
    const id = Number(n.dataset.triggerPods);
    if (!readyPods.has(id)) readyPods.set(id, n.textContent === "—" ? null : Number(n.textContent));
  });
  connect();
})();
