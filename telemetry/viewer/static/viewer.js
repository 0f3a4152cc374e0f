// tandem traces: the viewer page. Plain DOM, no dependencies, no inline code (strict CSP).
// Every piece of recorded text reaches the page through textContent, never as HTML.
"use strict";
const app = document.getElementById("app");
const ROW = 22; // timeline row height, px (matches .wf-row)

// ---- helpers ---------------------------------------------------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "style") Object.assign(node.style, v); // CSSOM: allowed by the CSP
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
  }
  return node;
}
const SVGNS = "http://www.w3.org/2000/svg";
function sv(tag, attrs, text) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
const fmtMs = ms => ms == null || isNaN(ms) ? "–" : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(1) + " ms";
const fmtCost = c => c == null ? "–" : Number(c).toFixed(6); // US dollars
// significant digits as the CLI and eval report print them (Python's ".3g" / ".2g")
const sig = (v, digits) => String(Number(Number(v).toPrecision(digits)));
const fmtWh = wh => wh == null || isNaN(wh) ? "–" : sig(wh, 3); // local-compute energy, Wh
const joulesWh = j => j == null ? null : Number(j) / 3600; // a span's tandem.energy.joules in Wh
const fmtCo2 = g => g == null || isNaN(g) ? "–" : sig(g, 2); // grams CO2e
const fmtTime = ns => ns ? new Date(ns / 1e6).toLocaleString() : "–";
const fmtPct = r => r == null ? "–" : (r * 100).toFixed(1) + "%";
const tokens = r => (r.input_tokens == null && r.output_tokens == null) ? "–" : (r.input_tokens || 0) + (r.output_tokens || 0);
const num = v => v == null ? "–" : (typeof v === "number" && !Number.isInteger(v) ? v.toFixed(3) : String(v));

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}
async function getJSON(url) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    throw new HttpError(res.status, body.message || body.error || res.statusText);
  }
  return res.json();
}
function hashParams() { return new URLSearchParams(location.hash.split("?")[1] || ""); }
// rows: elements, or functions making them (only the shown ones are made: big runs stay fast)
function table(id, headers, rows, empty, cap = 200) {
  if (!rows.length) return el("p", { class: "muted", id }, empty);
  const make = r => typeof r === "function" ? r() : r;
  const body = el("tbody", {}, rows.slice(0, cap).map(make));
  const node = el("table", { id }, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))), body);
  if (rows.length <= cap) return node;
  const more = el("button", { class: "show-all", id: id + "-all", onclick: () => { body.append(...rows.slice(cap).map(make)); more.remove(); } }, `show all ${rows.length}`);
  return el("div", {}, node, more);
}
function kv(pairs, id) {
  return el("table", { class: "kv", id }, el("tbody", {}, pairs.filter(p => p[1] !== undefined && p[1] !== null && p[1] !== "")
    .map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, v)))));
}
function longText(text, limit = 300) {
  text = String(text);
  if (text.length <= limit) return el("span", { class: "content-line" }, text);
  return el("details", {}, el("summary", {}, text.slice(0, limit) + "…"), el("pre", {}, text));
}

// ---- runs list -------------------------------------------------------------------------
let runsView = null; // the controls of the runs page while it is shown
let liveTimer = null;
const RUN_FILTERS = ["q", "flow", "status", "model", "escalated", "min_ms", "since", "until"];
const PAGE = 50;

