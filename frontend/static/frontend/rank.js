// The ranking page: a plain ES module over the ranking API (session cookie + CSRF header).
// Everything from the server is inserted as text or through escapeHtml(): nothing it sends can
// run as markup. The next task is prefetched (next-task?after=) so it shows at once after a submit.

const config = JSON.parse(document.getElementById("rank-config").textContent);
const $ = (id) => document.getElementById(id);
const LETTERS = "ABCDEFGHIJKLMNOP";

const state = {
  task: null, // the assignment shown
  next: null, // the prefetched one (or null)
  nextEmpty: null, // the 204 reason met while prefetching
  tiers: [], // [[opaque id, ...], ...] best first
  tieMode: false,
  flags: {}, // opaque id -> Set of flags
  shownAt: 0,
  busy: false,
  keys: {}, // assignment id -> Idempotency-Key, so a retried submit is answered once
  doneToday: 0, // counted here too: a prefetched task's progress predates the last submit
};

// ---------------------------------------------------------------- helpers

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function api(method, path, body, headers = {}) {
  const init = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "X-CSRFToken": csrfToken(), ...headers },
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(config.api + path, init);
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  return { status: response.status, data, headers: response.headers };
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

// A small Markdown subset: fenced code blocks, inline code, bold, italics, headings, lists,
// paragraphs. The text is escaped first, so the only markup is the one added here.
export function renderMarkdown(text) {
  const parts = String(text).split(/^```[^\n]*\n?/m);
  let html = "";
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      html += `<pre><code>${escapeHtml(part.replace(/\n$/, ""))}</code></pre>`;
      return;
    }
    const blocks = part.split(/\n{2,}/);
    for (const block of blocks) {
      if (!block.trim()) continue;
      const lines = block.split("\n");
      if (lines.every((l) => /^\s*([-*]|\d+\.)\s+/.test(l))) {
        const ordered = /^\s*\d+\./.test(lines[0]);
        const items = lines.map((l) => `<li>${inline(l.replace(/^\s*([-*]|\d+\.)\s+/, ""))}</li>`).join("");
        html += ordered ? `<ol>${items}</ol>` : `<ul>${items}</ul>`;
      } else if (/^#{1,6}\s/.test(lines[0]) && lines.length === 1) {
        const level = Math.min(6, lines[0].match(/^#+/)[0].length + 2);
        html += `<h${level}>${inline(lines[0].replace(/^#+\s*/, ""))}</h${level}>`;
      } else {
        html += `<p>${lines.map(inline).join("<br>")}</p>`;
      }
    }
  });
  return html;
}

