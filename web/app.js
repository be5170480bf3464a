// The snipmeta page: sends the snippet to POST /v1/metadata and shows the answer. No framework,
// no external resources. ?code=...&lang=...&tasks=a,b&auto=1 fills the form (and submits it).
"use strict";

const $ = (id) => document.getElementById(id);
const TASKS = ["title", "description", "tags", "links"];
const EXT = { py: "python", c: "c", h: "c", cc: "cpp", cpp: "cpp", hpp: "cpp", cxx: "cpp", go: "go", rs: "rust",
  java: "java", js: "javascript", mjs: "javascript", ts: "typescript", php: "php", pl: "perl", pm: "perl",
  lua: "lua", sh: "shell", bash: "shell", rb: "ruby" };

function setStatus(text, error) {
  $("status").textContent = text;
  $("status").classList.toggle("error", !!error);
}

function clearOutput() {
  for (const t of TASKS) { $(t).replaceChildren(); $("ms-" + t).textContent = ""; }
  $("ms-total").textContent = "";
}

function ms(x) { return typeof x === "number" ? x.toFixed(0) + " ms" : ""; }

function show(answer) {
  if ("title" in answer) $("title").textContent = answer.title;
  if ("description" in answer) $("description").textContent = answer.description;
  if ("tags" in answer) {
    $("tags").replaceChildren(...answer.tags.map((t) => {
      const s = document.createElement("span");
      s.className = "tag";
      s.textContent = t;
      return s;
    }));
    if (!answer.tags.length) $("tags").textContent = "(none)";
  }
  if ("links" in answer) {
    $("links").replaceChildren(...answer.links.map((u) => {
      const a = document.createElement("a");
      if (/^https?:\/\//.test(u)) a.href = u;
      a.rel = "noopener noreferrer";
      a.target = "_blank";
      a.textContent = u;
      return a;
    }));
    if (!answer.links.length) $("links").textContent = "(none)";
  }
  const tm = answer.timings || {};
  for (const t of TASKS) $("ms-" + t).textContent = ms(tm[t + "_ms"]);
  $("ms-total").textContent = "total " + ms(tm.total_ms) +
    (tm.prefill_ms ? ", shared prefill " + ms(tm.prefill_ms) : "") +
    (tm.prompt_tokens ? ", " + tm.prompt_tokens + " prompt tokens" : "") + ", language " + answer.lang;
}

async function run(event) {
  if (event) event.preventDefault();
  const code = $("code").value;
  const tasks = [...document.querySelectorAll("#tasks input:checked")].map((i) => i.value);
  if (!code.trim()) { setStatus("Paste a snippet first.", true); return; }
  if (!tasks.length) { setStatus("Pick at least one task.", true); return; }
  const body = { code, tasks };
  if ($("lang").value) body.lang = $("lang").value;
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value;
  if (token) { headers.Authorization = "Bearer " + token; localStorage.setItem("snipmeta-token", token); }
  clearOutput();
  $("run").disabled = true;
  $("state").value = "running";
  setStatus("Working…");
  try {
    const r = await fetch("v1/metadata", { method: "POST", headers, body: JSON.stringify(body) });
    const answer = await r.json();
    if (!r.ok) throw new Error((answer.error && answer.error.message) || r.statusText);
    show(answer);
    setStatus("Done.");
    $("state").value = "done";
  } catch (e) {
    setStatus("Error: " + e.message, true);
    $("state").value = "error";
  } finally {
    $("run").disabled = false;
  }
}

function readFile(file) {
  const ext = (file.name.split(".").pop() || "").toLowerCase();
  if (EXT[ext]) $("lang").value = EXT[ext];
  file.text().then((text) => { $("code").value = text; });
}

const area = $("code");
area.addEventListener("dragover", (e) => { e.preventDefault(); area.classList.add("drop"); });
area.addEventListener("dragleave", () => area.classList.remove("drop"));
area.addEventListener("drop", (e) => {
  e.preventDefault();
  area.classList.remove("drop");
  if (e.dataTransfer.files.length) readFile(e.dataTransfer.files[0]);
});
$("form").addEventListener("submit", run);
$("token").value = localStorage.getItem("snipmeta-token") || "";

const q = new URLSearchParams(location.search);
if (q.has("code")) area.value = q.get("code");
if (q.has("lang")) $("lang").value = q.get("lang");
if (q.has("tasks")) {
  const want = q.get("tasks").split(",");
  for (const i of document.querySelectorAll("#tasks input")) i.checked = want.includes(i.value);
}
if (q.get("auto") === "1") run();
