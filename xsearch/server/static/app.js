// xsearch's search page: plain JS, no build step. Talks to the JSON API of the same server.
// The whole query lives in the URL (?q=…&upload=…&like=…&to=…), so a search can be shared or reloaded.
"use strict";

const PAGE = 24;  // results per page (per target; half of it for "all")
const KINDS = { image: "Images", audio: "Sounds", text: "Texts", video: "Videos" };
const VIDEO_TRACKS = ["video", "soundtrack"];  // a video's items: its picture windows and its sound windows
const FILTERS = ["path_glob", "threshold", "min_duration", "max_duration", "min_kb", "max_kb", "since", "until", "tag"];
const $ = (id) => document.getElementById(id);

const state = {
  collections: [], collection: null, texts: [], chips: [], to: "image", fusion: "mean", rerank: false,
  offset: 0, loading: false, hasMore: false, request: 0, scoreLabel: "", hits: [], addFile: false,
};

// -- small helpers ---------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function sentence(text) {
  const s = String(text || "").trim();
  if (!s) return "";
  const first = s.split(/\s/, 1)[0].replace(/[:,;]$/, "");
  const name = /[./\\_\d]/.test(first);  // a file name ("holiday.png is not…") keeps its case
  return (name ? s : s[0].toUpperCase() + s.slice(1)) + (/[.!?]$/.test(s) ? "" : ".");
}

function clock(seconds) {
  const s = Math.max(0, seconds || 0);
  const m = Math.floor(s / 60);
  const r = s - 60 * m;
  return `${m}:${r < 10 ? "0" : ""}${r.toFixed(r % 1 ? 1 : 0)}`;
}

function say(text, isError = false) {
  const m = $("message");
  m.textContent = text;
  m.classList.toggle("error", isError);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error ? body.error.code : `http.${status}`;
    this.hint = body && body.error ? body.error.hint : undefined;
  }
}

// An error's sentence, then its hint (what to do, from the layer that raised it) when it has one.
function withHint(error) {
  return sentence(error.message) + (error.hint ? " " + sentence(error.hint) : "");
}

async function api(url, options) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (e) {
    throw new ApiError(0, { error: { code: "network", message: "the server did not answer; is xsearch serve still running" } });
  }
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function explain(error) {
  if (error.status === 401) return "This server needs an access token: open the link that xsearch serve printed (it ends in ?token=…).";
  if (error.status === 503) return sentence(error.message || "the server is busy; try again in a moment");
  if (error.status === 413) return sentence(error.message) + " Pick a smaller or shorter file.";
  if (error.code === "collection.missing") return "There is no collection here yet: index a folder with xsearch index FOLDER, then reload this page.";
  return withHint(error);
}

const base = () => `/api/collections/${encodeURIComponent(state.collection)}`;

// -- the query as URL parameters -------------------------------------------------------------------------------

function filterValues() {
  const form = $("search");
  const out = {};
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value !== "") out[name] = value;
  }
  return out;
}

function queryCount() {
  return state.texts.filter((t) => t.value.trim()).length + state.chips.length;
}

function ordered() {
  // the API's weight order: texts, then uploads, then liked items
  const texts = [...state.texts, ...state.chips.filter((c) => c.kind === "text")].filter((t) => t.value.trim());
  return [...texts, ...state.chips.filter((c) => c.kind === "upload"), ...state.chips.filter((c) => c.kind === "like")];
}

function urlParams() {
  const p = new URLSearchParams();
  if (state.collections.length > 1) p.set("c", state.collection);
  const all = ordered();
  for (const query of all) {
    if (query.kind === "text") p.append("q", query.value.trim());
    else if (query.kind === "upload") p.append("upload", query.id);
    else p.append("like", query.item_id);
  }
  if (all.length > 1 && all.some((q) => Number(q.weight) !== 1)) p.set("w", all.map((q) => Number(q.weight)).join(","));
  if (all.length > 1 && state.fusion !== "mean") p.set("fusion", state.fusion);
  if (state.rerank) p.set("rerank", "true");
  p.set("to", state.to);
  for (const [key, value] of Object.entries(filterValues())) p.set(key, value);
  return p;
}

function apiParams(offset) {
  const p = urlParams();
  p.delete("c");
  const w = p.get("w");
  p.delete("w");
  if (w) p.set("weights", w);
  for (const [ui, api, scale] of [["min_kb", "min_size", 1024], ["max_kb", "max_size", 1024]]) {
    if (p.has(ui)) { p.set(api, String(Math.round(Number(p.get(ui)) * scale))); p.delete(ui); }
  }
  p.set("limit", String(pageSize()));
  p.set("offset", String(offset));
  return p;
}

