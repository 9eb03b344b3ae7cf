"use strict";
// The kuairec page: one known user's history and recommendations, and a new user's
// history built by clicking videos (fold-in recommendations through POST /recommendations).
const $ = (id) => document.getElementById(id);
const page = { model: null, models: [], history: new Map(), user: null };

async function api(path, options) {
  const res = await fetch(path, options);
  const body = await res.json().catch(() => ({ detail: res.statusText }));
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

function videoItem(v, onClick) {
  const li = document.createElement("li");
  li.dataset.videoId = v.video_id;
  const head = document.createElement("div");
  const id = document.createElement("span");
  id.className = "vid";
  id.textContent = "#" + v.video_id;
  head.append(id);
  for (const c of v.categories || []) head.append(chip(c, "chip cat"));
  for (const t of v.tags || []) head.append(chip(t, "chip"));
  if (v.score !== undefined && v.score !== null) {
    const s = document.createElement("span");
    s.className = "score";
    s.textContent = v.score.toFixed(3);
    head.append(s);
  } else if (v.watch_ratio !== undefined && v.watch_ratio !== null) {
    const s = document.createElement("span");
    s.className = "score";
    s.textContent = "watch " + v.watch_ratio.toFixed(2);
    head.append(s);
  }
  const cap = document.createElement("span");
  cap.className = "caption";
  cap.textContent = v.caption || "(no caption)";
  li.append(head, cap);
  li.title = "click: add to the new user's history";
  li.addEventListener("click", () => onClick(v));
  return li;
}

function chip(text, cls) {
  const c = document.createElement("span");
  c.className = cls;
  c.textContent = text;
  return c;
}

function fill(list, videos, onClick) {
  list.replaceChildren(...videos.map((v) => videoItem(v, onClick)));
}

const addToHistory = (v) => {
  page.history.set(v.video_id, v);
  renderNewUser();
};
const removeFromHistory = (v) => {
  page.history.delete(v.video_id);
  renderNewUser();
};

async function showUser() {
  const raw = $("user-input").value.trim();
  $("user-error").textContent = "";
  if (!raw) {
    $("user-error").textContent = "type a user id";
    return;
  }
  page.user = raw;
  const model = encodeURIComponent(page.model);
  const id = encodeURIComponent(raw); // text ids of people's own logs too; the API checks it
  try {
    const [hist, recs] = await Promise.all([
      api(`/users/${id}/history?limit=20`),
      api(`/users/${id}/recommendations?k=10&model=${model}`),
    ]);
    $("history-count").textContent = `(${hist.n_videos} videos)`;
    fill($("user-history"), hist.items, addToHistory);
    $("user-recs-model").textContent = "by " + recs.model;
    fill($("user-recs"), recs.items, addToHistory);
  } catch (err) {
    $("user-error").textContent = err.message;
    $("user-history").replaceChildren();
    $("user-recs").replaceChildren();
  }
}

async function renderNewUser() {
  fill($("new-history"), [...page.history.values()], removeFromHistory);
  $("new-error").textContent = "";
  const history = [...page.history.keys()].map((id) => ({ video_id: id, watch_ratio: 1.5 }));
  try {
    const recs = await api("/recommendations", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ history, k: 10, model: page.model }),
    });
    $("new-recs-model").textContent = recs.fallback
      ? `the most watched videos (${recs.model} has no history to go on yet)`
      : `by ${recs.model}, from ${recs.history_used} videos`;
    fill($("new-recs"), recs.items, addToHistory);
  } catch (err) {
    $("new-recs-model").textContent = "";
    $("new-error").textContent = err.message;
    $("new-recs").replaceChildren();
  }
}

function describeModel() {
  const m = page.models.find((x) => x.name === page.model);
  if (!m) return;
  const ndcg = m.ndcg_at_10 === null ? "n/a" : m.ndcg_at_10.toFixed(4);
  $("model-info").textContent = `NDCG@10 ${ndcg}` + (m.supports_new_users ? "" : " (no new users)");
}

async function start() {
  const [health, models, users, videos] = await Promise.all([
    api("/health"), api("/models"), api("/users?limit=1000"), api("/videos?limit=40"),
  ]);
  $("run").textContent = `run ${health.run}: ${health.n_users} users, ${health.n_videos} videos`;
  page.models = models.models;
  page.model = models.default_model;
  const select = $("model-select");
  for (const m of models.models) {
    const opt = document.createElement("option");
    opt.value = m.name;
    opt.textContent = m.name + (m.default ? " (best)" : "");
    select.append(opt);
  }
  select.value = page.model;
  describeModel();
  $("user-ids").replaceChildren(...users.user_ids.map((u) => new Option(String(u))));
  fill($("video-browser"), videos.items, addToHistory);
  $("user-input").value = String(users.user_ids[0]);
  await Promise.all([showUser(), renderNewUser()]);
  $("status").textContent = "ready";
}

$("model-select").addEventListener("change", async (e) => {
  page.model = e.target.value;
  describeModel();
  $("status").textContent = "";
  await Promise.all([page.user ? showUser() : null, renderNewUser()]);
  $("status").textContent = "ready";
});
$("user-form").addEventListener("submit", (e) => {
  e.preventDefault();
  showUser();
});
$("clear-history").addEventListener("click", () => {
  page.history.clear();
  renderNewUser();
});
start().catch((err) => {
  $("status").textContent = "error: " + err.message;
});
