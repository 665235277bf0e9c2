// A stacked bar chart in SVG: one bar per bucket, one colour per series; no library needed for this much.

const NS = 'http://www.w3.org/2000/svg';
export const COLOURS = ['#1f5fbf', '#d9822b', '#2e8b57', '#8e44ad', '#c0392b', '#16a085'];

function el(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// series: [{key, values: number[]}], labels: string[]; fmtY and fmtX format axis ticks.
export function stackedBars({ labels, series, fmtY, fmtX, title }) {
  const W = 900, H = 240, L = 64, B = 28, T = 10;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title, preserveAspectRatio: 'none' });
  const totals = labels.map((_, i) => series.reduce((s, line) => s + (line.values[i] || 0), 0));
  const max = Math.max(...totals, 0) || 1;
  const plotW = W - L - 8, plotH = H - T - B;
  for (let g = 0; g <= 4; g += 1) {
    const y = T + plotH - (plotH * g) / 4;
    svg.append(el('line', { x1: L, x2: W - 8, y1: y, y2: y, stroke: '#d9dee6', 'stroke-width': 1 }));
    const tick = el('text', { x: L - 4, y: y + 3, 'text-anchor': 'end' });
    tick.textContent = fmtY((max * g) / 4);
    svg.append(tick);
  }
  const step = plotW / Math.max(labels.length, 1);
  const barW = Math.max(1, step * 0.8);
  labels.forEach((label, i) => {
    let y = T + plotH;
    series.forEach((line, s) => {
      const v = line.values[i] || 0;
      if (v <= 0) return;
      const hgt = (v / max) * plotH;
      y -= hgt;
      const rect = el('rect', { x: L + i * step + (step - barW) / 2, y, width: barW, height: hgt, fill: COLOURS[s % COLOURS.length] });
      const tip = el('title', {});
      tip.textContent = `${fmtX(label)} · ${line.key}: ${fmtY(v)}`;
      rect.append(tip);
      svg.append(rect);
    });
  });
  const every = Math.ceil(labels.length / 8);
  labels.forEach((label, i) => {
    if (i % every) return;
    const tick = el('text', { x: L + i * step + step / 2, y: H - 10, 'text-anchor': 'middle' });
    tick.textContent = fmtX(label);
    svg.append(tick);
  });
  return svg;
}
