// node --test: drafts, flags and the submit body (state.js), and the undoable skip (skip.js).
import assert from "node:assert/strict";
import { mock, test } from "node:test";

import { createPendingSkip } from "../../../frontend/static/frontend/rank/skip.js";
import { emptyWork, restoreWork, serializeWork, submitBody, toggleFlag } from "../../../frontend/static/frontend/rank/state.js";

test("a draft survives a round trip through storage, keeping only the task's ids", () => {
  const work = { ...emptyWork(), tiers: [["r2"], ["r1"]], flags: { r1: new Set(["harmful"]) }, rationale: "B is better", rating: "6", allBad: false };
  const back = restoreWork(serializeWork(work), ["r1", "r2", "r3"]);
  assert.deepEqual(back.tiers, [["r2"], ["r1"]]);
  assert.deepEqual([...back.flags.r1], ["harmful"]);
  assert.equal(back.rationale, "B is better");
  assert.equal(back.rating, "6");
  const other = restoreWork(serializeWork(work), ["r9"]);
  assert.deepEqual(other.tiers, []);
  assert.deepEqual(other.flags, {});
  assert.deepEqual(restoreWork("{not json", ["r1"]), emptyWork());
  assert.equal(restoreWork(JSON.stringify({ rating: "9" }), []).rating, "");
});

test("toggleFlag adds and removes one flag without touching the others", () => {
  const a = toggleFlag({}, "r1", "harmful");
  const b = toggleFlag(a, "r1", "refusal");
  const c = toggleFlag(b, "r1", "harmful");
  assert.deepEqual([...a.r1], ["harmful"]);
  assert.deepEqual([...c.r1], ["refusal"]);
  assert.deepEqual([...b.r1].sort(), ["harmful", "refusal"]);
});

test("the submit body is the API contract's, empty flags left out", () => {
  const work = { tiers: [["r1"], ["r2"]], flags: { r1: new Set(), r2: new Set(["off_topic"]) }, rationale: "", rating: "", allBad: true };
  assert.deepEqual(submitBody(work, 12.345), {
    ranking: [["r1"], ["r2"]], flags: { r2: ["off_topic"] }, all_bad: true, rating: null, rationale: "", duration_seconds: 12.3,
  });
  assert.equal(submitBody({ ...work, rating: "4" }, 1).rating, 4);
});

test("a skip is sent when its undo window closes, and not at all when undone", async () => {
  mock.timers.enable({ apis: ["setTimeout"] });
  try {
    const sent = [];
    const skip = createPendingSkip({ delayMs: 5000, send: async (task, reason) => { sent.push([task.id, reason]); return "ok"; } });
    skip.start({ id: 1 }, "Not sure");
    assert.deepEqual(skip.pending, { task: { id: 1 }, reason: "Not sure" });
    mock.timers.tick(4999);
    assert.deepEqual(sent, []);
    assert.deepEqual(skip.undo(), { id: 1 });
    mock.timers.tick(10_000);
    assert.deepEqual(sent, []);
    assert.equal(skip.undo(), null);

    skip.start({ id: 2 }, "Other");
    mock.timers.tick(5000);
    await Promise.resolve();
    assert.deepEqual(sent, [[2, "Other"]]);
    assert.equal(skip.pending, null);
  } finally {
    mock.timers.reset();
  }
});

test("flush sends a pending skip at once (before the page asks for a task), and a new skip sends the old one", async () => {
  const sent = [];
  const skip = createPendingSkip({ delayMs: 60_000, send: async (task) => { sent.push(task.id); return task.id; } });
  assert.equal(await skip.flush(), null);
  skip.start({ id: 3 }, "x");
  skip.start({ id: 4 }, "y");
  assert.deepEqual(sent, [3]);
  assert.equal(await skip.flush(), 4);
  assert.deepEqual(sent, [3, 4]);
  assert.equal(skip.undo(), null);
});