function readUrl() {
  const p = new URLSearchParams(location.search);
  const token = p.get("token");
  if (token) {  // media elements cannot send headers: the token travels as a same-site cookie instead
    document.cookie = `xsearch_token=${encodeURIComponent(token)}; path=/; SameSite=Strict`;
    p.delete("token");
    history.replaceState(null, "", p.toString() ? `?${p}` : location.pathname);
  }
  const weights = (p.get("w") || "").split(",").filter(Boolean).map(Number);
  const texts = p.getAll("q").map((value) => ({ kind: "text", value, weight: 1 }));
  const uploads = p.getAll("upload").map((id) => ({ kind: "upload", id, modality: "", name: "uploaded file", weight: 1 }));
  const likes = p.getAll("like").map((id) => ({ kind: "like", item_id: Number(id), modality: "", name: `item ${id}`, weight: 1 }));
  [...texts, ...uploads, ...likes].forEach((q, i) => { if (Number.isFinite(weights[i])) q.weight = weights[i]; });
  state.texts = texts.length ? texts : [{ kind: "text", value: "", weight: 1 }];
  state.chips = [...state.texts.slice(1), ...uploads, ...likes];
  state.texts = state.texts.slice(0, 1);
  state.to = (KINDS[p.get("to")] || p.get("to") === "all") ? p.get("to") : "image";
  state.fusion = p.get("fusion") || "mean";
  state.rerank = p.get("rerank") === "true";
  if (p.get("c")) state.collection = p.get("c");
  const form = $("search");
  for (const name of FILTERS) form.elements[name].value = p.get(name) || "";
  $("filters").open = FILTERS.some((name) => p.get(name));
  syncForm();
  return p.has("q") || p.has("upload") || p.has("like");
}

// -- the form --------------------------------------------------------------------------------------------------

function syncForm() {
  $("q").value = state.texts[0].value;
  $("q-weight").value = state.texts[0].weight;
  for (const radio of document.querySelectorAll('input[name="to"]')) radio.checked = radio.value === state.to;
  $("fusion").value = state.fusion;
  $("rerank").checked = state.rerank;
  renderChips();
}

function renderChips() {
  const list = $("chips");
  list.replaceChildren();
  const several = queryCount() > 1;
  state.chips.forEach((chip, index) => {
    let preview;
    if (chip.kind === "upload" && chip.modality === "image") preview = el("img", { src: `/api/uploads/${chip.id}`, alt: "" });
    else if (chip.kind === "upload" && chip.modality === "audio") preview = el("audio", { src: `/api/uploads/${chip.id}`, controls: true, preload: "none", "aria-label": `Play ${chip.name}` });
    else if (chip.kind === "upload" && chip.modality === "video") preview = clipPreview(`/api/uploads/${chip.id}`, chip.name);
    else if (chip.kind === "like" && chip.modality === "image") preview = el("img", { src: `${base()}/items/${chip.item_id}/thumb?size=128`, alt: "" });
    else if (chip.kind === "like" && VIDEO_TRACKS.includes(chip.modality)) preview = clipPreview(`${base()}/items/${chip.item_id}/media`, chip.name);
    else preview = el("span", { class: "icon", "aria-hidden": "true", text: chip.kind === "text" ? "T" : chip.modality === "audio" ? "♪" : "≈" });
    const kind = chip.kind === "like" ? "like" : chip.kind === "upload" ? chip.modality || "file" : "text";
    const weight = el("input", {
      type: "number", step: "0.1", value: chip.weight, "aria-label": `Weight of ${chip.name || chip.value}`,
      oninput: (e) => { chip.weight = e.target.value; },
    });
    list.append(el("li", { class: "chip" },
      preview,
      el("span", { class: "label", title: chip.name || chip.value, text: chip.kind === "text" ? `“${chip.value}”` : chip.name }),
      el("span", { class: "kind", text: kind }),
      several ? el("label", { class: "weight" }, "weight", weight) : null,
      el("button", {
        type: "button", class: "remove", "aria-label": `Remove ${chip.name || chip.value}`, text: "×",
        onclick: () => { state.chips.splice(index, 1); renderChips(); if (queryCount()) search(); },
      })));
  });
  $("q-weight-wrap").hidden = !(queryCount() > 1 && state.texts[0].value.trim());
  $("fusion-wrap").hidden = queryCount() < 2;
  const active = Object.keys(filterValues()).length;
  $("filter-count").textContent = active ? ` (${active})` : "";
}

