"""``rmaplab show --html``: one self-contained page that steps through a
trace, for one scheme or several side by side.

The page carries everything (no network): its script and style, and the
recordings of ``show.steps`` as gzip-compressed JSON (the browser's
``DecompressionStream`` opens it) with the graphviz SVG of every distinct
rmap graph. The script rebuilds the state at any event from the deltas
(keeping a copy every 128 events, so a jump costs at most 128 deltas) and
draws only the part of the address spaces in view, so a trace of thousands
of events and processes steps without delay.

What a panel shows, per scheme: every process's ``vm_area_struct``s, one
cell per page (colour: kind, and how many ptes map its frame, counted from
all processes as ``page_mapcount`` would); the frame table, one cell per
frame, coloured by mapcount; the scheme's graph. Hovering a page or a frame
lists every pte that maps the frame and outlines them; a click keeps the
frame selected while stepping.
"""

from __future__ import annotations

import base64
import gzip
import html
from collections.abc import Sequence

import orjson

from rmaplab.show.steps import Recording

#: the page's pieces; ``__DATA__`` and ``__TITLE__`` are filled in
STYLE = """
:root{--fg:#1d1d1f;--mute:#6b6b70;--line:#d8d8dc;--bg:#fafafa;--acc:#2060a0}
*{box-sizing:border-box}
body{margin:0;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{padding:8px 16px 4px}
h1{font-size:17px;margin:0}
.sub{color:var(--mute);font-size:12px}
#bar{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);padding:6px 16px;display:flex;flex-wrap:wrap;gap:6px;align-items:center}
#bar button{font:inherit;padding:2px 9px;border:1px solid #bbb;border-radius:4px;background:#f4f4f6;cursor:pointer;min-width:34px}
#bar button:hover{background:#e8eef8}
#slider{flex:1 1 260px;min-width:160px}
#pos{font-variant-numeric:tabular-nums;min-width:150px}
#goto{width:80px;font:inherit}
#evline{padding:6px 16px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px;background:#fff;border-bottom:1px solid var(--line)}
#evline .cur{font-weight:600}
#near{display:flex;gap:14px;overflow:hidden;white-space:nowrap;color:var(--mute);font-size:11.5px;margin-top:2px}
#near span{cursor:pointer}#near span:hover{color:var(--acc)}
#near .here{color:var(--fg);font-weight:600}
main{display:grid;gap:12px;padding:10px 16px}
.panel{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 10px;min-width:0}
.panel h2{font-size:15px;margin:0 0 2px;display:flex;gap:10px;align-items:baseline}
.panel h2 .res{font-size:12px;font-weight:400;color:var(--mute)}
.panel h3{font-size:12.5px;margin:10px 0 3px;color:#333}
.frnote{font-weight:400;color:var(--mute)}
.stats{color:var(--mute);font-size:12px;font-variant-numeric:tabular-nums}
.asp-wrap{position:relative;max-height:min(46vh,440px);overflow-y:auto;border:1px solid #eee;border-radius:4px}
.asp-wrap canvas{position:sticky;top:0;display:block}
canvas.frames{display:block;border:1px solid #eee;border-radius:4px}
.graph{overflow:auto;max-height:62vh;border:1px solid #eee;border-radius:4px;padding:4px;background:#fff}
.graph svg{max-width:100%;height:auto}
.note{color:#8a5a00;font-size:11.5px;min-height:1em}
.err{color:#b00020;font-weight:600}
#tip{position:fixed;pointer-events:none;background:#222;color:#fff;font:11.5px/1.35 ui-monospace,Menlo,Consolas,monospace;padding:5px 7px;border-radius:4px;max-width:460px;white-space:pre;z-index:10;display:none}
#legend{padding:0 16px 14px;color:var(--mute);font-size:12px;display:flex;flex-wrap:wrap;gap:12px}
#legend i{display:inline-block;width:11px;height:11px;border-radius:2px;vertical-align:-1px;margin-right:4px;border:1px solid #0002}
#status{padding:4px 16px;color:#b00020}
"""

