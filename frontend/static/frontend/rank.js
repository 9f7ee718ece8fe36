// The ranking page: the entry module. The parts live in ./rank/: tiers.js (ranking operations),
// keys.js (the key table and key -> action), state.js (work and drafts), skip.js (undoable skip),
// api.js (the ranking API), render.js (DOM). The pure ones are tested with `node --test`
// (tests/frontend/js/). The next task is prefetched (next-task?after=) so it shows at once, and
// each submit asks for the one after it (submit?next=true&after=, flow.js): one request per ranking.
import Sortable from "./vendor/sortable.esm.js";
import { createApi } from "./rank/api.js";
import { afterSubmit, submitQuery } from "./rank/flow.js";
import { KEY_HELP, keyAction, targetKind } from "./rank/keys.js";
import { $, fillContent, renderCards, renderKeys, renderMessages, renderRanking } from "./rank/render.js";
import { createPendingSkip } from "./rank/skip.js";
import { dropDraft, emptyWork, loadDraft, storeDraft, submitBody, toggleFlag } from "./rank/state.js";
import * as T from "./rank/tiers.js";

const config = JSON.parse($("rank-config").textContent);
const api = createApi(config.api);
const storage = window.sessionStorage;

const state = {
  task: null, // the assignment shown
  next: null, // the prefetched one (or null)
  nextEmpty: null, // the 204 reason met while prefetching
  work: emptyWork(),
  tieMode: false,
  flagsOpen: null, // index of the response whose flags are open for keys
  showRaw: false,
  rawCards: new Set(),
  shownAt: 0,
  busy: false,
  keys: {}, // assignment id -> Idempotency-Key, so a retried submit is answered once
  doneToday: 0, // counted here too: a prefetched task's progress predates the last submit
};

const ids = () => state.task.responses.map((r) => r.id);
const labelOf = (id) => state.task?.responses.find((r) => r.id === id)?.label ?? "?";

// ---------------------------------------------------------------- messages

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

// ---------------------------------------------------------------- drawing

function save() {
  if (state.task) storeDraft(storage, state.task.id, state.work);
}

function drawRanking() {
  renderRanking({ list: $("ranking"), pool: $("pool"), task: state.task, tiers: state.work.tiers, tieMode: state.tieMode, labelOf });
}

function drawCards() {
  renderCards($("cards"), state.task, { flags: config.flags, work: state.work, showRaw: state.showRaw, rawCards: state.rawCards,
    flagsOpen: state.flagsOpen });
  drawRanking();
}

function setTiers(tiers, message) {
  state.work.tiers = tiers;
  state.tieMode = false;
  alertMessage("");
  drawRanking();
  save();
  if (message) say(message);
}

