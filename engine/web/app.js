// flux-engine console: plain JavaScript over the server's API (docs/api.md). No framework,
// nothing loaded from elsewhere. The token, when the server needs one, stays in this tab's
// session storage and is sent as `Authorization: Bearer …` (no cookies).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
};
const fmt = (n) => (n === null || n === undefined ? "" : Number(n).toLocaleString("en-US"));
const say = (text) => { $("#status").textContent = text || ""; };

// What goes wrong with no place of its own on the page is said in the status line, and kept in
// `window.fluxErrors` (the browser test prints them when it fails).
window.fluxErrors = [];
const failed = (what) => { window.fluxErrors.push(String(what)); say(String(what)); };
window.addEventListener("error", (e) => failed(e.message));
window.addEventListener("unhandledrejection", (e) => failed((e.reason && e.reason.message) || e.reason));

let token = sessionStorage.getItem("flux-token") || "";
let server = null;

function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

async function api(method, path, body) {
  let r;
  try {
    r = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { status: 0, ok: false, json: { error: `cannot reach the server (${method} ${path}): ${e.message || e}` } };
  }
  if (r.status === 401) needToken();
  let json = null;
  try { json = await r.json(); } catch (_) { json = null; }
  return { status: r.status, ok: r.ok, json };
}

function needToken() {
  $("#token-panel").hidden = false;
  $("#token").focus();
}

$("#token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("flux-token", token);
  $("#token-panel").hidden = true;
  start();
});

// ---- routing -------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "pipelines";
  const [view, ...rest] = hash.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  document.querySelectorAll(".view").forEach((v) => (v.hidden = true));
  document.querySelectorAll("nav a").forEach((a) => a.removeAttribute("aria-current"));
  const nav = $("#nav-" + (view === "run" ? "runs" : view));
  if (nav) nav.setAttribute("aria-current", "page");
  stopWatching();
  if (view === "pipelines") { $("#view-pipelines").hidden = false; showPipelines(arg); }
  else if (view === "search") { $("#view-search").hidden = false; }
  else if (view === "runs") { $("#view-runs").hidden = false; showRuns(); }
  else if (view === "run") { $("#view-run").hidden = false; watchRun(arg); }
  else if (view === "health") { $("#view-health").hidden = false; }
}
window.addEventListener("hashchange", route);

// ---- pipelines -----------------------------------------------------------------------------

let pipelines = [];
let checkTimer = null;
let checkSeq = 0;
let dryOk = null; // JSON of the vars a dry run succeeded with

async function showPipelines(name) {
  const r = await api("GET", "/api/pipelines");
  if (!r.ok) return;
  pipelines = r.json.pipelines;
  const list = $("#pipeline-list");
  list.replaceChildren();
  for (const p of pipelines) {
    const b = el("button", {
      type: "button",
      "aria-pressed": String(p.name === name),
      onclick: () => { location.hash = "#pipelines/" + encodeURIComponent(p.name); },
    }, p.name, el("span", { class: "desc", text: (p.description || "") + (p.valid ? "" : " · needs variables") }));
    list.append(el("li", {}, b));
  }
  const p = pipelines.find((x) => x.name === name);
  // The same pipeline shown already keeps its form (and what was typed into it).
  if (p && $("#pipeline-detail").dataset.pipeline !== p.name) showPipeline(p);
}

function varsOf(form, p) {
  const vars = {};
  for (const v of p.vars) {
    const input = form.elements["var-" + v.name];
    const value = input.value;
    const dflt = v.default === null || v.default === undefined ? "" : String(v.default);
    if (value !== "" && value !== dflt) vars[v.name] = value;
  }
  return vars;
}