function inline(line) {
  return escapeHtml(line)
    .replace(/`([^`]+)`/g, "<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
    .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
}

function say(text) {
  const status = $("status");
  status.textContent = text;
  status.classList.remove("flash");
  void status.offsetWidth; // restart the highlight animation
  status.classList.add("flash");
}

function alertMessage(text, action = null) {
  const box = $("alert");
  if (!text) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = text;
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = action.label;
    button.addEventListener("click", () => { alertMessage(""); action.run(); });
    box.append(" ", button);
  }
  box.hidden = false;
}

function labelOf(id) {
  const r = state.task.responses.find((x) => x.id === id);
  return r ? r.label : "?";
}

function placed() {
  return new Set(state.tiers.flat());
}

function draftKey(task) { return `rank-draft:${task.id}`; }

function saveDraft() {
  if (!state.task) return;
  const draft = {
    tiers: state.tiers,
    flags: Object.fromEntries(Object.entries(state.flags).map(([k, v]) => [k, [...v]])),
    rationale: $("rationale").value,
    rating: document.querySelector('input[name="rating"]:checked')?.value || "",
    allBad: $("all-bad").checked,
  };
  try { sessionStorage.setItem(draftKey(state.task), JSON.stringify(draft)); } catch { /* storage full or off: not fatal */ }
}

function loadDraft(task) {
  try { return JSON.parse(sessionStorage.getItem(draftKey(task)) || "null"); } catch { return null; }
}

// ---------------------------------------------------------------- rendering

function showTask(task) {
  state.task = task;
  state.tieMode = false;
  state.shownAt = performance.now();
  const draft = loadDraft(task);
  const ids = new Set(task.responses.map((r) => r.id));
  state.tiers = (draft?.tiers || []).filter((t) => t.every((id) => ids.has(id)));
  state.flags = {};
  for (const [id, list] of Object.entries(draft?.flags || {})) if (ids.has(id)) state.flags[id] = new Set(list);
  $("rationale").value = draft?.rationale || "";
  $("all-bad").checked = !!draft?.allBad;
  for (const radio of document.querySelectorAll('input[name="rating"]')) radio.checked = radio.value === (draft?.rating || "");

  $("empty").hidden = true;
  $("task").hidden = false;
  $("task").dataset.assignment = task.id;
  const messages = $("messages");
  messages.replaceChildren();
  for (const m of task.messages) {
    const turn = document.createElement("div");
    turn.className = `turn turn-${m.role === "user" ? "user" : m.role === "system" ? "system" : "assistant"}`;
    const who = document.createElement("div");
    who.className = "who-role";
    who.textContent = m.role;
    const body = document.createElement("div");
    body.className = "markdown";
    body.innerHTML = renderMarkdown(m.content);
    turn.append(who, body);
    messages.append(turn);
  }
  renderCards();
  renderRanking();
  updateProgress(task.progress);
}

function renderCards() {
  const cards = $("cards");
  cards.replaceChildren();
  cards.style.setProperty("--k", state.task.responses.length);
  for (const r of state.task.responses) {
    const card = document.createElement("article");
    card.className = "response card";
    card.dataset.id = r.id;
    card.dataset.label = r.label;
    card.draggable = true;
    card.setAttribute("aria-labelledby", `title-${r.id}`);
    card.innerHTML = `
      <header class="response-head">
        <h3 id="title-${escapeHtml(r.id)}">Response <span class="letter">${escapeHtml(r.label)}</span></h3>
        <span class="place" aria-live="polite"></span>
        <button type="button" class="place-next" aria-label="Put response ${escapeHtml(r.label)} next in the ranking">Rank next <kbd>${escapeHtml(r.label)}</kbd></button>
      </header>
      <div class="response-body markdown" tabindex="0" aria-label="Text of response ${escapeHtml(r.label)}">${renderMarkdown(r.content)}</div>
      <fieldset class="flags"><legend class="sr-only">Flags for response ${escapeHtml(r.label)}</legend>
        ${config.flags.map((f) => `<label><input type="checkbox" data-flag="${escapeHtml(f.code)}"> ${escapeHtml(f.label)}</label>`).join("")}
      </fieldset>`;
    for (const box of card.querySelectorAll("input[data-flag]")) {
      box.checked = !!state.flags[r.id]?.has(box.dataset.flag);
      box.addEventListener("change", () => {
        const set = state.flags[r.id] || (state.flags[r.id] = new Set());
        if (box.checked) set.add(box.dataset.flag); else set.delete(box.dataset.flag);
        saveDraft();
      });
    }
    card.querySelector(".place-next").addEventListener("click", () => place(r.id, false));
    card.addEventListener("dragstart", (e) => {
      e.dataTransfer.setData("text/plain", r.id);
      e.dataTransfer.effectAllowed = "move";
      card.classList.add("dragging");
    });
    card.addEventListener("dragend", () => card.classList.remove("dragging"));
    cards.append(card);
  }
}

function renderRanking() {
  const list = $("ranking");
  list.replaceChildren();
  state.tiers.forEach((tier, index) => {
    const item = document.createElement("li");
    item.className = "tier";
    item.draggable = true;
    item.dataset.index = index;
    item.textContent = tier.map(labelOf).join(" = ");
    item.setAttribute("aria-label", `Place ${index + 1}: ${tier.map((id) => "response " + labelOf(id)).join(" tied with ")}`);
    item.addEventListener("dragstart", (e) => e.dataTransfer.setData("text/tier", String(index)));
    list.append(item);
  });
  const left = state.task.responses.filter((r) => !placed().has(r.id));
  const hint = document.createElement("li");
  hint.className = "drop-hint";
  hint.setAttribute("aria-hidden", "true");
  hint.textContent = left.length ? `drop here · unranked: ${left.map((r) => r.label).join(", ")}` : "complete: press Enter to submit";
  list.append(hint);
  for (const card of document.querySelectorAll("#cards .response")) {
    const index = state.tiers.findIndex((t) => t.includes(card.dataset.id));
    card.classList.toggle("ranked", index >= 0);
    card.querySelector(".place").textContent = index >= 0 ? `#${index + 1}` : "";
  }
  $("tie-mode").hidden = !state.tieMode;
}

