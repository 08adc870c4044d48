// The Logs panel (templates/triggers/_logs.html): follows a trigger's new log lines over the page's
// websocket (static/js/live.js: "relay:message" events, relayLive.send), pauses and resumes, loads older lines.
//
// - After each snapshot (each (re)connect) the panel sends logs.follow; once the server confirms (logs.following),
//   it fetches from the API the lines newer than the newest it shows (after=<id>): those printed while it was
//   not following (page load, lost connection, paused). Live lines arriving meanwhile wait, then the ones not
//   already shown are appended.
// - Pause sends logs.unfollow and ignores lines; Resume follows again, which catches up as above.
// - New lines append at the bottom; the view scrolls with them only when it was at the bottom. At most MAX_LINES
//   lines stay in the page: the oldest go (and can be loaded again), or, when older lines were loaded, the
//   newest go and the tail pauses.
// - Older lines: the API's page before the oldest line shown, on reaching the top (IntersectionObserver) or by
//   the "Load older lines" button.
// Filters (the panel's data-query) apply to the API requests; live lines are filtered here by pod, revision and
// text as the server does. A panel showing a past range or one delivery (data-live="false") does not follow.
(() => {
  "use strict";
  const panel = document.getElementById("logs");
  if (!panel) return;
  const list = document.getElementById("log-lines");
  const view = document.getElementById("log-view");
  const empty = document.getElementById("log-empty");
  const older = document.getElementById("log-older");
  const olderButton = document.getElementById("log-load-older");
  const start = document.getElementById("log-start");
  const status = document.getElementById("log-status");
  const pauseButton = document.getElementById("log-pause");
  const droppedNote = document.getElementById("log-dropped");
  const triggerId = Number(panel.dataset.triggerId);
  const apiUrl = panel.dataset.apiUrl;
  const query = new URLSearchParams(panel.dataset.query || "");
  const followable = panel.dataset.live === "true";
  const MAX_LINES = 1000, PAGE = 100, CATCH_UP_PAGE = 200, CATCH_UP_PAGES = 5, CONFIRM_WAIT = 1500;

  const logs = window.relayLogs = { following: false, paused: false, catchingUp: false, dropped: 0 };
  let olderCursor = panel.dataset.older ? Number(panel.dataset.older) : null;
  let loadingOlder = false, buffer = null, confirmTimer = null, catchUpAgain = false;
  const shown = new Set([...list.children].map((li) => Number(li.dataset.line)));

  // ------------------------------------------------------------------ drawing lines (as _logs_line.html)
  const el = (tag, attrs = {}, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const clock = (iso) => { const d = new Date(iso); return isNaN(d) ? iso : d.toISOString().slice(11, 23); };
  const shortPod = (pod) => {
    const at = pod.lastIndexOf("-deployment-");
    const tail = at > 0 ? pod.slice(at + "-deployment-".length) : "";
    return tail || pod;
  };
  function lineItem(line) {
    const li = el("li", { "data-line": String(line.id) });
    if (line.stream === "stderr") li.className = "log-stderr";
    const text = el("span", { class: "log-text" }, line.text);
    if (line.cut) text.append(" ", el("span", { class: "log-cut" }, `… ${line.cut} characters cut`));
    li.append(el("time", { class: "log-time", datetime: line.time }, clock(line.time)), " ",
      el("span", { class: "log-pod", title: line.pod }, shortPod(line.pod)), " ",
      el("span", { class: "log-rev" }, line.revision || "—"), " ", text);
    return li;
  }
  const atBottom = () => view.scrollHeight - view.scrollTop - view.clientHeight < 8;
  const newestId = () => (list.lastElementChild ? Number(list.lastElementChild.dataset.line) : null);

  function setOlder(cursor) {
    olderCursor = cursor;
    if (cursor == null && older.contains(document.activeElement)) view.focus({ preventScroll: true });
    older.hidden = cursor == null;
    start.hidden = cursor != null || !list.children.length;
  }

  function append(lines) {
    const fresh = lines.filter((line) => !shown.has(line.id));
    if (!fresh.length) return;
    const follow = atBottom();
    list.append(...fresh.map(lineItem));
    fresh.forEach((line) => shown.add(line.id));
    empty.hidden = true;
    let cut = false;
    while (list.children.length > MAX_LINES) {
      shown.delete(Number(list.firstElementChild.dataset.line));
      list.firstElementChild.remove();
      cut = true;
    }
    if (cut) setOlder(Number(list.firstElementChild.dataset.line)); // the dropped lines can be loaded again
    else start.hidden = olderCursor != null;
    if (follow) view.scrollTop = view.scrollHeight;
  }

  function prepend(lines) {
    const fresh = lines.filter((line) => !shown.has(line.id));
    if (!fresh.length) return;
    const before = view.scrollHeight;
    list.prepend(...fresh.map(lineItem));
    fresh.forEach((line) => shown.add(line.id));
    empty.hidden = true;
    view.scrollTop += view.scrollHeight - before; // the lines the reader was looking at stay in place
    if (list.children.length > MAX_LINES) {
      while (list.children.length > MAX_LINES) {
        shown.delete(Number(list.lastElementChild.dataset.line));
        list.lastElementChild.remove();
      }
      if (!logs.paused) pause("Paused: older lines are shown. Resume to return to the newest.");
    }
  }

  function replaceAll(page) {
    list.replaceChildren();
    shown.clear();
    append(page.results);
    setOlder(page.next && page.results.length ? page.results[0].id : null);
    empty.hidden = list.children.length > 0;
    view.scrollTop = view.scrollHeight;
  }

  // Lines as the server filters them (triggers/logs/queries.py): pod, revision, text in any case.
  const wanted = (line) => (!query.get("pod") || line.pod === query.get("pod"))
    && (!query.get("revision") || line.revision === query.get("revision"))
    && (!query.get("q") || line.text.toLowerCase().includes(query.get("q").toLowerCase()));

  // ------------------------------------------------------------------ the API
  async function page(params) {
    const url = new URL(apiUrl, location.href);
    for (const [k, v] of query) url.searchParams.set(k, v);
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) { const error = new Error(`HTTP ${response.status}`); error.status = response.status; throw error; }
    return response.json();
  }

  async function loadOlder() {
    if (loadingOlder || olderCursor == null) return;
    loadingOlder = true;
    olderButton.setAttribute("aria-disabled", "true"); // not `disabled`: that would drop the keyboard focus
    try {
      const data = await page({ before: olderCursor, page_size: PAGE });
      prepend(data.results);
      setOlder(data.next && data.results.length ? data.results[0].id : null);
    } catch (e) {
      setStatus(e.status === 400 ? "Those lines are gone (kept 7 days); reload to start from the newest."
        : "Could not load older lines; try again.");
    } finally {
      loadingOlder = false;
      olderButton.removeAttribute("aria-disabled");
    }
  }

  // The lines printed while the panel was not following, then those that arrived meanwhile.
  async function catchUp() {
    if (logs.catchingUp) { catchUpAgain = true; return; }
    logs.catchingUp = true;
    buffer = buffer || [];
    try {
      let after = newestId();
      if (after == null) {
        replaceAll(await page({ page_size: PAGE }));
      } else {
        for (let pages = 0; ; pages += 1) {
          if (pages === CATCH_UP_PAGES) { replaceAll(await page({ page_size: PAGE })); break; } // too far behind
          let data;
          try { data = await page({ after, page_size: CATCH_UP_PAGE }); } catch (e) {
            if (e.status !== 400) throw e;
            replaceAll(await page({ page_size: PAGE })); // our newest line was pruned: start from the newest
            break;
          }
          append(data.results);
          if (!data.previous || !data.results.length) break;
          after = data.results[data.results.length - 1].id;
        }
      }
    } catch (e) {
      setStatus("Could not fetch the missed lines; they show after a reload.");
    } finally {
      const waiting = buffer;
      buffer = null;
      logs.catchingUp = false;
      if (!logs.paused && waiting.length) append(waiting);
      if (catchUpAgain) { catchUpAgain = false; catchUp(); }
    }
  }

  // ------------------------------------------------------------------ following
  function setStatus(text) { if (status.textContent !== text) status.textContent = text; }

  function follow() {
    if (!followable || logs.paused || !window.relayLive) return;
    buffer = buffer || []; // lines that come before the catch-up wait for it (they may be newer than missed ones)
    window.relayLive.send({ type: "logs.follow", trigger: triggerId });
    clearTimeout(confirmTimer);
    // the server confirms a new follow; without a word (already following, or a refusal) catch up all the same
    confirmTimer = setTimeout(() => { if (!logs.following) { logs.following = true; followed(); } }, CONFIRM_WAIT);
  }

  function followed() {
    setStatus("Following new lines.");
    catchUp();
  }

  function pause(text) {
    logs.paused = true;
    logs.following = false;
    clearTimeout(confirmTimer);
    if (!logs.catchingUp) buffer = null;
    if (window.relayLive) window.relayLive.send({ type: "logs.unfollow", trigger: triggerId });
    if (pauseButton) pauseButton.setAttribute("aria-pressed", "true");
    setStatus(text || "Paused: new lines are not shown. Press Pause again to resume.");
  }

  function resume() {
    logs.paused = false;
    if (pauseButton) pauseButton.setAttribute("aria-pressed", "false");
    setStatus("Resuming…");
    if (window.relayLive && window.relayLive.state === "live") follow();
    else setStatus("Resumes when the connection is back.");
  }

  document.addEventListener("relay:message", (event) => {
    const { type, payload } = event.detail || {};
    if (type === "snapshot") {
      logs.following = false;
      if (followable && !logs.paused) follow();
    } else if (type === "logs.following" && payload && payload.trigger_id === triggerId) {
      if (logs.paused) return;
      clearTimeout(confirmTimer);
      logs.following = true;
      followed();
    } else if (type === "logs" && payload && payload.trigger_id === triggerId) {
      if (logs.paused || !followable) return;
      const lines = (payload.lines || []).filter(wanted);
      if (buffer) buffer.push(...lines);
      else append(lines);
      if (payload.dropped) {
        logs.dropped += payload.dropped;
        const reload = el("button", { type: "button", class: "small" }, "Reload");
        reload.addEventListener("click", () => location.reload());
        droppedNote.replaceChildren(`${logs.dropped} lines were printed faster than they could be shown live. `, reload);
        droppedNote.hidden = false;
      }
    }
  });

  if (pauseButton) {
    pauseButton.hidden = false;
    pauseButton.addEventListener("click", () => {
      if (logs.paused) resume(); else pause();
    });
    setStatus("Connecting…");
  }
  olderButton.addEventListener("click", loadOlder);
  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => {
      // scrolled to the top; not when the keyboard focused the button (it scrolls into view): Enter loads then
      if (document.activeElement === olderButton) return;
      if (entries.some((entry) => entry.isIntersecting)) loadOlder();
    }, { root: view, rootMargin: "40px 0px 0px 0px" }).observe(document.getElementById("log-sentinel"));
  }
  setOlder(olderCursor);
  view.scrollTop = view.scrollHeight;
  if (window.relayLive && window.relayLive.state === "live" && followable) follow(); // the socket was quicker
})();