function showPipeline(p) {
  dryOk = null;
  const box = $("#pipeline-detail");
  box.dataset.pipeline = p.name;
  const form = el("form", { class: "grid form-vars", id: "vars-form", onsubmit: (e) => e.preventDefault() });
  for (const v of p.vars) {
    const id = "var-" + v.name;
    const dflt = v.default === null || v.default === undefined ? "" : String(v.default);
    form.append(
      el("label", { for: id, text: v.name + (v.required ? " (required)" : "") }),
      el("input", { id, name: id, value: dflt, required: v.required, "aria-describedby": "diagnostics",
        oninput: () => scheduleCheck(p, form) }),
    );
  }
  const dry = el("button", { type: "button", id: "btn-dry", onclick: () => startRun(p, form, true) }, "Dry run");
  const real = el("button", { type: "button", id: "btn-run", class: "secondary", disabled: true, onclick: () => startRun(p, form, false) }, "Start run");
  box.replaceChildren(
    el("h3", { text: p.name }),
    el("p", { class: "muted", text: p.description || "" }),
    p.vars.length ? form : el("p", { class: "muted", text: "No template variables." }),
    el("p", { id: "check-state", "aria-live": "polite" }),
    el("div", { id: "diagnostics" }),
    el("div", { class: "run-buttons" }, dry, real, el("span", { id: "dry-state", class: "muted", "aria-live": "polite" })),
    el("pre", { id: "dry-log", class: "log", hidden: true }),
  );
  check(p, form);
}

// The form changed: what the page showed for its old values holds no longer. The check in
// flight (if any) is disregarded, Start run waits for the new check, and a dry run of other
// values is no longer shown as the one that allows it.
function scheduleCheck(p, form) {
  checkSeq++;
  $("#check-state").textContent = "checking…";
  $("#btn-run").disabled = true;
  if (dryOk !== JSON.stringify(varsOf(form, p))) {
    $("#dry-state").textContent = "";
    $("#dry-log").hidden = true;
  }
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => check(p, form), 250);
}

async function check(p, form) {
  const seq = ++checkSeq;
  const vars = varsOf(form, p);
  const r = await api("POST", "/api/pipelines/check", { pipeline: p.name, vars });
  if (seq !== checkSeq || !r.json) return;
  const c = r.json;
  const state = $("#check-state");
  const diags = $("#diagnostics");
  diags.replaceChildren();
  form.querySelectorAll("input").forEach((i) => i.classList.remove("invalid"));
  if (!r.ok) { state.textContent = c.error; return; }
  for (const d of c.diagnostics) {
    const where = d.line ? `line ${d.line}, column ${d.column}` : d.file;
    const box = el("div", { class: "diag " + d.severity, "data-line": d.line || "" },
      el("strong", { text: `${d.severity} at ${where}: ` }), d.message);
    if (d.field) box.append(el("div", { class: "muted", text: "key: " + d.field }));
    if (d.text !== null && d.text !== undefined) {
      const num = String(d.line);
      box.append(el("pre", { text: `${num} | ${d.text}\n${" ".repeat(num.length)} | ${" ".repeat(Math.max(0, d.column - 1))}${"^".repeat(Math.max(1, d.width || 1))}` }));
    }
    if (d.help) box.append(el("div", { class: "muted", text: "help: " + d.help }));
    diags.append(box);
    const m = /`([a-z_][a-z0-9_]*)`/i.exec(d.message);
    if (m && form.elements["var-" + m[1]]) form.elements["var-" + m[1]].classList.add("invalid");
  }
  const targets = c.targets && c.targets.length ? ` · writes to Kinesis stream ${c.targets.join(", ")}` : "";
  state.textContent = c.ok ? `valid: ${c.stages} stages${targets}` : `${c.diagnostics.filter((d) => d.severity === "error").length} error(s)`;
  $("#btn-dry").disabled = !c.ok;
  const needsDry = c.targets && c.targets.length > 0;
  $("#btn-run").disabled = !c.ok || (needsDry && dryOk !== JSON.stringify(vars));
  $("#btn-run").title = needsDry ? "A replay starts after a successful dry run with the same variables" : "";
}

