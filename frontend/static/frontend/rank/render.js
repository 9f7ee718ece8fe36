// Drawing the task from the state. HTML comes only from the server's sanitised content_html
// (annotation/services/rendering.py); everything else is inserted as text.
import { LETTERS } from "./keys.js";
import { placedIds } from "./tiers.js";

export const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

function contentBody(className, html, raw, showRaw, label) {
  const body = el("div", { className: `${className} markdown`, tabindex: 0, "aria-label": label });
  fillContent(body, html, raw, showRaw);
  return body;
}

/** Rendered Markdown, or the raw text in a <pre>: formatting can hide what a model wrote. */
export function fillContent(body, html, raw, showRaw) {
  body.classList.toggle("raw", showRaw);
  if (showRaw) {
    body.replaceChildren(el("pre", { className: "raw-text", text: raw }));
  } else {
    body.innerHTML = html; // sanitised on the server (nh3); the page's CSP refuses inline script anyway
  }
}

const RECENT_TURNS = 2; // older turns of a long conversation are folded away

export function renderMessages(container, messages, showRaw) {
  container.replaceChildren();
  const turn = (m) => el("div", { className: `turn turn-${["user", "system"].includes(m.role) ? m.role : "assistant"}` },
    el("div", { className: "who-role", text: m.role }), contentBody("turn-body", m.content_html ?? "", m.content, showRaw, `${m.role} turn`));
  const older = messages.slice(0, Math.max(0, messages.length - RECENT_TURNS));
  if (older.length) {
    const fold = el("details", { className: "older-turns" }, el("summary", { text: `${older.length} earlier turn${older.length > 1 ? "s" : ""} of the conversation` }));
    fold.append(...older.map(turn));
    container.append(fold);
  }
  container.append(...messages.slice(older.length).map(turn));
  container.scrollTop = 0;
}

export function renderCards(container, task, { flags, work, showRaw, rawCards, flagsOpen }) {
  container.replaceChildren();
  container.style.setProperty("--k", task.responses.length);
  task.responses.forEach((r, index) => {
    const raw = showRaw || rawCards.has(r.id);
    const place = el("span", { className: "place", "aria-live": "polite" });
    const head = el("header", { className: "response-head" },
      el("h3", { id: `title-${r.id}` }, "Response ", el("span", { className: "letter", text: r.label })),
      place,
      el("button", { type: "button", className: "place-next", "data-action": "place", "aria-label": `Put response ${r.label} next in the ranking` },
        "Rank ", el("kbd", { text: r.label })),
      el("button", { type: "button", className: "raw-toggle", "data-action": "raw", "aria-pressed": raw ? "true" : "false",
        "aria-label": `Raw text of response ${r.label}` }, "Raw"));
    const body = contentBody("response-body", r.content_html ?? "", r.content, raw, `Text of response ${r.label}`);
    const fieldset = el("fieldset", { className: `flags${flagsOpen === index ? " open" : ""}`, id: `flags-${r.id}` },
      el("legend", { className: "flags-legend", title: `Flags of response ${r.label} (Shift+${LETTERS[index]})` },
        el("span", { className: "sr-only", text: `Flags of response ${r.label}` }), el("kbd", { text: `⇧${LETTERS[index]}` })));
    flags.forEach((f, i) => {
      const box = el("input", { type: "checkbox", "data-flag": f.code, "aria-label": `${f.label} (response ${r.label})` });
      box.checked = !!work.flags[r.id]?.has(f.code);
      fieldset.append(el("label", {}, box, " ", flagsOpen === index ? el("kbd", { text: String(i + 1) }) : "", flagsOpen === index ? " " : "", f.label));
    });
    const card = el("article", { className: "response card", "data-id": r.id, "data-label": r.label, draggable: "true",
      "aria-labelledby": `title-${r.id}` }, head, body, fieldset);
    container.append(card);
  });
}

export function renderRanking({ list, pool, task, tiers, tieMode, labelOf }) {
  list.replaceChildren();
  tiers.forEach((tier, index) => {
    list.append(el("li", {
      className: "tier", tabindex: 0, "data-index": index, "data-ids": tier.join(" "),
      "aria-label": `Place ${index + 1}: ${tier.map((id) => `response ${labelOf(id)}`).join(" tied with ")}. Alt and arrows move it, Delete takes it out.`,
      text: tier.map(labelOf).join(" = "),
    }));
  });
  const placed = placedIds(tiers);
  pool.replaceChildren();
  for (const r of task.responses) {
    if (placed.has(r.id)) continue;
    pool.append(el("li", { className: "chip", "data-id": r.id, text: r.label, "aria-label": `Response ${r.label}, not ranked` }));
  }
  if (!pool.children.length) pool.append(el("li", { className: "done-hint", text: "all ranked: Enter submits" }));
  for (const card of document.querySelectorAll("#cards .response")) {
    const index = tiers.findIndex((t) => t.includes(card.dataset.id));
    card.classList.toggle("ranked", index >= 0);
    card.querySelector(".place").textContent = index >= 0 ? `#${index + 1}` : "";
  }
  $("tie-mode").hidden = !tieMode;
}

export function renderKeys(tbody, rows) {
  tbody.replaceChildren(...rows.map(([keys, what]) => el("tr", {}, el("td", {}, el("kbd", { text: keys })), el("td", { text: what }))));
}
