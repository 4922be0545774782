// The rubric editor: add a criterion (a copy of the formset's empty form), move criteria up and
// down (the Position fields follow the order on the page). Without JavaScript the page still
// works: one blank criterion to add, Position numbers to reorder, Remove to delete.
(function () {
  "use strict";
  const editor = document.getElementById("rubric-editor");
  if (!editor) return;
  const list = document.getElementById("criteria-list");
  const total = editor.querySelector('input[name="c-TOTAL_FORMS"]');
  function renumber() {
    Array.from(list.children).forEach((item, i) => {
      const order = item.querySelector('input[name$="-ORDER"]');
      if (order) order.value = i + 1;
      const number = item.querySelector(".criterion-number");
      if (number) number.textContent = i + 1;
    });
  }
  // With JavaScript, "Add a criterion" replaces the blank form kept for pages without it.
  const initial = parseInt(editor.querySelector('input[name="c-INITIAL_FORMS"]').value, 10);
  const blank = list.lastElementChild;
  const blankKey = blank && blank.querySelector('input[name$="-key"]');
  if (blankKey && parseInt(total.value, 10) > initial && !blankKey.value && !blank.querySelector(".error")) {
    blank.remove();
    total.value = parseInt(total.value, 10) - 1;
  }
  editor.addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    const item = button.closest(".criterion-form");
    if (button.dataset.action === "move-up" && item.previousElementSibling) {
      list.insertBefore(item, item.previousElementSibling);
    } else if (button.dataset.action === "move-down" && item.nextElementSibling) {
      list.insertBefore(item.nextElementSibling, item);
    } else if (button.dataset.action === "add-criterion") {
      const index = parseInt(total.value, 10);
      const html = document.getElementById("criterion-template").innerHTML.replace(/__prefix__/g, String(index));
      list.insertAdjacentHTML("beforeend", html);
      total.value = index + 1;
      list.lastElementChild.querySelector('input[name$="-key"]').focus();
    } else {
      return;
    }
    renumber();
    (item || button).scrollIntoView({ block: "nearest" });
  });
})();
