// node --test: the ranking page's tier operations (frontend/static/frontend/rank/tiers.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import * as T from "../../../frontend/static/frontend/rank/tiers.js";

const ALL = ["r1", "r2", "r3", "r4"];

test("place appends a tier, or ties into the last one, and never places twice", () => {
  let tiers = T.place([], "r2");
  tiers = T.place(tiers, "r1", true);
  assert.deepEqual(tiers, [["r2", "r1"]]);
  tiers = T.place(tiers, "r3");
  assert.deepEqual(tiers, [["r2", "r1"], ["r3"]]);
  assert.equal(T.place(tiers, "r1"), tiers);
  assert.deepEqual(T.place([], "r1", true), [["r1"]]); // a tie with nothing is a first place
});

test("operations never change their input", () => {
  const tiers = [["r1"], ["r2", "r3"]];
  const frozen = JSON.stringify(tiers);
  T.place(tiers, "r4", true);
  T.undo(tiers);
  T.moveTier(tiers, 0, 1);
  T.insertTier(tiers, 0, "r4");
  T.tieInto(tiers, 0, "r3");
  T.removeId(tiers, "r2");
  T.splitTier(tiers, 1);
  assert.equal(JSON.stringify(tiers), frozen);
});

test("undo takes back the last id, then the emptied tier", () => {
  assert.deepEqual(T.undo([["r1"], ["r2", "r3"]]), [["r1"], ["r2"]]);
  assert.deepEqual(T.undo([["r1"], ["r2"]]), [["r1"]]);
  assert.deepEqual(T.undo([]), []);
});

test("moveTier moves a whole tier and clamps its target", () => {
  const tiers = [["r1"], ["r2", "r3"], ["r4"]];
  assert.deepEqual(T.moveTier(tiers, 0, 2), [["r2", "r3"], ["r4"], ["r1"]]);
  assert.deepEqual(T.moveTier(tiers, 2, -5), [["r4"], ["r1"], ["r2", "r3"]]);
  assert.deepEqual(T.moveTier(tiers, 1, 99), [["r1"], ["r4"], ["r2", "r3"]]);
  assert.equal(T.moveTier(tiers, 7, 0), tiers);
});

test("insertTier puts an id at a place of its own, moving it if it was ranked", () => {
  assert.deepEqual(T.insertTier([["r1"], ["r2"]], 1, "r3"), [["r1"], ["r3"], ["r2"]]);
  assert.deepEqual(T.insertTier([["r1"], ["r2", "r3"]], 0, "r3"), [["r3"], ["r1"], ["r2"]]);
  assert.deepEqual(T.insertTier([["r1"]], 9, "r2"), [["r1"], ["r2"]]);
});

test("tieInto joins a tier and removeId/splitTier undo ties", () => {
  assert.deepEqual(T.tieInto([["r1"], ["r2"], ["r3"]], 0, "r3"), [["r1", "r3"], ["r2"]]);
  assert.deepEqual(T.removeId([["r1", "r3"], ["r2"]], "r2"), [["r1", "r3"]]);
  assert.deepEqual(T.splitTier([["r1", "r3"], ["r2"]], 0), [["r1"], ["r3"], ["r2"]]);
  assert.equal(T.tieInto([["r1"]], 4, "r2").length, 1);
});

test("the last unranked response goes last on submit, and only then is the ranking complete", () => {
  assert.deepEqual(T.completeWithLast([["r2"], ["r1"], ["r4"]], ALL), [["r2"], ["r1"], ["r4"], ["r3"]]);
  const two = [["r2"], ["r1"]];
  assert.equal(T.completeWithLast(two, ALL), two); // two left: the annotator must decide
  assert.equal(T.isComplete(two, ALL), false);
  assert.deepEqual(T.unranked(two, ALL), ["r3", "r4"]);
  assert.equal(T.isComplete(T.completeWithLast([["r1", "r2"], ["r3"]], ALL), ALL), true);
});

test("sanitize keeps a draft's known ids once each", () => {
  assert.deepEqual(T.sanitize([["r1", "zz"], ["r1", "r2"], [], "junk"], ALL), [["r1"], ["r2"]]);
  assert.deepEqual(T.sanitize(null, ALL), []);
});

test("describe reads a ranking with its ties", () => {
  const label = (id) => ({ r1: "A", r2: "B", r3: "C" })[id];
  assert.equal(T.describe([["r2"], ["r1", "r3"]], label), "B > A = C");
});