async function startRun(p, form, dryRun) {
  const vars = varsOf(form, p);
  const r = await api("POST", "/api/runs", { pipeline: p.name, vars, dry_run: dryRun });
  if (!r.ok) { say(r.json ? r.json.error : "cannot start"); return; }
  if (!dryRun) { location.hash = "#run/" + r.json.id; return; }
  const stateEl = $("#dry-state");
  const log = $("#dry-log");
  stateEl.textContent = `dry run ${r.json.id}: ${r.json.state}`;
  let v = r.json;
  while (v.state === "queued" || v.state === "running") {
    await new Promise((res) => setTimeout(res, 500));
    const g = await api("GET", "/api/runs/" + v.id);
    if (!g.ok) return;
    v = g.json;
    stateEl.textContent = `dry run ${v.id}: ${v.state}`;
  }
  log.hidden = false;
  log.textContent = v.log.join("\n");
  stateEl.textContent = `dry run ${v.id}: ${v.state}` + (v.error ? ` (${v.error})` : "");
  if (v.state === "succeeded") dryOk = JSON.stringify(vars);
  check(p, form);
}

// ---- search --------------------------------------------------------------------------------

let searchAbort = null;

$("#search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (searchAbort) searchAbort.abort();
  const body = { archive: $("#s-archive").value.trim(), stream: $("#s-stream").value.trim(), limit: Number($("#s-limit").value) || 50 };
  const opt = (id, key) => { const v = $(id).value.trim(); if (v) body[key] = v; };
  opt("#s-from", "from"); opt("#s-to", "to"); opt("#s-where", "where");
  const shards = $("#s-shards").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (shards.length) body.shards = shards;
  const tbody = $("#s-results tbody");
  tbody.replaceChildren();
  $("#s-error").textContent = "";
  $("#s-counts").textContent = "searching…";
  searchAbort = new AbortController();
  $("#s-cancel").disabled = false;
  const started = performance.now();
  try {
    const r = await fetch("/api/search", { method: "POST", headers: headers(true), body: JSON.stringify(body), signal: searchAbort.signal });
    if (!r.ok) {
      if (r.status === 401) needToken();
      const e = await r.json().catch(() => ({ error: r.statusText }));
      const diags = e.details && e.details.diagnostics ? "\n" + e.details.diagnostics.map((d) => d.rendered).join("") : "";
      $("#s-error").textContent = e.error + diags;
      $("#s-counts").textContent = "";
      return;
    }
    await readLines(r, (line) => {
      const m = JSON.parse(line);
      if (m.type === "record") addResult(tbody, m.envelope);
      else if (m.type === "progress") showCounts(m.counts, "searching…");
      else if (m.type === "end") {
        showCounts(m.counts, m.complete ? "done" : `stopped (${m.reason})`);
        if (m.error) $("#s-error").textContent = m.error;
      }
    });
  } catch (e) {
    if (e.name === "AbortError") $("#s-counts").textContent += " · cancelled";
    else $("#s-error").textContent = String(e);
  } finally {
    $("#s-cancel").disabled = true;
    searchAbort = null;
    console.debug("search took", Math.round(performance.now() - started), "ms");
  }
});

$("#s-cancel").addEventListener("click", () => { if (searchAbort) searchAbort.abort(); });

function showCounts(c, what) {
  $("#s-counts").textContent = `${what}: ${fmt(c.matched)} matched, ${fmt(c.returned)} shown · ${fmt(c.records_scanned)} records scanned · objects ${fmt(c.objects_read)} read of ${fmt(c.objects_listed)} listed (${fmt(c.objects_pruned)} pruned), ${fmt(c.bytes_read)} bytes · ${c.elapsed_seconds.toFixed(2)} s`;
}