function clipPreview(src, name) {
  // A video query's chip: a small silent preview that plays while pointed at or focused, and stops after.
  const video = el("video", {
    src: `${src}#t=0.1`, muted: true, loop: true, playsinline: true, preload: "metadata", tabindex: "0",
    "aria-label": `Preview of ${name} (plays while focused)`, title: `${name}: point at it or focus it to preview`,
  });
  video.muted = true;  // the attribute only sets the default
  const play = () => { video.play().catch(() => {}); };
  const stop = () => { video.pause(); };
  video.addEventListener("mouseenter", play);
  video.addEventListener("focus", play);
  video.addEventListener("mouseleave", stop);
  video.addEventListener("blur", stop);
  return video;
}

async function addFiles(files) {
  if (!state.addFile) {  // a picked or dropped file is the new query, unless "+ add file to query" is on
    state.texts = [{ kind: "text", value: "", weight: 1 }];
    state.chips = [];
    $("q").value = "";
    state.fusion = "mean";
  }
  setAddFile(false);
  for (const file of files) {
    say(`Uploading ${file.name}…`);
    const body = new FormData();
    body.append("file", file);
    try {
      const up = await api("/api/uploads", { method: "POST", body });
      state.chips.push({ kind: "upload", id: up.id, modality: up.modality, name: up.name, weight: 1 });
    } catch (error) {
      say(explain(error), true);
      renderChips();
      return;
    }
  }
  renderChips();
  search();
}

function setAddFile(on) {
  state.addFile = on;
  $("add-file").setAttribute("aria-pressed", String(on));
}

// -- results ---------------------------------------------------------------------------------------------------

function moreLikeThis(hit) {
  state.texts = [{ kind: "text", value: "", weight: 1 }];
  state.chips = [{ kind: "like", item_id: hit.item_id, modality: hit.modality, name: hit.name, weight: 1 }];
  state.fusion = "mean";
  syncForm();
  search();
  window.scrollTo({ top: 0, behavior: "smooth" });
}

function preview(hit, list) {
  const hits = list || state.hits;
  XS.openPreview(hits, Math.max(0, hits.indexOf(hit)), moreLikeThis);
}

function cardHead(hit, list) {
  const name = el("span", { class: "name", title: `${hit.path} — show it larger`, text: hit.name, role: "button", tabindex: "0" });
  name.addEventListener("click", () => preview(hit, list));
  name.addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); preview(hit, list); } });
  return el("div", { class: "row" },
    name,
    hit.score === null || hit.score === undefined ? null : el("span", { class: "rank", text: `#${hit.rank}` }),
    hit.score === null || hit.score === undefined ? null
      : el("span", { class: "score", title: hit.weak ? `${state.scoreLabel}: weak, it does not stand out from the rest of the collection` : state.scoreLabel,
        text: hit.score.toFixed(3) + (hit.weak ? "?" : "") }));
}

function likeButton(hit) {
  return el("button", { type: "button", class: "ghost like", "aria-label": `More like ${hit.name}`, onclick: () => moreLikeThis(hit) }, "More like this");
}

function timedPlayer(hit, tag) {
  // An <audio> or <video> that starts at the matched window, with a timeline marking the window.
  const start = hit.offset || 0;
  const duration = hit.duration || 0;
  const end = hit.end ?? Math.min(duration || start, start + 2);
  const player = el(tag, { controls: true, preload: "metadata", src: `${hit.media_url}#t=${start}`, "aria-label": `Play ${hit.name} from ${clock(start)}` });
  const mark = el("div", { class: "window" });
  const head = el("div", { class: "playhead" });
  const timeline = el("div", { class: "timeline", title: "Where the match is; click to play from there" },
    tag === "audio" ? XS.waveform(hit) : null, mark, head);
  if (duration > 0) {
    mark.style.left = `${(100 * start) / duration}%`;
    mark.style.width = `${(100 * Math.max(end - start, 0)) / duration}%`;
    head.style.left = `${(100 * start) / duration}%`;
  }
  timeline.addEventListener("click", () => { player.currentTime = start; player.play(); });
  player.addEventListener("timeupdate", () => {
    if (duration > 0) head.style.left = `${Math.min(100, (100 * player.currentTime) / duration)}%`;
  });
  player.addEventListener("play", () => {
    for (const other of document.querySelectorAll("audio, video")) if (other !== player) other.pause();
    if (player.currentTime < start - 0.05 && player.currentTime < 0.05) player.currentTime = start;
  });
  const by = hit.matched ? ` (${hit.matched})` : "";
  const where = duration ? `match ${clock(start)}–${clock(end)} of ${clock(duration)}${by}` : `match at ${clock(start)}${by}`;
  return { player, timeline, where };
}

