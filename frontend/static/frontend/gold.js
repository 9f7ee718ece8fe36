// The task page's gold widget (admins): the annotators' ranking strip and keys (rank/ modules,
// SortableJS), saved through the gold API. Letters place responses in order, = ties the next one
// with the previous place, Backspace undoes, Alt+arrows move a focused place, Delete takes it out,
// Enter saves; places and chips can be dragged.
import Sortable from "./vendor/sortable.esm.js";
import { createApi } from "./rank/api.js";
import { keyAction, targetKind } from "./rank/keys.js";
import { $, renderRanking } from "./rank/render.js";
import * as T from "./rank/tiers.js";

const config = JSON.parse($("gold-config").textContent);
const api = createApi(config.api);
const ids = config.responses.map((r) => r.id);
const labels = Object.fromEntries(config.responses.map((r) => [r.id, r.label]));
const labelOf = (id) => labels[id] ?? id;
const task = { responses: config.responses };
const state = { tiers: T.sanitize(config.gold, ids), tieMode: false };

function say(text) {
  $("gold-status").textContent = text;
}

function render() {
  renderRanking({ list: $("ranking"), pool: $("pool"), task, tiers: state.tiers, tieMode: state.tieMode, labelOf });
  $("ranking").setAttribute("data-order", T.describe(state.tiers, labelOf));
}

function setTiers(tiers, message) {
  state.tiers = tiers;
  render();
  if (message) say(message);
}

async function save() {
  let tiers = state.tiers;
  if (!T.isComplete(tiers, ids) && T.unranked(tiers, ids).length === 1) tiers = T.completeWithLast(tiers, ids);
  if (!T.isComplete(tiers, ids)) {
    say("Rank every response first.");
    return;
  }
  setTiers(tiers);
  say("Saving…");
  const { status, data } = await api.gold(config.taskId, tiers.map((tier) => tier.map(Number)));
  if (status === 200) {
    say("Saved: gold.");
    window.location.reload();
  } else {
    say(data?.error?.message ? `Not saved: ${data.error.message}` : `Not saved (HTTP ${status}).`);
  }
}

async function unmark() {
  const { status, data } = await api.gold(config.taskId, null);
  if (status === 200) window.location.reload();
  else say(data?.error?.message || `Not saved (HTTP ${status}).`);
}

function onKey(e) {
  const target = targetKind(e.target);
  if (target === "text" || target === "textarea") return; // the priority field keeps its keys
  const action = keyAction(e, { target, dialog: null, flagsOpen: null, responses: ids.length, flags: 0 });
  if (!action) return;
  const tierIndex = () => Number(e.target.dataset.index);
  switch (action.type) {
    case "place": {
      const id = ids[action.index];
      const tiers = T.place(state.tiers, id, state.tieMode);
      state.tieMode = false;
      setTiers(tiers, `${labelOf(id)} placed: ${T.describe(tiers, labelOf)}.`);
      break;
    }
    case "tie": state.tieMode = !state.tieMode; render(); break;
    case "undo": setTiers(T.undo(state.tiers), "Undone."); break;
    case "tier-move": {
      const from = tierIndex();
      setTiers(T.moveTier(state.tiers, from, from + action.by));
      $("ranking").children[Math.max(0, Math.min(state.tiers.length - 1, from + action.by))]?.focus();
      break;
    }
    case "tier-remove": {
      const tier = state.tiers[tierIndex()] || [];
      setTiers(tier.reduce((t, id) => T.removeId(t, id), state.tiers), "Taken out.");
      break;
    }
    case "submit": save(); break;
    default: return;
  }
  e.preventDefault();
}

function setupSorting() {
  const common = { group: "gold", animation: 120, forceFallback: true, fallbackTolerance: 3, ghostClass: "drag-ghost" };
  const later = (fn) => setTimeout(fn, 0); // let Sortable finish with its nodes before re-rendering
  Sortable.create($("ranking"), {
    ...common, draggable: ".tier",
    onUpdate: (evt) => later(() => setTiers(T.moveTier(state.tiers, evt.oldDraggableIndex, evt.newDraggableIndex))),
    onAdd: (evt) => later(() => setTiers(T.insertTier(state.tiers, evt.newDraggableIndex, evt.item.dataset.id))),
  });
  Sortable.create($("pool"), {
    ...common, draggable: ".chip", sort: false,
    onAdd: (evt) => later(() => {
      const tierIds = (evt.item.dataset.ids || "").split(" ").filter(Boolean);
      setTiers(tierIds.reduce((t, id) => T.removeId(t, id), state.tiers));
    }),
  });
}

document.addEventListener("keydown", onKey);
$("gold-save").addEventListener("click", save);
$("gold-clear").addEventListener("click", () => setTiers([], "Cleared."));
$("gold-unmark")?.addEventListener("click", unmark);
setupSorting();
render();
