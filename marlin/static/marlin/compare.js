// The comparison page: sides, lazy files, context, layout, keys, line comments and autosaved
// drafts (with stale-tab detection and a local copy of unsaved text). Active time is measured by
// the server from activity.js's heartbeats; this page only shows what the server counted.
// URLs come from data-* attributes; nothing here knows more than the side letters A and B.
(function () {
  "use strict";
  const root = document.getElementById("cmp");
  if (!root) return;
  const base = root.dataset.urlBase;
  const turn = root.dataset.turn;
  const view = root.dataset.view;
  const turns = parseInt(root.dataset.turns, 10) || 1;
  const form = document.getElementById("judgment-form");
  const editable = root.dataset.editable === "1" && !!form;
  const storeKey = "marlin-draft-" + root.dataset.publicId;
  let mode = document.querySelector(".cmp-body").dataset.mode;
  let side = "AB";  // the tab shown: "AB" (A next to B), "A" or "B"

  function csrf() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const m = document.cookie.match(/(?:^|; )csrftoken=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function query(extra) {
    const p = new URLSearchParams({ turn: turn, view: view, mode: mode });
    Object.entries(extra || {}).forEach(([k, v]) => p.set(k, v));
    return "?" + p.toString();
  }
  async function getText(url) {
    const r = await fetch(url, { headers: { "X-Requested-With": "fetch" } });
    if (!r.ok) throw new Error((await r.text()).slice(0, 200) || r.statusText);
    return r.text();
  }
  function sectionOf(letter) { return document.querySelector('.side[data-side="' + letter + '"]'); }

  // Tabs: A | B, side A, side B --------------------------------------------------------------
  // A side's own diff is fetched the first time its tab opens; the page carries A | B only.
  async function loadSide(grid) {
    if (!grid || !grid.dataset.lazy || grid.dataset.loading) return;
    grid.dataset.loading = "1";
    try {
      grid.innerHTML = await getText(base + "diff/" + grid.dataset.side + "/" + query({ panel: "1" }));
      delete grid.dataset.lazy;
      watchPlaceholders(grid);
      showComments(grid);
    } catch (err) {
      grid.innerHTML = '<p class="error"></p>';
      grid.firstChild.textContent = "Could not load this side: " + err.message;
    } finally {
      delete grid.dataset.loading;
    }
  }
  function setSide(letter) {
    if (!sectionOf(letter)) letter = "AB";
    side = letter;
    document.querySelectorAll(".side").forEach((s) => s.classList.toggle("current", s.dataset.side === letter));
    document.querySelectorAll(".side-tab").forEach((t) => t.setAttribute("aria-selected", String(t.dataset.side === letter)));
    document.querySelector(".cmp-body").dataset.tab = letter;
    sessionStorage.setItem(storeKey + "-side", letter);
    return loadSide(sectionOf(letter).querySelector(".side-grid[data-lazy]"));
  }
  document.querySelectorAll(".side-tab").forEach((t) => t.addEventListener("click", () => setSide(t.dataset.side)));

  // Lazy files and context -----------------------------------------------------------------
  const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    entries.forEach((e) => { if (e.isIntersecting) { observer.unobserve(e.target); loadFile(e.target, false); } });
  }, { rootMargin: "800px 0px" }) : null;

  function watchPlaceholders(scope) {
    scope.querySelectorAll('.diff-placeholder[data-reason="deferred"]').forEach((p) => {
      if (observer) observer.observe(p); else loadFile(p, false);
    });
  }
  async function loadFile(el, force) {
    const details = el.closest(".diff-file");
    const diff = el.closest(".side-diff");
    if (!details || !diff || details.dataset.loading) return details;
    details.dataset.loading = "1";
    const where = diff.dataset.side === "AB" ? "pair/" : "file/" + diff.dataset.side + "/";
    const url = base + where + details.dataset.fileIndex + "/" + query(force ? { force: "1" } : {});
    try {
      const tpl = document.createElement("template");
      tpl.innerHTML = (await getText(url)).trim();
      const fresh = tpl.content.firstElementChild;
      details.replaceWith(fresh);
      showComments(fresh);
      return fresh;
    } catch (err) {
      delete details.dataset.loading;
      details.querySelector(".diff-body").insertAdjacentHTML("beforeend", '<p class="error"></p>');
      details.querySelector(".diff-body .error:last-child").textContent = "Could not load this file: " + err.message;
      return details;
    }
  }
  async function expandContext(button) {
    const details = button.closest(".diff-file");
    const diff = button.closest(".side-diff");
    const row = button.closest("tr");
    const params = { from: button.dataset.from, to: button.dataset.to, new_from: button.dataset.newFrom };
    const url = base + "context/" + diff.dataset.side + "/" + details.dataset.fileIndex + "/" + query(params);
    try {
      const tpl = document.createElement("template");
      tpl.innerHTML = "<table><tbody>" + (await getText(url)) + "</tbody></table>";
      const rows = Array.from(tpl.content.querySelectorAll("tr"));
      rows.forEach((r) => row.parentNode.insertBefore(r, row));
      if (row.classList.contains("hunk-tail")) row.remove(); else button.remove();
      showComments(details);
    } catch (err) {
      button.title = "Could not load lines: " + err.message;
    }
  }
  document.addEventListener("click", (e) => {
    const load = e.target.closest(".diff-load");
    if (load) { e.preventDefault(); loadFile(load, load.dataset.reason !== "deferred"); return; }
    const expand = e.target.closest(".diff-expand");
    if (expand) { e.preventDefault(); expandContext(expand); return; }
    const link = e.target.closest(".tree-link");
    if (link) { e.preventDefault(); goToFile(link.closest(".side"), parseInt(link.dataset.fileIndex, 10)); return; }
    const ln = e.target.closest(".side-diff td.ln[data-line]");
    if (ln && editable) { openCommentEditor(ln); }
  });
  watchPlaceholders(document);
  setSide(sessionStorage.getItem(storeKey + "-side") || "AB");

  // Layout (split / unified), remembered in localStorage and a cookie the server reads --------
  async function setMode(next) {
    if (next === mode) return;
    mode = next;
    localStorage.setItem("marlin-diff-mode", mode);
    document.cookie = "marlin_diff_mode=" + mode + "; path=/; max-age=31536000; samesite=lax";
    document.querySelectorAll(".mode-btn").forEach((b) => {
      b.classList.toggle("active", b.dataset.mode === mode);
      b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
    });
    // The A | B view has one layout; a side not opened yet loads in the new layout when it is.
    for (const diff of document.querySelectorAll(".side-diff:not(.ab-diff)")) {
      diff.innerHTML = await getText(base + "diff/" + diff.dataset.side + "/" + query());
      watchPlaceholders(diff);
      showComments(diff);
    }
    document.querySelector(".cmp-body").dataset.mode = mode;
  }
  document.querySelectorAll(".mode-btn").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
  const savedMode = localStorage.getItem("marlin-diff-mode");
  if (savedMode && savedMode !== mode && !/marlin_diff_mode=/.test(document.cookie)) setMode(savedMode);

  // Long lines scroll inside their cell unless the expert turns wrapping on (remembered).
  const body = document.querySelector(".cmp-body");
  function setWrap(on) {
    body.classList.toggle("diff-wrap", on);
    document.querySelectorAll('[data-action="wrap"]').forEach((b) => {
      b.setAttribute("aria-pressed", String(on));
      b.classList.toggle("active", on);
    });
    localStorage.setItem("marlin-diff-wrap", on ? "1" : "0");
  }
  document.querySelectorAll('[data-action="wrap"]').forEach((b) => b.addEventListener("click", () => setWrap(!body.classList.contains("diff-wrap"))));
  setWrap(localStorage.getItem("marlin-diff-wrap") === "1");

  // Files: j / k ------------------------------------------------------------------------------
  let fileCursor = -1;
  function filesOf(section) { return section ? Array.from(section.querySelectorAll(".side-diff > .diff-file")) : []; }
  async function goToFile(section, index) {
    await loadSide(section.querySelector(".side-grid[data-lazy]"));
    const files = filesOf(section);
    let el = files.find((f) => parseInt(f.dataset.fileIndex, 10) === index);
    if (!el) return;
    if (el.querySelector('.diff-placeholder[data-reason="deferred"]')) el = await loadFile(el.querySelector(".diff-placeholder"), false);
    document.querySelectorAll(".diff-file.focused, .tree-link.focused").forEach((f) => f.classList.remove("focused"));
    el.classList.add("focused");
    el.open = true;
    const link = section.querySelector('.tree-link[data-file-index="' + index + '"]');
    if (link) link.classList.add("focused");
    fileCursor = filesOf(section).indexOf(el);
    el.scrollIntoView({ block: "start" });
    window.scrollBy(0, -100);
    el.querySelector("summary").focus({ preventScroll: true });
  }
  function stepFile(delta) {
    const section = sectionOf(side);
    const files = filesOf(section);
    if (!files.length) return;
    fileCursor = Math.max(0, Math.min(files.length - 1, fileCursor + delta));
    goToFile(section, parseInt(files[fileCursor].dataset.fileIndex, 10));
  }

  // Line comments ------------------------------------------------------------------------------
  const commentsInput = form ? form.querySelector("input[name=comments]") : null;
  let comments = [];
  try { comments = JSON.parse((commentsInput && commentsInput.value) || "[]"); } catch (e) { comments = []; }
  let lastLine = null;

  // A comment's line in the side's own view and in the A | B view (prefix "x" + side letter,
  // the side's own file index), where each is on the page.
  function lineCells(c) {
    const where = (c.line_side === "old" ? "L" : "R") + c.line;
    const cells = [];
    const diff = document.querySelector('.side-diff[data-side="' + c.side + '"]');
    const file = diff && Array.from(diff.querySelectorAll(".diff-file")).find((f) => f.dataset.path === c.file);
    if (file) cells.push(document.getElementById(diff.dataset.prefix + "-" + file.dataset.fileIndex + "-" + where));
    const letter = c.side.toLowerCase();
    const pair = Array.from(document.querySelectorAll(".ab-diff .ab-file")).find((f) => f.dataset[letter + "Index"] !== undefined && f.dataset.path === c.file);
    if (pair) cells.push(document.getElementById("x" + letter + "-" + pair.dataset[letter + "Index"] + "-" + where));
    return cells.filter(Boolean);
  }
  function cellSide(cell) {
    const diff = cell.closest(".side-diff");
    if (diff.dataset.side !== "AB") return diff.dataset.side;
    return cell.id.startsWith("xb-") ? "B" : "A";
  }
  function showComments(scope) {
    (scope || document).querySelectorAll("tr.comment-row.saved").forEach((r) => r.remove());
    (scope || document).querySelectorAll("td.ln.commented").forEach((td) => td.classList.remove("commented"));
    comments.forEach((c, i) => lineCells(c).forEach((cell) => {
      if (scope && !scope.contains(cell)) return;
      cell.classList.add("commented");
      const row = commentRow(cell.closest("tr"));
      row.classList.add("saved");
      row.firstChild.innerHTML = '<strong></strong> <span class="comment-text"></span>';
      row.querySelector("strong").textContent = "Comment " + (i + 1) + ":";
      row.querySelector(".comment-text").textContent = c.text;
    }));
    renderCommentList();
  }
  function commentRow(afterRow) {
    const row = document.createElement("tr");
    row.className = "comment-row";
    const td = document.createElement("td");
    td.colSpan = afterRow.children.length;
    row.appendChild(td);
    afterRow.after(row);
    return row;
  }
  function openCommentEditor(cell) {
    if (!cell.id) return;  // an unchanged line shown for context in A | B: not in this diff
    lastLine = cell;
    const tr = cell.closest("tr");
    const next = tr.nextElementSibling;
    if (next && next.classList.contains("comment-row") && !next.classList.contains("saved")) { next.querySelector("textarea").focus(); return; }
    const details = cell.closest(".diff-file");
    const c = { side: cellSide(cell), file: details.dataset.path, line_side: cell.dataset.side, line: parseInt(cell.dataset.line, 10) };
    const row = commentRow(tr);
    const label = "Comment on side " + c.side + ", " + c.file + " line " + c.line + (c.line_side === "old" ? " (old)" : "");
    row.firstChild.innerHTML = '<label class="sr-only"></label><textarea></textarea><button type="button" class="btn btn-small btn-primary" data-do="save">Add comment</button> <button type="button" class="btn btn-small" data-do="cancel">Cancel</button>';
    const ta = row.querySelector("textarea");
    ta.id = "comment-" + Date.now();
    row.querySelector("label").htmlFor = ta.id;
    row.querySelector("label").textContent = label;
    ta.setAttribute("aria-label", label);
    row.querySelector('[data-do="save"]').addEventListener("click", () => {
      if (!ta.value.trim()) { ta.focus(); return; }
      comments.push(Object.assign(c, { text: ta.value.trim() }));
      row.remove();
      commentsChanged();
    });
    row.querySelector('[data-do="cancel"]').addEventListener("click", () => row.remove());
    ta.focus();
  }
  function renderCommentList() {
    const list = document.getElementById("comment-list");
    if (!list) return;
    list.innerHTML = "";
    comments.forEach((c, i) => {
      const li = document.createElement("li");
      li.textContent = (i + 1) + ". " + c.side + " · " + c.file + ":" + c.line + " — " + c.text;
      if (editable) {
        const del = document.createElement("button");
        del.type = "button";
        del.className = "btn btn-small";
        del.textContent = "Delete";
        del.setAttribute("aria-label", "Delete comment " + (i + 1));
        del.addEventListener("click", () => { comments.splice(i, 1); commentsChanged(); });
        li.appendChild(del);
      }
      list.appendChild(li);
    });
  }
  function commentsChanged() {
    if (commentsInput) commentsInput.value = JSON.stringify(comments);
    showComments(null);
    changed();
  }
  showComments(null);

  // Criteria: focus, 1-7, 0 ---------------------------------------------------------------------
  // The one rating control: the annotator's judgment form, or the adjudicator's or reviewer's
  // form (class rating-form) on the pages that embed this comparison read-only.
  const ratingForm = form || document.querySelector("form.rating-form");
  const canRate = editable || (!form && !!ratingForm);
  const crits = ratingForm ? Array.from(ratingForm.querySelectorAll("fieldset.crit")) : [];
  let critIndex = 0;
  function focusCrit(i, quiet) {
    if (!crits.length) return;
    critIndex = (i + crits.length) % crits.length;
    crits.forEach((c, j) => c.classList.toggle("focused", j === critIndex));
    // On load the first criterion is only marked: scrolling to it would jump past the diff on
    // a phone, where the panel sits below it.
    if (!quiet) crits[critIndex].scrollIntoView({ block: "nearest" });
  }
  crits.forEach((c, i) => c.addEventListener("focusin", () => { critIndex = i; crits.forEach((d, j) => d.classList.toggle("focused", j === i)); }));
  function rate(value) {
    const crit = crits[critIndex];
    if (!crit) return;
    const input = crit.querySelector('input[type=radio][value="' + value + '"]');
    if (!input) return;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    if (critIndex < crits.length - 1) focusCrit(critIndex + 1); else focusCrit(critIndex);
  }
  if (crits.length) focusCrit(0, true);

  // Keys ----------------------------------------------------------------------------------------
  const help = document.getElementById("key-help");
  // Pages that embed the blind body without the dialog (review, adjudication) get no help key.
  const toggleHelp = () => { if (help) { if (help.open) help.close(); else help.showModal(); } };
  document.querySelectorAll('[data-action="help"]').forEach((b) => b.addEventListener("click", toggleHelp));
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    if (t.closest && t.closest("textarea, input[type=text], select, [contenteditable]")) return;
    if (help && help.open && e.key !== "?") return;
    const k = e.key;
    const handled = {
      j: () => stepFile(1), k: () => stepFile(-1),
      a: () => setSide("A"), b: () => setSide("B"), s: () => setSide("AB"),
      "[": () => setSide("A"), "]": () => setSide("B"),
      u: () => setMode(mode === "split" ? "unified" : "split"),
      w: () => setWrap(!body.classList.contains("diff-wrap")),
      t: () => { if (turns > 1) location.search = "?turn=" + ((parseInt(turn, 10) % turns) + 1) + "&view=" + view; },
      n: () => focusCrit(critIndex + 1), p: () => focusCrit(critIndex - 1),
      c: () => { if (lastLine && editable) openCommentEditor(lastLine); },
      "?": toggleHelp,
      "0": () => canRate && rate("na"),
    };
    if (/^[1-7]$/.test(k) && canRate) { e.preventDefault(); rate(String(parseInt(k, 10) - 4)); return; }
    if (handled[k]) { e.preventDefault(); handled[k](); }
  });
  document.addEventListener("mouseover", (e) => {
    const ln = e.target.closest && e.target.closest(".side-diff td.ln[data-line]");
    if (ln) lastLine = ln;
  });

  if (!form) return;

  // Drafts --------------------------------------------------------------------------------------
  const revisionInput = form.querySelector("input[name=draft_revision]");
  const status = document.getElementById("save-status");
  const banner = document.getElementById("stale-banner");
  const activeShown = document.getElementById("time-active");
  const SKIP = new Set(["csrfmiddlewaretoken", "draft_revision"]);
  let timer = null, saving = false, again = false, serverDraft = null, savedSnapshot = null, pendingLocal = null;

  function snapshot() {
    const pairs = [];
    new FormData(form).forEach((v, k) => { if (!SKIP.has(k)) pairs.push([k, v]); });
    return JSON.stringify(pairs);
  }
  function restore(json) {
    const pairs = JSON.parse(json);
    form.querySelectorAll("input[type=radio]").forEach((r) => { r.checked = false; });
    form.querySelectorAll("textarea").forEach((t) => { t.value = ""; });
    pairs.forEach(([k, v]) => {
      const radio = form.querySelector('input[type=radio][name="' + k + '"][value="' + CSS.escape(v) + '"]');
      if (radio) { radio.checked = true; return; }
      const field = form.elements.namedItem(k);
      if (field && "value" in field) field.value = v;
    });
    try { comments = JSON.parse(commentsInput.value || "[]"); } catch (e) { comments = []; }
    showComments(null);
    updateCounter();
  }
  function fillFromServer(d) {
    const pairs = [];
    Object.entries(d.ratings || {}).forEach(([k, v]) => pairs.push(["rating-" + k, v === null ? "na" : String(v)]));
    if (d.overall !== null && d.overall !== undefined) pairs.push(["overall", String(d.overall)]);
    pairs.push(["rationale", d.rationale || ""], ["confidence", d.confidence ? String(d.confidence) : ""]);
    pairs.push(["comments", JSON.stringify(d.comments || [])]);
    Object.entries(d.turn_notes || {}).forEach(([n, text]) => pairs.push(["turn_note-" + n, text]));
    restore(JSON.stringify(pairs));
  }
  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", !!isError);
  }
  function changed(e) {
    // A field the server marked as wrong is no longer marked once the expert edits it.
    const marked = e && e.target && e.target.closest && e.target.closest(".has-error, .crit.missing");
    if (marked) marked.classList.remove("has-error", "missing");
    localStorage.setItem(storeKey, JSON.stringify({ revision: revisionInput.value, fields: snapshot() }));
    setStatus("Unsaved changes…");
    clearTimeout(timer);
    timer = setTimeout(save, 1200);
  }
  async function save(opts) {
    if (saving) { again = true; return; }
    saving = true;
    clearTimeout(timer);
    const fields = snapshot();
    try {
      const r = await fetch(form.dataset.draftUrl, {
        method: "POST", body: new FormData(form), keepalive: !!(opts && opts.keepalive),
        headers: { "X-CSRFToken": csrf(), Accept: "application/json" },
      });
      const data = await r.json().catch(() => ({ error: "The server answered " + r.status + "." }));
      if (r.ok) {
        revisionInput.value = data.revision;
        savedSnapshot = fields;
        const stored = JSON.parse(localStorage.getItem(storeKey) || "null");
        if (stored && stored.fields === fields) localStorage.removeItem(storeKey);
        setStatus("Draft saved at " + data.saved_at + ".");
        if (activeShown && data.active_seconds !== undefined) activeShown.textContent = data.active_seconds;
        if (data.checks_shown) revealChecksLink();
      } else if (r.status === 409 && data.draft && fields === savedSnapshot) {
        // Nothing typed here since the last save: the other tab's draft is simply newer.
        fillFromServer(data.draft);
        revisionInput.value = data.revision;
        savedSnapshot = snapshot();
        setStatus("Draft updated from another tab (revision " + data.revision + ").");
      } else if (r.status === 409 && data.draft) {
        serverDraft = data;
        document.getElementById("stale-text").textContent = data.error;
        banner.hidden = false;
        setStatus("Not saved: a newer draft exists (see above). Your text is kept in this browser.", true);
      } else {
        setStatus("Not saved: " + (data.error || r.statusText), true);
      }
    } catch (err) {
      setStatus("Not saved (offline?): your text is kept in this browser and saved when the server answers.", true);
      timer = setTimeout(save, 5000);
    } finally {
      saving = false;
      if (again) { again = false; save(); }
    }
  }
  function revealChecksLink() {
    document.querySelectorAll(".side-checks").forEach((s) => {
      const note = s.querySelector("p.muted");
      if (note && !s.querySelector("table") && !s.dataset.revealed) {
        s.dataset.revealed = "1";
        note.innerHTML = '<a href="">Checks are available now: show them</a> (reloads the page; your draft is saved).';
      }
    });
  }
  banner.querySelector('[data-action="load-newer"]').addEventListener("click", () => {
    if (pendingLocal) { pendingLocal = null; localStorage.removeItem(storeKey); banner.hidden = true; return; }
    if (!serverDraft) return;
    fillFromServer(serverDraft.draft);
    revisionInput.value = serverDraft.revision;
    localStorage.removeItem(storeKey);
    banner.hidden = true;
    setStatus("Loaded the newer draft (revision " + serverDraft.revision + ").");
  });
  banner.querySelector('[data-action="keep-mine"]').addEventListener("click", () => {
    if (pendingLocal) { restore(pendingLocal); pendingLocal = null; }
    if (serverDraft) revisionInput.value = serverDraft.revision;
    banner.hidden = true;
    save();
  });
  if (editable) {
    form.addEventListener("input", changed);
    form.addEventListener("change", (e) => { if (e.target.type === "radio" || e.target.tagName === "SELECT") changed(e); });
    form.addEventListener("submit", () => { localStorage.removeItem(storeKey); });
    savedSnapshot = snapshot();
    const stored = JSON.parse(localStorage.getItem(storeKey) || "null");
    if (stored && stored.fields !== savedSnapshot) {
      if (stored.revision === revisionInput.value) {
        restore(stored.fields);
        setStatus("Restored changes this browser had not saved yet.");
        save();
      } else {
        serverDraft = null;
        document.getElementById("stale-text").textContent =
          "This browser kept changes you had not saved, but the draft was saved elsewhere since. " +
          "Keep the saved draft, or restore this browser's changes and save them over it.";
        banner.querySelector('[data-action="load-newer"]').textContent = "Keep the saved draft";
        banner.querySelector('[data-action="keep-mine"]').textContent = "Restore this browser's changes";
        pendingLocal = stored.fields;
        banner.hidden = false;
      }
    } else if (stored) {
      localStorage.removeItem(storeKey);
    }
  }

  // Rationale counter -----------------------------------------------------------------------
  const rationale = document.getElementById("rationale");
  const counter = document.getElementById("rationale-count");
  const minRationale = parseInt(form.dataset.minRationale, 10) || 0;
  function updateCounter() {
    const n = rationale.value.trim().length;
    counter.textContent = n + " / " + minRationale + " characters minimum" + (n >= minRationale ? " ✓" : "");
    counter.classList.toggle("error", n > 0 && n < minRationale);
  }
  rationale.addEventListener("input", updateCounter);
  updateCounter();

  // Leaving the tab saves what was typed (the server's time needs nothing from here).
  if (editable) {
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden" && snapshot() !== savedSnapshot) save({ keepalive: true });
    });
  }
})();
