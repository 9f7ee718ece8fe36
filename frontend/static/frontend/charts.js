// Hover values for the server-drawn SVG charts (frontend/charts.py): a tooltip over any element
// with data-tip (bars, dots) on hover or keyboard focus, and, on line charts, the point nearest
// the pointer on every line (so many points without dots can still be read).
function tooltip() {
  let tip = document.getElementById("chart-tip");
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "chart-tip";
    tip.className = "chart-tip";
    tip.setAttribute("role", "status");
    tip.hidden = true;
    document.body.append(tip);
  }
  return tip;
}

function show(text, clientX, clientY) {
  const tip = tooltip();
  tip.textContent = text;
  tip.hidden = false;
  tip.style.left = `${Math.min(window.innerWidth - 260, clientX + 12) + window.scrollX}px`;
  tip.style.top = `${clientY + 14 + window.scrollY}px`;
}

function hide() { tooltip().hidden = true; }

export function nearest(points, x) {
  let best = null;
  for (const p of points) if (!best || Math.abs(p[0] - x) < Math.abs(best[0] - x)) best = p;
  return best;
}

function setupLine(svg) {
  const series = JSON.parse(svg.dataset.hover || "[]");
  const marker = document.createElementNS("http://www.w3.org/2000/svg", "circle");
  marker.setAttribute("r", "5");
  marker.setAttribute("class", "hover-marker");
  marker.setAttribute("visibility", "hidden");
  svg.append(marker);
  svg.addEventListener("pointermove", (e) => {
    const box = svg.getBoundingClientRect();
    const x = (e.clientX - box.left) * (svg.viewBox.baseVal.width / box.width);
    const found = series.map((s) => nearest(s.points, x)).filter(Boolean);
    if (!found.length) return;
    const first = found.reduce((a, b) => (Math.abs(a[0] - x) <= Math.abs(b[0] - x) ? a : b));
    marker.setAttribute("cx", first[0]);
    marker.setAttribute("cy", first[1]);
    marker.setAttribute("visibility", "visible");
    show(found.filter((p) => p[0] === first[0]).map((p) => p[2]).join(" · "), e.clientX, e.clientY);
  });
  svg.addEventListener("pointerleave", () => { marker.setAttribute("visibility", "hidden"); hide(); });
}

for (const el of document.querySelectorAll("svg [data-tip]")) {
  el.addEventListener("pointerenter", (e) => show(el.dataset.tip, e.clientX, e.clientY));
  el.addEventListener("pointerleave", hide);
  el.addEventListener("focus", () => { const b = el.getBoundingClientRect(); show(el.dataset.tip, b.left, b.bottom); });
  el.addEventListener("blur", hide);
}
for (const svg of document.querySelectorAll("svg[data-hover]")) setupLine(svg);