function audioCard(hit, list) {
  const { player, timeline, where } = timedPlayer(hit, "audio");
  return el("article", { class: "card audio" }, cardHead(hit, list), timeline, player,
    el("div", { class: "row" }, el("span", { class: "where", text: where }), likeButton(hit)));
}

function textCard(hit, list) {
  const quote = el("blockquote", { class: "snippet", text: hit.snippet || "" });
  const toggle = el("button", { type: "button", class: "ghost", "aria-expanded": "false" }, "Show passage");
  toggle.addEventListener("click", async () => {
    if (toggle.getAttribute("aria-expanded") === "true") {
      quote.textContent = hit.snippet || "";
      toggle.textContent = "Show passage";
      toggle.setAttribute("aria-expanded", "false");
      return;
    }
    try {
      const body = await api(hit.passage_url);
      quote.textContent = body.passage;
      toggle.textContent = "Show less";
      toggle.setAttribute("aria-expanded", "true");
    } catch (error) { say(explain(error), true); }
  });
  const where = el("span", { class: "where", text: `¶${Math.round(hit.offset) + 1}` });
  return el("article", { class: "card text" }, cardHead(hit, list), quote, el("div", { class: "row" }, where, toggle, likeButton(hit)));
}

function imageCard(hit, list) {
  const img = el("img", { src: hit.thumb_url, alt: hit.name, loading: "lazy", width: hit.width, height: hit.height });
  const link = el("a", { class: "thumb", href: hit.media_url, target: "_blank", rel: "noopener", title: `${hit.name} — show it larger` }, img);
  link.addEventListener("click", (e) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;  // a new tab still opens the file itself
    e.preventDefault();
    preview(hit, list);
  });
  return el("article", { class: "card image" }, link, cardHead(hit, list), likeButton(hit));
}

function videoCard(hit, list) {
  const { player, timeline, where } = timedPlayer(hit, "video");
  return el("article", { class: "card video" }, player, timeline, cardHead(hit, list),
    el("div", { class: "row" }, el("span", { class: "where", text: where }), likeButton(hit)));
}

function card(hit, list) {
  const make = { image: imageCard, audio: audioCard, text: textCard }[hit.modality] || videoCard;
  const node = withWords(hit, make(hit, list));
  if (hit.weak) node.classList.add("weak");  // below the model's relevance gap: dimmed
  return node;
}

// -- words a hit was found by (OCR lines, passages, file names; docs/ocr.md) ------------------------------------
const SVG = "http://www.w3.org/2000/svg";

function withWords(hit, node) {
  const words = hit.words || [];
  if (!words.length) return node;
  const label = hit.matched === "words" ? "found by its words: " : "words that matched: ";
  const line = el("p", { class: "words" }, label);
  words.slice(0, 3).forEach((w, i) => {
    if (i) line.append(" · ");
    line.append(el("mark", { text: w.text, title: w.track === "ocr" ? `read in the picture (confidence ${w.confidence})` : w.track }));
  });
  node.append(line);
  const thumb = node.querySelector(".thumb");
  const boxes = words.filter((w) => Array.isArray(w.box));
  if (thumb && boxes.length && hit.width && hit.height) {
    // the same letterboxing as the thumbnail's object-fit: contain, in the picture's own pixels
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "word-boxes");
    svg.setAttribute("viewBox", `0 0 ${hit.width} ${hit.height}`);
    svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    for (const w of boxes) {
      const poly = document.createElementNS(SVG, "polygon");
      poly.setAttribute("points", w.box.map(([x, y]) => `${x},${y}`).join(" "));
      svg.append(poly);
    }
    thumb.append(svg);
  }
  return node;
}