SCRIPT = r"""
"use strict";
(async function () {
const $ = (id) => document.getElementById(id);
const statusEl = $("status");
let D;
try {
  const b64 = $("rmap-data").textContent.trim();
  const raw = atob(b64), bin = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bin[i] = raw.charCodeAt(i);
  const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("gzip"));
  D = JSON.parse(await new Response(stream).text());
} catch (e) {
  statusEl.textContent = "This page could not read its embedded data (" + e + "); a current browser is needed.";
  return;
}
const PAGE = 4096, SNAP = 128, LH = 14, E = D.events.length;
const hex = (n) => n.toString(16).padStart(12, "0");
const fmt = (n) => n.toLocaleString("en-US");
const pl = (n, one, many) => `${fmt(n)} ${n === 1 ? one : many}`;
const COL = {"-": "#e9e9ec", A: "#4c72b0", F: "#55a868", z: "#ffffff", s: "#8e6fc1"};
const SHARED_A = ["#f2c14e", "#f39c34", "#e8702a", "#c8401a"];
const SHARED_F = ["#8fd0a0", "#52a86f", "#2f8050", "#1b5e38"];
const shade = (pal, c) => pal[c <= 2 ? 0 : c <= 4 ? 1 : c < 10 ? 2 : 3];
function cellColour(kind, count) {
  if (kind === "A" || kind === "F") return count > 1 ? shade(kind === "A" ? SHARED_A : SHARED_F, count) : COL[kind];
  return COL[kind] || "#f00";
}
function cellChar(kind, count) {
  if ((kind === "A" || kind === "F") && count > 1) return count >= 10 ? "*" : String(count);
  return kind;
}
const tip = $("tip");
function showTip(ev, text) {
  tip.textContent = text; tip.style.display = "block";
  const x = Math.min(ev.clientX + 14, innerWidth - tip.offsetWidth - 6);
  const y = ev.clientY + 16 + tip.offsetHeight > innerHeight ? ev.clientY - tip.offsetHeight - 8 : ev.clientY + 16;
  tip.style.left = x + "px"; tip.style.top = y + "px";
}
function hideTip() { tip.style.display = "none"; }

function apply(st, delta) {
  for (const [pid, rows] of delta) {
    if (rows === null) { st.delete(pid); continue; }
    const old = new Map((st.get(pid) || []).map((r) => [r[0], r]));
    st.set(pid, rows.map((r) => typeof r === "number" ? old.get(r) : r));
  }
}

class Panel {
  constructor(k, rec, svgs, root) {
    this.rec = rec; this.svgs = svgs || []; this.n = rec.deltas.length;
    this.snaps = [];
    const st = new Map();
    for (let i = 0; i < this.n; i++) {
      if (i % SNAP === 0) this.snaps.push(new Map(st));
      apply(st, rec.deltas[i]);
    }
    this.pin = -1; this.hover = -1; this.graphShown = -2;
    const el = document.createElement("section");
    el.className = "panel";
    el.innerHTML = `<h2>${rec.name}<span class="res"></span></h2><div class="stats"></div>` +
      `<h3>address spaces: a row per VMA, a cell per page</h3>` +
      `<div class="asp-wrap"><canvas class="asp"></canvas><div class="spacer"></div></div>` +
      `<h3>frames: a cell per page frame, by how many ptes map it <span class="frnote"></span></h3><canvas class="frames"></canvas>` +
      `<h3>reverse map</h3><div class="note"></div><div class="graph"></div>`;
    root.appendChild(el);
    this.el = el;
    this.res = el.querySelector(".res"); this.stats = el.querySelector(".stats");
    this.wrap = el.querySelector(".asp-wrap"); this.spacer = el.querySelector(".spacer");
    this.asp = el.querySelector("canvas.asp"); this.fr = el.querySelector("canvas.frames");
    this.frNote = el.querySelector(".frnote");
    this.note = el.querySelector(".note"); this.graph = el.querySelector(".graph");
    this.wrap.addEventListener("scroll", () => this.drawAsp());
    this.asp.addEventListener("mousemove", (e) => this.aspHover(e));
    this.asp.addEventListener("mouseleave", () => { this.hover = -1; hideTip(); this.drawAsp(); this.drawFrames(); });
    this.asp.addEventListener("click", (e) => { const h = this.aspAt(e); this.pin = h && h.pfn > 0 ? (this.pin === h.pfn ? -1 : h.pfn) : -1; this.drawAsp(); this.drawFrames(); });
    this.fr.addEventListener("mousemove", (e) => this.frHover(e));
    this.fr.addEventListener("mouseleave", () => { this.hover = -1; hideTip(); this.drawAsp(); this.drawFrames(); });
    this.fr.addEventListener("click", (e) => { const p = this.frAt(e); this.pin = p > 0 ? (this.pin === p ? -1 : p) : -1; this.drawAsp(); this.drawFrames(); });
  }
  stateAt(i) {
    i = Math.min(i, this.n - 1);
    if (i < 0) return new Map();
    const j = Math.floor(i / SNAP), st = new Map(this.snaps[j]);
    for (let e = j * SNAP; e <= i; e++) apply(st, this.rec.deltas[e]);
    return st;
  }
  show(i) {
    this.i = i;
    this.state = this.stateAt(i);
    this.pids = [...this.state.keys()].sort((a, b) => a - b);
    this.count = new Uint32Array(D.maxPfn + 2);
    for (const rows of this.state.values()) for (const r of rows) for (const [k, n, f] of r[6])
      if (k === "A" || k === "F") for (let p = f; p < f + n; p++) this.count[p]++;
    let mapped = 0, shared = 0;
    for (let p = 1; p < this.count.length; p++) if (this.count[p]) { mapped++; if (this.count[p] > 1) shared++; }
    const s = this.rec.stats[Math.min(i, this.n - 1)] || [0, 0, 0, 0, 0, 0];
    this.stats.textContent = `${pl(s[0], "process", "processes")}, ${pl(s[1], "VMA", "VMAs")} · frames ${fmt(s[2])} used, ` +
      `${fmt(mapped)} mapped, ${fmt(shared)} shared · swap ${fmt(s[3])} pages · rmap metadata ` +
      `${fmt(s[4])} B (i386), ${fmt(s[5])} B (x86_64)`;
    if (i >= this.n) this.res.innerHTML = `<span class="err">replay stopped before this event: ${this.rec.error || ""}</span>`;
    else { const r = this.rec.results[i]; this.res.textContent = "result: " + (r === null ? "-" : typeof r === "number" && r > 4096 ? "0x" + r.toString(16) : r); }
    this.layout();
    this.drawAsp(); this.drawFrames(); this.drawGraph(i);
  }
  layout() {
    const w = Math.max(200, this.wrap.clientWidth);
    this.labelW = 62 + 160;
    const avail = w - this.labelW - 8;
    let cw = Math.floor(avail / Math.max(1, D.maxPages));
    cw = Math.max(1, Math.min(14, cw));
    this.cw = cw; this.L = Math.max(1, Math.floor(avail / cw));
    const lines = [];
    for (const pid of this.pids) {
      const rows = this.state.get(pid);
      if (!rows.length) { lines.push({pid, row: null, off: 0, head: true}); continue; }
      rows.forEach((r, ri) => {
        const np = (r[2] - r[1]) / PAGE;
        for (let off = 0; off < np; off += this.L) lines.push({pid, row: r, off, np, head: ri === 0 && off === 0});
      });
    }
    this.lines = lines;
    const maxH = Math.min(0.46 * innerHeight, 440);
    const h = Math.floor(Math.min(maxH, Math.max(LH, lines.length * LH)));
    this.wrap.style.height = h + 2 + "px";
    const dpr = devicePixelRatio || 1;
    if (this.asp.width !== Math.round(w * dpr) || this.asp.height !== Math.round(h * dpr)) {
      this.asp.width = Math.round(w * dpr); this.asp.height = Math.round(h * dpr);
      this.asp.style.width = w + "px"; this.asp.style.height = h + "px";
    }
    this.spacer.style.height = Math.max(0, lines.length * LH - h) + "px";
  }
  drawAsp() {
    if (!this.lines) return;
    const ctx = this.asp.getContext("2d"), dpr = devicePixelRatio || 1;
    const W = this.asp.width / dpr, H = this.asp.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const top = this.wrap.scrollTop, first = Math.floor(top / LH);
    const last = Math.min(this.lines.length, first + Math.ceil(H / LH) + 1);
    const sel = this.hover > 0 ? this.hover : this.pin;
    ctx.font = "11px ui-monospace,Menlo,Consolas,monospace"; ctx.textBaseline = "middle";
    const cw = this.cw, x0 = this.labelW;
    if (!this.lines.length) { ctx.fillStyle = "#888"; ctx.fillText("no processes", 6, LH / 2); return; }
    for (let li = first; li < last; li++) {
      const L = this.lines[li], y = li * LH - top;
      if (L.head) { ctx.fillStyle = "#ddd"; ctx.fillRect(0, y, W, 1); ctx.fillStyle = "#111"; ctx.fillText("pid " + L.pid, 4, y + LH / 2); }
      if (!L.row) { ctx.fillStyle = "#888"; ctx.fillText("no VMAs", 62, y + LH / 2); continue; }
      const r = L.row;
      if (L.off === 0) {
        ctx.fillStyle = "#333";
        ctx.fillText(hex(r[1]) + " " + r[3] + " " + (r[5] === null ? "" : "av" + r[5]), 62, y + LH / 2);
      }
      let at = 0;
      const end = Math.min(L.off + this.L, L.np);
      for (const [k, n, f] of r[6]) {
        if (at + n <= L.off) { at += n; continue; }
        if (at >= end) break;
        for (let p = Math.max(at, L.off); p < Math.min(at + n, end); p++) {
          const pfn = f >= 0 && (k === "A" || k === "F") ? f + p - at : -1;
          const c = pfn > 0 ? this.count[pfn] : 0;
          const x = x0 + (p - L.off) * cw;
          ctx.fillStyle = cellColour(k, c);
          ctx.fillRect(x, y + 2, cw > 3 ? cw - 1 : cw, LH - 4);
          if (k === "z") { ctx.strokeStyle = "#bbb"; ctx.strokeRect(x + 0.5, y + 2.5, cw - 2, LH - 5); }
          if (cw >= 9) { ctx.fillStyle = k === "-" || k === "z" ? "#999" : "#fff"; ctx.fillText(cellChar(k, c), x + cw / 2 - 3, y + LH / 2); }
          if (pfn > 0 && pfn === sel) { ctx.strokeStyle = "#000"; ctx.lineWidth = 2; ctx.strokeRect(x, y + 1, Math.max(cw, 3), LH - 2); ctx.lineWidth = 1; }
        }
        at += n;
      }
    }
  }
  aspAt(e) {
    const b = this.asp.getBoundingClientRect();
    const li = Math.floor((e.clientY - b.top + this.wrap.scrollTop) / LH);
    const L = this.lines && this.lines[li];
    if (!L || !L.row) return null;
    const p = L.off + Math.floor((e.clientX - b.left - this.labelW) / this.cw);
    if (e.clientX - b.left < this.labelW || p >= Math.min(L.off + this.L, L.np)) return {L, p: -1, pfn: -1};
    let at = 0;
    for (const [k, n, f] of L.row[6]) {
      if (p < at + n) return {L, p, k, ref: f >= 0 ? f + p - at : -1, pfn: (k === "A" || k === "F") ? f + p - at : -1};
      at += n;
    }
    return null;
  }
  mappers(pfn, max) {
    const out = [];
    let total = 0;
    for (const pid of this.pids) for (const r of this.state.get(pid)) {
      let at = 0;
      for (const [k, n, f] of r[6]) {
        if ((k === "A" || k === "F") && pfn >= f && pfn < f + n) {
          total++;
          if (out.length < max) out.push(`pid ${pid} at 0x${hex(r[1] + (at + pfn - f) * PAGE)} (vma#${r[0]})`);
        }
        at += n;
      }
    }
    if (total > out.length) out.push(`... ${fmt(total - out.length)} more`);
    return out;
  }
  aspHover(e) {
    const h = this.aspAt(e);
    if (!h) { this.hover = -1; hideTip(); this.drawAsp(); this.drawFrames(); return; }
    const r = h.L.row;
    if (h.p < 0) {
      showTip(e, `pid ${h.L.pid} vma#${r[0]}  ${hex(r[1])}-${hex(r[2])} ${r[3]}\n` +
        `${fmt(h.L.np)} pages, anon_vma ${r[5] === null ? "none" : "av" + r[5]}${r[4] ? "\nfile " + r[4] : ""}`);
      this.hover = -1;
    } else {
      const addr = r[1] + h.p * PAGE;
      let text = `pid ${h.L.pid}  0x${hex(addr)}  vma#${r[0]} ${r[3]}\n`;
      if (h.k === "-") text += "no pte";
      else if (h.k === "z") text += "the zero page";
      else if (h.k === "s") text += `swapped out: swap entry ${h.ref}`;
      else text += `${h.k === "A" ? "anonymous" : "page cache"} frame, pfn ${h.pfn}, mapped by ${this.count[h.pfn]} pte${this.count[h.pfn] > 1 ? "s" : ""}:\n  ` + this.mappers(h.pfn, 10).join("\n  ");
      showTip(e, text + (h.pfn > 0 ? "\n(click: keep this frame outlined)" : ""));
      this.hover = h.pfn;
    }
    this.drawAsp(); this.drawFrames();
  }
  frGeom() {
    const w = Math.max(200, this.wrap.clientWidth), n = Math.max(1, D.maxPfn), maxH = 120;
    let s = 1;
    for (const c of [12, 9, 7, 5, 4, 3, 2]) if (Math.ceil(n / Math.floor(w / c)) * c <= maxH) { s = c; break; }
    const cols = Math.floor(w / s);
    const per = Math.max(1, Math.ceil(n / (cols * Math.floor(maxH / s))));
    const rows = Math.ceil(n / per / cols);
    return {s, cols, rows, per, w, h: Math.max(s, rows * s)};
  }
  drawFrames() {
    if (!this.count) return;
    const g = this.frGeom(), c = this.fr;
    if (c.width !== g.cols * g.s || c.height !== g.h) { c.width = g.cols * g.s; c.height = g.h; }
    const ctx = c.getContext("2d"), img = ctx.createImageData(c.width, c.height), px = new Uint32Array(img.data.buffer);
    const rgba = (h) => { const v = parseInt(h.slice(1), 16); return (255 << 24) | ((v & 255) << 16) | (v & 0xff00) | (v >> 16); };
    const free = rgba("#f1f1f3"), one = rgba(COL.A), pal = SHARED_A.map(rgba), black = rgba("#000000");
    const sel = this.hover > 0 ? this.hover : this.pin;
    const inner = g.s > 3 ? g.s - 1 : g.s, cells = Math.ceil(D.maxPfn / g.per);
    for (let i = 0; i < cells; i++) {
      let cnt = 0, hit = false;
      for (let pfn = 1 + i * g.per; pfn <= Math.min(D.maxPfn, (i + 1) * g.per); pfn++) {
        if (this.count[pfn] > cnt) cnt = this.count[pfn];
        if (pfn === sel) hit = true;
      }
      const v = hit ? black : cnt === 0 ? free : cnt === 1 ? one : pal[cnt <= 2 ? 0 : cnt <= 4 ? 1 : cnt < 10 ? 2 : 3];
      const x = (i % g.cols) * g.s, y = Math.floor(i / g.cols) * g.s;
      for (let dy = 0; dy < inner; dy++) px.fill(v, (y + dy) * c.width + x, (y + dy) * c.width + x + inner);
    }
    ctx.putImageData(img, 0, 0);
    this.frNote.textContent = g.per > 1 ? `(${g.per} frames a cell, coloured by the most mapped)` : "";
  }
  frAt(e) {
    const g = this.frGeom(), b = this.fr.getBoundingClientRect();
    const x = Math.floor((e.clientX - b.left) / g.s), y = Math.floor((e.clientY - b.top) / g.s);
    const i = y * g.cols + x;
    if (x >= g.cols || i * g.per + 1 > D.maxPfn) return -1;
    let best = i * g.per + 1;
    for (let pfn = best; pfn <= Math.min(D.maxPfn, (i + 1) * g.per); pfn++) if (this.count[pfn] > this.count[best]) best = pfn;
    return best;
  }
  frHover(e) {
    const pfn = this.frAt(e);
    if (pfn < 0) { this.hover = -1; hideTip(); } else {
      const c = this.count[pfn] || 0;
      showTip(e, `pfn ${pfn}: ` + (c ? `mapped by ${c} pte${c > 1 ? "s" : ""}:\n  ` + this.mappers(pfn, 10).join("\n  ") : "not mapped (free, or only in a cache)"));
      this.hover = pfn;
    }
    this.drawAsp(); this.drawFrames();
  }
  drawGraph(i) {
    const k = Math.min(i, this.n - 1);
    const gid = k >= 0 ? this.rec.graph[k] : -1, ge = k >= 0 ? this.rec.graphEvent[k] : -1;
    if (D.graphNote) { this.note.textContent = D.graphNote; return; }
    if (gid !== this.graphShown) { this.graph.innerHTML = gid >= 0 ? this.svgs[gid] : ""; this.graphShown = gid; }
    const same = k >= 0 && this.rec.graphSame[k];
    this.note.textContent = ge < 0 || ge === i ? "" : same ? `as drawn after event ${fmt(ge)}: unchanged since` :
      `drawn after event ${fmt(ge)}: the structures are those of that moment (graphs are drawn about every ${fmt(D.graphGap)} events)`;
  }
}

document.title = D.title;
const main = $("main");
main.style.gridTemplateColumns = `repeat(${D.schemes.length}, minmax(0, 1fr))`;
const panels = D.schemes.map((s, k) => new Panel(k, s, D.svgs ? D.svgs[k] : [], main));
const slider = $("slider");
slider.max = String(Math.max(0, E - 1));
let cur = 0, want = 0, queued = false, timer = null;
function render() {
  queued = false;
  cur = want;
  slider.value = String(cur);
  $("pos").textContent = `event ${fmt(cur)} of ${fmt(E - 1)}`;
  const [line, text] = D.events[cur] || [0, ""];
  $("cur").textContent = `event ${fmt(cur)} (line ${fmt(line)}): ${text}`;
  const near = $("near");
  near.innerHTML = "";
  for (let j = Math.max(0, cur - 3); j <= Math.min(E - 1, cur + 3); j++) {
    const sp = document.createElement("span");
    sp.textContent = `${j}: ${D.events[j][1]}`;
    if (j === cur) sp.className = "here";
    sp.addEventListener("click", () => go(j));
    near.appendChild(sp);
  }
  for (const p of panels) p.show(cur);
  document.body.dataset.event = String(cur);
}
function go(i) {
  want = Math.max(0, Math.min(E - 1, i | 0));
  if (!queued) { queued = true; requestAnimationFrame(render); }
}
function checkpoint(dir) {
  const cps = D.checkpoints;
  if (dir > 0) { const n = cps.find((c) => c > cur); go(n === undefined ? E - 1 : n); }
  else { const p = [...cps].reverse().find((c) => c < cur); go(p === undefined ? 0 : p); }
}
function play() {
  if (timer) { clearInterval(timer); timer = null; $("play").textContent = "play"; return; }
  $("play").textContent = "stop";
  timer = setInterval(() => {
    if (cur >= E - 1) { play(); return; }
    go(cur + Number($("speed").value));
  }, 80);
}
$("first").onclick = () => go(0);
$("prev").onclick = () => go(cur - 1);
$("next").onclick = () => go(cur + 1);
$("last").onclick = () => go(E - 1);
$("pcp").onclick = () => checkpoint(-1);
$("ncp").onclick = () => checkpoint(1);
$("play").onclick = play;
slider.oninput = () => go(Number(slider.value));
$("goto").onchange = () => go(Number($("goto").value));
document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" && e.target.type !== "range") return;
  const step = e.shiftKey ? 100 : 1;
  if (e.key === "ArrowRight") { go(cur + step); e.preventDefault(); }
  else if (e.key === "ArrowLeft") { go(cur - step); e.preventDefault(); }
  else if (e.key === "Home") go(0);
  else if (e.key === "End") go(E - 1);
  else if (e.key === "Escape") { for (const p of panels) { p.pin = -1; p.drawAsp(); p.drawFrames(); } }
});
addEventListener("resize", () => go(cur));
window.rmapShow = {go, events: E, current: () => cur};
statusEl.textContent = "";
go(D.start || 0);
})();
"""