function setRunParam(changes) {
  const p = hashParams();
  for (const [k, v] of Object.entries(changes)) { if (v === "" || v == null) p.delete(k); else p.set(k, v); }
  if (!("offset" in changes)) p.delete("offset");
  const s = p.toString();
  location.hash = "#/" + (s ? "?" + s : "");
}
function options(select, values, labelAll, current) {
  select.replaceChildren(el("option", { value: "" }, labelAll), ...values.map(v => el("option", { value: v }, v)));
  if (current && !values.includes(current)) select.appendChild(el("option", { value: current }, current));
  select.value = current || "";
}
function toLocalInput(seconds) {
  const d = new Date(Number(seconds) * 1000); if (isNaN(d)) return "";
  const pad = n => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
const fromLocalInput = v => v ? String(Math.floor(new Date(v).getTime() / 1000)) : "";
const RELATIVE = ["1h", "24h", "7d", "30d"];

function buildRunsView() {
  let typing = null;
  const search = el("input", { type: "search", id: "search", placeholder: "run id, request id, flow or words of the question",
    oninput: e => { clearTimeout(typing); typing = setTimeout(() => setRunParam({ q: e.target.value.trim() }), 350); },
    onkeydown: e => { if (e.key === "Enter") { clearTimeout(typing); setRunParam({ q: e.target.value.trim() }); } } });
  const flow = el("select", { id: "filter-flow", onchange: e => setRunParam({ flow: e.target.value }) });
  const status = el("select", { id: "filter-status", onchange: e => setRunParam({ status: e.target.value }) },
    ["", "ok", "error"].map(s => el("option", { value: s }, s || "any status")));
  const model = el("select", { id: "filter-model", onchange: e => setRunParam({ model: e.target.value }) });
  const escalated = el("select", { id: "filter-escalated", onchange: e => setRunParam({ escalated: e.target.value }) },
    [["", "escalated or not"], ["yes", "escalated (LLM called)"], ["no", "not escalated"]].map(([v, t]) => el("option", { value: v }, t)));
  const minMs = el("input", { type: "number", id: "filter-min-ms", min: "0", placeholder: "min ms", onchange: e => setRunParam({ min_ms: e.target.value }) });
  const from = el("input", { type: "datetime-local", id: "filter-from", onchange: e => setRunParam({ since: fromLocalInput(e.target.value) }) });
  const to = el("input", { type: "datetime-local", id: "filter-to", onchange: e => setRunParam({ until: fromLocalInput(e.target.value) }) });
  const range = el("select", { id: "filter-since", onchange: e => {
    if (e.target.value === "custom") { from.hidden = to.hidden = false; return; }
    setRunParam({ since: e.target.value, until: "" }); } },
    [["", "any time"], ...RELATIVE.map(r => [r, "last " + r]), ["custom", "from … to …"]].map(([v, t]) => el("option", { value: v }, t)));
  const reload = () => loadRuns(hashParams()).catch(err => { if (runsView) runsView.info.textContent = "could not load the runs: " + (err.message || err); });
  const live = el("input", { type: "checkbox", id: "live", onchange: e => { stopLive(); if (e.target.checked) liveTimer = setInterval(() => { if (!document.hidden) reload(); }, 5000); } });
  const refresh = el("button", { id: "refresh", title: "Reload the list", onclick: reload }, "↻ Refresh");
  const prev = el("button", { id: "page-prev", onclick: () => { const p = hashParams(); setRunParam({ offset: Math.max(0, Number(p.get("offset") || 0) - PAGE) || "" }); } }, "← newer");
  const next = el("button", { id: "page-next", onclick: () => { const p = hashParams(); setRunParam({ offset: Number(p.get("offset") || 0) + PAGE }); } }, "older →");
  const info = el("span", { id: "page-info", class: "muted" });
  const results = el("div", { id: "results" });
  const clear = el("button", { id: "clear-filters", onclick: () => { location.hash = "#/"; } }, "Clear");
  app.replaceChildren(el("section", {}, el("h2", {}, "Runs"),
    el("div", { class: "filters" }, search, flow, status, model, escalated, minMs, range, from, to, clear),
    el("div", { class: "filters" }, refresh, el("label", {}, live, " live (every 5 s)"), info),
    results, el("div", { class: "pager" }, prev, next)));
  from.hidden = to.hidden = true;
  runsView = { search, flow, status, model, escalated, minMs, range, from, to, prev, next, info, results };
}

function syncControls(params) {
  const v = runsView;
  if (document.activeElement !== v.search) v.search.value = params.get("q") || "";
  v.status.value = params.get("status") || "";
  v.escalated.value = params.get("escalated") || "";
  v.minMs.value = params.get("min_ms") || "";
  const since = params.get("since") || "", until = params.get("until") || "";
  const custom = (since && !RELATIVE.includes(since)) || until;
  v.range.value = custom ? "custom" : since;
  v.from.hidden = v.to.hidden = !custom;
  v.from.value = custom && since ? toLocalInput(since) : "";
  v.to.value = custom && until ? toLocalInput(until) : "";
}

async function loadRuns(params) {
  const qs = new URLSearchParams();
  for (const k of RUN_FILTERS) if (params.get(k)) qs.set(k, params.get(k));
  const offset = Number(params.get("offset") || 0);
  qs.set("limit", PAGE); if (offset) qs.set("offset", offset);
  const data = await getJSON("/api/runs?" + qs);
  if (!runsView) return; // the page changed while loading
  const v = runsView;
  options(v.flow, data.flows, "all flows", params.get("flow"));
  options(v.model, data.models, "any model", params.get("model"));
  const rows = data.runs.map(r => el("tr", { class: "run", "data-run": r.trace_id, onclick: () => { location.hash = "#/run/" + r.trace_id; } },
    el("td", {}, fmtTime(r.start_ns)), el("td", {}, r.flow),
    el("td", { class: "status-" + r.status }, r.status),
    el("td", {}, r.llm_called == null ? "–" : r.llm_called ? el("span", { class: "badge up" }, "LLM") : "no"),
    el("td", { class: "num" }, fmtMs(r.duration_ms)), el("td", {}, (r.models || []).join(", ") || "–"),
    el("td", { class: "num" }, r.llm_calls ?? "–"), el("td", { class: "num" }, tokens(r)), el("td", { class: "num run-cost" }, fmtCost(r.cost)),
    el("td", { class: "num run-energy" }, fmtWh(r.energy_wh)),
    el("td", { class: "question", title: r.question || "" }, r.question || ""),
    el("td", { class: "mono muted", title: r.request_id ? "request " + r.request_id : "" }, (r.run_id || r.trace_id).slice(0, 12),
      r.request_id ? el("div", {}, r.request_id.slice(0, 24)) : null)));
  const filtered = RUN_FILTERS.some(k => params.get(k));
  v.results.replaceChildren(rows.length
    ? el("table", { id: "runs" }, el("thead", {}, el("tr", {}, ["Started", "Flow", "Status", "Escalated", "Duration", "Models", "LLM calls", "Tokens", "Cost ($)", "Energy (Wh)", "Question", "Run / request"].map(h => el("th", {}, h)))), el("tbody", {}, rows))
    : el("p", { id: "empty", class: "muted" }, filtered ? "No run matches these filters." : "No runs yet. Run a flow with `tandem run` or send OTLP spans to /v1/traces."));
  v.info.textContent = data.total ? `${offset + 1}–${offset + data.runs.length} of ${data.total} run(s)` : "0 runs";
  v.prev.disabled = offset <= 0;
  v.next.disabled = offset + data.runs.length >= data.total;
}

async function showRuns(params) {
  if (!runsView) buildRunsView();
  syncControls(params);
  await loadRuns(params);
}
function stopLive() { if (liveTimer) clearInterval(liveTimer); liveTimer = null; }

// ---- flow graph ------------------------------------------------------------------------
function pathOf(spans, root) {
  const attr = root && root.attributes["tandem.run.path"];
  if (Array.isArray(attr) && attr.length) return attr;
  return spans.filter(s => s.name.startsWith("node ")).sort((a, b) => a.start_ns - b.start_ns).map(s => s.name.slice(5));
}

function drawGraph(graph, path, failed, ok) {
  const ids = graph.nodes.map(n => n.id);
  const out = {}; ids.forEach(i => out[i] = []);
  graph.edges.forEach(e => { if (out[e.from]) out[e.from].push(e.to); });
  const layer = { "__start__": 0 }; const queue = ["__start__"];
  while (queue.length) { const n = queue.shift(); for (const m of out[n] || []) if (!(m in layer)) { layer[m] = layer[n] + 1; queue.push(m); } }
  let maxLayer = Math.max(0, ...Object.values(layer));
  ids.forEach(i => { if (!(i in layer)) layer[i] = ++maxLayer; });
  if (layer["__end__"] !== undefined) layer["__end__"] = Math.max(...ids.filter(i => i !== "__end__").map(i => layer[i])) + 1;
  const columns = {}; ids.forEach(i => (columns[layer[i]] = columns[layer[i]] || []).push(i));
  const W = 140, H = 34, GX = 60, GY = 22, pos = {};
  let rows = 0;
  for (const [col, members] of Object.entries(columns)) { members.forEach((id, k) => { pos[id] = { x: 10 + col * (W + GX), y: 10 + k * (H + GY) }; }); rows = Math.max(rows, members.length); }
  const width = 20 + (Math.max(...Object.keys(columns).map(Number)) + 1) * (W + GX), height = 20 + rows * (H + GY);
  const svg = sv("svg", { id: "flow-graph", width, height, viewBox: `0 0 ${width} ${height}` });
  const defs = sv("defs"); const marker = sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.appendChild(sv("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8a93a6" })); defs.appendChild(marker); svg.appendChild(defs);
  const full = ["__start__", ...path, ...(ok ? ["__end__"] : [])];
  const takenPairs = new Set(); for (let i = 0; i + 1 < full.length; i++) takenPairs.add(full[i] + "\u0000" + full[i + 1]);
  const takenNodes = new Set(full);
  for (const e of graph.edges) {
    const a = pos[e.from], b = pos[e.to]; if (!a || !b) continue;
    const taken = takenPairs.has(e.from + "\u0000" + e.to);
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const d = x2 > x1 ? `M${x1},${y1} C${x1 + 30},${y1} ${x2 - 30},${y2} ${x2},${y2}` : `M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + 40} ${b.x + W / 2},${b.y + H + 40} ${b.x + W / 2},${b.y + H}`;
    svg.appendChild(sv("path", { d, class: "edge" + (taken ? " taken" : ""), "marker-end": "url(#arrow)", "data-edge": e.from + "->" + e.to, "data-taken": taken }));
    if (e.label) svg.appendChild(sv("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 5, class: "elabel", "text-anchor": "middle" }, e.label));
  }
  for (const n of graph.nodes) {
    const p = pos[n.id]; const taken = takenNodes.has(n.id);
    const g = sv("g", { class: "node" + (taken ? " taken" : "") + (n.id === failed ? " failed" : ""), "data-node": n.id, "data-taken": taken, transform: `translate(${p.x},${p.y})` });
    g.appendChild(sv("rect", { width: W, height: H, rx: n.type === "start" || n.type === "end" ? 17 : 5 }));
    const label = n.id === "__start__" ? "start" : n.id === "__end__" ? "end" : n.id;
    g.appendChild(sv("text", { x: W / 2, y: 15, "text-anchor": "middle" }, label));
    g.appendChild(sv("text", { x: W / 2, y: 28, "text-anchor": "middle", class: "ntype" }, n.type.startsWith("route") ? n.type.replace("route:", "route · ") : (n.type === "start" || n.type === "end" ? "" : n.type)));
    svg.appendChild(g);
  }
  return svg;
}

// ---- timeline: a collapsible span tree, rendered only where it is scrolled to -----------
function buildTree(spans) {
  const byId = new Map(), kids = new Map(), depth = new Map();
  for (const s of spans) byId.set(s.span_id, s);
  const roots = [];
  for (const s of spans) {
    if (s.parent_id && byId.has(s.parent_id) && s.parent_id !== s.span_id) {
      let list = kids.get(s.parent_id); if (!list) kids.set(s.parent_id, list = []); list.push(s);
    } else roots.push(s);
  }
  const stack = roots.map(r => [r, 0]);
  while (stack.length) {
    const [s, d] = stack.pop(); if (depth.has(s.span_id)) continue;
    depth.set(s.span_id, d); for (const c of kids.get(s.span_id) || []) stack.push([c, d + 1]);
  }
  for (const s of spans) if (!depth.has(s.span_id)) { depth.set(s.span_id, 0); roots.push(s); } // parent cycles
  return { byId, kids, roots, depth };
}

function spanKind(s) {
  const a = s.attributes || {};
  if (s.status === "error") return "error";
  if (a["gen_ai.operation.name"] === "chat" || s.name.startsWith("chat ")) return "chat";
  if (a["gen_ai.operation.name"] === "retrieval") return "retrieval";
  if (a["tandem.router.type"]) return "route";
  return "";
}

class Timeline {
  constructor(spans, onSelect) {
    this.spans = spans; this.tree = buildTree(spans); this.onSelect = onSelect; this.selected = null;
    let t0 = Infinity, t1 = -Infinity;
    for (const s of spans) { if (s.start_ns < t0) t0 = s.start_ns; if (s.end_ns > t1) t1 = s.end_ns; }
    this.t0 = t0; this.total = Math.max(1, t1 - t0);
    // small traces open fully; big ones show the run and its nodes, the rest on demand
    const openAll = spans.length <= 300;
    this.open = new Set();
    for (const [id, list] of this.tree.kids) if (list.length && (openAll || this.tree.depth.get(id) < 1)) this.open.add(id);
    this.inner = el("div", { class: "wf-inner" });
    this.box = el("div", { id: "waterfall", onscroll: () => this.schedule() }, this.inner);
    this.box.addEventListener("click", e => this.click(e));
    this.refresh();
  }
  rows() {
    const out = [], seen = new Set(), stack = [...this.tree.roots].reverse();
    while (stack.length) {
      const s = stack.pop(); if (seen.has(s.span_id)) continue; seen.add(s.span_id); out.push(s);
      if (this.open.has(s.span_id)) { const k = this.tree.kids.get(s.span_id); if (k) for (let i = k.length - 1; i >= 0; i--) stack.push(k[i]); }
    }
    return out;
  }
  refresh() { this.visible = this.rows(); this.inner.style.height = (this.visible.length * ROW) + "px"; this.draw(); }
  schedule() { if (this.pending) return; this.pending = true; requestAnimationFrame(() => { this.pending = false; this.draw(); }); }
  draw() {
    const top = this.box.scrollTop, height = this.box.clientHeight || 560;
    const first = Math.max(0, Math.floor(top / ROW) - 10), last = Math.min(this.visible.length, Math.ceil((top + height) / ROW) + 10);
    const nodes = [];
    for (let i = first; i < last; i++) nodes.push(this.row(this.visible[i], i));
    this.inner.replaceChildren(...nodes);
  }
  row(s, i) {
    const kids = this.tree.kids.get(s.span_id), open = this.open.has(s.span_id);
    const left = ((s.start_ns - this.t0) / this.total * 100), width = ((s.end_ns - s.start_ns) / this.total * 100);
    return el("div", { class: "wf-row" + (s.span_id === this.selected ? " selected" : ""), "data-span": s.name, "data-id": s.span_id, style: { top: (i * ROW) + "px" } },
      el("div", { class: "wf-name", title: s.name, style: { paddingLeft: (this.tree.depth.get(s.span_id) * 14) + "px" } },
        el("span", { class: "wf-toggle", "data-toggle": kids ? (open ? "open" : "closed") : null }, kids ? (open ? "▾" : "▸") : ""),
        el("span", {}, s.name), kids && !open ? el("span", { class: "muted" }, ` (${kids.length})`) : null),
      el("div", { class: "wf-track" }, el("div", { class: "wf-bar " + spanKind(s), style: { left: left.toFixed(3) + "%", width: width.toFixed(3) + "%" } })),
      el("div", { class: "wf-dur" }, fmtMs((s.end_ns - s.start_ns) / 1e6)));
  }
  click(e) {
    const row = e.target.closest(".wf-row"); if (!row) return;
    const id = row.dataset.id;
    if (e.target.closest("[data-toggle]")) { this.toggle(id); return; }
    this.select(id);
  }
  toggle(id) { if (this.open.has(id)) this.open.delete(id); else this.open.add(id); this.refresh(); }
  setAll(open) {
    this.open = new Set(open ? [...this.tree.kids.keys()] : []);
    if (!open) for (const r of this.tree.roots) if (this.tree.kids.has(r.span_id)) this.open.add(r.span_id);
    this.refresh();
  }
  select(id) {
    const s = this.tree.byId.get(id); if (!s) return;
    this.selected = id;
    let p = s.parent_id, guard = 0;
    while (p && this.tree.byId.has(p) && guard++ < 256) { this.open.add(p); p = this.tree.byId.get(p).parent_id; }
    this.refresh();
    const index = this.visible.indexOf(s), top = index * ROW, view = this.box.clientHeight || 560;
    if (index >= 0 && (top < this.box.scrollTop || top + ROW > this.box.scrollTop + view)) { this.box.scrollTop = Math.max(0, top - view / 3); this.draw(); }
    this.onSelect(s);
  }
}

// ---- span panel ------------------------------------------------------------------------
function parseJSON(value) {
  if (typeof value !== "string") return null;
  try { return JSON.parse(value); } catch (e) { return null; }
}
function messageText(m) {
  if (typeof m === "string") return m;
  if (Array.isArray(m.parts)) return m.parts.map(p => typeof p === "string" ? p : (p.content ?? p.text ?? JSON.stringify(p))).join("");
  return typeof m.content === "string" ? m.content : JSON.stringify(m);
}
function messages(value, id) {
  const list = parseJSON(value);
  if (!Array.isArray(list)) return el("p", { class: "muted", id }, String(value));
  return el("div", { id }, list.map(m => el("div", { class: "msg " + (m.role || "") }, el("span", { class: "role" }, m.role || "message"), messageText(m))));
}
function showValue(v) {
  if (Array.isArray(v)) return longText(v.map(x => typeof x === "object" ? JSON.stringify(x) : String(x)).join(", "));
  if (v !== null && typeof v === "object") return longText(JSON.stringify(v));
  if (typeof v === "number" && !Number.isInteger(v)) return String(Number(v.toFixed(6)));
  return longText(v);
}

function spanPanel(s, t0) {
  const a = s.attributes || {}, kind = spanKind(s);
  const parts = [el("h3", {}, s.name), kv([
    ["Status", el("span", { class: "status-" + (s.status === "error" ? "error" : "ok") }, s.status || "unset")],
    ["Duration", fmtMs((s.end_ns - s.start_ns) / 1e6)], ["Starts", "+" + fmtMs((s.start_ns - t0) / 1e6)],
    ["Node", a["tandem.node"]], ["Model", a["tandem.model"]], ["Kind", s.kind], ["Span", el("span", { class: "mono" }, s.span_id)],
  ], "span-summary")];
  const exception = (s.events || []).find(e => e.name === "exception");
  if (s.status === "error" || a["error.type"] || exception) {
    const ex = exception ? exception.attributes : {};
    parts.push(el("div", { class: "errbox", id: "span-error" }, el("b", {}, a["error.type"] || ex["exception.type"] || "error"),
      (a["tandem.node"] || a["tandem.run.error_node"]) ? ` in node ${a["tandem.node"] || a["tandem.run.error_node"]}` : "", el("div", {}, s.status_message || ex["exception.message"] || ""),
      ex["exception.stacktrace"] ? el("details", {}, el("summary", {}, "stack trace"), el("pre", {}, ex["exception.stacktrace"])) : null));
  }
  if (kind === "chat" || a["gen_ai.operation.name"] === "chat") {
    parts.push(el("h3", {}, "Model call"), kv([
      ["Provider:model", `${a["gen_ai.provider.name"] || ""}:${a["gen_ai.request.model"] || ""}`],
      ["Tokens in / out", `${num(a["gen_ai.usage.input_tokens"])} / ${num(a["gen_ai.usage.output_tokens"])}`],
      ["Cost ($)", a["tandem.cost"] != null ? fmtCost(a["tandem.cost"]) : null],
      ["Energy (Wh)", a["tandem.energy.joules"] != null ? fmtWh(joulesWh(a["tandem.energy.joules"])) : null],
      ["Token probability", a["tandem.confidence.mean_prob"] != null ? `mean ${num(a["tandem.confidence.mean_prob"])}, min ${num(a["tandem.confidence.min_prob"])}` : null],
      ["Finish", Array.isArray(a["gen_ai.response.finish_reasons"]) ? a["gen_ai.response.finish_reasons"].join(", ") : null],
      ["Redactions in content", a["tandem.content.redactions"]],
    ]));
    const inMsgs = a["gen_ai.input.messages"], outMsgs = a["gen_ai.output.messages"];
    if (inMsgs || outMsgs) {
      if (inMsgs) parts.push(el("h3", {}, "Messages in"), messages(inMsgs, "span-input"));
      if (outMsgs) parts.push(el("h3", {}, "Answer out"), messages(outMsgs, "span-output"));
    } else parts.push(el("p", { class: "muted", id: "no-content" }, "Content not captured: run with --capture-content (settings.capture_content) to record prompts and answers, redacted."));
  }
  const tokenFigures = Object.keys(a).filter(k => k.startsWith("tandem.tokens.")).sort();
  if (tokenFigures.length) parts.push(el("h3", {}, "Token-level collaboration"), kv(tokenFigures.map(k => [k.slice(14).replace(/_/g, " "), showValue(a[k])]), "span-tokens"));
  if (kind === "retrieval" || a["tandem.retrieval.store"]) {
    const ids = a["tandem.retrieval.document_ids"] || [], scores = a["tandem.retrieval.scores"] || [];
    const docs = parseJSON(a["tandem.retrieval.documents"]);
    const text = new Map(Array.isArray(docs) ? docs.map(d => [String(d.id), d.text]) : []);
    parts.push(el("h3", {}, `Retrieved from ${a["tandem.retrieval.store"] || "store"} (${num(a["tandem.retrieval.results"])} of top ${num(a["tandem.retrieval.top_k"])})`),
      ids.length ? table("span-documents", ["Document", "Score", "Snippet"], ids.map((id, i) => el("tr", {}, el("td", { class: "mono" }, id),
        el("td", { class: "num" }, num(scores[i])), el("td", {}, text.has(String(id)) ? longText(text.get(String(id)), 200) : el("span", { class: "muted" }, "–")))), "")
        : el("p", { class: "muted" }, "No document ids recorded."));
    if (typeof a["tandem.retrieval.documents"] === "string" && !Array.isArray(docs)) parts.push(el("p", { class: "muted" }, a["tandem.retrieval.documents"]));
  }
  if (a["tandem.router.type"]) {
    parts.push(el("h3", {}, "Routing decision"), kv([["Router", a["tandem.router.type"]], ["Score", num(a["tandem.router.score"])],
      ["Threshold", num(a["tandem.router.threshold"])], ["Choice", el("b", {}, a["tandem.router.choice"])], ["Reason", a["tandem.router.reason"]],
      ["Latency", fmtMs(a["tandem.router.latency_ms"])]], "span-decision"));
  }
  if (a["tandem.run.input"] || a["tandem.run.output"]) {
    parts.push(el("h3", {}, "Question and answer (captured)"), kv([["Question", a["tandem.run.input"] ? longText(a["tandem.run.input"], 600) : null],
      ["Answer", a["tandem.run.output"] ? longText(a["tandem.run.output"], 600) : null]], "span-run-content"));
  }
  const keys = Object.keys(a).sort();
  parts.push(el("h3", {}, `Attributes (${keys.length})`), kv(keys.map(k => [k, showValue(a[k])]), "span-attributes"));
  const events = s.events || [];
  if (events.length) {
    parts.push(el("h3", {}, `Events (${events.length})`), el("div", { id: "span-events" }, events.map(e => el("div", { class: "event" },
      el("b", {}, e.name), el("span", { class: "muted" }, " +" + fmtMs((e.time_ns - t0) / 1e6)),
      kv(Object.keys(e.attributes || {}).sort().map(k => [k, showValue(e.attributes[k])]))))));
  }
  return parts;
}

// ---- run detail ------------------------------------------------------------------------
async function showRun(ref, spanId) {
  const data = await getJSON("/api/runs/" + encodeURIComponent(ref));
  const { run, spans } = data;
  const root = spans.find(s => !s.parent_id) || null;
  const attrs = root ? root.attributes : {};
  const path = pathOf(spans, root);
  const failedSpan = spans.filter(s => s.status === "error" && s.name.startsWith("node ")).sort((a, b) => b.start_ns - a.start_ns)[0];
  const failed = attrs["tandem.run.error_node"] || (failedSpan && failedSpan.name.slice(5));
  const graph = parseJSON(attrs["tandem.flow.graph"]);

  const panel = el("div", { id: "span-panel" }, el("p", { class: "muted" }, "Click a span to see its attributes, events, content and errors."));
  const timeline = new Timeline(spans, s => {
    panel.replaceChildren(...spanPanel(s, timeline.t0));
    history.replaceState(null, "", "#/run/" + encodeURIComponent(ref) + "?span=" + s.span_id);
  });
  const pick = s => ({ class: "pick", "data-span-id": s.span_id, onclick: () => timeline.select(s.span_id) });

  const decisions = [], hops = [], calls = [], outputs = [], errors = [];
  for (const s of spans) {
    const a = s.attributes;
    if (a["tandem.router.type"]) decisions.push(() => el("tr", { ...pick(s), "data-route": a["tandem.route"] || s.name.slice(5) }, el("td", {}, a["tandem.route"] || s.name.slice(5)), el("td", {}, a["tandem.router.type"]),
      el("td", { class: "num" }, num(a["tandem.router.score"])), el("td", { class: "num" }, num(a["tandem.router.threshold"])),
      el("td", {}, el("b", {}, a["tandem.router.choice"])), el("td", {}, a["tandem.router.reason"] || ""), el("td", { class: "num" }, fmtMs(a["tandem.router.latency_ms"]))));
    for (const e of s.events || []) if (e.name === "tandem.hop") {
      const h = e.attributes;
      hops.push(() => el("tr", { ...pick(s), class: "hop pick" }, el("td", {}, `${h["tandem.hop.from_node"]} → ${h["tandem.hop.to_node"]}`),
        el("td", {}, `${h["tandem.hop.from_model"] || "(node)"} → ${h["tandem.hop.to_model"]}`), el("td", { class: "mono" }, h["tandem.hop.field"] || ""),
        el("td", { class: "num" }, num(h["tandem.hop.chars"])), el("td", { class: "num" }, num(h["tandem.hop.tokens"])),
        el("td", {}, h["tandem.hop.local_to_remote"] ? el("span", { class: "badge warn" }, "local → remote") : el("span", { class: "badge" }, (h["tandem.hop.to_local"] === false ? "remote" : "local"))),
        el("td", { class: "num" }, num(h["tandem.hop.redactions"]))));
    }
    if (spanKind(s) === "chat" || a["gen_ai.operation.name"] === "chat") {
      calls.push(() => el("tr", pick(s), el("td", {}, a["tandem.node"] || ""), el("td", {}, a["tandem.model"] || ""),
        el("td", {}, `${a["gen_ai.provider.name"] || ""}:${a["gen_ai.request.model"] || ""}`), el("td", { class: "num" }, num(a["gen_ai.usage.input_tokens"])),
        el("td", { class: "num" }, num(a["gen_ai.usage.output_tokens"])), el("td", { class: "num call-cost" }, fmtCost(a["tandem.cost"])),
        el("td", { class: "num call-energy" }, fmtWh(joulesWh(a["tandem.energy.joules"]))), el("td", { class: "num" }, fmtMs((s.end_ns - s.start_ns) / 1e6))));
      if (typeof a["gen_ai.output.messages"] === "string") outputs.push(() => { const said = parseJSON(a["gen_ai.output.messages"]);
        return el("tr", pick(s), el("td", {}, a["tandem.node"] || ""), el("td", {}, a["tandem.model"] || ""),
          el("td", {}, longText(Array.isArray(said) ? said.map(messageText).join("\n") : a["gen_ai.output.messages"], 400))); });
    }
    if (s.status === "error") errors.push(() => el("tr", { ...pick(s), class: "error pick" }, el("td", {}, s.attributes["tandem.node"] || s.name),
      el("td", {}, s.attributes["error.type"] || ""), el("td", {}, s.status_message || "")));
  }
  for (const e of (root && root.events) || []) if (e.name === "tandem.error") errors.push(() => el("tr", { class: "error" },
    el("td", {}, e.attributes["tandem.error.node"]), el("td", {}, "recovered"), el("td", {}, e.attributes["tandem.error.message"])));

  const requestId = run.request_id || attrs["tandem.request_id"];
  app.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← all runs")),
    el("section", { id: "run-summary" }, el("h2", {}, `Run · ${run.flow}`), el("div", { class: "summary" },
      [["Status", el("span", { class: "status-" + run.status, id: "run-status" }, run.status)], ["Started", fmtTime(run.start_ns)], ["Duration", fmtMs(run.duration_ms)],
       ["Models", (run.models || []).join(", ") || "–"], ["LLM called", run.llm_called == null ? "–" : (run.llm_called ? "yes" : "no")], ["LLM calls", run.llm_calls ?? "–"], ["Tokens", tokens(run)], ["Cost ($)", el("span", { id: "run-cost" }, fmtCost(run.cost))],
       ["Energy (Wh)", el("span", { id: "run-energy" }, fmtWh(run.energy_wh))],
       ["Answered by", run.answered_by || "–"], ["Run", el("span", { class: "mono" }, run.run_id || run.trace_id)],
       ["Request", requestId ? el("span", { class: "mono", id: "run-request" }, requestId) : "–"], ["Spans", String(spans.length)]]
        .map(([k, v]) => el("div", {}, el("span", { class: "muted" }, k), el("b", {}, v)))),
      el("p", {}, el("span", { class: "muted" }, "Path "), el("span", { id: "run-path", class: "mono" }, path.join(" → ") || "–")),
      attrs["tandem.run.input"] ? el("p", { id: "run-question" }, el("span", { class: "muted" }, "Question "), longText(attrs["tandem.run.input"], 500)) : null,
      attrs["tandem.run.output"] ? el("p", { id: "run-answer" }, el("span", { class: "muted" }, "Answer "), longText(attrs["tandem.run.output"], 500)) : null),
    el("section", {}, el("h2", {}, "Flow graph"), graph ? drawGraph(graph, path, failed, run.status !== "error") : el("p", { class: "muted" }, "This trace carries no flow graph.")),
    el("section", {}, el("h2", {}, "Timeline"), el("div", { class: "timeline" }, el("div", { class: "tree-side" },
      el("div", { class: "tree-tools" }, el("button", { id: "expand-all", onclick: () => timeline.setAll(true) }, "Expand all"),
        el("button", { id: "collapse-all", onclick: () => timeline.setAll(false) }, "Collapse all"),
        el("span", { class: "muted" }, "▸ opens a span's children; click a row for its details")), timeline.box), panel)),
    el("section", {}, el("h2", {}, "Routing decisions"), table("decisions", ["Route", "Router", "Score", "Threshold", "Choice", "Reason", "Latency"], decisions, "No routing decisions.")),
    el("section", {}, el("h2", {}, "Cross-model hops"), table("hops", ["Nodes", "Models", "Field", "Chars", "Tokens", "Crossing", "Redactions"], hops, "No hops.")),
    el("section", {}, el("h2", {}, "Model calls"), table("calls", ["Node", "Model", "Provider:model", "In tokens", "Out tokens", "Cost ($)", "Energy (Wh)", "Latency"], calls, "No model calls.")),
    el("section", {}, el("h2", {}, "What each model said (captured)"), table("outputs", ["Node", "Model", "Output"], outputs, "No content captured (run with --capture-content).")),
    el("section", {}, el("h2", {}, "Errors"), table("errors", ["Node", "Type", "Message"], errors, "No errors.")));
  timeline.draw(); // now that the box has a size
  if (spanId && timeline.tree.byId.has(spanId)) timeline.select(spanId);
}

// ---- dashboard -------------------------------------------------------------------------
const WINDOWS = [["1h", "last hour"], ["24h", "last 24 h"], ["7d", "last 7 days"], ["30d", "last 30 days"], ["", "all time"]];

function barChart(buckets, bucketS, series, id) {
  // series: [{key, class, value: b => number}] drawn stacked
  const W = 900, H = 150, L = 40, B = 20, n = buckets.length;
  const svg = sv("svg", { class: "chart", id, width: W, height: H + B, viewBox: `0 0 ${W} ${H + B}` });
  const max = Math.max(1e-12, ...buckets.map(b => series.reduce((t, s) => t + s.value(b), 0)));
  const bw = Math.max(2, Math.min(40, (W - L - 10) / Math.max(1, n) - 2));
  svg.appendChild(sv("line", { class: "axis", x1: L, y1: H, x2: W, y2: H }));
  svg.appendChild(sv("text", { x: L - 4, y: 10, "text-anchor": "end" }, num(max)));
  svg.appendChild(sv("text", { x: L - 4, y: H, "text-anchor": "end" }, "0"));
  buckets.forEach((b, i) => {
    const x = L + 4 + i * (bw + 2); let y = H;
    for (const s of series) {
      const v = s.value(b); if (!v) continue;
      const h = v / max * (H - 12);
      const r = sv("rect", { class: s.class, x, y: y - h, width: bw, height: h, "data-series": s.key });
      r.appendChild(sv("title", {}, `${new Date(b.t / 1e6).toLocaleString()} · ${s.key}: ${num(v)}`));
      svg.appendChild(r); y -= h;
    }
  });
  if (n) {
    svg.appendChild(sv("text", { x: L + 4, y: H + 14 }, new Date(buckets[0].t / 1e6).toLocaleString()));
    svg.appendChild(sv("text", { x: W - 4, y: H + 14, "text-anchor": "end" }, new Date((buckets[n - 1].t + bucketS * 1e9) / 1e6).toLocaleString()));
  }
  return svg;
}

function histogram(route) {
  const W = 420, H = 120, B = 18, counts = route.histogram.counts, bins = counts.length;
  const svg = sv("svg", { class: "chart hist", width: W, height: H + B, viewBox: `0 0 ${W} ${H + B}`, "data-route": route.route });
  const max = Math.max(1, ...counts), bw = W / bins;
  counts.forEach((c, i) => {
    if (!c) return;
    const h = c / max * (H - 14), above = route.threshold != null && (i + 1) / bins > route.threshold;
    const r = sv("rect", { class: "bar" + (above ? " up" : ""), x: i * bw + 1, y: H - h, width: bw - 2, height: h });
    r.appendChild(sv("title", {}, `score ${(i / bins).toFixed(2)}–${((i + 1) / bins).toFixed(2)}: ${c}`));
    svg.appendChild(r);
  });
  svg.appendChild(sv("line", { class: "axis", x1: 0, y1: H, x2: W, y2: H }));
  ["0", "0.5", "1"].forEach((t, i) => svg.appendChild(sv("text", { x: i * W / 2, y: H + 13, "text-anchor": ["start", "middle", "end"][i] }, t)));
  if (route.threshold != null) {
    const x = Math.min(W - 1, Math.max(1, route.threshold * W));
    svg.appendChild(sv("line", { class: "threshold", x1: x, y1: 0, x2: x, y2: H, "data-threshold": route.threshold }));
    svg.appendChild(sv("text", { x: x + 4, y: 10 }, `threshold ${num(route.threshold)}`));
  }
  return svg;
}

function routeCard(route, since) {
  const result = el("p", { class: "cal-result muted" });
  const rate = el("input", { type: "number", class: "cal-rate", min: "0", max: "100", step: "1", value: "30" });
  const calibrate = async () => {
    const qs = new URLSearchParams({ flow: route.flow, route: route.route, rate: String(Number(rate.value) / 100) });
    if (since) qs.set("since", since);
    try {
      const c = await getJSON("/api/calibrate?" + qs);
      result.textContent = `threshold ${c.threshold.toFixed(4)} sends ${fmtPct(c.rate)} of ${c.scores} recorded scores to the large model (${fmtTime(c.first_ns)} – ${fmtTime(c.last_ns)}); now ${num(c.current_threshold)} sends ${fmtPct(c.current_rate)}`;
    } catch (err) { result.textContent = String(err.message || err); }
  };
  const current = route.threshold;
  const rows = route.would_escalate.filter(w => Math.round(w.threshold * 100) % 10 === 0).map(w =>
    el("tr", { class: current != null && Math.abs(w.threshold - current) < 0.05 ? "current" : null },
      el("td", { class: "num" }, w.threshold.toFixed(2)), el("td", { class: "num" }, fmtPct(w.share))));
  return el("div", { class: "card route-card", "data-flow": route.flow, "data-route": route.route },
    el("h3", {}, `${route.flow} / ${route.route}`, el("span", { class: "muted" }, ` · ${route.router || "router"}`)),
    el("div", { class: "summary" }, [["Decisions", route.decisions], ["To large model", el("span", { class: "route-rate" }, fmtPct(route.escalation_rate))], ["Threshold", num(route.threshold)]]
      .map(([k, v]) => el("div", {}, el("span", { class: "muted" }, k), el("b", {}, v)))),
    histogram(route),
    el("details", {}, el("summary", {}, "Share that would go to the large model at other thresholds"),
      el("table", { class: "would" }, el("thead", {}, el("tr", {}, el("th", { class: "num" }, "Threshold"), el("th", { class: "num" }, "Share"))), el("tbody", {}, rows))),
    el("div", { class: "filters" }, el("label", {}, "Target large-model share ", rate, " %"), el("button", { class: "cal-go", onclick: calibrate }, "Calibrate from these traces")),
    result);
}

async function showStats(params) {
  const flow = params.get("flow") || "", since = params.has("since") ? params.get("since") : "7d";
  const qs = new URLSearchParams(); if (flow) qs.set("flow", flow); if (since) qs.set("since", since);
  const data = await getJSON("/api/stats?" + qs);
  const set = (k, v) => { const p = hashParams(); if (v === null) p.delete(k); else p.set(k, v); location.hash = "#/stats?" + p; };
  const flowSel = el("select", { id: "stats-flow", onchange: e => set("flow", e.target.value || null) });
  options(flowSel, data.facets.flows, "all flows", flow);
  const windowSel = el("select", { id: "stats-since", onchange: e => set("since", e.target.value) }, WINDOWS.map(([v, t]) => el("option", { value: v }, t)));
  windowSel.value = since;
  const flows = data.flows.map(f => el("tr", { "data-flow": f.flow }, el("td", {}, f.flow), el("td", { class: "num" }, f.runs),
    el("td", { class: "num esc-rate" }, fmtPct(f.escalation_rate)), el("td", { class: "num err-rate" }, fmtPct(f.error_rate)),
    el("td", { class: "num" }, fmtMs(f.p50_ms)), el("td", { class: "num" }, fmtMs(f.p95_ms)), el("td", { class: "num" }, f.tokens),
    el("td", { class: "num flow-cost" }, fmtCost(f.cost)), el("td", { class: "num flow-mean-cost" }, fmtCost(f.mean_cost)),
    el("td", { class: "num flow-energy" }, fmtWh(f.energy_wh)), el("td", { class: "num flow-co2" }, fmtCo2(f.co2_g))));
  const grid = data.energy ? `gCO2e (${num(data.energy.grid_g_per_kwh)} g/kWh)` : "gCO2e";
  const models = data.models.map(m => el("tr", { "data-model": m.model }, el("td", {}, m.model), el("td", { class: "num" }, m.calls), el("td", { class: "num" }, m.errors),
    el("td", { class: "num" }, m.input_tokens), el("td", { class: "num" }, m.output_tokens), el("td", { class: "num" }, fmtCost(m.cost)),
    el("td", { class: "num" }, fmtMs(m.p50_ms)), el("td", { class: "num" }, fmtMs(m.p95_ms))));
  const bucketS = data.window.bucket_s, tl = data.timeline;
  const names = [...new Set(tl.flatMap(b => Object.keys(b.models)))].sort();
  const useCost = tl.some(b => Object.values(b.models).some(m => m.cost > 0));
  const modelSeries = names.map((m, i) => ({ key: m, class: "swatch-" + (i % 6), value: b => (b.models[m] ? (useCost ? b.models[m].cost : b.models[m].tokens) : 0) }));
  const runSeries = [{ key: "escalated", class: "bar up", value: b => b.escalated }, { key: "not escalated", class: "bar", value: b => Math.max(0, b.runs - b.escalated - b.errors) },
    { key: "errors", class: "bar err", value: b => b.errors }];
  const bucketText = bucketS >= 86400 ? `${bucketS / 86400} day` : bucketS >= 3600 ? `${bucketS / 3600} h` : `${bucketS / 60} min`;
  app.replaceChildren(
    el("section", {}, el("h2", {}, "Dashboard"), el("div", { class: "filters" }, flowSel, windowSel,
      el("button", { id: "stats-refresh", onclick: () => route() }, "↻ Refresh"),
      el("span", { class: "muted" }, data.window.first_ns ? `runs from ${fmtTime(data.window.first_ns)} to ${fmtTime(data.window.last_ns)}` : "no runs in this window"))),
    el("section", {}, el("h2", {}, "Flows"), table("stats-flows", ["Flow", "Runs", "Escalation rate", "Error rate", "p50", "p95", "Tokens", "Cost ($)", "Mean $ / run", "Energy (Wh)", grid], flows, "No runs in this window.")),
    el("section", {}, el("h2", {}, `Runs over time (per ${bucketText})`),
      el("div", { class: "legend" }, el("span", {}, el("i", { class: "swatch-esc" }), "escalated (large model called)"), el("span", {}, el("i", { class: "swatch-runs" }), "not escalated"), el("span", {}, el("i", { class: "swatch-err" }), "failed")),
      tl.length ? barChart(tl, bucketS, runSeries, "chart-runs") : el("p", { class: "muted" }, "No runs.")),
    el("section", {}, el("h2", {}, `${useCost ? "Cost" : "Tokens"} per model over time`),
      el("div", { class: "legend" }, names.map((m, i) => el("span", {}, el("i", { class: "swatch-" + (i % 6) }), m))),
      names.length ? barChart(tl, bucketS, modelSeries, "chart-models") : el("p", { class: "muted" }, "No model calls.")),
    el("section", {}, el("h2", {}, "Models"), table("stats-models", ["Model", "Calls", "Errors", "In tokens", "Out tokens", "Cost", "p50", "p95"], models, "No model calls.")),
    el("section", {}, el("h2", {}, "Routes: score distribution against the threshold"),
      data.routes.length ? el("div", { class: "cards", id: "stats-routes" }, data.routes.map(r => routeCard(r, since))) : el("p", { class: "muted", id: "stats-routes" }, "No routing decisions in this window.")));
}

// ---- token, routing --------------------------------------------------------------------
function showTokenForm() {
  const input = el("input", { type: "password", id: "token", placeholder: "token", autocomplete: "off" });
  const go = () => { if (input.value) location.href = "/?token=" + encodeURIComponent(input.value); };
  input.addEventListener("keydown", e => { if (e.key === "Enter") go(); });
  app.replaceChildren(el("section", { id: "token-needed" }, el("h2", {}, "Token required"),
    el("p", {}, "This viewer was started with a token. Open the address `tandem traces serve` printed (it ends in /?token=…), or enter the token:"),
    el("div", { class: "filters" }, input, el("button", { onclick: go }, "Open"))));
}

async function route() {
  const hash = location.hash || "#/";
  const view = hash.startsWith("#/run/") ? "run" : hash.startsWith("#/stats") ? "stats" : "runs";
  if (view !== "runs") { stopLive(); runsView = null; } // live mode lasts while the list is shown
  document.getElementById("nav-runs").className = view === "stats" ? "" : "active";
  document.getElementById("nav-stats").className = view === "stats" ? "active" : "";
  try {
    if (view === "run") {
      const [ref, query] = hash.slice(6).split("?");
      await showRun(decodeURIComponent(ref), new URLSearchParams(query || "").get("span"));
    } else if (view === "stats") await showStats(hashParams());
    else await showRuns(hashParams());
  } catch (err) {
    stopLive();
    runsView = null;
    if (err.status === 401) { showTokenForm(); return; }
    app.replaceChildren(el("section", {}, el("h2", {}, "Error"), el("p", { id: "load-error" }, String(err.message || err)), el("a", { href: "#/" }, "← all runs")));
  }
}
window.addEventListener("hashchange", route);
document.getElementById("where").textContent = location.host;
route();