function render(body, append) {
  state.scoreLabel = body.rerank ? "the re-ranker's score (compare within this list only)"
    : body.queries.length > 1 && body.fusion !== "mean" ? `${body.fusion} score of the fused queries`
    : "cosine similarity to the query";
  const results = $("results");
  if (!append) { results.replaceChildren(); state.hits = []; }
  let shown = 0, strong = 0, judged = 0;
  if (!append) state.strongSeen = false;
  for (const target of body.to) {
    const hits = body.results[target] || [];
    shown += hits.length;
    let section = results.querySelector(`section[data-target="${target}"]`);
    if (!section) {
      section = el("section", { "data-target": target },
        el("h2", { text: KINDS[target] || target }), el("div", { class: `grid ${target}` }));
      results.append(section);
    }
    const grid = section.querySelector(".grid");
    for (const hit of hits) {
      state.hits.push(hit);
      grid.append(card(hit));
      if (hit.weak !== undefined && hit.weak !== null) { judged += 1; if (!hit.weak) strong += 1; }
    }
    if (!append && !hits.length) grid.append(el("p", { class: "message", text: `No ${(KINDS[target] || target).toLowerCase()} match.` }));
  }
  state.strongSeen = state.strongSeen || strong > 0;
  state.hasMore = Object.values(body.has_more).some(Boolean);
  $("more").hidden = !state.hasMore;
  // the count covers every page shown so far (and replaces a "Searching…" left by a slow next page)
  state.shown = (append ? state.shown || 0 : 0) + shown;
  const total = state.shown;
  const what = body.queries.map((q) => (q.kind === "text" ? `“${q.value}”` : String(q.value || "that file").split("/").pop())).join(" + ");
  const count = `${total}${state.hasMore ? "+" : ""} result${total === 1 ? "" : "s"} in ${Math.round(body.took_ms)} ms`;
  say(!total ? "Nothing found. Try other words, another target, or fewer filters."
    : judged && !strong && !state.strongSeen ? `${count}. Nothing here looks like ${what}: the closest are dimmed, none stands out from the rest of the collection.`
    : count + (judged > strong ? "; dimmed ones (score?) do not stand out from the rest of the collection." : "."));
  // the echo of the queries names uploads and liked items (after a reload they were only ids)
  const echoes = body.queries.filter((q) => q.kind !== "text");
  state.chips.filter((c) => c.kind !== "text").forEach((chip) => {
    const echo = echoes.find((q) => (chip.kind === "upload" ? q.upload === chip.id : q.item_id === chip.item_id));
    if (echo) {
      chip.modality = echo.modality;
      chip.name = String(echo.value || "").split("/").pop();
    }
  });
  if (!append) renderChips();
  return shown;
}

// -- searching -------------------------------------------------------------------------------------------------

async function search({ push = true, append = false } = {}) {
  state.texts[0].value = $("q").value;
  if (!queryCount()) {
    say("Type what you are looking for, or drop an image, a sound or a video clip onto the page.");
    clearResults();
    if (state.collection && showStats()) XS.showBrowse(base(), card, runExample);
    return;
  }
  XS.hideBrowse();
  if (!state.collection) { say("There is no collection on this server.", true); return; }
  if (!append) {
    state.offset = 0;
    const url = `?${urlParams()}`;
    if (push && url !== location.search) history.pushState(null, "", url);
  }
  const ticket = ++state.request;
  state.loading = true;
  $("results").setAttribute("aria-busy", "true");
  const slow = setTimeout(() => { if (ticket === state.request) say("Searching…"); }, 250);
  try {
    const body = await api(`${base()}/search?${apiParams(state.offset)}`);
    if (ticket !== state.request) return;
    render(body, append);
  } catch (error) {
    if (ticket !== state.request) return;
    if (!append) $("results").replaceChildren();
    $("more").hidden = true;
    say(explain(error), true);
  } finally {
    clearTimeout(slow);
    if (ticket === state.request) { state.loading = false; $("results").removeAttribute("aria-busy"); }
  }
}

function runExample(text) {
  state.texts = [{ kind: "text", value: text, weight: 1 }];
  state.chips = [];
  syncForm();
  search();
}

function pageSize() {
  return state.to === "all" ? PAGE / 2 : PAGE;
}

function more() {
  if (state.loading || !state.hasMore) return;
  state.offset += pageSize();
  search({ append: true });
}

// -- start -----------------------------------------------------------------------------------------------------

async function loadCollections() {
  try {
    const body = await api("/api/collections");
    state.collections = body.collections;
  } catch (error) {
    say(explain(error), true);
    return false;
  }
  const select = $("collection");
  select.replaceChildren(...state.collections.map((c) => el("option", { value: c.name, text: c.name })));
  $("collection-wrap").hidden = state.collections.length < 2;
  if (!state.collections.some((c) => c.name === state.collection)) {
    state.collection = (state.collections.find((c) => c.exists) || state.collections[0] || {}).name || null;
  }
  select.value = state.collection;
  return showStats();
}