function showTask(task) {
  if (task.type === "demonstration") {
    // Written, not ranked (a demonstration project's ?view=rank reached one): the writing page takes it.
    window.location.assign(window.location.pathname);
    return;
  }
  state.task = task;
  state.tieMode = false;
  state.flagsOpen = null;
  state.rawCards = new Set();
  state.shownAt = performance.now();
  state.work = loadDraft(storage, task.id, task.responses.map((r) => r.id));
  $("rationale").value = state.work.rationale;
  $("all-bad").checked = state.work.allBad;
  for (const radio of document.querySelectorAll('input[name="rating"]')) radio.checked = radio.value === state.work.rating;
  $("empty").hidden = true;
  $("task").hidden = false;
  $("task").dataset.assignment = task.id;
  renderMessages($("messages"), task.messages, state.showRaw);
  const messages = $("messages");
  messages.classList.remove("expanded");
  $("prompt-expand").hidden = true;
  requestAnimationFrame(() => { $("prompt-expand").hidden = messages.scrollHeight <= messages.clientHeight + 2; });
  drawCards();
  updateProgress(task.progress);
  // Each new task starts at the top: the page, the prompt and every response.
  window.scrollTo(0, 0);
  for (const body of document.querySelectorAll(".response-body")) body.scrollTop = 0;
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

function setRawAll(on) {
  state.showRaw = on;
  $("raw-all").setAttribute("aria-pressed", on ? "true" : "false");
  if (!state.task) return;
  renderMessages($("messages"), state.task.messages, on);
  drawCards();
  say(on ? "Raw text: what the models wrote, unformatted." : "Formatted text.");
}

function toggleRawCard(id) {
  if (state.rawCards.has(id)) state.rawCards.delete(id); else state.rawCards.add(id);
  const card = document.querySelector(`#cards .response[data-id="${CSS.escape(id)}"]`);
  const response = state.task.responses.find((r) => r.id === id);
  const raw = state.showRaw || state.rawCards.has(id);
  fillContent(card.querySelector(".response-body"), response.content_html ?? "", response.content, raw);
  card.querySelector(".raw-toggle").setAttribute("aria-pressed", raw ? "true" : "false");
}

// ---------------------------------------------------------------- instructions

const instructionsKey = () => `rank-instructions-seen:${config.slug}:${$("instructions-box").dataset.version}`;

function instructionsSeen() {
  try { window.localStorage.setItem(instructionsKey(), "1"); } catch { /* ignore */ }
}

function setupInstructions() {
  const box = $("instructions-box");
  let seen = false;
  try { seen = window.localStorage.getItem(instructionsKey()) === "1"; } catch { seen = false; }
  box.open = !seen; // open until this version has been seen once; I or the button reopen them
  box.addEventListener("toggle", () => { if (!box.open) instructionsSeen(); });
  $("instructions-button").addEventListener("click", toggleInstructions);
}

function toggleInstructions() {
  const box = $("instructions-box");
  box.open = !box.open;
  if (box.open) box.scrollIntoView({ block: "nearest" });
}

function collapseInstructionsAfterFirstTask() {
  const box = $("instructions-box");
  if (box.open) { box.open = false; instructionsSeen(); }
}

// ---------------------------------------------------------------- server round trips

const pendingSkip = createPendingSkip({
  delayMs: config.skipUndoSeconds * 1000,
  send: async (task, reason) => {
    hideToast();
    try {
      const result = await api.skip(task.id, reason);
      if (result.status !== 200) alertMessage(result.data?.error?.message || `Could not skip (HTTP ${result.status}).`);
      else dropDraft(storage, task.id);
      return result;
    } catch {
      alertMessage("Connection lost: a skip was not sent; the task comes back when its lease runs out.");
      return null;
    }
  },
});

async function loadFirst() {
  alertMessage("");
  await pendingSkip.flush(); // the skipped lease would otherwise come back as "your current task"
  try {
    const first = await api.nextTask(config.projectId);
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
  if (!state.task || pendingSkip.pending) return; // after a skip: prefetched once the skip is sent
  const current = state.task.id;
  state.next = null;
  state.nextEmpty = null;
  try {
    const next = await api.nextTask(config.projectId, current);
    if (!state.task || state.task.id !== current) return;
    if (next.status === 200 && next.data.id !== current) state.next = next.data;
    else if (next.status === 204) state.nextEmpty = { code: next.headers.get("X-No-Task-Reason"), message: next.headers.get("X-No-Task-Message") };
  } catch { /* prefetch is an optimisation; the next task is fetched after the submit instead */ }
}

// After a submit answered with ?next=true: show the prefetched (or the answer's) task, keep the
// answer's next as the prefetch; only an answer without next costs another request.
function advanceWith(data) {
  const step = afterSubmit(state.next, data);
  if (step.fetch || (!step.show && pendingSkip.pending)) { state.next = null; advance(); return; }
  if (!step.show) { state.next = null; showEmpty(step.empty.reason, step.empty.message); return; }
  state.next = step.prefetched;
  state.nextEmpty = step.empty ? { code: step.empty.reason, message: step.empty.message } : null;
  showTask(step.show);
  if (!step.prefetched && !step.empty) prefetch();
}

function advance() {
  if (state.next) {
    const next = state.next;
    state.next = null;
    showTask(next);
    prefetch();
  } else if (state.nextEmpty && !pendingSkip.pending) {
    showEmpty(state.nextEmpty.code, state.nextEmpty.message);
  } else {
    loadFirst();
  }
}

async function submit() {
  if (!state.task || state.busy) return;
  state.work.tiers = T.completeWithLast(state.work.tiers, ids());
  drawRanking();
  if (!T.isComplete(state.work.tiers, ids())) {
    const left = T.unranked(state.work.tiers, ids()).map(labelOf);
    alertMessage(`Rank every response first: ${left.join(", ")} ${left.length > 1 ? "are" : "is"} not ranked yet.`);
    return;
  }
  const task = state.task;
  const body = submitBody(state.work, (performance.now() - state.shownAt) / 1000);
  state.keys[task.id] = state.keys[task.id] || (crypto.randomUUID ? crypto.randomUUID() : `${task.id}-${Date.now()}-${Math.random()}`);
  state.busy = true;
  $("submit").disabled = true;
  try {
    const result = await api.submit(task.id, body, state.keys[task.id], submitQuery(state.next?.id));
    if (result.status === 201 || result.status === 200) {
      if (result.status === 201) state.doneToday += 1;
      $("done-today").textContent = state.doneToday;
      say(`Saved: ranking ${T.describe(state.work.tiers, labelOf)}. Next task.`);
      alertMessage("");
      dropDraft(storage, task.id);
      collapseInstructionsAfterFirstTask();
      advanceWith(result.data);
    } else if (result.status === 409) {
      const reason = result.data?.error?.reason;
      if (reason === "already_submitted") { say("This task was already saved."); dropDraft(storage, task.id); advance(); return; }
      // Keep what was typed on screen (it can be copied); the next task comes only on request.
      alertMessage(`${result.data?.error?.message || "Conflict."} Your ranking and notes are still on this page.`, {
        label: "Load the next task",
        run: () => { dropDraft(storage, task.id); advance(); },
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

// Skip: S asks for a reason; the task then leaves at once and U brings it back for a few seconds.

function openSkipDialog() {
  if (!state.task || state.busy) return;
  $("skip-dialog").showModal();
  document.querySelector('input[name="skip-reason"]:checked')?.focus();
}

async function confirmSkip() {
  const dialog = $("skip-dialog");
  if (dialog.open) dialog.close();
  if (!state.task || state.busy) return;
  const task = state.task;
  const reason = document.querySelector('input[name="skip-reason"]:checked')?.value || "";
  save();
  collapseInstructionsAfterFirstTask();
  pendingSkip.start(task, reason, () => prefetch());
  let next = state.next;
  state.next = null;
  if (!next) {
    // Not prefetched yet: ask for the task after the skipped one (its lease is still ours until sent).
    state.busy = true;
    try {
      const result = await api.nextTask(config.projectId, task.id);
      if (result.status === 200 && result.data.id !== task.id) next = result.data;
    } catch { /* offline: handled below */ } finally { state.busy = false; }
  }
  if (next && pendingSkip.pending?.task.id === task.id) {
    showToast(`Skipped (${reason}).`);
    showTask(next);
  } else if (pendingSkip.pending?.task.id === task.id) {
    say(`Skipped (${reason}).`);
    loadFirst(); // sends the skip first, then shows what is left (or why nothing is)
  }
}

function undoSkip() {
  const task = pendingSkip.undo();
  if (!task) return;
  hideToast();
  if (state.task && state.task.id !== task.id) state.next = state.task; // the shown one waits, prefetched
  showTask(task);
  say("Skip undone: the task is back.");
}

let toastTimer = null;

function showToast(text) {
  $("toast-text").textContent = text;
  $("toast").hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(hideToast, config.skipUndoSeconds * 1000);
}

function hideToast() {
  $("toast").hidden = true;
}

async function heartbeat() {
  for (const task of [state.task, state.next, pendingSkip.pending?.task]) {
    if (!task) continue;
    try {
      const result = await api.heartbeat(task.id);
      if (result.status === 409 && task === state.task) {
        alertMessage("Your lease on this task ran out. You can still submit: it is kept if the task still needs a ranking.");
      }
    } catch { /* offline: the next beat retries */ }
  }
}

// ---------------------------------------------------------------- actions from keys and clicks

function placeAt(index) {
  const response = state.task.responses[index];
  if (!response) return;
  if (state.tieMode && !config.allowTies) { alertMessage("Ties are not allowed in this project."); return; }
  const tie = state.tieMode && state.work.tiers.length > 0;
  const tiers = T.place(state.work.tiers, response.id, tie);
  if (tiers === state.work.tiers) { say(`Response ${response.label} is already ranked.`); return; }
  setTiers(tiers, `Response ${response.label} is ${tie ? "tied at" : "at"} place ${tiers.length}.`);
}

function openFlags(index) {
  state.flagsOpen = state.flagsOpen === index ? null : index;
  drawCards();
  if (state.flagsOpen != null) {
    const label = state.task.responses[index].label;
    document.querySelector(`#cards .response[data-label="${label}"] .flags input`)?.focus();
    say(`Flags of response ${label}: ${config.flags.map((f, i) => `${i + 1} ${f.label}`).join(", ")}; Esc closes.`);
  }
}

function toggleFlagAt(index) {
  const response = state.task.responses[state.flagsOpen];
  const flag = config.flags[index];
  if (!response || !flag) return;
  state.work.flags = toggleFlag(state.work.flags, response.id, flag.code);
  const box = document.querySelector(`#cards .response[data-id="${CSS.escape(response.id)}"] input[data-flag="${flag.code}"]`);
  if (box) box.checked = state.work.flags[response.id].has(flag.code);
  save();
  say(`${flag.label} ${state.work.flags[response.id].has(flag.code) ? "on" : "off"} for response ${response.label}.`);
}

function moveFocusedTier(by, element) {
  const index = Number(element.dataset.index);
  setTiers(T.moveTier(state.work.tiers, index, index + by), null);
  const moved = Math.max(0, Math.min(index + by, state.work.tiers.length - 1));
  document.querySelector(`#ranking .tier[data-index="${moved}"]`)?.focus();
  say(`Place ${index + 1} moved to place ${moved + 1}: ${T.describe(state.work.tiers, labelOf)}.`);
}

function dialogOpen() {
  if ($("help").open) return "help";
  if ($("skip-dialog").open) return "skip";
  return null;
}

function onKey(e) {
  const action = keyAction(e, {
    target: targetKind(e.target), dialog: dialogOpen(), flagsOpen: state.flagsOpen,
    responses: state.task ? state.task.responses.length : 0, flags: config.flags.length,
  });
  if (!action) return;
  const help = $("help");
  const always = ["help", "skip-undo", "instructions", "raw", "leave-field", "skip-reason", "skip-confirm", "skip-cancel"];
  if (!state.task && !always.includes(action.type)) return;
  e.preventDefault();
  switch (action.type) {
    case "help": help.open ? help.close() : help.showModal(); break;
    case "submit": submit(); break;
    case "undo": setTiers(T.undo(state.work.tiers), "Undone."); break;
    case "tie":
      if (!config.allowTies) { alertMessage("Ties are not allowed in this project."); return; }
      if (!state.work.tiers.length) { alertMessage("Put a response first, then tie the next one with it."); return; }
      state.tieMode = !state.tieMode;
      drawRanking();
      break;
    case "place": placeAt(action.index); break;
    case "flags": openFlags(action.index); break;
    case "flags-close": state.flagsOpen = null; drawCards(); say("Flags closed."); break;
    case "flag-toggle": toggleFlagAt(action.index); break;
    case "rate": {
      const radio = document.querySelector(`input[name="rating"][value="${action.value}"]`);
      if (radio) { radio.checked = true; state.work.rating = String(action.value); save(); say(`Rating ${action.value}.`); }
      break;
    }
    case "rationale": $("rationale").focus(); break;
    case "leave-field": e.target.blur(); break;
    case "raw": setRawAll(!state.showRaw); break;
    case "instructions": toggleInstructions(); break;
    case "skip": openSkipDialog(); break;
    case "skip-reason": {
      const radios = document.querySelectorAll('input[name="skip-reason"]');
      if (radios[action.index]) { radios[action.index].checked = true; radios[action.index].focus(); }
      break;
    }
    case "skip-confirm": confirmSkip(); break;
    case "skip-cancel": $("skip-dialog").close(); break;
    case "skip-undo": undoSkip(); break;
    case "tier-move": moveFocusedTier(action.by, e.target); break;
    case "tier-remove": {
      const tier = state.work.tiers[Number(e.target.dataset.index)] || [];
      setTiers(tier.reduce((t, id) => T.removeId(t, id), state.work.tiers), "Taken out of the ranking.");
      break;
    }
    case "escape": break;
    default: break;
  }
}

// ---------------------------------------------------------------- drag and drop

function setupSorting() {
  // SortableJS (vendored) in fallback mode: the same code path for mouse, touch and pen.
  const common = { group: "rank", animation: 120, forceFallback: true, fallbackTolerance: 3, ghostClass: "drag-ghost" };
  const later = (fn) => setTimeout(fn, 0); // let Sortable finish with its nodes before re-rendering
  Sortable.create($("ranking"), {
    ...common, draggable: ".tier",
    onUpdate: (evt) => later(() => setTiers(T.moveTier(state.work.tiers, evt.oldDraggableIndex, evt.newDraggableIndex),
      `Moved: ${T.describe(T.moveTier(state.work.tiers, evt.oldDraggableIndex, evt.newDraggableIndex), labelOf)}.`)),
    onAdd: (evt) => later(() => {
      const id = evt.item.dataset.id;
      const tiers = T.insertTier(state.work.tiers, evt.newDraggableIndex, id);
      setTiers(tiers, `Response ${labelOf(id)} is at place ${evt.newDraggableIndex + 1}.`);
    }),
  });
  Sortable.create($("pool"), {
    ...common, draggable: ".chip", sort: false,
    onAdd: (evt) => later(() => {
      const tierIds = (evt.item.dataset.ids || "").split(" ").filter(Boolean);
      setTiers(tierIds.reduce((t, id) => T.removeId(t, id), state.work.tiers), "Taken out of the ranking.");
    }),
  });
  // A whole card can also be dragged onto the ranking with a mouse (HTML5 drag and drop).
  const zone = $("rank-bar");
  $("cards").addEventListener("dragstart", (e) => {
    const card = e.target.closest?.(".response");
    if (!card) return;
    e.dataTransfer.setData("text/plain", card.dataset.id);
    e.dataTransfer.effectAllowed = "move";
    card.classList.add("dragging");
  });
  $("cards").addEventListener("dragend", (e) => e.target.closest?.(".response")?.classList.remove("dragging"));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const id = e.dataTransfer.getData("text/plain");
    if (!id || !state.task || T.placedIds(state.work.tiers).has(id)) return;
    const target = e.target.closest?.(".tier");
    if (target && e.shiftKey && config.allowTies) setTiers(T.tieInto(state.work.tiers, Number(target.dataset.index), id), null);
    else if (target) setTiers(T.insertTier(state.work.tiers, Number(target.dataset.index), id), null);
    else setTiers(T.place(state.work.tiers, id), `Response ${labelOf(id)} is at place ${state.work.tiers.length + 1}.`);
  });
}

// ---------------------------------------------------------------- start

function init() {
  document.addEventListener("keydown", onKey);
  renderKeys($("keys-table"), KEY_HELP);
  setupInstructions();
  setupSorting();
  $("cards").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    const card = e.target.closest(".response");
    if (!button || !card || !state.task) return;
    if (button.dataset.action === "place") placeAt(state.task.responses.findIndex((r) => r.id === card.dataset.id));
    if (button.dataset.action === "raw") toggleRawCard(card.dataset.id);
  });
  $("cards").addEventListener("change", (e) => {
    const box = e.target.closest("input[data-flag]");
    const card = e.target.closest(".response");
    if (!box || !card) return;
    const set = new Set(state.work.flags[card.dataset.id] || []);
    if (box.checked) set.add(box.dataset.flag); else set.delete(box.dataset.flag);
    state.work.flags = { ...state.work.flags, [card.dataset.id]: set };
    save();
  });
  $("submit").addEventListener("click", submit);
  $("skip").addEventListener("click", openSkipDialog);
  $("skip-form").addEventListener("submit", (e) => { e.preventDefault(); confirmSkip(); });
  $("skip-cancel").addEventListener("click", () => $("skip-dialog").close());
  $("undo-skip").addEventListener("click", undoSkip);
  $("undo").addEventListener("click", () => setTiers(T.undo(state.work.tiers), "Undone."));
  $("clear").addEventListener("click", () => setTiers([], "Ranking cleared."));
  $("retry-load").addEventListener("click", loadFirst);
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("raw-all").addEventListener("click", () => setRawAll(!state.showRaw));
  $("prompt-expand").addEventListener("click", () => {
    const expanded = $("messages").classList.toggle("expanded");
    $("prompt-expand").textContent = expanded ? "Show less of the prompt" : "Show the whole prompt";
  });
  $("rationale").addEventListener("input", () => { state.work.rationale = $("rationale").value; save(); });
  $("all-bad").addEventListener("change", () => { state.work.allBad = $("all-bad").checked; save(); });
  for (const radio of document.querySelectorAll('input[name="rating"]')) {
    radio.addEventListener("change", () => { state.work.rating = radio.value; save(); });
  }
  // Beat well inside the lease so neither the shown nor the prefetched task runs out while open.
  setInterval(heartbeat, Math.max(15, Math.min(120, config.leaseSeconds / 3)) * 1000);
  window.addEventListener("online", () => say("Back online."));
  window.addEventListener("offline", () => alertMessage("You are offline. Keep working: nothing you typed is lost, and you can submit when you are back."));
  // Leaving the page inside a skip's undo window: send it anyway (keepalive outlives the page).
  window.addEventListener("pagehide", () => {
    const pending = pendingSkip.pending;
    if (pending) { pendingSkip.undo(); api.skip(pending.task.id, pending.reason, { keepalive: true }); }
  });
  loadFirst();
}

init();
