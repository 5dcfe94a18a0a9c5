// The page around the search: the model's honesty banner, the Find tabs the collection can fill, the browse view
// of an empty page with example queries, the preview pane, and sound waveforms. app.js calls these through XS.
"use strict";

const XS = (() => {
  const get = (id) => document.getElementById(id);
  const mk = (tag, attrs = {}, ...kids) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const kid of kids) if (kid) node.append(kid);
    return node;
  };
  const json = async (url) => {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return r.json();
  };
  const LABELS = { image: "images", audio: "sounds", text: "texts", video: "videos" };
  let overview = null;
  let overviewOf = "";  // the collection URL the overview above belongs to

  // -- the collection: banner and tabs ----------------------------------------------------------------------
  async function collectionShown(baseUrl) {
    overview = null;
    overviewOf = baseUrl;
    get("banner").hidden = true;
    let got;
    try { got = await json(`${baseUrl}/overview`); } catch (e) { return null; }
    if (overviewOf !== baseUrl) return got;  // another collection was picked meanwhile
    overview = got;
    const fit = overview.model_fit;
    if (fit && fit.message) {
      get("banner").replaceChildren(mk("strong", { text: "These results are not meaningful. " }), fit.message);
      get("banner").hidden = false;
    }
    return overview;
  }

  // Only the targets the collection holds (and "All" when it holds more than one kind); returns the target to use.
  function offerTabs(files, current) {
    const have = Object.keys(files || {}).filter((m) => files[m] > 0);
    for (const label of document.querySelectorAll("#to label")) {
      const value = label.querySelector("input").value;
      label.hidden = value === "all" ? have.length < 2 : !have.includes(value);
    }
    if (current === "all" ? have.length > 1 : have.includes(current)) return current;
    return ["image", "video", "audio", "text"].find((m) => have.includes(m)) || current;
  }

  // -- the empty page: examples and a browse view -------------------------------------------------------------
  const browse = { modality: null, order: "recent", offset: 0, seed: 1, base: "", ticket: 0 };

  async function showBrowse(baseUrl, card, runQuery) {
    const ticket = ++browse.ticket;  // a search started meanwhile (hideBrowse) wins
    browse.base = baseUrl;
    const ov = (overview && overviewOf === baseUrl ? overview : await collectionShown(baseUrl)) || { files: {}, examples: [] };
    if (ticket !== browse.ticket) return;
    get("browse").hidden = false;
    const have = Object.keys(ov.files || {});
    if (!have.includes(browse.modality)) browse.modality = ["image", "video", "audio", "text"].find((m) => have.includes(m));
    const examples = get("examples");
    examples.replaceChildren(...(ov.examples || []).map((q) => mk("button", {
      type: "button", class: "example", text: q, onclick: () => runQuery(q),
    })));
    get("examples-wrap").hidden = !(ov.examples || []).length;
    const tabs = get("browse-kinds");
    tabs.replaceChildren(...have.map((m) => mk("button", {
      type: "button", class: "ghost", "aria-pressed": String(m === browse.modality), text: `${ov.files[m]} ${LABELS[m] || m}`,
      onclick: () => { browse.modality = m; browse.offset = 0; showBrowse(baseUrl, card, runQuery); },
    })));
    if (!browse.modality) { get("browse-grid").replaceChildren(); return; }
    await browsePage(card);
  }

  async function browsePage(card) {
    const ticket = browse.ticket;
    const p = new URLSearchParams({ modality: browse.modality, order: browse.order, offset: browse.offset, limit: 24, seed: browse.seed });
    let body;
    try { body = await json(`${browse.base}/browse?${p}`); } catch (e) { return; }
    if (ticket !== browse.ticket) return;
    const grid = mk("div", { class: `grid ${browse.modality}` }, ...body.items.map((hit, i) => card(hit, body.items, i)));
    get("browse-grid").replaceChildren(grid);
    const from = body.total ? browse.offset + 1 : 0;
    get("browse-where").textContent = `${from}–${browse.offset + body.items.length} of ${body.total}`;
    get("browse-prev").disabled = browse.offset === 0;
    get("browse-next").disabled = !body.has_more;
  }

  function wireBrowse(card) {
    get("browse-prev").addEventListener("click", () => { browse.offset = Math.max(0, browse.offset - 24); browsePage(card); });
    get("browse-next").addEventListener("click", () => { browse.offset += 24; browsePage(card); });
    get("browse-order").addEventListener("change", (e) => {
      browse.order = e.target.value;
      browse.seed = Math.floor(Math.random() * 1e6);
      browse.offset = 0;
      browsePage(card);
    });
  }

  function hideBrowse() {
    browse.ticket += 1;
    get("browse").hidden = true;
    get("browse-grid").replaceChildren();  // its cards must not mix with the results
  }

  // -- the preview pane -----------------------------------------------------------------------------------
  const preview = { hits: [], index: 0, likeThis: null, back: null };

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "";
    const units = ["B", "KB", "MB", "GB"];
    let n = bytes, u = 0;
    while (n >= 1024 && u < units.length - 1) { n /= 1024; u += 1; }
    return `${n.toFixed(u ? 1 : 0)} ${units[u]}`;
  }

  function clockOf(s) {
    const m = Math.floor(s / 60), r = s - 60 * m;
    return `${m}:${r < 10 ? "0" : ""}${r.toFixed(r % 1 ? 1 : 0)}`;
  }

  async function openPreview(hits, index, likeThis) {
    preview.hits = hits;
    preview.index = index;
    preview.likeThis = likeThis;
    if (get("preview").hidden) preview.back = document.activeElement;
    get("preview").hidden = false;
    await fillPreview();
    get("preview-close").focus();
  }

  async function fillPreview() {
    const hit = preview.hits[preview.index];
    const view = get("preview-view");
    let media;
    if (hit.modality === "image") media = mk("img", { src: hit.media_url, alt: hit.name });
    else if (hit.modality === "audio") media = mk("audio", { src: `${hit.media_url}#t=${hit.offset || 0}`, controls: true, preload: "metadata" });
    else if (hit.modality === "text") media = mk("blockquote", { class: "snippet", text: hit.snippet || "" });
    else media = mk("video", { src: `${hit.media_url}#t=${hit.offset || 0}`, controls: true, preload: "metadata" });
    view.replaceChildren(media);
    get("preview-title").textContent = hit.name;
    get("preview-count").textContent = `${preview.index + 1} of ${preview.hits.length}`;
    get("preview-open").href = hit.media_url;
    get("preview-prev").disabled = preview.index === 0;
    get("preview-next").disabled = preview.index >= preview.hits.length - 1;
    const facts = get("preview-facts");
    facts.replaceChildren();
    const fact = (k, v) => { if (v) facts.append(mk("dt", { text: k }), mk("dd", { text: v })); };
    fact("Folder", hit.path.slice(0, hit.path.length - hit.name.length - 1));
    fact("Size", size(hit.size));
    if (hit.width && hit.height) fact("Dimensions", `${hit.width} × ${hit.height}`);
    if (hit.duration) fact("Duration", clockOf(hit.duration));
    if (hit.score !== null && hit.score !== undefined) fact("Score", hit.score.toFixed(3) + (hit.weak ? " (weak: does not stand out)" : ""));
    try {
      const more = await json(hit.media_url.replace(/\/media$/, "/details"));
      if (preview.hits[preview.index] !== hit) return;
      if (more.mtime) fact("Modified", new Date(more.mtime * 1000).toLocaleString());
      if (more.tags && more.tags.length) fact("Tags", more.tags.map((t) => t.label).join(", "));
      if (more.words) fact("Words", more.words);
      if (hit.modality === "text" && more.passage_url) {
        const passage = await json(more.passage_url);
        if (preview.hits[preview.index] === hit) media.textContent = passage.passage;
      }
    } catch (e) { /* the facts above are still true */ }
  }

  function step(by) {
    const next = preview.index + by;
    if (next < 0 || next >= preview.hits.length) return;
    preview.index = next;
    fillPreview();
  }

  function closePreview() {
    for (const m of get("preview-view").querySelectorAll("audio, video")) m.pause();
    get("preview").hidden = true;
    if (preview.back && preview.back.focus) preview.back.focus();
  }

  function wirePreview() {
    get("preview-close").addEventListener("click", closePreview);
    get("preview-prev").addEventListener("click", () => step(-1));
    get("preview-next").addEventListener("click", () => step(1));
    get("preview-like").addEventListener("click", () => {
      const hit = preview.hits[preview.index];
      closePreview();
      if (preview.likeThis) preview.likeThis(hit);
    });
    get("preview").addEventListener("click", (e) => { if (e.target === get("preview")) closePreview(); });
    document.addEventListener("keydown", (e) => {
      if (get("preview").hidden) return;
      if (e.key === "Escape") { e.preventDefault(); closePreview(); }
      else if (e.key === "ArrowRight") { e.preventDefault(); step(1); }
      else if (e.key === "ArrowLeft") { e.preventDefault(); step(-1); }
    });
  }

  // -- sounds: a small waveform with the matched window ---------------------------------------------------
  const seen = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      seen.unobserve(entry.target);
      drawWave(entry.target);
    }
  }, { rootMargin: "200px" }) : null;

  function waveform(hit) {
    const canvas = mk("canvas", { class: "wave", width: 320, height: 40, "aria-hidden": "true" });
    canvas.dataset.url = hit.media_url.replace(/\/media$/, "/waveform?points=160");
    if (seen) seen.observe(canvas); else drawWave(canvas);
    return canvas;
  }

  async function drawWave(canvas) {
    let body;
    try { body = await json(canvas.dataset.url); } catch (e) { return; }
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, n = body.peaks.length;
    const ink = getComputedStyle(canvas).color || "#5d6677";
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = ink;
    body.peaks.forEach((p, i) => {
      const bar = Math.max(1, p * (h - 4));
      ctx.fillRect((i * w) / n, (h - bar) / 2, Math.max(1, w / n - 1), bar);
    });
    canvas.dataset.drawn = String(n);
  }

  return { collectionShown, offerTabs, showBrowse, hideBrowse, wireBrowse, openPreview, wirePreview, waveform, overview: () => overview };
})();