function clearResults() {
  state.request += 1;  // a search still under way is dropped when it answers
  $("results").replaceChildren();
  $("more").hidden = true;
}

function showStats() {
  const c = state.collections.find((x) => x.name === state.collection);
  if (!c || c.error || !c.exists) clearResults();
  if (!c) { say("There is no collection on this server.", true); return false; }
  if (c.error) { say(withHint(c.error), true); return false; }
  if (!c.exists) {
    $("stats").textContent = `${c.name}: empty`;
    say(`There is no collection “${c.name}” yet: index a folder with xsearch index FOLDER, then reload this page.`, true);
    return false;
  }
  const files = Object.entries(c.files || {}).map(([m, n]) => {
    const kind = (KINDS[m] || m).toLowerCase();
    return `${n} ${n === 1 ? kind.replace(/s$/, "") : kind}`;
  });
  $("stats").textContent = `${c.name} · ${files.join(" · ") || "no files yet"} · model ${c.model_spec}`;
  const to = XS.offerTabs(c.files, state.to);
  if (to !== state.to) {
    state.to = to;
    for (const radio of document.querySelectorAll('input[name="to"]')) radio.checked = radio.value === state.to;
  }
  if (state.shownCollection !== c.name) { state.shownCollection = c.name; XS.collectionShown(base()); }
  return true;
}

function wire() {
  const form = $("search");
  form.addEventListener("submit", (e) => { e.preventDefault(); search(); });
  form.addEventListener("input", (e) => { if (e.target.name && FILTERS.includes(e.target.name)) renderChips(); });
  $("q").addEventListener("input", () => { state.texts[0].value = $("q").value; renderChips(); });
  $("q-weight").addEventListener("input", (e) => { state.texts[0].weight = e.target.value; });
  $("add-text").addEventListener("click", () => {
    const value = $("q").value.trim();
    if (!value) { $("q").focus(); return; }
    state.chips.push({ kind: "text", value, name: value, weight: 1 });
    $("q").value = "";
    state.texts[0].value = "";
    renderChips();
    $("q").focus();
  });
  for (const radio of document.querySelectorAll('input[name="to"]')) {
    radio.addEventListener("change", () => { state.to = radio.value; if (queryCount()) search(); });
  }
  $("fusion").addEventListener("change", (e) => { state.fusion = e.target.value; search(); });
  $("rerank").addEventListener("change", (e) => { state.rerank = e.target.checked; if (queryCount()) search(); });
  $("collection").addEventListener("change", (e) => { state.collection = e.target.value; if (showStats()) search(); });
  $("home").addEventListener("click", (e) => {
    e.preventDefault();
    state.texts = [{ kind: "text", value: "", weight: 1 }];
    state.chips = [];
    syncForm();
    history.pushState(null, "", state.collections.length > 1 ? `?c=${encodeURIComponent(state.collection)}` : location.pathname);
    search({ push: false });
  });
  $("file").addEventListener("change", (e) => { const files = [...e.target.files]; e.target.value = ""; addFiles(files); });
  const drop = $("drop");
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  let depth = 0;
  document.addEventListener("dragenter", (e) => { e.preventDefault(); depth += 1; drop.classList.add("over"); });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) drop.classList.remove("over"); });
  document.addEventListener("dragover", (e) => { e.preventDefault(); });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    depth = 0;
    drop.classList.remove("over");
    const files = [...((e.dataTransfer && e.dataTransfer.files) || [])];
    if (files.length) addFiles(files);
  });
  document.addEventListener("keydown", (e) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (e.key === "/" && !typing) { e.preventDefault(); $("q").focus(); }
  });
  $("more").addEventListener("click", more);
  $("add-file").addEventListener("click", () => setAddFile(!state.addFile));
  XS.wireBrowse(card);
  XS.wirePreview();
  if ("IntersectionObserver" in window) {
    new IntersectionObserver((entries) => { if (entries.some((x) => x.isIntersecting)) more(); }, { rootMargin: "300px" }).observe($("more"));
  }
  window.addEventListener("popstate", async () => { readUrl(); if (showStats()) search({ push: false }); });
}

async function start() {
  wire();
  const hasQuery = readUrl();
  if (!(await loadCollections())) return;
  if (hasQuery) search({ push: false });
  else search({ push: false });  // no query: the browse view and example queries
}

start();