function updateProgress(progress) {
  if (!progress) return;
  state.doneToday = Math.max(state.doneToday, progress.done_today);
  $("done-today").textContent = state.doneToday;
  $("left").textContent = progress.left_in_project;
}

function showEmpty(code, message) {
  state.task = null;
  $("task").hidden = true;
  $("empty").hidden = false;
  $("empty-title").textContent = code === "all_done" ? "All done" : "Nothing to rank right now";
  $("empty-text").textContent = message || "";
}

// ---------------------------------------------------------------- ranking actions

function place(id, tie) {
  if (!state.task || placed().has(id)) return;
  if (tie && !config.allowTies) {
    alertMessage("Ties are not allowed in this project.");
    return;
  }
  if (tie && state.tiers.length) state.tiers[state.tiers.length - 1].push(id);
  else state.tiers.push([id]);
  state.tieMode = false;
  alertMessage("");
  renderRanking();
  saveDraft();
  say(`Response ${labelOf(id)} is ${tie ? "tied at" : "at"} place ${state.tiers.length}.`);
}

function moveTier(from, to) {
  const [tier] = state.tiers.splice(from, 1);
  state.tiers.splice(Math.min(to, state.tiers.length), 0, tier);
  renderRanking();
  saveDraft();
}

function undo() {
  if (!state.tiers.length) return;
  const last = state.tiers[state.tiers.length - 1];
  last.pop();
  if (!last.length) state.tiers.pop();
  state.tieMode = false;
  renderRanking();
  saveDraft();
  say("Undone.");
}

function clearRanking() {
  state.tiers = [];
  state.tieMode = false;
  renderRanking();
  saveDraft();
}

// ---------------------------------------------------------------- server round trips

async function loadFirst() {
  alertMessage("");
  try {
    const first = await api("GET", `/projects/${config.projectId}/next-task`);
    if (first.status === 204) {
      showEmpty(first.headers.get("X-No-Task-Reason"), first.headers.get("X-No-Task-Message"));
      return;
    }
    if (first.status !== 200) throw new Error(first.data?.error?.message || `HTTP ${first.status}`);
    showTask(first.data);
    prefetch();
  } catch (err) {
    alertMessage(`Could not load a task (${err.message}). Check your connection, then press "Check again".`);
    showEmpty("error", "");
  }
}

async function prefetch() {
  if (!state.task) return;
  const current = state.task.id;
  state.next = null;
  state.nextEmpty = null;
  try {
    const next = await api("GET", `/projects/${config.projectId}/next-task?after=${current}`);
    if (!state.task || state.task.id !== current) return;
    if (next.status === 200 && next.data.id !== current) state.next = next.data;
    else if (next.status === 204) state.nextEmpty = { code: next.headers.get("X-No-Task-Reason"), message: next.headers.get("X-No-Task-Message") };
  } catch { /* prefetch is an optimisation; the next task is fetched after the submit instead */ }
}