BODY = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title><style>__STYLE__</style></head>
<body>
<header><h1>__TITLE__</h1><div class="sub">__SUB__</div></header>
<div id="bar">
<button id="first" title="first event (Home)">|&lt;</button>
<button id="pcp" title="previous checkpoint">&lt;cp</button>
<button id="prev" title="previous event (Left; Shift: 100)">&lt;</button>
<input id="slider" type="range" min="0" max="0" value="0" aria-label="event">
<button id="next" title="next event (Right; Shift: 100)">&gt;</button>
<button id="ncp" title="next checkpoint">cp&gt;</button>
<button id="last" title="last event (End)">&gt;|</button>
<button id="play">play</button>
<select id="speed" title="events per tick"><option value="1">1/tick</option><option value="10">10/tick</option><option value="100">100/tick</option></select>
<span id="pos"></span>
<label>go to <input id="goto" type="number" min="0"></label>
</div>
<div id="evline"><div id="cur" class="cur"></div><div id="near"></div></div>
<div id="status">loading...</div>
<main id="main"></main>
<div id="legend">
<span><i style="background:#e9e9ec"></i>no pte</span>
<span><i style="background:#4c72b0"></i>anonymous page, mapped once</span>
<span><i style="background:#55a868"></i>page-cache page, mapped once</span>
<span><i style="background:#f2c14e"></i><i style="background:#f39c34"></i><i style="background:#e8702a"></i><i style="background:#c8401a"></i>anonymous frame mapped 2, 3-4, 5-9, 10+ times</span>
<span><i style="background:#8fd0a0"></i><i style="background:#1b5e38"></i>shared page-cache frame</span>
<span><i style="background:#fff"></i>zero page</span>
<span><i style="background:#8e6fc1"></i>swapped out</span>
<span>keys: Left/Right step (Shift: 100), Home/End; hover a page or frame for its ptes, click to keep it outlined, Esc to clear</span>
</div>
<div id="tip"></div>
<script type="application/octet-stream" id="rmap-data">__DATA__</script>
<script>__SCRIPT__</script>
</body></html>
"""


def _max_extents(recs: Sequence[Recording]) -> tuple[int, int]:
    """The highest pfn any row names and the most pages in one VMA."""
    max_pfn, max_pages = 1, 1
    for rec in recs:
        for delta in rec.deltas:
            for _, rows in delta:
                for r in rows or ():
                    if isinstance(r, int):
                        continue
                    max_pages = max(max_pages, (r[2] - r[1]) >> 12)
                    for kind, n, first in r[6]:
                        if kind in ("A", "F"):
                            max_pfn = max(max_pfn, first + n - 1)
    return max_pfn, max_pages


def page(title: str, subtitle: str, events: Sequence[tuple[int, str]], checkpoints: Sequence[int],
         recordings: Sequence[Recording], svgs: Sequence[Sequence[str]] | None,
         graph_note: str | None = None, start: int = 0, graph_budget: int = 300) -> str:
    """The whole HTML page (see the module docstring). ``svgs[k][g]`` is
    graph ``g`` of recording ``k``; with ``svgs`` None, ``graph_note`` says
    why there are no graphs."""
    max_pfn, max_pages = _max_extents(recordings)
    data = {"title": title, "events": [list(e) for e in events], "checkpoints": list(checkpoints),
            "maxPfn": max_pfn, "maxPages": max_pages, "start": start, "graphNote": graph_note,
            "graphGap": max(1, len(events) // max(1, graph_budget)),
            "svgs": [list(s) for s in svgs] if svgs is not None else None,
            "schemes": [{"name": r.scheme, "results": r.results, "deltas": r.deltas,
                         "stats": r.stats, "graph": r.graph, "graphEvent": r.graph_event,
                         "graphSame": r.graph_same,
                         "error": r.error} for r in recordings]}
    blob = base64.b64encode(gzip.compress(orjson.dumps(data), compresslevel=9, mtime=0)).decode()
    esc = html.escape
    return (BODY.replace("__STYLE__", STYLE).replace("__SCRIPT__", SCRIPT)
            .replace("__TITLE__", esc(title)).replace("__SUB__", esc(subtitle))
            .replace("__DATA__", blob))