function addResult(tbody, env) {
  const payload = typeof env.data === "string" ? env.data : JSON.stringify(env.data);
  const detail = el("tr", { class: "record-detail", hidden: true },
    el("td", { colspan: "5" }, el("pre", { class: "record", text: JSON.stringify(env, null, 2) })));
  const toggle = el("button", { type: "button", class: "link", "aria-expanded": "false",
    onclick: () => { detail.hidden = !detail.hidden; toggle.setAttribute("aria-expanded", String(!detail.hidden)); } },
    env.arrival_ts);
  tbody.append(el("tr", { class: "record-row" },
    el("td", {}, toggle), el("td", { text: env.shard_id }), el("td", { class: "num", text: env.sequence_number }),
    el("td", { text: env.partition_key }), el("td", { class: "payload", text: payload })), detail);
}

async function readLines(response, onLine) {
  const reader = response.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.trim()) onLine(line);
    }
  }
  if (buf.trim()) onLine(buf);
}

// ---- runs ----------------------------------------------------------------------------------

async function showRuns() {
  const r = await api("GET", "/api/runs");
  if (!r.ok) return;
  const tbody = $("#run-table tbody");
  tbody.replaceChildren();
  for (const run of r.json.runs) {
    tbody.append(el("tr", {},
      el("td", {}, el("a", { href: "#run/" + run.id, text: run.id })),
      el("td", { text: run.pipeline }),
      el("td", {}, el("span", { class: "badge " + run.state, text: run.state })),
      el("td", { text: run.dry_run ? "dry run" : "run" }),
      el("td", { text: run.who }),
      el("td", { text: run.created_at })));
  }
  if (!r.json.runs.length) tbody.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "No runs yet." })));
}

let watchAbort = null;
function stopWatching() { if (watchAbort) { watchAbort.abort(); watchAbort = null; } }

async function watchRun(id) {
  $("#r-id").textContent = id;
  $("#r-cancel").onclick = async () => {
    const r = await api("POST", `/api/runs/${id}/cancel`, {});
    say(r.ok ? "cancel requested" : r.json.error);
  };
  watchAbort = new AbortController();
  try {
    const r = await fetch(`/api/runs/${id}/events`, { headers: headers(false), signal: watchAbort.signal });
    if (!r.ok) { const e = await r.json().catch(() => ({})); $("#r-error").textContent = e.error || r.statusText; return; }
    await readLines(r, (line) => { if (line.startsWith("data: ")) renderRun(JSON.parse(line.slice(6))); });
  } catch (e) {
    if (e.name !== "AbortError") $("#r-error").textContent = String(e);
  }
}

function renderRun(v) {
  const badge = $("#r-state");
  badge.textContent = v.state;
  badge.className = "badge " + v.state;
  $("#r-meta").textContent = `${v.pipeline}${v.dry_run ? " (dry run)" : ""} · by ${v.who} · submitted ${v.created_at}` + (v.targets.length ? ` · into ${v.targets.join(", ")}` : "");
  const p = v.progress;
  const frac = p && p.fraction !== null ? p.fraction : (v.state === "succeeded" ? 1 : null);
  const bar = $("#r-progress");
  if (frac === null) bar.removeAttribute("value"); else bar.value = frac;
  $("#r-fraction").textContent = frac === null ? "" : Math.floor(frac * 100) + " %";
  $("#r-eta").textContent = p && p.eta_seconds !== null && !["succeeded", "failed", "cancelled"].includes(v.state) ? `ETA ${Math.ceil(p.eta_seconds)} s` : "";
  $("#r-cancel").disabled = !(v.state === "queued" || v.state === "running");
  $("#r-error").textContent = v.error || "";
  const tbody = $("#r-stages tbody");
  tbody.replaceChildren();
  for (const s of p ? p.stages : []) {
    const pr = el("progress", { max: "1", "aria-label": `${s.id} progress` });
    if (s.fraction !== null) pr.value = s.fraction;
    const lag = s.behind_ms !== null ? (s.behind_ms / 1000).toFixed(1) + " s" : "";
    tbody.append(el("tr", { "data-stage": s.id },
      el("th", { scope: "row", text: `${s.id} (${s.role} ${s.type})` }),
      el("td", {}, pr, s.fraction !== null ? " " + Math.floor(s.fraction * 100) + " %" : ""),
      el("td", { class: "num", text: fmt(s.records_in) }),
      el("td", { class: "num", text: fmt(s.counts_delivered ? s.delivered : s.records_out) }),
      el("td", { class: "num", text: fmt(Math.round(s.records_per_second)) }),
      el("td", { class: "num", text: fmt(s.throttled) }),
      el("td", { class: "num", text: fmt(s.retried) }),
      el("td", { class: "num", text: fmt(s.dead_lettered) }),
      el("td", { class: "num", text: lag })));
  }
  $("#r-log").textContent = v.log.join("\n");
  const out = v.output;
  $("#r-output-count").textContent = out ? fmt(out.total) : "0";
  $("#r-output").textContent = out ? out.lines.join("\n") + (out.total > out.lines.length ? `\n… ${out.total - out.lines.length} more` : "") : "";
  $("#r-summary").textContent = v.summary ? JSON.stringify(v.summary, null, 2) : "";
}