function advance() {
  if (state.task) { try { sessionStorage.removeItem(draftKey(state.task)); } catch { /* ignore */ } }
  if (state.next) {
    const next = state.next;
    state.next = null;
    showTask(next);
    prefetch();
  } else {
    loadFirst();
  }
}

function completeRanking() {
  const left = state.task.responses.filter((r) => !placed().has(r.id));
  if (left.length === 1) state.tiers.push([left[0].id]); // the last one can only go last
  return state.task.responses.every((r) => placed().has(r.id));
}

async function submit() {
  if (!state.task || state.busy) return;
  if (!completeRanking()) {
    renderRanking();
    const left = state.task.responses.filter((r) => !placed().has(r.id)).map((r) => r.label);
    alertMessage(`Rank every response first: ${left.join(", ")} ${left.length > 1 ? "are" : "is"} not ranked yet.`);
    return;
  }
  renderRanking();
  const task = state.task;
  const rating = document.querySelector('input[name="rating"]:checked')?.value;
  const flags = {};
  for (const [id, set] of Object.entries(state.flags)) if (set.size) flags[id] = [...set];
  const body = {
    ranking: state.tiers,
    flags,
    all_bad: $("all-bad").checked,
    rating: rating ? Number(rating) : null,
    rationale: $("rationale").value,
    duration_seconds: Math.round((performance.now() - state.shownAt) / 100) / 10,
  };
  state.keys[task.id] = state.keys[task.id] || (crypto.randomUUID ? crypto.randomUUID() : `${task.id}-${Date.now()}-${Math.random()}`);
  state.busy = true;
  $("submit").disabled = true;
  try {
    const result = await api("POST", `/assignments/${task.id}/submit`, body, { "Idempotency-Key": state.keys[task.id] });
    if (result.status === 201 || result.status === 200) {
      if (result.status === 201) state.doneToday += 1;
      $("done-today").textContent = state.doneToday;
      say(`Saved: ranking ${state.tiers.map((t) => t.map(labelOf).join(" = ")).join(" > ")}. Next task.`);
      alertMessage("");
      if (state.nextEmpty && !state.next) {
        sessionStorage.removeItem(draftKey(task));
        showEmpty(state.nextEmpty.code, state.nextEmpty.message);
        return;
      }
      advance();
    } else if (result.status === 409) {
      const reason = result.data?.error?.reason;
      if (reason === "already_submitted") { say("This task was already saved."); advance(); return; }
      // Keep what was typed on screen (it can be copied); the next task comes only on request.
      alertMessage(`${result.data?.error?.message || "Conflict."} Your ranking and notes are still on this page.`, {
        label: "Load the next task",
        run: () => { try { sessionStorage.removeItem(draftKey(task)); } catch { /* ignore */ } advance(); },
      });
    } else if (result.status === 400) {
      const fields = result.data?.error?.fields || {};
      alertMessage(`Not saved: ${Object.entries(fields).map(([f, m]) => `${f}: ${[].concat(m).join("; ")}`).join(" · ") || result.data?.error?.message}`);
    } else {
      alertMessage(`Not saved (HTTP ${result.status}): ${result.data?.error?.message || "server error"}. Nothing you typed is lost; press Enter to try again.`);
    }
  } catch {
    alertMessage("Connection lost: your ranking was not sent. Nothing you typed is lost; press Enter to try again when you are back online.");
  } finally {
    state.busy = false;
    $("submit").disabled = false;
  }
}

async function skip() {
  if (!state.task || state.busy) return;
  const task = state.task;
  state.busy = true;
  try {
    const result = await api("POST", `/assignments/${task.id}/skip`, { reason: $("skip-reason").value });
    if (result.status === 200) {
      say("Skipped. Next task.");
      advance();
    } else {
      alertMessage(result.data?.error?.message || `Could not skip (HTTP ${result.status}).`);
    }
  } catch {
    alertMessage("Connection lost: the task was not skipped. Try again when you are back online.");
  } finally {
    state.busy = false;
  }
}

