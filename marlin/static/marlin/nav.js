// The top bar's menu button: under ~900 px the main nav folds away behind it (marlin.css).
(function () {
  "use strict";
  const button = document.querySelector(".topbar .menu-toggle");
  if (!button) return;
  const bar = button.closest(".topbar");
  function set(open) {
    bar.classList.toggle("open", open);
    button.setAttribute("aria-expanded", String(open));
  }
  button.addEventListener("click", () => set(!bar.classList.contains("open")));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && bar.classList.contains("open")) { set(false); button.focus(); } });
})();
