// What the annotator has done on a task, as plain data, and its draft (kept in sessionStorage so
// a reload or a lost connection loses nothing). Pure apart from the storage passed in.
import { sanitize } from "./tiers.js";

export function emptyWork() {
  return { tiers: [], flags: {}, rationale: "", rating: "", allBad: false };
}

export function draftKey(taskId) {
  return `rank-draft:${taskId}`;
}

/** The draft as stored: flags as arrays. */
export function serializeWork(work) {
  return JSON.stringify({
    tiers: work.tiers,
    flags: Object.fromEntries(Object.entries(work.flags).map(([id, set]) => [id, [...set]])),
    rationale: work.rationale,
    rating: work.rating,
    allBad: work.allBad,
  });
}

/** A stored draft back as work for a task with these response ids (unknown ids dropped). */
export function restoreWork(text, ids) {
  let draft = null;
  try { draft = JSON.parse(text || "null"); } catch { draft = null; }
  const work = emptyWork();
  if (!draft || typeof draft !== "object") return work;
  const known = new Set(ids);
  work.tiers = sanitize(draft.tiers, ids);
  for (const [id, list] of Object.entries(draft.flags || {})) {
    if (known.has(id) && Array.isArray(list)) work.flags[id] = new Set(list.map(String));
  }
  work.rationale = typeof draft.rationale === "string" ? draft.rationale : "";
  work.rating = /^[1-7]$/.test(String(draft.rating || "")) ? String(draft.rating) : "";
  work.allBad = draft.allBad === true;
  return work;
}

/** Toggle one flag of one response (a new flags object). */
export function toggleFlag(flags, id, code) {
  const next = { ...flags, [id]: new Set(flags[id] || []) };
  if (next[id].has(code)) next[id].delete(code); else next[id].add(code);
  return next;
}

/** The submit body of the API contract (docs: POST assignments/{id}/submit). */
export function submitBody(work, durationSeconds) {
  const flags = {};
  for (const [id, set] of Object.entries(work.flags)) if (set.size) flags[id] = [...set];
  return {
    ranking: work.tiers,
    flags,
    all_bad: work.allBad,
    rating: work.rating ? Number(work.rating) : null,
    rationale: work.rationale,
    duration_seconds: Math.round(durationSeconds * 10) / 10,
  };
}

export function storeDraft(storage, taskId, work) {
  try { storage.setItem(draftKey(taskId), serializeWork(work)); } catch { /* storage full or off: not fatal */ }
}

export function loadDraft(storage, taskId, ids) {
  try { return restoreWork(storage.getItem(draftKey(taskId)), ids); } catch { return emptyWork(); }
}

export function dropDraft(storage, taskId) {
  try { storage.removeItem(draftKey(taskId)); } catch { /* ignore */ }
}