// ---- archive health ------------------------------------------------------------------------

$("#health-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#h-error").textContent = "";
  const box = $("#h-report");
  box.replaceChildren(el("p", { class: "muted", text: "checking…" }));
  const r = await api("POST", "/api/archive/status", { archive: $("#h-archive").value.trim() });
  box.replaceChildren();
  if (!r.ok) { $("#h-error").textContent = r.json ? r.json.error : "failed"; return; }
  const rep = r.json;
  box.append(el("p", {}, el("span", { class: "badge " + (rep.healthy ? "succeeded" : "failed"), text: rep.healthy ? "healthy" : "needs action" }), ` ${rep.archive} · checked ${rep.checked_at}`));
  for (const s of rep.streams) {
    box.append(el("h3", { text: `stream ${s.stream}` }));
    for (const pr of s.problems) box.append(el("div", { class: "diag", text: typeof pr === "string" ? pr : pr.message }));
    const t = el("table", { class: "results" }, el("thead", {}, el("tr", {},
      ...["Shard", "Objects", "Bytes", "Checkpoint sequence", "Last record", "Checkpoint age"].map((h) => el("th", { scope: "col", text: h })))));
    const tb = el("tbody");
    for (const sh of s.shards) {
      const cp = sh.checkpoint || {};
      tb.append(el("tr", {}, el("td", { text: sh.shard_id }), el("td", { class: "num", text: fmt(sh.objects) }), el("td", { class: "num", text: fmt(sh.bytes) }),
        el("td", { class: "num", text: cp.sequence_number || "none" }), el("td", { text: cp.arrival_ts || "" }),
        el("td", { class: "num", text: cp.age_seconds !== undefined ? fmt(cp.age_seconds) + " s" : "" })));
    }
    t.append(tb);
    box.append(t);
    const lease = s.lease && s.lease.state !== "none" ? `lease: ${s.lease.state} by ${s.lease.run_id || "?"}` : "lease: none held";
    box.append(el("p", { class: "muted", text: `${lease} · ${s.gaps.length} gap(s) · ${s.runs_total} run manifest(s)` }));
    if (s.runs.length) {
      box.append(el("ul", {}, ...s.runs.map((m) => el("li", { text: `${m.run_id} (${m.pipeline}): ${m.status}, ${fmt(m.records)} records in ${fmt(m.objects)} objects, finished ${m.finished_at}` }))));
    }
  }
});

// ---- start ---------------------------------------------------------------------------------

async function start() {
  const r = await api("GET", "/api/server");
  if (!r.ok) return;
  server = r.json;
  $("#who").textContent = `signed in as ${server.who} · version ${server.version}`;
  const archive = (server.archives && server.archives[0]) || "file://./archive";
  if (!$("#s-archive").value) $("#s-archive").value = archive;
  if (!$("#h-archive").value) $("#h-archive").value = archive;
  route();
}

start();