async function heartbeat() {
  for (const task of [state.task, state.next]) {
    if (!task) continue;
    try {
      const result = await api("POST", `/assignments/${task.id}/heartbeat`);
      if (result.status === 409 && task === state.task) {
        alertMessage("Your lease on this task ran out. You can still submit: it is kept if the task still needs a ranking.");
      }
    } catch { /* offline: the next beat retries */ }
  }
}

// ---------------------------------------------------------------- input

function typing(target) {
  return target && (target.tagName === "TEXTAREA" || target.tagName === "SELECT" || (target.tagName === "INPUT" && target.type === "text"));
}

function onKey(e) {
  const help = $("help");
  if (e.key === "?" && !typing(e.target)) {
    e.preventDefault();
    help.open ? help.close() : help.showModal();
    return;
  }
  if (help.open) return;
  if (typing(e.target)) {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (!state.task) return;
  const key = e.key;
  if (key === "Enter") {
    if (e.target?.tagName === "BUTTON") return; // a focused button does its own thing
    e.preventDefault();
    submit();
  } else if (key === "Backspace") {
    e.preventDefault();
    undo();
  } else if (key === "=") {
    e.preventDefault();
    if (!config.allowTies) { alertMessage("Ties are not allowed in this project."); return; }
    if (!state.tiers.length) { alertMessage("Put a response first, then tie the next one with it."); return; }
    state.tieMode = !state.tieMode;
    renderRanking();
  } else if (key === "s" || key === "S") {
    e.preventDefault();
    skip();
  } else if (key === "r" || key === "R") {
    e.preventDefault();
    $("rationale").focus();
  } else if (/^[1-7]$/.test(key)) {
    const radio = document.querySelector(`input[name="rating"][value="${key}"]`);
    if (radio) { radio.checked = true; saveDraft(); say(`Rating ${key}.`); }
  } else if (key.length === 1 && /[a-z]/i.test(key)) {
    const index = LETTERS.indexOf(key.toUpperCase());
    const response = state.task.responses[index];
    if (response) {
      e.preventDefault();
      place(response.id, state.tieMode);
    }
  }
}

function setupDrop() {
  const zone = $("ranking");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const target = e.target.closest?.(".tier");
    const tierIndex = e.dataTransfer.getData("text/tier");
    if (tierIndex !== "") {
      moveTier(Number(tierIndex), target ? Number(target.dataset.index) : state.tiers.length);
      return;
    }
    const id = e.dataTransfer.getData("text/plain");
    if (!id || placed().has(id)) return;
    if (target && e.shiftKey && config.allowTies) {
      state.tiers[Number(target.dataset.index)].push(id); // shift-drop onto a place: tie
      renderRanking();
      saveDraft();
    } else if (target) {
      state.tiers.splice(Number(target.dataset.index), 0, [id]); // drop onto a place: insert before it
      renderRanking();
      saveDraft();
    } else {
      place(id, false);
    }
  });
}

function init() {
  document.addEventListener("keydown", onKey);
  setupDrop();
  $("submit").addEventListener("click", submit);
  $("skip").addEventListener("click", skip);
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clearRanking);
  $("retry-load").onclick = loadFirst;
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("rationale").addEventListener("input", saveDraft);
  $("all-bad").addEventListener("change", saveDraft);
  for (const radio of document.querySelectorAll('input[name="rating"]')) radio.addEventListener("change", saveDraft);
  // Beat well inside the lease so neither the shown nor the prefetched task runs out while open.
  setInterval(heartbeat, Math.max(15, Math.min(120, config.leaseSeconds / 3)) * 1000);
  window.addEventListener("online", () => say("Back online."));
  window.addEventListener("offline", () => alertMessage("You are offline. Keep working: nothing you typed is lost, and you can submit when you are back."));
  loadFirst();
}

init();
