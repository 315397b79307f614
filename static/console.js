// Keyboard and composer conveniences for the console. Every flow also works without this file.
(function () {
  "use strict";

  function isTyping(element) {
    return element instanceof Element && element.closest("input, textarea, select, [contenteditable]") !== null;
  }

  function updateCounter(textarea) {
    var counter = document.getElementById(textarea.id + "-counter");
    if (counter) counter.textContent = textarea.value.length + " / " + textarea.maxLength;
  }

  function updateCounters() {
    document.querySelectorAll("textarea[data-counter]").forEach(updateCounter);
  }

  function moveSelection(step) {
    var rows = Array.prototype.slice.call(document.querySelectorAll("[data-inbox-row]"));
    if (rows.length === 0) return;
    var index = rows.indexOf(document.activeElement);
    var next = rows[Math.min(rows.length - 1, Math.max(0, index === -1 ? 0 : index + step))];
    next.focus();
  }

  function click(selector) {
    var elements = document.querySelectorAll(selector);
    if (elements.length === 0) return false;
    elements[elements.length - 1].click();
    return true;
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-counter]")) updateCounter(event.target);
  });

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && target.matches && target.matches("textarea[data-enter-sends]")) {
      event.preventDefault();
      target.form.requestSubmit();
      return;
    }
    if (event.key === "Escape") {
      var help = document.getElementById("keyboard-help");
      if (help && help.open) return;  // the dialog closes itself
      click("[data-remove-quote]");
      return;
    }
    if (isTyping(target) || event.ctrlKey || event.metaKey || event.altKey) return;
    var handled = true;
    switch (event.key) {
      case "j": moveSelection(1); break;
      case "k": moveSelection(-1); break;
      case "/":
        var search = document.querySelector("[data-search]");
        if (search) search.focus(); else handled = false;
        break;
      case "r": handled = click("[data-reply-to-customer]"); break;
      case "?":
        var dialog = document.getElementById("keyboard-help");
        if (dialog) dialog.showModal(); else handled = false;
        break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  document.addEventListener("htmx:after:swap", updateCounters);
  document.addEventListener("DOMContentLoaded", updateCounters);
})();
