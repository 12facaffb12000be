/* haunt-fm dashboard: reads /api/*, renders with DOM nodes and textContent only.
 *
 * Everything shown here came from listeners or Home Assistant, so no data ever
 * goes through HTML parsing: titles like "<img onerror=…>" must show as text.
 */
"use strict";

(() => {
  const KEYS = { token: "hauntfm.token", vibe: "hauntfm.vibe", profile: "hauntfm.profile" };
  const DEFAULT_VIBE = "general";
  const DEFAULT_PROFILE = "default";
  const params = new URLSearchParams(window.location.search);
  const REFRESH_MS = Math.min(Math.max(Number(params.get("refresh")) || 10, 1), 3600) * 1000;

  const $ = (id) => document.getElementById(id);

  // localStorage can be disabled (private modes): fall back to memory for this page.
  const memory = new Map();
  const store = {
    get(key) {
      try {
        const value = window.localStorage.getItem(key);
        return value === null ? (memory.has(key) ? memory.get(key) : null) : value;
      } catch {
        return memory.has(key) ? memory.get(key) : null;
      }
    },
    set(key, value) {
      memory.set(key, value);
      try {
        window.localStorage.setItem(key, value);
      } catch {
        /* memory only */
      }
    },
  };

  /* ---------- DOM helpers (text only) ---------- */

  // Text a listener typed (titles, artists, names, vibes) may carry right-to-left overrides
  // (U+202E). Every element isolates its content (dashboard.css); text composed into one
  // string goes between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE, so an override
  // inside it cannot reverse the words around it.
  const iso = (text) => `\u2068${text ?? ""}\u2069`;

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = String(value);
      else if (key === "className") node.className = value;
      else if (key === "dataset") {
        for (const [name, v] of Object.entries(value)) node.dataset[name] = String(v);
      } else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child); // strings become text nodes
    }
    return node;
  }

  function showMessage(node, message) {
    node.textContent = message || "";
    node.hidden = !message;
  }

  function fmtCount(n) {
    return typeof n === "number" ? n.toLocaleString() : "–";
  }

  function parseTime(iso) {
    if (!iso) return null;
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  function relativeTime(date) {
    const seconds = Math.round((Date.now() - date.getTime()) / 1000);
    if (seconds < -5) {
      // A time to come (a worker's next attempt to load its model).
      const ahead = -seconds;
      if (ahead < 90) return `in ${ahead} s`;
      if (ahead < 90 * 60) return `in ${Math.round(ahead / 60)} min`;
      return `in ${Math.round(ahead / 3600)} h`;
    }
    if (seconds < 45) return "just now";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.round(minutes / 60);
    if (hours < 24) return `${hours} h ago`;
    const days = Math.round(hours / 24);
    if (days < 7) return `${days} d ago`;
    return date.toLocaleDateString();
  }

  function timeNode(iso, fallback = "never") {
    const date = parseTime(iso);
    if (!date) return el("span", { className: "muted", text: fallback });
    return el("time", { datetime: iso, title: date.toLocaleString(), text: relativeTime(date) });
  }

  function refreshTimes() {
    for (const node of document.querySelectorAll("time[datetime]")) {
      const date = parseTime(node.getAttribute("datetime"));
      if (date) node.textContent = relativeTime(date);
    }
  }

  function dotted(node) {
    node.classList.add("dotted");
    return node;
  }

  function hue(name) {
    let h = 0;
    for (const ch of String(name)) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function icon(name) {
    return $(`icon-${name}`).content.firstElementChild.cloneNode(true);
  }

  function badge(profile) {
    const node = el("span", { className: "badge", text: profile, title: `profile: ${profile}` });
    node.style.setProperty("--hue", String(hue(profile)));
    return node;
  }

  function safeHttpUrl(value) {
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  /* ---------- API ---------- */

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function detailOf(data) {
    if (!data || data.detail === undefined || data.detail === null) return "";
    const detail = data.detail;
    if (typeof detail === "string") return detail;
    if (Array.isArray(detail)) {
      return detail
        .map((item) => {
          const loc = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body" && p !== "query") : [];
          return loc.length ? `${loc.join(".")}: ${item.msg}` : String(item.msg ?? "");
        })
        .join("; ");
    }
    return JSON.stringify(detail);
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    const token = store.get(KEYS.token);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "Cannot reach haunt-fm: the network request failed. Is the server running?");
    }
    const raw = await response.text().catch(() => "");
    let data = null;
    if (raw) {
      try {
        data = JSON.parse(raw);
      } catch {
        data = null;
      }
    }
    if (response.status === 401) {
      askForToken(Boolean(token));
      throw new ApiError(401, detailOf(data) || "This haunt-fm needs an API token.");
    }
    if (!response.ok) {
      const detail = detailOf(data) || response.statusText || "request failed";
      throw new ApiError(response.status, `${detail} (HTTP ${response.status})`);
    }
    return data;
  }

  /* ---------- state ---------- */

  const rated = new Map(); // `${profile}|${trackId}|${vibe}` -> "up" | "down", this page's clicks
  let profiles = [];
  let profilesKey = "";
  let tastesKey = "";
  let listensKey = "";
  let recsKey = "";

  function currentVibe() {
    return $("vibe").value.trim() || DEFAULT_VIBE;
  }

  function selectedProfile() {
    return $("profile-filter").value; // "" = all profiles
  }

  function recsProfile() {
    return selectedProfile() || DEFAULT_PROFILE;
  }

  /* ---------- token ---------- */

  function askForToken(refused) {
    $("token-panel").hidden = false;
    $("token-message").textContent = refused
      ? "The saved API token was refused. Enter the current HAUNTFM_API_TOKEN; it is kept in this browser only."
      : "This haunt-fm asks for its API token (HAUNTFM_API_TOKEN). It is kept in this browser only.";
  }

  /* ---------- feedback ---------- */

  function toast(message, kind = "ok") {
    const node = $("toast");
    node.textContent = message;
    node.className = `toast ${kind}`;
    node.setAttribute("role", kind === "error" ? "alert" : "status");
    node.hidden = false;
    window.clearTimeout(toast.timer);
    toast.timer = window.setTimeout(() => {
      node.hidden = true;
    }, kind === "error" ? 10000 : 4000);
  }

  async function sendFeedback({ trackId, rating, profile }) {
    const vibe = currentVibe();
    const saved = await api("/api/feedback", {
      method: "POST",
      body: { track_id: trackId, rating, profile, vibe },
    });
    rated.set(`${saved.profile}|${saved.track_id}|${saved.vibe}`, saved.rating);
    markPressed();
    refresh();
    return saved;
  }

  function thumbs({ trackId, profile, label }) {
    const group = el("div", { className: "thumbs", role: "group", "aria-label": `Rate ${label}` });
    for (const rating of ["up", "down"]) {
      const button = el("button", {
        type: "button",
        className: `thumb ${rating}`,
        title: `Thumbs ${rating} for ${profile}`,
        "aria-label": `Thumbs ${rating}: ${label} (${profile})`,
        "aria-pressed": "false",
        dataset: { rating, trackId, profile },
      });
      button.append(icon(rating));
      button.addEventListener("click", async () => {
        button.disabled = true;
        try {
          const saved = await sendFeedback({ trackId, rating, profile });
          toast(`Thumbs ${saved.rating} saved for ${saved.profile} · ${label} · vibe “${iso(saved.vibe)}”`);
        } catch (err) {
          toast(`Feedback not saved: ${err.message}`, "error");
        } finally {
          button.disabled = false;
        }
      });
      group.append(button);
    }
    return group;
  }

  function markPressed() {
    const vibe = currentVibe();
    for (const button of document.querySelectorAll("button.thumb")) {
      const { profile, trackId, rating } = button.dataset;
      button.setAttribute("aria-pressed", String(rated.get(`${profile}|${trackId}|${vibe}`) === rating));
    }
  }

  /* ---------- panels ---------- */

  function stat(key, label, value) {
    return el(
      "div",
      { className: "stat", dataset: { stat: key } },
      el("span", { className: "stat-value", text: fmtCount(value) }),
      el("span", { className: "stat-label", text: label }),
    );
  }

  function stage(title, counts, order) {
    counts = counts || {};
    const total = order.reduce((sum, key) => sum + (Number(counts[key]) || 0), 0);
    const bar = el("div", { className: "bar", role: "img", "aria-label": `${title} progress` });
    const legend = el("ul", { className: "legend" });
    for (const key of order) {
      const n = Number(counts[key]) || 0;
      if (total > 0 && n > 0) {
        const seg = el("span", { className: `seg seg-${key}` });
        seg.style.width = `${(100 * n) / total}%`;
        bar.append(seg);
      }
      legend.append(
        el(
          "li",
          { dataset: { count: `${title}-${key}` } },
          el("span", { className: `dot seg-${key}`, "aria-hidden": "true" }),
          el("span", { text: key.replace("_", " ") }),
          el("strong", { text: fmtCount(n) }),
        ),
      );
    }
    return el("div", { className: "stage" }, el("h3", { text: title }), bar, legend);
  }

  function fact(label, ...value) {
    return [el("dt", { text: label }), el("dd", {}, ...value)];
  }

  function yesNo(ok, yes, no) {
    return el("span", { className: `pill ${ok ? "pill-ok" : "pill-off"}`, text: ok ? yes : no });
  }

  function towerPill(ok) {
    if (ok === true) return el("span", { className: "pill pill-ok", text: "CLAP text too" });
    if (ok === false) return el("span", { className: "pill pill-off", text: "CLAP text off (collapsed)" });
    return el("span", { className: "pill pill-off", text: "CLAP text unchecked" });
  }

  // History imports: what is imported, into which profile, and how far it got.
  function importNode(item) {
    const source = item.source === "lastfm" ? `Last.fm ${item.user || ""}` : `ListenBrainz ${item.filename || "export"}`;
    const progress = item.progress || {};
    const pct = progress.total ? ` ${Math.min(100, Math.floor((100 * progress.done) / progress.total))} %` : "";
    const counts = `${fmtCount(item.imported)} imported, ${fmtCount(item.duplicates)} duplicates, ${fmtCount(item.skipped)} skipped`;
    const state = item.status === "running" ? `running${pct}` : item.status;
    const stateClass = { running: "running", failed: "error-text" }[item.status] || "muted";
    return el(
      "span",
      { className: "import", dataset: { importId: item.import_id, status: item.status } },
      el("span", { text: `${source.trim()} → ${item.profile}: ` }),
      el("span", { className: stateClass, text: state }),
      el("span", { text: ` · ${counts}` }),
      item.error ? el("span", { className: "error-text", text: ` · ${item.error}` }) : null,
    );
  }

  function importFacts(imports) {
    const running = imports.running || [];
    const shown = running.length ? running : imports.last_finished ? [imports.last_finished] : [];
    if (!shown.length) return [];
    const nodes = [];
    for (const item of shown) {
      if (nodes.length) nodes.push(el("br"));
      nodes.push(importNode(item));
    }
    return fact(running.length ? "Importing" : "Last import", ...nodes);
  }

  /* ---------- embedding worker: model download, retry, runtime ---------- */

  const MB = 1000 * 1000;

  // The model download of a loading worker as a progress bar with "312 of 812 MB (38 %)".
  function downloadNode(download) {
    if (!download) {
      return el("span", {
        className: "running",
        text: "loading the model (nothing downloaded yet: from the cache, or the hub hasn't answered)",
      });
    }
    const done = Number(download.done) || 0;
    const total = Number(download.total) || 0;
    const pct = total ? Math.min(100, Math.floor((100 * done) / total)) : null;
    const bar = el("div", {
      className: "bar download-bar",
      role: "progressbar",
      "aria-label": "Model download",
      "aria-valuemin": "0",
      "aria-valuemax": total ? String(total) : null,
      "aria-valuenow": String(done),
    });
    const seg = el("span", { className: `seg seg-done${pct === null ? " seg-unknown" : ""}` });
    seg.style.width = pct === null ? "100%" : `${pct}%`;
    bar.append(seg);
    const text = total
      ? done >= total
        ? `downloaded ${Math.floor(total / MB)} MB, loading it`
        : `${Math.floor(done / MB)} of ${Math.floor(total / MB)} MB (${pct} %)`
      : `${Math.floor(done / MB)} MB so far`;
    return el("span", { className: "download" }, bar, el("span", { className: "running download-text", text }));
  }

  const threads = (n) => (n ? ` · ${n} thread${n === 1 ? "" : "s"} ·` : "");

  // Which runtime runs the audio tower and why (Embedding runtime in the README).
  function runtimeNode(runtime) {
    if (!runtime) return el("span", { className: "muted", text: "not loaded yet" });
    const asked =
      runtime.requested && runtime.requested !== runtime.runtime ? ` (asked: ${runtime.requested})` : "";
    return el(
      "span",
      { className: "runtime" },
      el("span", { className: "pill pill-ok", text: runtime.runtime }),
      el("span", { className: "muted", text: `${asked}${threads(runtime.threads)}` }),
      runtime.reason ? el("span", { className: "runtime-reason muted", text: ` ${runtime.reason}` }) : null,
    );
  }

  function workerFacts(worker) {
    return [
      ...(worker.state === "loading" ? fact("Model download", downloadNode(worker.download)) : []),
      ...(worker.next_retry_at
        ? fact(
            "Next attempt",
            el("span", { className: "muted", text: "loads the model again " }),
            timeNode(worker.next_retry_at),
          )
        : []),
      ...fact("Embedding runtime", runtimeNode(worker.embedding_runtime)),
    ];
  }

  function renderStatus(s) {
    const p = s.pipeline || {};
    const worker = s.worker || {};
    const discovery = s.discovery || {};
    const previews = s.previews || {};
    const tags = s.tags || {};
    const ha = s.homeassistant || {};
    const outdated = Number((p.embedding || {}).outdated) || 0;
    $("version").textContent = s.version ? `v${s.version}` : "";

    const stateClass =
      { working: "pill-busy", loading: "pill-busy", idle: "pill-ok", error: "pill-bad" }[worker.state] || "pill-off";
    const facts = el(
      "dl",
      { className: "facts" },
      ...fact(
        "Embedding worker",
        el("span", { className: `pill ${stateClass}`, text: worker.state || "unknown" }),
        " ",
        el("span", { className: "mono", text: worker.model || "" }),
      ),
      ...workerFacts(worker),
      ...fact("Last batch", timeNode(worker.last_batch_at)),
      ...fact(
        "Last error",
        worker.last_error
          ? el("span", { className: "error-text", text: worker.last_error })
          : el("span", { className: "muted", text: "none" }),
      ),
      ...fact(
        "Discovery",
        yesNo(discovery.lastfm_configured, "Last.fm configured", "Last.fm not configured"),
        " last run ",
        timeNode(discovery.last_run_at),
        ...(discovery.running
          ? [
              " · ",
              el("span", {
                className: "running",
                text: `running: ${discovery.running.seeds_done || 0} of ${discovery.running.seeds_total} seeds`,
              }),
            ]
          : []),
      ),
      ...(discovery.last_error
        ? fact("Discovery error", el("span", { className: "error-text", text: discovery.last_error }))
        : []),
      ...(previews.last_error
        ? fact("Preview error", el("span", { className: "error-text", text: previews.last_error }))
        : []),
      ...fact(
        "Vibes",
        yesNo(tags.enabled, "grounded in Last.fm tags", "no Last.fm key: no tags"),
        " ",
        towerPill(worker.text_tower_ok),
      ),
      ...(tags.last_error
        ? fact("Tags error", el("span", { className: "error-text", text: tags.last_error }))
        : []),
      ...(outdated > 0
        ? fact(
            "Re-embedding",
            el("span", {
              className: "running",
              text: `${fmtCount(outdated)} vectors of an earlier model are left out until re-embedded with`,
            }),
            " ",
            el("span", { className: "mono", text: (p.embedding || {}).model || "" }),
          )
        : []),
      ...importFacts(s.imports || {}),
      ...fact("Playback", yesNo(ha.configured, "Home Assistant configured", "Home Assistant not configured")),
    );

    $("pipeline-body").replaceChildren(
      el(
        "div",
        { className: "stats" },
        stat("listens", "Listens", p.listens),
        stat("listened_tracks", "Listened tracks", p.listened_tracks),
        stat("tracks", "Tracks", p.tracks),
        stat("candidates", "Candidates", p.candidates),
        stat("feedback", "Feedback", s.feedback),
      ),
      el(
        "div",
        { className: "stages" },
        stage("Preview lookup", p.preview, ["found", "pending", "not_found", "failed"]),
        stage("Embedding", p.embedding, ["done", "pending", "failed", "waiting"]),
        stage("Tags", p.tags, ["done", "pending", "failed"]),
      ),
      facts,
    );

    const warning = $("text-tower-warning");
    if (worker.text_tower_ok === false) {
      warning.replaceChildren(
        el("strong", { text: "Vibe text is off. " }),
        "The text tower of ",
        el("code", { text: worker.model || "the CLAP model" }),
        " gives near-identical embeddings for different prompts, so vibes rest on the library's Last.fm " +
          "tags alone. For vibe text too, set ",
        el("code", { text: "HAUNTFM_CLAP_MODEL=laion/larger_clap_general" }),
        " (its text tower works; the library is re-embedded in the background).",
        worker.text_tower_note ? el("span", { className: "muted", text: ` ${worker.text_tower_note}` }) : null,
      );
      warning.hidden = false;
    } else {
      showMessage(warning, "");
    }
  }

  async function loadStatus() {
    try {
      renderStatus(await api("/api/status"));
      showMessage($("pipeline-error"), "");
    } catch (err) {
      showMessage($("pipeline-error"), `Status unavailable: ${err.message}`);
      throw err;
    }
  }

  function fillSelect(select, options, keep) {
    const current = keep ?? select.value;
    select.replaceChildren(...options.map(([value, text]) => new Option(text, value)));
    select.value = options.some(([value]) => value === current) ? current : options[0]?.[0] ?? "";
  }

  function renderProfiles(list) {
    const key = JSON.stringify(list.map((p) => [p.name, p.display_name, p.listens]));
    if (key === profilesKey) return;
    profilesKey = key;
    profiles = list;
    const labelled = list.map((p) => {
      const distinct = p.display_name && p.display_name.toLowerCase() !== p.name.toLowerCase();
      const shown = distinct ? `${p.name} · ${iso(p.display_name)}` : p.name;
      return [p.name, shown];
    });
    const filter = $("profile-filter");
    // Don't rebuild a select the user has open.
    if (document.activeElement !== filter) {
      const wanted = filter.value || store.get(KEYS.profile) || "";
      fillSelect(filter, [["", "All profiles"], ...labelled], wanted);
      if (filter.value !== wanted && wanted) store.set(KEYS.profile, filter.value);
    }
    const fb = $("fb-profile");
    if (document.activeElement !== fb) fillSelect(fb, labelled, fb.value || selectedProfile() || DEFAULT_PROFILE);
  }

  async function loadProfiles() {
    const data = await api("/api/profiles");
    renderProfiles(data.profiles || []);
    renderTastes(data.profiles || []);
  }

  /* Each profile's tastes (clusters of what it plays): label, share of listening, tracks, artists. */
  function tasteItem(t) {
    const percent = Math.round(100 * Number(t.weight || 0));
    const bar = el("div", { className: "bar", role: "img", "aria-label": `${percent}% of the listening` });
    const seg = el("span", { className: "seg" });
    seg.style.width = `${percent}%`;
    bar.append(seg);
    return el(
      "li",
      { className: "taste", dataset: { index: t.index } },
      el(
        "div",
        { className: "taste-line" },
        el("span", { className: "taste-label", text: t.label }),
        el("span", { className: "taste-weight", text: `${percent}% · ${fmtCount(t.tracks)} tracks` }),
      ),
      bar,
      el("div", { className: "meta taste-artists", text: (t.top_artists || []).join(", ") }),
    );
  }

  function renderTastes(list) {
    const profile = selectedProfile();
    const shown = list.filter((p) => (profile ? p.name === profile : (p.tastes || []).length > 0));
    const key = JSON.stringify([profile, shown.map((p) => [p.name, p.tastes, p.taste_stale])]);
    if (key === tastesKey) return;
    tastesKey = key;
    $("tastes-scope").textContent = profile ? `profile ${profile}` : "all profiles";
    const blocks = shown
      .filter((p) => (p.tastes || []).length > 0)
      .map((p) =>
        el(
          "div",
          { className: "taste-profile", dataset: { profile: p.name } },
          el(
            "h3",
            {},
            badge(p.name),
            el("span", {
              className: "muted small",
              text: `${p.tastes.length} taste${p.tastes.length > 1 ? "s" : ""}${p.taste_stale ? " · rebuilt on next use" : ""}`,
            }),
          ),
          el("ol", { className: "taste-list" }, ...p.tastes.map(tasteItem)),
        ),
      );
    $("tastes").replaceChildren(...blocks);
    $("tastes-empty").hidden = blocks.length > 0;
  }

  function listenItem(e) {
    const label = `${iso(e.title)} by ${iso(e.artist)}`;
    const speaker = e.speaker_name || e.speaker_entity;
    return el(
      "li",
      {
        className: e.skipped ? "item skipped" : "item",
        dataset: { eventId: e.event_id, trackId: e.track_id, profile: e.profile, skipped: Boolean(e.skipped) },
      },
      el(
        "div",
        { className: "item-main" },
        el(
          "div",
          { className: "title-line" },
          el("span", { className: "title", text: e.title }),
          el("span", { className: "artist", text: e.artist }),
        ),
        el(
          "div",
          { className: "meta" },
          badge(e.profile),
          e.skipped
            ? el("span", {
                className: "skip-flag",
                title: "cut short by the next track on the speaker: it feeds no taste",
                text: "skipped",
              })
            : null,
          el("span", { className: "track-id", title: "track id", text: `#${e.track_id}` }),
          dotted(timeNode(e.played_at, "")),
          speaker ? el("span", { className: "speaker dotted", title: e.speaker_entity || "", text: speaker }) : null,
          e.album ? el("span", { className: "album dotted", text: e.album }) : null,
        ),
      ),
      thumbs({ trackId: e.track_id, profile: e.profile, label }),
    );
  }

  async function loadListens() {
    const profile = selectedProfile();
    const query = new URLSearchParams({ limit: "20" });
    if (profile) query.set("profile", profile);
    $("listens-scope").textContent = profile ? `profile ${profile}` : "all profiles";
    try {
      const data = await api(`/api/history/recent?${query}`);
      const events = data.events || [];
      showMessage($("listens-error"), "");
      const key = JSON.stringify([profile, events]);
      if (key !== listensKey) {
        listensKey = key;
        $("listens").replaceChildren(...events.map(listenItem));
        $("listens-empty").hidden = events.length > 0;
        markPressed();
      }
    } catch (err) {
      showMessage($("listens-error"), `Recent listens unavailable: ${err.message}`);
      throw err;
    }
  }

  function recItem(r, profile) {
    const label = `${iso(r.title)} by ${iso(r.artist)}`;
    const preview = r.preview_url ? safeHttpUrl(r.preview_url) : null;
    return el(
      "li",
      { className: "item", dataset: { trackId: r.track_id, profile } },
      el(
        "div",
        { className: "item-main" },
        el(
          "div",
          { className: "title-line" },
          el("span", { className: "title", text: r.title }),
          el("span", { className: "artist", text: r.artist }),
        ),
        el(
          "div",
          { className: "meta" },
          el("span", { className: "score", title: "cosine similarity", text: Number(r.score).toFixed(3) }),
          el("span", { className: "track-id dotted", title: "track id", text: `#${r.track_id}` }),
          r.taste
            ? el("span", { className: "taste-ref dotted", title: "the taste that found it", text: r.taste.label })
            : null,
          r.album ? el("span", { className: "album dotted", text: r.album }) : null,
          preview
            ? el("a", {
                className: "dotted",
                href: preview,
                target: "_blank",
                rel: "noopener noreferrer",
                text: "preview",
              })
            : null,
        ),
      ),
      thumbs({ trackId: r.track_id, profile, label }),
    );
  }

  async function loadRecommendations() {
    const profile = recsProfile();
    $("recs-scope").textContent = `for ${profile}`;
    const note = $("recs-note");
    const query = new URLSearchParams({ profile, limit: "10" });
    try {
      const data = await api(`/api/recommendations?${query}`);
      const recs = data.recommendations || [];
      showMessage($("recs-error"), "");
      showMessage(
        note,
        recs.length ? "" : "No recommendations yet: run discovery and let previews get embedded.",
      );
      const key = JSON.stringify([profile, recs]);
      if (key !== recsKey) {
        recsKey = key;
        $("recommendations").replaceChildren(...recs.map((r) => recItem(r, profile)));
        markPressed();
      }
    } catch (err) {
      recsKey = "";
      $("recommendations").replaceChildren();
      if (err.status === 409) {
        showMessage($("recs-error"), "");
        note.replaceChildren(
          el("strong", { text: `No taste profile yet for ${profile}. ` }),
          "It is built from listened and liked tracks once their previews are embedded: ",
          el("code", { text: `POST /api/admin/build-taste-profile?profile=${profile}` }),
        );
        note.hidden = false;
        return;
      }
      showMessage(note, "");
      showMessage($("recs-error"), `Recommendations unavailable: ${err.message}`);
      throw err;
    }
  }

  /* ---------- radio ---------- */

  let radioKey = "";

  function trackLine(label, track) {
    return el(
      "div",
      { className: "radio-line", dataset: { line: label } },
      el("span", { className: "radio-label", text: label }),
      el("span", { className: "title", text: track.title }),
      " ",
      el("span", { className: "artist", text: track.artist }),
    );
  }

  function radioVibe() {
    const vibe = currentVibe();
    return vibe === DEFAULT_VIBE ? null : vibe;
  }

  // Runs a radio request from a button: the button is off meanwhile, a failure is a toast.
  async function radioAction(button, failed, work) {
    button.disabled = true;
    try {
      await work();
    } catch (err) {
      toast(`${failed}: ${err.message}`, "error");
    } finally {
      button.disabled = false;
      radioKey = "";
      refresh();
    }
  }

  function startRadio(speaker, button) {
    return radioAction(button, "Radio not started", async () => {
      const body = { speaker_entity: speaker, vibe: radioVibe() };
      const radio = await api("/api/radio", { method: "POST", body });
      const first = radio.first_playback || {};
      const problem =
        first.status === "failed" ? ` · not queued yet: ${first.error || "Home Assistant failed"}` : "";
      toast(
        `Radio on for ${radio.profile} · ${radio.queued.length} tracks queued${problem}`,
        problem ? "error" : "ok",
      );
    });
  }

  function stopRadio(speaker, button, stopPlayback) {
    return radioAction(button, "Radio not stopped", async () => {
      const query = stopPlayback ? "?stop_playback=true" : "";
      const radio = await api(`/api/radio/${encodeURIComponent(speaker)}${query}`, { method: "DELETE" });
      const player = radio.stop_playback?.status === "failed" ? ` (player: ${radio.stop_playback.error})` : "";
      toast(`Radio stopped on ${speaker}${player}`, player ? "error" : "ok");
    });
  }

  function speakerItem(speaker, radio, lastEnded) {
    const name = speaker.speaker_name || speaker.speaker_entity;
    const lines = el("div", { className: "radio-lines" });
    const actions = el("div", { className: "radio-actions" });
    if (radio) {
      if (radio.now_playing) lines.append(trackLine("Now", radio.now_playing));
      const next = radio.upcoming[0];
      if (next) lines.append(trackLine("Next", next));
      if (!radio.now_playing && !next) lines.append(el("span", { className: "muted", text: "Queueing…" }));
      const counts =
        `${radio.played.length} played · ${radio.skipped.length} skipped · ${radio.upcoming.length} queued`;
      const avoiding = radio.steer.avoided_artists;
      const avoided = avoiding.length ? ` · avoiding ${avoiding.join(", ")}` : "";
      lines.append(el("span", { className: "muted small", text: counts + avoided }));
      if (radio.playback.last_error) {
        const retrying = radio.playback.next_retry_at ? " · retrying" : "";
        lines.append(
          el("span", { className: "error-text", text: `Home Assistant: ${radio.playback.last_error}${retrying}` }),
        );
      }
      if (radio.now_playing) {
        actions.append(
          thumbs({
            trackId: radio.now_playing.track_id,
            profile: radio.profile,
            label: `${radio.now_playing.title} by ${radio.now_playing.artist}`,
          }),
        );
      }
      const stop = el("button", { type: "button", className: "radio-stop", text: "Stop radio" });
      stop.addEventListener("click", () => stopRadio(speaker.speaker_entity, stop, false));
      const stopAll = el("button", {
        type: "button",
        className: "radio-stop-player",
        text: "Stop radio and player",
      });
      stopAll.addEventListener("click", () => stopRadio(speaker.speaker_entity, stopAll, true));
      actions.append(stop, stopAll);
    } else {
      if (lastEnded) {
        lines.append(
          el("span", {
            className: "muted small radio-ended",
            text: `Last radio ended (${lastEnded.ended_reason}): ${lastEnded.ended_detail || ""}`,
          }),
        );
      }
      const start = el("button", { type: "button", className: "primary radio-start", text: "Start radio" });
      start.setAttribute("aria-label", `Start radio on ${name}`);
      start.addEventListener("click", () => startRadio(speaker.speaker_entity, start));
      actions.append(start);
    }
    return el(
      "li",
      { className: "item", dataset: { speaker: speaker.speaker_entity, radioId: radio ? radio.radio_id : "" } },
      el(
        "div",
        { className: "item-main" },
        el(
          "div",
          { className: "title-line" },
          el("span", { className: "speaker-name", text: name }),
          speaker.speaker_name ? el("span", { className: "artist mono", text: speaker.speaker_entity }) : null,
        ),
        el(
          "div",
          { className: "meta" },
          radio ? badge(radio.profile) : speaker.profile ? badge(speaker.profile) : null,
          radio ? el("span", { className: "pill pill-ok", text: "radio on" }) : null,
          radio && radio.vibe ? el("span", { className: "dotted", text: `vibe “${radio.vibe}”` }) : null,
        ),
        lines,
      ),
      actions,
    );
  }

  async function loadRadio() {
    try {
      const data = await api("/api/radio");
      showMessage($("radio-error"), "");
      const radios = data.radios || [];
      const speakers = data.speakers || [];
      const key = JSON.stringify([radios, speakers]);
      if (key === radioKey) return;
      radioKey = key;
      const active = new Map(radios.filter((r) => r.active).map((r) => [r.speaker_entity, r]));
      const ended = new Map();
      for (const r of radios) if (!r.active && !ended.has(r.speaker_entity)) ended.set(r.speaker_entity, r);
      $("speakers").replaceChildren(
        ...speakers.map((s) => speakerItem(s, active.get(s.speaker_entity), ended.get(s.speaker_entity))),
      );
      $("speakers-empty").hidden = speakers.length > 0;
      markPressed();
    } catch (err) {
      radioKey = "";
      showMessage($("radio-error"), `Radio unavailable: ${err.message}`);
      throw err;
    }
  }

  /* ---------- vibe suggestions: the library's (or the profile's) tags ---------- */

  const TAGS_EVERY_MS = 5 * 60 * 1000;
  let tagsKey = "";
  let tagsAt = 0;

  async function loadTags(force = false) {
    const profile = selectedProfile();
    if (!force && profile === tagsKey && Date.now() - tagsAt < TAGS_EVERY_MS) return;
    const query = new URLSearchParams({ limit: "50" });
    if (profile) query.set("profile", profile);
    const data = await api(`/api/tags?${query}`);
    tagsKey = profile;
    tagsAt = Date.now();
    $("vibe-tags").replaceChildren(
      ...(data.tags || []).map((t) =>
        el("option", { value: t.tag, label: `${t.tag} · ${fmtCount(t.embedded)} embedded tracks` }),
      ),
    );
  }

  /* ---------- refresh loop ---------- */

  let inFlight = null;
  let again = false;
  let timer = 0;

  function refresh() {
    if (inFlight) {
      again = true; // something changed mid-refresh: go once more when this one ends
      return inFlight;
    }
    inFlight = (async () => {
      let problems = [];
      try {
        await loadProfiles();
      } catch (err) {
        problems.push(err);
      }
      const results = await Promise.allSettled([
        loadStatus(),
        loadListens(),
        loadRecommendations(),
        loadRadio(),
        loadTags(),
      ]);
      problems = problems.concat(results.filter((r) => r.status === "rejected").map((r) => r.reason));
      refreshTimes();
      const now = new Date().toLocaleTimeString();
      const unreachable = problems.find((e) => e && e.status === 0);
      const unauthorised = problems.find((e) => e && e.status === 401);
      const banner = $("banner");
      if (unreachable) showMessage(banner, unreachable.message);
      else if (unauthorised) showMessage(banner, `API token needed: ${unauthorised.message}`);
      else showMessage(banner, "");
      if (!unauthorised) $("token-panel").hidden = true;
      $("updated").textContent = problems.length
        ? `updated ${now} · ${problems.length} problem${problems.length > 1 ? "s" : ""}`
        : `updated ${now}`;
      $("updated").classList.toggle("bad", problems.length > 0);
    })().finally(() => {
      inFlight = null;
      window.clearTimeout(timer);
      if (again) {
        again = false;
        refresh();
      } else {
        timer = window.setTimeout(tick, REFRESH_MS);
      }
    });
    return inFlight;
  }

  function tick() {
    if (document.hidden) {
      timer = window.setTimeout(tick, REFRESH_MS);
      return;
    }
    refresh();
  }

  /* ---------- wiring ---------- */

  function init() {
    const vibe = $("vibe");
    const storedVibe = store.get(KEYS.vibe);
    vibe.value = storedVibe === null ? DEFAULT_VIBE : storedVibe;
    $("fb-vibe").textContent = currentVibe();
    vibe.addEventListener("input", () => {
      store.set(KEYS.vibe, vibe.value);
      $("fb-vibe").textContent = currentVibe();
      markPressed();
    });

    const filter = $("profile-filter");
    filter.addEventListener("change", () => {
      store.set(KEYS.profile, filter.value);
      if (filter.value) $("fb-profile").value = filter.value;
      listensKey = "";
      recsKey = "";
      tastesKey = "";
      refresh();
    });

    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token-input").value.trim();
      if (!token) return;
      store.set(KEYS.token, token);
      $("token-input").value = "";
      $("token-panel").hidden = true;
      refresh();
    });

    $("feedback-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.currentTarget;
      const result = $("feedback-result");
      const trackId = Number.parseInt($("fb-track").value, 10);
      if (!Number.isInteger(trackId) || trackId < 1) {
        result.className = "error";
        result.textContent = "Enter a track id (a whole number from 1 up).";
        return;
      }
      const rating = form.querySelector("input[name=rating]:checked")?.value || "up";
      const profile = $("fb-profile").value || DEFAULT_PROFILE;
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        const saved = await sendFeedback({ trackId, rating, profile });
        result.className = "ok";
        result.textContent =
          `Saved thumbs ${saved.rating} for track #${saved.track_id}, ` +
          `profile ${saved.profile}, vibe “${iso(saved.vibe)}” (feedback #${saved.feedback_id}).`;
      } catch (err) {
        result.className = "error";
        result.textContent = `Feedback not saved: ${err.message}`;
      } finally {
        submit.disabled = false;
      }
    });

    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) refresh();
    });
    window.addEventListener("online", () => refresh());

    const storedProfile = store.get(KEYS.profile);
    if (storedProfile) fillSelect(filter, [["", "All profiles"], [storedProfile, storedProfile]], storedProfile);
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
